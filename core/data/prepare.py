"""`data prepare`: turn a source into the train and test files phiops.toml names.

Two passes over the source: the first checks every row (`formats.check_row`, as `data
validate` does: rows in another known shape are converted to chat rows) and counts the usable
ones, the second writes them. In between, the test rows are drawn
with `random.Random(seed)`, so the same source, fraction and seed always give the same
files. Both files are written atomically, rows keep their source order, and a manifest
beside the train file records where they came from and their sha256.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import __version__
from core.atomic import atomic_writer, write_text_atomic
from core.data.formats import check_row
from core.data.jsonl import new_file_mode
from core.data.sources import Source
from core.errors import PhiopsError
from core.text import plural

MANIFEST_NAME = "manifest.json"
EXAMPLES = 10  # skipped rows named in the result; the rest are counted by reason
PROGRESS_EVERY = 512

Progress = Callable[[str, int, int | None], None]
"""on_progress(stage, rows done, rows in all or None)."""


@dataclass
class PreparedFile:
    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class PrepareResult:
    source: dict
    test_fraction: float
    seed: int
    rows_read: int
    train: PreparedFile
    test: PreparedFile
    manifest: str
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)  # rows by the shape converted from
    conversions: dict[str, int] = field(default_factory=dict)  # rows by what converting did
    warnings: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "skipped": self.skipped}


def empty_test_warning(valid: int, fraction: float) -> str:
    why = (
        f"--test-fraction is {fraction:g}"
        if fraction <= 0
        else f"only {plural(valid, 'usable row')}"
    )
    return (
        f"the test file is empty ({why}): a training job needs at least one evaluation row; "
        "give more rows or a larger --test-fraction, or point train submit --eval-file elsewhere."
    )


def held_out_count(rows: int, fraction: float) -> int:
    """How many of `rows` go to the test file: never all of them, at least one if asked for."""
    if rows < 2 or fraction <= 0:
        return 0
    return min(max(round(rows * fraction), 1), rows - 1)


class _HashingWriter:
    """Writes rows as JSON lines and keeps their count and sha256 on the way."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.rows = self.bytes = 0

    def write(self, row: dict) -> None:
        data = (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        self.handle.write(data)
        self.digest.update(data)
        self.rows += 1
        self.bytes += len(data)

    def result(self, path: Path) -> PreparedFile:
        return PreparedFile(str(path), self.rows, self.bytes, self.digest.hexdigest())


def prepare(
    source: Source,
    train_path: Path,
    test_path: Path,
    *,
    test_fraction: float = 0.2,
    seed: int = 42,
    on_progress: Progress | None = None,
) -> PrepareResult:
    """Check, split and write `source`; invalid rows are skipped and counted by reason."""
    if not 0 <= test_fraction < 1:
        raise PhiopsError(f"the test fraction must be at least 0 and below 1, not {test_fraction}.")
    if train_path.resolve() == test_path.resolve():
        raise PhiopsError(f"the train and test files must differ; both are {train_path}.")
    progress = on_progress or (lambda stage, done, total: None)

    # Pass 1: which rows are usable, and what converting them takes.
    usable = bytearray()
    reasons: Counter[str] = Counter()
    shapes: Counter[str] = Counter()
    conversions: Counter[str] = Counter()
    examples: list[str] = []
    for position, item in enumerate(source, start=1):
        checked = None if item.problem else check_row(item.data)
        problems = [item.problem] if item.problem else checked.problems
        usable.append(not problems)
        if problems:
            reasons.update({problem.code for problem in problems})
            if len(examples) < EXAMPLES:
                examples.append(f"{item.where}: {problems[0].message}")
        elif checked.converted:
            shapes[checked.shape] += 1
            conversions.update(set(checked.notes))
        if position % PROGRESS_EVERY == 0:
            progress("Checking rows", position, None)
    valid = sum(usable)
    progress("Checking rows", len(usable), len(usable))
    name = source.describe().get("dataset") or source.describe().get("path")
    if not usable:
        raise PhiopsError(f"{name} holds no rows.")
    if not valid:
        which = "its one row is" if len(usable) == 1 else f"all {len(usable):,} are"
        raise PhiopsError(
            f"{name} has no usable rows: {which} invalid ({examples[0]}); "
            "run `phiops data validate` on it to see every problem."
        )

    # The split: which of the usable rows go to the test file.
    test_rows = set(random.Random(seed).sample(range(valid), held_out_count(valid, test_fraction)))

    # Pass 2: write them.
    with ExitStack() as stack:
        mode = new_file_mode()
        train = _HashingWriter(stack.enter_context(atomic_writer(train_path, "wb", perms=mode)))
        test = _HashingWriter(stack.enter_context(atomic_writer(test_path, "wb", perms=mode)))
        index = -1
        for position, item in enumerate(source):
            if position >= len(usable):
                raise PhiopsError(f"{name} changed while it was being prepared; run it again.")
            if usable[position]:
                index += 1
                (test if index in test_rows else train).write(check_row(item.data).row)
            if position % PROGRESS_EVERY == 0:
                progress("Writing files", position, len(usable))
        if index + 1 != valid:
            raise PhiopsError(f"{name} changed while it was being prepared; run it again.")
        progress("Writing files", len(usable), len(usable))

    result = PrepareResult(
        source=source.describe(),
        test_fraction=test_fraction,
        seed=seed,
        rows_read=len(usable),
        train=train.result(train_path),
        test=test.result(test_path),
        manifest=str(train_path.parent / MANIFEST_NAME),
        skipped_by_reason=dict(reasons.most_common()),
        skipped_examples=examples,
        converted=dict(shapes.most_common()),
        conversions=dict(conversions.most_common()),
    )
    if result.test.rows == 0:
        result.warnings.append(empty_test_warning(valid, test_fraction))
    manifest = {
        "source": result.source,
        "test_fraction": test_fraction,
        "seed": seed,
        "rows": {"read": result.rows_read, "skipped": result.skipped},
        "skipped_by_reason": result.skipped_by_reason,
        "converted": result.converted,
        "conversions": result.conversions,
        "files": {"train": asdict(result.train), "test": asdict(result.test)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "phiops": __version__,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    write_text_atomic(result.manifest, text, perms=new_file_mode())
    return result
