"""Follow a growing text file, like `tail -F`, as an async iterator of complete lines.

Job logs, trainer events and server logs are all files another process appends to. The
follower hands out only complete lines, each with the byte offset just after it, so a
reader that stops can resume from that offset without losing or repeating a line. It
copes with a line written in pieces (held until its end arrives), a file truncated in
place (read again from the start) and a file replaced by a new one (the old one is drained
first). It polls `os.stat` instead of using inotify: that works on every filesystem and
platform, costs microseconds, and the interval backs off while the file is idle.

Lines end at `\\n`, `\\r\\n` or a lone `\\r` (as `str.splitlines` and Azure ML's log
streaming treat them), so progress bars that redraw with `\\r` arrive as lines too.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import accumulate, count
from operator import add
from pathlib import Path
from typing import IO

Line = tuple[str, int]
"""A line's text (without its line ending) and the byte offset just after it."""

Finished = Callable[[], bool | Awaitable[bool]]

READ_CHUNK = 1 << 18  # bytes per read (~4,000 lines): keeps each batch, and its delay, small
MIN_INTERVAL = 0.01  # seconds between polls while data is flowing
MAX_INTERVAL = 0.1  # the most an idle follower waits, so a new line shows within ~0.1 s
_LINE_END = re.compile(rb"\r\n|\r|\n")


def split_lines(data: bytes, start: int) -> list[Line]:
    """Split `data`, which ends just after a line ending, into lines; `start` is its offset."""
    if b"\r" not in data:
        # All in C: split once, offsets are running sums of the lengths plus the newlines.
        if data.isascii():
            texts = data.decode("ascii").split("\n")
            texts.pop()  # the empty piece after the final newline
            ends = map(add, accumulate(map(len, texts)), count(start + 1))
            return list(zip(texts, ends, strict=False))  # `ends` is endless
        raws = data.split(b"\n")
        raws.pop()
        ends = map(add, accumulate(map(len, raws)), count(start + 1))
        return list(zip(map(_decode, raws), ends, strict=False))
    lines: list[Line] = []
    position = 0
    for match in _LINE_END.finditer(data):
        piece, position = data[position : match.start()], match.end()
        if piece or match.group() != b"\r":  # an empty piece before a lone \r is a redraw
            lines.append((_decode(piece), start + position))
    return lines


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class LogReader:
    """Reads the complete lines added to a file since the last call, without waiting.

    `offset` is the byte position just after the last line handed out; pass it back to a
    new reader to resume. A missing file is simply empty until it appears.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset
        self._file: IO[bytes] | None = None
        self._inode: tuple[int, int] | None = None
        self._pending = b""  # bytes after `offset` that do not end a line yet
        self.truncations = 0
        self.rotations = 0

    def read(self, final: bool = False, limit: int = READ_CHUNK) -> list[Line]:
        """Lines available now. `final` also returns an unterminated last line: the writer
        has finished, so no more of it will come."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        lines: list[Line] = []
        if self._file is not None and (stat is None or (stat.st_dev, stat.st_ino) != self._inode):
            lines = self._drain_replaced()
        if stat is None:
            return lines
        if self._file is None and not self._open(stat.st_size):
            return lines
        if stat.st_size < self.offset + len(self._pending):
            self._restart_truncated()
        return lines + self._read_more(final, limit)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._inode = None

    def _open(self, size: int) -> bool:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open between reads
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        self._file, self._inode = handle, (stat.st_dev, stat.st_ino)
        if size < self.offset:  # shorter than where we stopped: it was truncated meanwhile
            self.offset, self.truncations = 0, self.truncations + 1
        handle.seek(self.offset + len(self._pending))
        return True

    def _restart_truncated(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        self.offset, self._pending = 0, b""
        self.truncations += 1

    def _drain_replaced(self) -> list[Line]:
        """The file was renamed or deleted: finish the old one, then start the new at 0."""
        lines = self._read_more(final=True, limit=-1)
        self.close()
        self.offset, self._pending = 0, b""
        self.rotations += 1
        return lines

    def _read_more(self, final: bool, limit: int) -> list[Line]:
        assert self._file is not None
        data = self._pending + self._file.read(limit)
        if final:
            complete, pending = data, b""
        else:
            # A trailing \r may be the first half of \r\n: keep it until the next byte comes.
            search_end = len(data) - 1 if data.endswith(b"\r") else len(data)
            cut = max(data.rfind(b"\n", 0, search_end), data.rfind(b"\r", 0, search_end)) + 1
            complete, pending = data[:cut], data[cut:]
        self._pending = pending
        if not complete:
            return []
        if complete.endswith((b"\n", b"\r")):
            lines = split_lines(complete, self.offset)
        else:  # the writer is done and its last line has no ending
            lines = split_lines(complete + b"\n", self.offset)
            lines[-1] = (lines[-1][0], self.offset + len(complete))
        self.offset += len(complete)
        return lines


async def follow_batches(
    path: str | os.PathLike[str],
    offset: int = 0,
    *,
    finished: Finished | None = None,
    min_interval: float = MIN_INTERVAL,
    max_interval: float = MAX_INTERVAL,
) -> AsyncIterator[list[Line]]:
    """Yield lists of new lines as they are written, until `finished()` says the writer is
    done (then the rest of the file is drained). Without `finished`, follow forever.

    Batches suit UIs: one message per batch instead of one per line.
    """
    reader = LogReader(path, offset)
    interval = min_interval
    try:
        while True:
            batch = reader.read()
            if batch:
                yield batch
                interval = min_interval
                continue
            if finished is not None and await _call(finished):
                # The writer is done, so everything it wrote is in the file now.
                while batch := reader.read():
                    yield batch
                if batch := reader.read(final=True):
                    yield batch
                return
            await asyncio.sleep(interval)
            interval = min(interval * 2, max_interval)
    finally:
        reader.close()


async def follow_lines(
    path: str | os.PathLike[str], offset: int = 0, *, finished: Finished | None = None
) -> AsyncIterator[Line]:
    """`follow_batches`, one line at a time."""
    async for batch in follow_batches(path, offset, finished=finished):
        for line in batch:
            yield line


async def _call(finished: Finished) -> bool:
    result = finished()
    if inspect.isawaitable(result):
        result = await result
    return bool(result)
