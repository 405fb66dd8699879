"""Local jobs: the trainer as a detached process, with Azure ML's names, statuses and folders.

A job is a folder in the local store (see `core.local.jobstore`) and a supervisor process
(`core.local.job_runner`) that outlives phiops. One job runs at a time; the others wait as
Queued and the supervisor of a finished job starts the next. Everything is on disk, so a
new `LocalJobs` (a restarted phiops) sees exactly what the last one left, and a job whose
processes died is reported Failed with the end of its log the next time anyone looks.

Job names are made by azure-ai-ml's own generator (`adjective_noun_suffix`, e.g.
`amusing_knee_8vsw0vbz86`): the same shape as jobs on the Azure backend, so names read
alike on both and are valid Azure ML job names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from core.backend import JobInfo, JobSpec, JobStatus, LogLine, MetricPoint, Progress
from core.config import Config
from core.errors import NotFoundError, PhiopsError
from core.jobcommon import FINE_TUNE, new_job_name
from core.jobevents import Event, read_events
from core.local.job_runner import (
    ACTIVE,
    DEFAULT_CANCEL_GRACE,
    needs_settling,
    settle,
    start_next,
)
from core.local.jobstore import (
    EVENTS,
    MODEL_OUTPUT,
    STD_LOG,
    JobRecord,
    JobStore,
)
from core.logfollow import Line, LogReader, follow_batches


def snapshot(source: Path, folder: Path) -> Path:
    """Copy an input into the job, as Azure ML uploads it: later edits don't change the job."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    shutil.copy2(source, target)
    return target


