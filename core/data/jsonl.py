"""Read JSONL the forgiving way: any line ending, blank lines, bad bytes, no final newline.

Datasets arrive from Windows editors (CRLF, a byte-order mark), from scripts that forget the
final newline and from tools that mangle encodings. Reading never fails on such a file: each
line is decoded and parsed on its own, and what is wrong with it comes back as a `Problem`
with its line number, so one bad byte costs one row, not the whole file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.rules import Problem

BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark: Notepad and Azure's docs put one first
READ_BUFFER = 1 << 20
PROGRESS_EVERY = 1 << 23  # bytes between progress callbacks: cheap, yet smooth on a 1 GB file


@dataclass(frozen=True)
class ParsedLine:
    """One line: its text (bad bytes replaced), the parsed value, and why it failed if it did.

    `data` may be set even with a problem: a line whose only fault is a bad byte inside a
    string still parses once the byte is replaced, so a preview can show it.
    """

    text: str
    data: Any = None
    problem: Problem | None = None

    @property
    def blank(self) -> bool:
        return not self.text.strip()


def new_file_mode() -> int:
    """The mode a plain `open()` gives a new file (0o666 less the umask); atomic writes start
    from a private 0o600 temp file, which suits secrets, not datasets others may read."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def strip_line_ending(raw: bytes) -> bytes:
    """The line without `\\n` or `\\r\\n`."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw


def parse_line(raw: bytes) -> ParsedLine:
    """Decode and parse one line (without its line ending)."""
    problem = None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        text = raw.decode("utf-8", errors="replace")
        problem = Problem(
            "not_utf8",
            f"byte 0x{raw[error.start]:02x} at column {error.start + 1} is not valid UTF-8",
        )
    if not text.strip():
        return ParsedLine(text, None, problem)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return ParsedLine(
            text,
            None,
            problem
            or Problem("invalid_json", f"not valid JSON: {error.msg} at column {error.colno}"),
        )
    except RecursionError:
        return ParsedLine(text, None, problem or Problem("invalid_json", "JSON nested too deep"))
    return ParsedLine(text, data, problem)


def iter_lines(
    path: str | Path, on_progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, raw line without its ending) for every line, blank ones included.

    A byte-order mark before the first line is not part of it. `on_progress(bytes_read)` is
    called every few megabytes and once at the end.
    """
    done = reported = 0
    with open(path, "rb", buffering=READ_BUFFER) as handle:
        for number, raw in enumerate(handle, start=1):
            done += len(raw)
            if on_progress is not None and done - reported >= PROGRESS_EVERY:
                on_progress(done)
                reported = done
            if number == 1:
                raw = raw.removeprefix(BOM)
            yield number, strip_line_ending(raw)
    if on_progress is not None:
        on_progress(done)
