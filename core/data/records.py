"""The rows of one dataset file, whatever its layout: JSON Lines, a JSON array, Parquet.

`data validate` and `data prepare` both read files through `read_records`, so a file is the
same rows to both: a UTF-8 byte-order mark (Azure's fine-tuning docs ask for one) is not
part of the first row, CRLF line ends are line ends, blank lines are skipped, a JSON array
is its elements whatever the file is called. The layout is found from the content, not only
the name: a file that starts with `[` is a JSON array (a JSON Lines row is never a list).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.formats import shape_of
from core.data.jsonl import BOM, iter_lines, parse_line
from core.data.rules import Problem
from core.errors import PhiopsError

PARQUET_BATCH = 2048
SNIFF = 1 << 16


@dataclass(frozen=True)
class Record:
    """One row of a file: where it is (`line 7` or `row 7`), its parsed value or why not."""

    number: int
    unit: str = "line"
    data: Any = None
    problem: Problem | None = None
    raw: bytes | None = None  # the line as read (JSON Lines only; no ending, no BOM)
    blank: bool = False

    @property
    def where(self) -> str:
        return f"{self.unit} {self.number}"


def layout(path: Path) -> str:
    """`jsonl`, `json` or `parquet`: by the first character for a JSON array, else the name."""
    if path.suffix == ".parquet":
        return "parquet"
    with open(path, "rb") as handle:
        start = handle.read(SNIFF).removeprefix(BOM).lstrip()
    if start.startswith(b"[") or path.suffix == ".json":
        return "json"
    return "jsonl"


def read_records(
    path: str | Path, on_progress: Callable[[int], None] | None = None
) -> Iterator[Record]:
    """Every row of `path`, blank lines included (as `blank` records) for JSON Lines.

    `on_progress(bytes_read)` is called every few megabytes and at the end."""
    path = Path(path)
    kind = layout(path)
    if kind == "parquet":
        yield from _parquet_records(path)
    elif kind == "json":
        yield from _json_records(path)
    else:
        yield from _jsonl_records(path, on_progress)
        return
    if on_progress is not None:
        on_progress(path.stat().st_size)


def _jsonl_records(path: Path, on_progress: Callable[[int], None] | None) -> Iterator[Record]:
    for number, raw in iter_lines(path, on_progress):
        parsed = parse_line(raw)
        blank = parsed.blank and parsed.problem is None
        yield Record(number, "line", parsed.data, parsed.problem, raw, blank)


def _json_records(path: Path) -> Iterator[Record]:
    """A JSON list of rows, an object holding one such list, or JSON Lines after all."""
    try:
        document = json.loads(path.read_bytes().removeprefix(BOM).decode("utf-8"))
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # several values: JSON Lines, whatever the name says
            yield from _jsonl_records(path, None)
            return
        raise PhiopsError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}); "
            "write one JSON object a line, or one JSON list of rows."
        ) from None
    except UnicodeDecodeError:
        raise PhiopsError(f"{path} is not UTF-8 text.") from None
    if isinstance(document, dict):  # one row, or an object holding the list of rows
        lists = [value for value in document.values() if isinstance(value, list)]
        one_row = shape_of(document) is not None or len(lists) != 1
        document = [document] if one_row else lists[0]
    if not isinstance(document, list):
        raise PhiopsError(f"{path} must hold a JSON list of rows (or one JSON object a line).")
    for number, row in enumerate(document, start=1):
        yield Record(number, "row", row)


def parquet_file(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises its own ArrowInvalid/OSError family
        raise PhiopsError(f"{path} is not a readable Parquet file ({error}).") from None


def _parquet_records(path: Path) -> Iterator[Record]:
    number = 0
    for batch in parquet_file(path).iter_batches(batch_size=PARQUET_BATCH):
        for row in batch.to_pylist():
            number += 1
            yield Record(number, "row", row)


def count_rows(path: Path) -> int:
    """How many rows `read_records` yields that are not blank, as cheaply as the layout allows."""
    kind = layout(path)
    if kind == "parquet":
        return parquet_file(path).metadata.num_rows
    if kind == "json":
        return sum(1 for record in _json_records(path) if not record.blank)
    return sum(1 for _, raw in iter_lines(path) if raw.strip())
