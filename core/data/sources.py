"""Where `data prepare` reads rows from: a hub dataset, local files or folders, the sample.

A source is iterated twice (once to check and count, once to write), so each one reads
rows in the same order every time and never holds a whole large file in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.hub import hub_offline, hub_reachable
from core.data.records import count_rows, read_records
from core.data.rules import Problem
from core.data.sample import SAMPLE_FILE
from core.errors import NotFoundError, PhiopsError

SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class SourceRow:
    """One row and where it came from (`file, line 7`), or why it could not be read."""

    where: str
    data: Any = None
    problem: Problem | None = None


# -- split expressions: "train_sft", "train_sft[:1%]", "train[100:200]" ----------------------

_SPLIT = re.compile(r"^\s*([\w.-]+)\s*(?:\[\s*([-\d.%]*)\s*:\s*([-\d.%]*)\s*\])?\s*$")


@dataclass(frozen=True)
class Split:
    """A split name and an optional slice, as in Hugging Face's split expressions."""

    name: str
    start: str = ""
    stop: str = ""

    @classmethod
    def parse(cls, expression: str) -> Split:
        match = _SPLIT.match(expression)
        if not match:
            raise PhiopsError(
                f"cannot read the split expression {expression!r}; "
                "write a name with an optional slice, e.g. train_sft or train_sft[:1%]."
            )
        return cls(match[1], match[2] or "", match[3] or "")

    @property
    def sliced(self) -> bool:
        return bool(self.start or self.stop)

    def positions(self, total: int) -> range:
        """The row positions this slice keeps out of `total` rows."""

        def bound(text: str) -> int | None:
            if not text:
                return None
            try:
                if text.endswith("%"):
                    return round(total * float(text[:-1]) / 100)
                return int(text)
            except ValueError:
                raise PhiopsError(f"cannot read {text!r} in the split {self}.") from None

        return range(*slice(bound(self.start), bound(self.stop)).indices(total))

    def __str__(self) -> str:
        return f"{self.name}[{self.start}:{self.stop}]" if self.sliced else self.name


# -- local files -----------------------------------------------------------------------------


def _file_rows(path: Path) -> Iterator[SourceRow]:
    """A file's rows, read as `data validate` reads them; blank lines are no rows."""
    for record in read_records(path):
        if not record.blank:
            yield SourceRow(f"{path.name}, {record.where}", record.data, record.problem)


def _named_after(path: Path, root: Path, split: str) -> bool:
    """True for files a downloaded hub dataset keeps for `split`: train_sft-00000-of-3.parquet,
    train_sft.jsonl or train_sft/part-0.parquet."""
    stem = path.name.removesuffix(path.suffix)
    folders = path.relative_to(root).parts[:-1]
    return stem == split or stem.startswith(f"{split}-") or split in folders


@dataclass
class LocalSource:
    """Rows of local JSONL/JSON/Parquet files; a folder means every such file in it."""

    root: Path
    files: list[Path]
    split: Split | None = None
    kind: str = "local"
    _total: int | None = None

    @classmethod
    def open(cls, path: Path, split: Split | None, *, explicit_split: bool) -> LocalSource:
        """The files at `path`. A split filters a folder to the files named after it (as a
        downloaded hub dataset names them); the slice applies when the split was asked for
        or when such files exist, never to a user's single file by default."""
        path = path.expanduser().resolve()
        if path.is_dir():
            files = sorted(
                file
                for file in path.rglob("*")
                if file.suffix in SUFFIXES
                and file.is_file()
                and not any(part.startswith(".") for part in file.relative_to(path).parts)
            )
            if not files:
                raise NotFoundError(f"{path} holds no .jsonl, .json or .parquet files.")
        elif path.suffix in SUFFIXES:
            files = [path]
        else:
            raise PhiopsError(f"{path} is not a .jsonl, .json or .parquet file, nor a folder.")
        named = [f for f in files if split and path.is_dir() and _named_after(f, path, split.name)]
        if named:
            files = named
        elif not explicit_split:
            split = None
        return cls(path, files, split)

    def describe(self) -> dict:
        names = [str(file.relative_to(self.root)) for file in self.files if file != self.root]
        return {
            "kind": self.kind,
            "path": str(self.root),
            "files": names or [self.root.name],
            "split": str(self.split) if self.split else None,
        }

    def count(self) -> int:
        if self._total is None:
            self._total = sum(count_rows(file) for file in self.files)
        return self._total

    def __iter__(self) -> Iterator[SourceRow]:
        keep = self.split.positions(self.count()) if self.split and self.split.sliced else None
        position = 0
        for file in self.files:
            for row in _file_rows(file):
                if keep is None or position in keep:
                    yield row
                position += 1


