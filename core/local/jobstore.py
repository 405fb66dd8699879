"""The local jobs' records: one folder per job under `<store>/jobs/`, laid out as Azure ML's.

```
<store>/jobs/<name>/job.json              the record (written atomically)
                    inputs/<input>/<file>  snapshots of the train/test files
                    user_logs/std_log.txt  the trainer's stdout and stderr
                    system_logs/runner.log the supervisor's own log
                    outputs/model/         the trainer's --model-output-dir
                    events.jsonl           the trainer's progress events
```

Every state change happens under one file lock (`<store>/jobs/.lock`), held by whichever
process makes the change — `phiops`, the TUI or a job's supervisor — so deciding "nothing
runs, start this one" and starting it is one step, and two processes never both start one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic
from core.backend import JobInfo, JobSpec, JobStatus
from core.errors import NotFoundError, UnreadableRecord
from core.local.records import load_record, read_record

RECORD = "job.json"
STD_LOG = "user_logs/std_log.txt"
RUNNER_LOG = "system_logs/runner.log"
EVENTS = "events.jsonl"
MODEL_OUTPUT = "outputs/model"


@dataclass
class ProcessRef:
    """A process by pid and start time, so a recycled pid is never mistaken for it."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        import psutil

        return cls(pid, psutil.Process(pid).create_time())

    def alive(self) -> bool:
        import psutil

        try:
            process = psutil.Process(self.pid)
            return (
                abs(process.create_time() - self.started) < 0.01
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


@dataclass
class JobRecord:
    """What `job.json` holds: the job's spec, its state, and the processes running it."""

    name: str
    status: JobStatus
    command: list[str]
    display_name: str = ""
    experiment_name: str = ""
    base_model: str = ""
    train_file: str = ""  # as the user gave it; the job reads its snapshot under inputs/
    eval_file: str = ""
    trainer_args: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    queued_at: float = field(default_factory=time.time)  # the queue is first come, first run
    started_at: float | None = None
    ended_at: float | None = None
    error: str = ""
    run_id: str = ""
    experiment_id: str = ""
    runner: ProcessRef | None = None
    trainer: ProcessRef | None = None
    exit_code: int | None = None
    cancel_requested_at: float | None = None
    cancel_grace: float = 0.0
    resume: bool = False
    attempts: int = 1
    events_offset: int = 0  # where this attempt's events start in events.jsonl

    def to_json(self) -> str:
        data = asdict(self)
        data["status"] = str(self.status)
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> JobRecord:
        """The record in `data`; RecordError when it does not have a job record's shape."""
        return load_record(cls, data)


class JobStore:
    """Reads and writes the job folders of one local store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []  # records the last `records()` could not read

    def folder(self, name: str) -> Path:
        return self.root / name

    def path(self, name: str, relative: str) -> Path:
        return self.root / name / relative

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock: state transitions are read-decide-write under it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, name: str) -> JobRecord:
        return read_record(
            JobRecord,
            self.path(name, RECORD),
            name,
            what=f"job '{name}'",
            missing=f"no local job named '{name}'; see `phiops jobs list`",
        )

    def write(self, record: JobRecord) -> None:
        write_text_atomic(self.path(record.name, RECORD), record.to_json())

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [
            entry.name for entry in os.scandir(self.root) if (Path(entry.path) / RECORD).is_file()
        ]

    def records(self) -> list[JobRecord]:
        """Every readable record, newest first (as Azure ML lists jobs); the unreadable ones
        are skipped and said in `problems`."""
        found, problems = [], []
        for name in self.names():
            try:
                found.append(self.read(name))
            except UnreadableRecord as problem:
                problems.append(str(problem))
            except NotFoundError:
                pass  # removed while we looked
        self.problems = problems
        return sorted(found, key=lambda record: record.created_at, reverse=True)

    def info(self, record: JobRecord) -> JobInfo:
        return JobInfo(
            name=record.name,
            status=record.status,
            display_name=record.display_name,
            experiment_name=record.experiment_name,
            backend="local",
            created_at=record.created_at,
            started_at=record.started_at,
            ended_at=record.ended_at,
            error=record.error,
            output_dir=str(self.path(record.name, MODEL_OUTPUT)),
            run_id=record.run_id,
            tags=dict(record.tags),
            spec=JobSpec(
                train_file=record.train_file,
                eval_file=record.eval_file,
                base_model=record.base_model,
                trainer_args=list(record.trainer_args),
                display_name=record.display_name,
                experiment_name=record.experiment_name,
                tags=dict(record.tags),
            ),
        )


def log_tail(path: Path, lines: int = 15, max_bytes: int = 64 * 1024) -> str:
    """The last lines of a log, for a failed job's error (the cause is nearly always there)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
