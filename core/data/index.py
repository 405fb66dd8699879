"""The preview engine: open a 200,000-row JSONL file at once and jump to any row.

`DatasetIndex.open(path)` returns immediately; a background thread finds every line start
and publishes them in batches, so the first rows can be shown while the rest of the file is
still being indexed (toolong's approach). The index is an `array('q')` of newline offsets
(8 bytes a row: 1.6 MB for 200,000 rows; numpy would do the same and cost the TUI ~0.1 s
of import); a row is read on demand with one positional read and parsed, and its stats
(turns, characters, validation problems — `formats.check_row`, as `data validate` judges
rows) are computed only when asked for, with small LRU
caches in front.

The scan reads the file in 1 MiB blocks into one reused buffer and finds newlines with
`bytearray.find` (memchr). The issue pictured a memory map; a mapped scan is a little
faster (the benchmark times both), but a file truncated while mapped raises SIGBUS, which
kills the process — and a file that is still being written is exactly what this engine
must survive. Positional reads just come back short, and they meet the budget.

A row is a line: blank lines are rows (shown as blank, skipped by validation) so that row
n is always line n + 1, the number `data validate` reports. Lines end at `\\n`; a `\\r`
before it is dropped. The last line counts even without a final newline; while the file
grows it may be incomplete, and `Row.terminated` says so. Bad bytes are replaced and the
row reports them instead of failing. A byte-order mark before the first row is not part of it.

Thread safety: every public method may be called from any thread. `on_progress` is called
from the scanning thread (a UI must hand it over to its own thread, e.g. with Textual's
`call_from_thread`), at most every `progress_interval` seconds and once at the end of each
scan.
"""

from __future__ import annotations

import os
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.formats import check_row
from core.data.jsonl import BOM, parse_line, strip_line_ending
from core.data.rules import Problem, conversation_size
from core.errors import NotFoundError, PhiopsError

BLOCK = 1 << 20  # bytes per read: fits in L2 cache, so finding newlines runs on hot memory
ROW_CACHE = 128  # parsed rows (a big ultrachat row is ~30 KB as Python objects)
STATS_CACHE = 16384
NOTIFY_INTERVAL = 0.01  # seconds between wake-ups of threads waiting for rows


@dataclass(frozen=True)
class IndexProgress:
    rows: int
    bytes_scanned: int
    bytes_total: int
    complete: bool


@dataclass(frozen=True)
class Row:
    """One line of the file, parsed. `problem` says why it is not JSON, if it is not."""

    index: int
    offset: int
    text: str
    data: Any = None
    problem: Problem | None = None
    terminated: bool = True

    @property
    def line(self) -> int:
        return self.index + 1

    @property
    def blank(self) -> bool:
        return self.problem is None and not self.text.strip()

    @property
    def messages(self) -> list | None:
        messages = self.data.get("messages") if isinstance(self.data, dict) else None
        return messages if isinstance(messages, list) else None


@dataclass(frozen=True)
class RowStats:
    """What a list view shows beside a row, computed on demand."""

    turns: int
    chars: int
    problems: tuple[Problem, ...] = ()
    blank: bool = False
    shape: str | None = None  # formats.CHAT, or the shape it is converted from

    @property
    def valid(self) -> bool:
        return not self.problems and not self.blank


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)


