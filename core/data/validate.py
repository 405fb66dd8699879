"""`data validate`: check every row of a chat JSONL file before a GPU hour is spent on it.

The file is streamed line by line (a 1.3 GB file never sits in memory), every problem is
reported with its line number as it is found, and the summary counts rows by reason and
describes the conversations (turns, characters, tokens). `write_clean` copies the valid
rows to a new file, atomically; the input is only ever read.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.atomic import atomic_writer
from core.data.jsonl import iter_lines, new_file_mode, parse_line
from core.data.rules import Problem, conversation_size, row_problems
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
        for number, raw in iter_lines(path, on_progress):
            report.lines = number
            parsed = parse_line(raw)
            if parsed.blank and parsed.problem is None:
                report.blank_lines += 1
                continue
            report.rows += 1
            problems = [parsed.problem] if parsed.problem else row_problems(parsed.data)
            if problems:
                note(number, problems)
                continue
            report.valid += 1
            size = conversation_size(parsed.data)
            turns.append(size[0])
            chars.append(size[1])
            if on_valid is not None:
                on_valid(number, size[0], size[1])
            if tally is not None:
                tally.add(number, parsed.data["messages"])
            if clean is not None:
                clean.write(raw + b"\n")
        if tally is not None:
            tally.flush()
            report.tokens = Distribution.of(tally.lengths)
            report.over_token_limit = tally.over
    report.invalid_by_reason = dict(reasons.most_common())
    report.turns = Distribution.of(turns)
    report.chars = Distribution.of(chars)
    report.clean_file = str(write_clean) if write_clean else None
    return report
