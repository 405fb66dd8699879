"""`data validate`: check every row of a dataset file before a GPU hour is spent on it.

Rows are read and judged exactly as `data prepare` reads and judges them
(`records.read_records`, `formats.check_row`): a ShareGPT or Alpaca row that prepare would
convert is valid here too. A JSON Lines file is streamed line by line (a 1.3 GB file never
sits in memory), every problem is reported with its line number as it is found, and the
summary counts rows by reason and describes the conversations (turns, characters, tokens).
`write_clean` copies the valid rows to a new file, atomically; the input is only ever read.
"""

from __future__ import annotations

import json
import os
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.atomic import atomic_writer
from core.data.formats import Checked, check_row
from core.data.jsonl import new_file_mode
from core.data.records import Record, read_records
from core.data.rules import Problem, conversation_size
from core.data.tokens import TokenCounter
from core.errors import NotFoundError, PhiopsError

TOKEN_BATCH = 256  # conversations per tokenizer call: fast tokenizers batch in Rust


@dataclass(frozen=True)
class LineProblem:
    line: int
    code: str
    message: str


@dataclass(frozen=True)
class Distribution:
    """A summary of one number over the valid rows."""

    min: int
    mean: float
    p50: int
    p95: int
    max: int

    @classmethod
    def of(cls, values: Sequence[int]) -> Distribution | None:
        if not values:
            return None
        ordered = sorted(values)
        last = len(ordered) - 1
        return cls(
            min=ordered[0],
            mean=round(sum(ordered) / len(ordered), 1),
            p50=ordered[round(last * 0.5)],
            p95=ordered[round(last * 0.95)],
            max=ordered[-1],
        )


@dataclass
class ValidationReport:
    path: str
    lines: int = 0
    blank_lines: int = 0
    rows: int = 0
    valid: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    problems: list[LineProblem] = field(default_factory=list)
    turns: Distribution | None = None
    chars: Distribution | None = None
    tokens: Distribution | None = None
    max_tokens: int | None = None
    over_token_limit: list[tuple[int, int]] = field(default_factory=list)  # (line, tokens)
    clean_file: str | None = None
    converted: dict[str, int] = field(default_factory=dict)  # valid rows by converted shape
    conversions: dict[str, int] = field(default_factory=dict)  # rows by what conversion did

    @property
    def invalid(self) -> int:
        return self.rows - self.valid

    @property
    def ok(self) -> bool:
        """Trainable: at least one row, and no invalid row."""
        return self.rows > 0 and self.invalid == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "invalid": self.invalid, "ok": self.ok}


class _TokenTally:
    """Counts tokens of valid rows in batches and notes the lines over the limit."""

    def __init__(self, counter: TokenCounter, max_tokens: int | None) -> None:
        self.counter = counter
        self.max_tokens = max_tokens
        self.lengths = array("q")
        self.over: list[tuple[int, int]] = []
        self._pending: list[tuple[int, list[dict[str, str]]]] = []

    def add(self, line: int, messages: list[dict]) -> None:
        self._pending.append(
            (line, [{"role": m["role"], "content": m["content"]} for m in messages])
        )
        if len(self._pending) >= TOKEN_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        counts = self.counter.count([messages for _, messages in self._pending])
        self.lengths.extend(counts)
        if self.max_tokens is not None:
            self.over += [
                (line, n)
                for (line, _), n in zip(self._pending, counts, strict=True)
                if n > self.max_tokens
            ]
        self._pending.clear()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def clean_line(record: Record, checked: Checked) -> bytes:
    """A valid row for --write-clean, as `data prepare` would train on it: a chat line as it
    was read, any other row as its chat messages."""
    if record.raw is not None and not checked.converted:
        return record.raw + b"\n"
    return (json.dumps(checked.row, ensure_ascii=False) + "\n").encode("utf-8")


def validate_file(
    path: str | Path,
    *,
    tokenizer: str | None = None,
    max_tokens: int | None = None,
    write_clean: str | Path | None = None,
    on_problem: Callable[[LineProblem], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_valid: Callable[[int, int, int], None] | None = None,
) -> ValidationReport:
    """Check every line of `path`; problems go to `on_problem` as found and into the report.

    `on_valid(line, turns, chars)` sees each valid row's size, e.g. for a length histogram
    (the report keeps only the distribution's summary)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist or is not a file.")
    if max_tokens is not None and tokenizer is None:
        raise PhiopsError("--max-tokens needs --tokenizer, to count tokens the model's way.")
    if write_clean is not None and _same_file(path, Path(write_clean)):
        raise PhiopsError(
            f"--write-clean must name a new file, not the input {path}; the input is never changed."
        )
    tally = _TokenTally(TokenCounter.load(tokenizer), max_tokens) if tokenizer else None
    report = ValidationReport(path=str(path), max_tokens=max_tokens)
    reasons: Counter[str] = Counter()
    shapes: Counter[str] = Counter()
    conversions: Counter[str] = Counter()
    turns, chars = array("q"), array("q")

    def note(line: int, problems: list[Problem]) -> None:
        for problem in problems:
            found = LineProblem(line, problem.code, problem.message)
            report.problems.append(found)
            if on_problem is not None:
                on_problem(found)
        reasons.update({problem.code for problem in problems})

    with ExitStack() as stack:
        clean = None
        if write_clean is not None:
            clean = stack.enter_context(atomic_writer(write_clean, "wb", perms=new_file_mode()))
        for record in read_records(path, on_progress):
            report.lines = record.number
            if record.blank:
                report.blank_lines += 1
                continue
            report.rows += 1
            checked = None if record.problem else check_row(record.data)
            problems = [record.problem] if record.problem else list(checked.problems)
            if problems:
                note(record.number, problems)
                continue
            report.valid += 1
            if checked.converted:
                shapes[checked.shape] += 1
                conversions.update(set(checked.notes))
            size = conversation_size(checked.row)
            turns.append(size[0])
            chars.append(size[1])
            if on_valid is not None:
                on_valid(record.number, size[0], size[1])
            if tally is not None:
                tally.add(record.number, checked.row["messages"])
            if clean is not None:
                clean.write(clean_line(record, checked))
        if tally is not None:
            tally.flush()
            report.tokens = Distribution.of(tally.lengths)
            report.over_token_limit = tally.over
    report.invalid_by_reason = dict(reasons.most_common())
    report.converted = dict(shapes.most_common())
    report.conversions = dict(conversions.most_common())
    report.turns = Distribution.of(turns)
    report.chars = Distribution.of(chars)
    report.clean_file = str(write_clean) if write_clean else None
    return report