def _read_at(fd: int, buffer: bytearray, offset: int, size: int) -> int:
    """Read up to `size` bytes at `offset` into `buffer` without allocating."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [memoryview(buffer)[:size]], offset)
    data = os.pread(fd, size, offset)
    buffer[: len(data)] = data
    return len(data)


class DatasetIndex:
    """A line index over a JSONL file, built in the background; rows read on demand."""

    def __init__(
        self,
        path: Path,
        fd: int,
        on_progress: Callable[[IndexProgress], None] | None,
        progress_interval: float,
    ) -> None:
        self.path = path
        self._fd = fd
        stat = os.fstat(fd)
        self._identity = self._identity_of(stat)
        self._shrunk = False  # a read came back short: the file was truncated under the scan
        self._retired: list[int] = []  # descriptors of a replaced file, closed at close()
        self._on_progress = on_progress
        self._interval = progress_interval
        self._cond = threading.Condition()
        self._generation = 0  # bumped when the file is replaced or truncated
        self._newlines = array("q")  # offset of every newline found, 8 bytes each
        self._count = 0  # newlines found
        self._scanned = 0  # bytes scanned
        self._target = stat.st_size  # bytes the scan runs to
        self._closed = False
        self._rows = _LRU(ROW_CACHE)
        self._stats = _LRU(STATS_CACHE)
        self._thread = threading.Thread(target=self._run, name=f"index {path.name}", daemon=True)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        on_progress: Callable[[IndexProgress], None] | None = None,
        progress_interval: float = 0.25,
    ) -> DatasetIndex:
        """Start indexing `path` in the background and return at once."""
        path = Path(path)
        if path.is_dir():
            raise PhiopsError(f"{path} is a folder; give a JSONL file.")
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFoundError(f"{path} does not exist.") from None
        except OSError as error:
            raise PhiopsError(f"cannot open {path}: {error.strerror}.") from None
        index = cls(path, fd, on_progress, progress_interval)
        index._thread.start()
        return index

    # -- state ---------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        """Rows indexed so far (all of them once `is_complete`)."""
        with self._cond:
            return self._row_count()

    @property
    def is_complete(self) -> bool:
        with self._cond:
            return self._scanned >= self._target

    @property
    def progress(self) -> IndexProgress:
        with self._cond:
            return self._progress()

    def wait(self, timeout: float | None = None, *, rows: int | None = None) -> bool:
        """Block until the index is complete (or holds `rows` rows); False on timeout."""

        def ready() -> bool:
            done = self._closed or self._scanned >= self._target
            return done or (rows is not None and self._row_count() >= rows)

        with self._cond:
            return self._cond.wait_for(ready, timeout)

    def _row_count(self) -> int:
        tail_start = int(self._newlines[self._count - 1]) + 1 if self._count else 0
        complete = self._scanned >= self._target
        return self._count + (1 if complete and self._scanned > tail_start else 0)

    def _progress(self) -> IndexProgress:
        return IndexProgress(
            self._row_count(), self._scanned, self._target, self._scanned >= self._target
        )

    # -- rows ----------------------------------------------------------------------------

    def row(self, index: int) -> Row:
        """Row `index` (0-based; negative counts from the end once the index is complete).

        A row the scan has not reached yet is waited for; past the end is an IndexError.
        """
        index = self._resolve(index)
        with self._cond:
            self._check_open()
            if index >= self._row_count():  # the file was replaced since _resolve
                raise IndexError(f"row {index} is out of range: {self.path} changed")
            start, end, terminated = self._span(index)
            fd, key = self._fd, (self._generation, start, end)
            cached = self._rows.get(key)
        if cached is not None:
            return cached
        raw = os.pread(fd, end - start, start) if end > start else b""
        if start == 0:
            raw = raw.removeprefix(BOM)
        parsed = parse_line(strip_line_ending(raw))
        problem = parsed.problem
        if problem is not None and not terminated and problem.code == "invalid_json":
            problem = Problem("invalid_json", f"{problem.message} (the line is not finished yet)")
        row = Row(index, start, parsed.text, parsed.data, problem, terminated)
        with self._cond:
            self._rows.put(key, row)
        return row

    def rows(self, start: int, stop: int) -> list[Row]:
        """Rows `start` to `stop` (excluded), as a slice: clipped to the rows there are."""
        if start < 0 or stop < 0:
            self.wait()
        else:
            self.wait(rows=stop)
        return [self.row(index) for index in range(*slice(start, stop).indices(self.row_count))]

    def stats(self, index: int) -> RowStats:
        """Turns, characters and validation problems of one row, computed once."""
        index = self._resolve(index)
        with self._cond:
            if index >= self._row_count():
                raise IndexError(f"row {index} is out of range: {self.path} changed")
            start, end, _ = self._span(index)
            key = (self._generation, start, end)
            cached = self._stats.get(key)
        if cached is not None:
            return cached
        row = self.row(index)
        turns, chars = conversation_size(row.data)
        if row.blank:
            stats = RowStats(0, 0, blank=True)
        elif row.problem is not None:
            stats = RowStats(turns, chars, (row.problem,))
        else:
            checked = check_row(row.data)
            turns, chars = conversation_size(checked.row)
            stats = RowStats(turns, chars, checked.problems, shape=checked.shape)
        with self._cond:
            self._stats.put(key, stats)
        return stats

    def _resolve(self, index: int) -> int:
        if index < 0:
            self.wait()
            index += self.row_count
        else:
            self.wait(rows=index + 1)
        count = self.row_count
        if not 0 <= index < count:
            raise IndexError(f"row {index} is out of range: {self.path} has {count} rows")
        return index

    def _span(self, index: int) -> tuple[int, int, bool]:
        """(start, end, ends with a newline) of a row; call with the lock held."""
        start = int(self._newlines[index - 1]) + 1 if index else 0
        if index < self._count:
            return start, int(self._newlines[index]), True
        return start, self._scanned, False

    # -- a file that changes ---------------------------------------------------------------

    def refresh(self) -> bool:
        """Look at the file again: index what was appended, or start over if it was replaced
        or truncated. Returns whether anything changed. Cheap (one stat): call it often."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False  # removed: keep showing what was there
        with self._cond:
            self._check_open()
            replaced = self._identity_of(current) != self._identity
            if not replaced and not self._shrunk:
                if current.st_size == self._target:
                    return False
                if current.st_size > self._target:  # appended to: scan the new part
                    self._target = current.st_size
                    self._cond.notify_all()
                    return True
        fd = os.open(self.path, os.O_RDONLY) if replaced else None
        with self._cond:
            if fd is not None:
                self._retired.append(self._fd)
                self._fd = fd
                self._identity = self._identity_of(os.fstat(fd))
            self._generation += 1
            self._shrunk = False
            self._newlines = array("q")
            self._count = self._scanned = 0
            self._target = os.fstat(self._fd).st_size
            self._cond.notify_all()
        return True

    @staticmethod
    def _identity_of(stat: os.stat_result) -> tuple[int, int]:
        return stat.st_dev, stat.st_ino

    # -- the scanner ---------------------------------------------------------------------

    def _run(self) -> None:
        buffer = bytearray(BLOCK)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._scanned < self._target)
                if self._closed:
                    return
                job = (self._fd, self._scanned, self._target, self._generation)
            self._scan(*job, buffer)

    def _scan(self, fd: int, position: int, target: int, generation: int, buffer) -> None:
        find = buffer.find
        last_report = last_notify = 0.0
        while position < target:
            got = _read_at(fd, buffer, position, min(BLOCK, target - position))
            found = []
            if got:
                at = find(b"\n", 0, got)
                while at >= 0:
                    found.append(position + at)
                    at = find(b"\n", at + 1, got)
            position += got
            now = time.monotonic()
            with self._cond:
                if self._closed or generation != self._generation:
                    return
                if not got:  # the file shrank under the scan; refresh() will start over
                    self._target = position
                    self._shrunk = True
                self._append(found)
                self._scanned = position
                done = position >= self._target
                if done or now - last_notify >= NOTIFY_INTERVAL:
                    last_notify = now  # waking waiters per block would only churn the GIL
                    self._cond.notify_all()
                report = done or now - last_report >= self._interval
                progress = self._progress() if report and self._on_progress else None
            if progress is not None:
                last_report = now
                self._on_progress(progress)
            if done:
                return

    def _append(self, offsets: list[int]) -> None:
        """Add newline offsets; lock held."""
        self._newlines.extend(offsets)
        self._count = len(self._newlines)

    # -- closing -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the index of {self.path} is closed")

    def close(self) -> None:
        """Stop the scan and release the file. Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
        for fd in (self._fd, *self._retired):
            os.close(fd)

    def __enter__(self) -> DatasetIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