def sample_source() -> LocalSource:
    return LocalSource(SAMPLE_FILE.parent, [SAMPLE_FILE], None, kind="sample")


# -- the Hugging Face hub --------------------------------------------------------------------


def unreachable_message(dataset_id: str) -> str:
    return (
        f"cannot reach the Hugging Face hub to download {dataset_id} (offline, and it is not "
        "in the local cache); use a local JSONL, JSON or Parquet file or folder with "
        "`phiops data prepare --source PATH`, or the built-in sample with "
        "`phiops data prepare --sample`."
    )


@dataclass
class HubSource:
    """A hub dataset, loaded (or taken from the local cache) on first use."""

    dataset_id: str
    config: str | None
    split: str
    _dataset: Any = None

    def describe(self) -> dict:
        return {
            "kind": "hub",
            "dataset": self.dataset_id,
            "config": self.config,
            "split": self.split,
        }

    def load(self) -> Any:
        if self._dataset is not None:
            return self._dataset
        import datasets

        offline = not hub_reachable()
        try:
            with hub_offline(offline):
                self._dataset = datasets.load_dataset(
                    self.dataset_id, self.config or None, split=self.split
                )
        except ConnectionError:
            raise PhiopsError(unreachable_message(self.dataset_id)) from None
        except Exception as error:
            if type(error).__name__ in {"DatasetNotFoundError", "RepositoryNotFoundError"}:
                raise NotFoundError(
                    f"the hub has no dataset {self.dataset_id} (or it is private); "
                    "check the id, or use --source PATH for a local file."
                ) from None
            if offline and type(error).__name__ in {
                "OfflineModeIsEnabled",
                "LocalEntryNotFoundError",
            }:
                raise PhiopsError(unreachable_message(self.dataset_id)) from None
            reason = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            raise PhiopsError(
                f"could not load {self.dataset_id} ({self.config}, {self.split}): {reason}"
            ) from None
        return self._dataset

    def count(self) -> int:
        return len(self.load())

    def __iter__(self) -> Iterator[SourceRow]:
        for index, row in enumerate(self.load(), start=1):
            yield SourceRow(f"row {index}", row)


Source = LocalSource | HubSource

_LOOKS_LIKE_PATH = re.compile(r"^(\.|~|/)|\\|\.(jsonl|json|parquet)$")


def open_source(
    source: str | None,
    *,
    sample: bool = False,
    dataset_id: str,
    dataset_config: str,
    split: str | None,
    default_split: str,
) -> Source:
    """The source named on the command line: the sample, a local path, or a hub id."""
    if sample:
        return sample_source()
    name = source or dataset_id
    path = Path(name).expanduser()
    if path.exists():
        chosen = Split.parse(split or default_split)
        return LocalSource.open(path, chosen, explicit_split=split is not None)
    if _LOOKS_LIKE_PATH.search(name):
        raise NotFoundError(f"no file or folder at {name}.")
    Split.parse(split or default_split)  # a bad expression fails before any download
    return HubSource(name, dataset_config, split or default_split)