class LocalJobs:
    """The jobs part of the local backend."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = JobStore(config.store_path / "jobs")

    # -- submitting --------------------------------------------------------------------

    def submit(self, spec: JobSpec, progress: Progress | None = None) -> JobInfo:
        """Snapshot the inputs, record the job, and start it now or queue it."""
        if spec.instance_count != 1:
            raise PhiopsError("the local backend runs one process per job; use instance_count 1")
        if not FINE_TUNE.is_file():
            raise PhiopsError(
                f"the trainer is missing at {FINE_TUNE}; phiops must be installed from its "
                "source folder (scripts/bootstrap.sh installs it in editable mode)"
            )
        train = self._input_file(spec.train_file, "training", "train_data_path")
        evaluation = self._input_file(spec.eval_file, "evaluation", "test_data_path")
        base_model = self._base_model(spec.base_model)

        name, folder = self._new_folder()
        try:
            train_copy = snapshot(train, folder / "inputs" / "train_data")
            eval_copy = snapshot(evaluation, folder / "inputs" / "test_data")
        except OSError as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise PhiopsError(f"cannot copy the inputs into the job folder: {error}") from None
        command = [
            sys.executable,
            str(FINE_TUNE),
            "--train-file",
            str(train_copy),
            "--eval-file",
            str(eval_copy),
            "--model-output-dir",
            str(folder / MODEL_OUTPUT),
            "--base-model",
            base_model,
            *self.config.revision_args(base_model),
            "--events-file",
            str(folder / EVENTS),
            *spec.trainer_args,
        ]
        record = JobRecord(
            name=name,
            status=JobStatus.QUEUED,
            command=command,
            display_name=spec.display_name or name,
            experiment_name=spec.experiment_name or self.config.experiment_name,
            base_model=base_model,
            train_file=str(train),
            eval_file=str(evaluation),
            trainer_args=list(spec.trainer_args),
            tags=dict(spec.tags),
        )
        with self.store.locked():
            self.store.write(record)
            try:
                start_next(self.store)
            except BaseException:
                self._withdraw(name)  # a submit that fails leaves no Queued job behind
                raise
            return self.store.info(self.store.read(name))

    def _withdraw(self, name: str) -> None:
        """Remove a just-submitted job that nothing has started (callers hold the lock)."""
        with contextlib.suppress(NotFoundError):
            record = self.store.read(name)
            if record.status != JobStatus.QUEUED or record.runner is not None:
                return  # it runs after all: keep it
        shutil.rmtree(self.store.folder(name), ignore_errors=True)

    def _input_file(self, value: str, what: str, setting: str) -> Path:
        if not value:
            raise PhiopsError(f"no {what} file given; set {setting} in phiops.toml")
        path = self.config.resolve(value)
        if not path.is_file():
            raise NotFoundError(
                f"the {what} file {path} does not exist; run `phiops data prepare` "
                f"or set {setting} in phiops.toml"
            )
        return path

    def _base_model(self, value: str) -> str:
        """A local folder (made absolute) or a hub id, passed to the trainer as it is."""
        if not value:
            raise PhiopsError("no base model given; set base_model in phiops.toml")
        path = self.config.resolve(value)
        if path.exists():
            return str(path)
        if value.startswith((".", "/", "~")):
            raise NotFoundError(f"the base model folder {path} does not exist")
        self._check_hub_model(value)
        return value

    @staticmethod
    def _check_hub_model(repo_id: str) -> None:
        """Refuse at once a hub model that is neither cached nor downloadable: the trainer
        would retry the hub for most of a minute before failing with the same news."""
        from core.data.hub import hub_reachable, looks_like_hub_id, model_cached

        if not looks_like_hub_id(repo_id) or model_cached(repo_id) or hub_reachable():
            return
        raise PhiopsError(
            f"the base model {repo_id} is not in the Hugging Face cache and the hub cannot be "
            "reached; use a local folder as base_model (`phiops model scaffold-tiny DIR "
            "--from-data data/train_data.jsonl` makes a tiny one offline), or download the "
            "model where the hub can be reached"
        )

    def _new_folder(self) -> tuple[str, Path]:
        self.store.root.mkdir(parents=True, exist_ok=True)
        while True:
            name = new_job_name()
            folder = self.store.folder(name)
            with contextlib.suppress(FileExistsError):
                folder.mkdir()
                return name, folder

    # -- reading -----------------------------------------------------------------------

    def get(self, name: str) -> JobInfo:
        return self.store.info(self._record(name))

    @property
    def problems(self) -> list[str]:
        """Job records the last listing could not read, one sentence each."""
        return list(self.store.problems)

    def list(self) -> list[JobInfo]:
        records = self.store.records()
        stale = [record for record in records if needs_settling(record)]
        waiting = any(record.status == JobStatus.QUEUED for record in records)
        idle = not any(record.status in ACTIVE for record in records)
        if stale or (waiting and idle):
            with self.store.locked():
                start_next(self.store)  # settles the dead ones first
            records = self.store.records()
        return [self.store.info(record) for record in records]

    def latest_completed(self) -> JobInfo:
        for job in self.list():
            if job.status == JobStatus.COMPLETED:
                return job
        raise NotFoundError("no completed local job yet; run `phiops train submit` first")

    def _record(self, name: str) -> JobRecord:
        """The record, with a dead job marked Failed (and the queue moved on) first."""
        record = self.store.read(name)
        if needs_settling(record):
            with self.store.locked():
                start_next(self.store)  # settles it (and any other dead one) first
                record = self.store.read(name)
        return record

    def log_path(self, name: str) -> Path:
        self.store.read(name)
        return self.store.path(name, STD_LOG)

    def events_path(self, name: str) -> Path:
        self.store.read(name)
        return self.store.path(name, EVENTS)

    def events(self, name: str, since: int = 0) -> tuple[list[Event], int]:
        """The trainer's progress events after byte `since`, and the offset to poll from next."""
        return read_events(self.events_path(name), since)

    def metrics(self, name: str) -> list[MetricPoint]:
        """Every metric the trainer logged to the job's MLflow run, by key and step."""
        record = self._record(name)
        if not record.run_id:
            return []
        from mlflow.exceptions import MlflowException

        from core.jobcommon import metric_history
        from core.local.tracking import DB_FILENAME, mlflow_client

        try:
            return metric_history(mlflow_client(self.config.store_path), record.run_id)
        except MlflowException:
            raise NotFoundError(
                f"the MLflow run {record.run_id} is not in the local tracking store "
                f"({self.config.store_path / DB_FILENAME}); was mlflow.db deleted or "
                "replaced? Its metrics are gone"
            ) from None

    # -- following the log ---------------------------------------------------------------

    def stream_logs(self, name: str, since: int = 0, follow: bool = True) -> AsyncIterator[LogLine]:
        """The job's log from byte `since`, line by line: until the job ends, or (without
        `follow`) what is there now."""
        self.store.read(name)  # an unknown name fails here, not at the first iteration
        return self._lines(name, since, follow)

    async def _lines(self, name: str, since: int, follow: bool) -> AsyncIterator[LogLine]:
        if not follow:
            for text, offset in self._snapshot(name, since):
                yield LogLine(text, offset)
            return
        async for batch in self.iter_batches(name, since):
            for line in batch:
                yield line

    def _snapshot(self, name: str, since: int) -> list[Line]:
        """The complete lines written so far (and the last one too if the job is over)."""
        reader = LogReader(self.store.path(name, STD_LOG), since)
        try:
            lines: list[Line] = []
            while batch := reader.read():
                lines += batch
            if self._record(name).status.is_final:
                lines += reader.read(final=True)
            return lines
        finally:
            reader.close()

    async def iter_batches(self, name: str, since: int = 0) -> AsyncIterator[list[LogLine]]:
        """The log in batches (one per read), for UIs that add many lines at once."""
        self.store.read(name)

        def finished() -> bool:
            return self._record(name).status.is_final

        async for batch in follow_batches(self.store.path(name, STD_LOG), since, finished=finished):
            yield [LogLine(text, offset) for text, offset in batch]

    # -- changing ------------------------------------------------------------------------

    def cancel(
        self, name: str, *, grace: float = DEFAULT_CANCEL_GRACE, wait: float | None = None
    ) -> JobInfo:
        """Stop a job: a waiting one at once, a running one by SIGTERM (the trainer saves a
        checkpoint and exits) and SIGKILL after `grace` seconds. Waits until it has ended,
        at most `wait` seconds (default: the grace plus a little)."""
        with self.store.locked():
            # No adoption here: a trainer without a supervisor is stopped by us, below.
            record = settle(self.store, self.store.read(name), adopt=False)
            if record.status.is_final:
                return self.store.info(record)
            if record.status == JobStatus.QUEUED or (
                record.status == JobStatus.NOT_STARTED and record.trainer is None
            ):
                # Not running yet: its supervisor, if any, sees the final status and leaves.
                record.status, record.ended_at = JobStatus.CANCELED, time.time()
                self.store.write(record)
                start_next(self.store)
                return self.store.info(record)
            record.cancel_requested_at, record.cancel_grace = time.time(), grace
            self.store.write(record)
            runner_alive = record.runner is not None and record.runner.alive()
            if runner_alive:
                os.kill(record.runner.pid, signal.SIGTERM)
        if not runner_alive:
            self._stop_orphan(record, grace)
        return self.wait(name, timeout=grace + 15 if wait is None else wait)

    def _stop_orphan(self, record: JobRecord, grace: float) -> None:
        """A trainer whose supervisor died: stop it ourselves and record the cancel."""
        trainer = record.trainer
        if trainer is not None and trainer.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(trainer.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while trainer.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            if trainer.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(trainer.pid, signal.SIGKILL)
        with self.store.locked():
            current = self.store.read(record.name)
            if not current.status.is_final:
                current.status, current.ended_at = JobStatus.CANCELED, time.time()
                self.store.write(current)
            start_next(self.store)

    def resume(self, name: str) -> JobInfo:
        """Run a Canceled or Failed job again from its last checkpoint, in the same folder
        and MLflow run (`--resume`); it queues like a new job."""
        with self.store.locked():
            record = settle(self.store, self.store.read(name))
            if record.status not in (JobStatus.CANCELED, JobStatus.FAILED):
                raise PhiopsError(
                    f"job {name} is {record.status}; only a Canceled or Failed job can be resumed"
                )
            if not self.checkpoints(name):
                raise PhiopsError(
                    f"job {name} saved no checkpoint to resume from; submit it again instead"
                )
            record.status, record.resume = JobStatus.QUEUED, True
            record.attempts += 1
            record.queued_at = time.time()
            record.ended_at = record.exit_code = record.cancel_requested_at = None
            record.error, record.runner, record.trainer = "", None, None
            self.store.write(record)
            start_next(self.store)
            return self.store.info(self.store.read(name))

    def checkpoints(self, name: str) -> list[Path]:
        """The job's saved checkpoints, oldest first."""
        folder = self.store.path(name, MODEL_OUTPUT) / "checkpoints"
        found = [path for path in folder.glob("checkpoint-*") if path.is_dir()]
        return sorted(found, key=lambda path: int(path.name.rsplit("-", 1)[-1] or 0))

    def wait(self, name: str, timeout: float | None = None, poll: float = 0.2) -> JobInfo:
        """Block until the job reaches a final status (or `timeout` seconds pass)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(name)
            if job.status.is_final or (deadline is not None and time.monotonic() > deadline):
                return job
            time.sleep(poll)

    async def wait_async(self, name: str, timeout: float | None = None) -> JobInfo:
        return await asyncio.to_thread(self.wait, name, timeout)
