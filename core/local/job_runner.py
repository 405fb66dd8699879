"""The supervisor of one local job, and the queue that starts them one at a time.

`python -m core.local.job_runner JOB_DIR` runs detached from the phiops process that
started it (its own session, stdin from /dev/null, output to `system_logs/runner.log`),
so a job outlives the CLI or TUI. It creates the job's MLflow run, starts the trainer in
a process group of its own with its output appended to `user_logs/std_log.txt`, waits for
it, records how it ended, and starts the next queued job. On SIGTERM (`phiops jobs
cancel`) it passes SIGTERM to the trainer's group — the trainer saves a checkpoint and
exits 75 — and sends SIGKILL if the trainer is still there after the grace period.

If the supervisor itself dies, `settle` (run whenever a record is read) notices. While the
trainer still runs, a new supervisor adopts it (`--adopt`): it watches the trainer, passes
a cancel on, and records the outcome when the trainer ends. Once the trainer has ended,
the job's final state is what the trainer itself recorded — its last `done`, `interrupted`
or `failed` event of this attempt — whoever observes it; only a trainer that ended
without one (killed) makes the job Failed with the end of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from core.backend import JobStatus
from core.errors import UnreadableRecord
from core.jobevents import read_events
from core.local.jobstore import (
    EVENTS,
    RUNNER_LOG,
    STD_LOG,
    JobRecord,
    JobStore,
    ProcessRef,
    log_tail,
)

INTERRUPTED_EXIT = 75  # the trainer's "stopped on a signal after saving a checkpoint"
DEFAULT_CANCEL_GRACE = 120.0  # seconds a trainer gets to save a checkpoint before SIGKILL
ACTIVE = (JobStatus.NOT_STARTED, JobStatus.RUNNING)
# What would point the trainer at another run; the supervisor sets the job's own.
RUN_VARIABLES = {
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
}


# -- the queue (callers hold the store's lock) -------------------------------------------


def launch_runner(folder: Path, *, adopt: bool = False) -> ProcessRef:
    """Start a detached supervisor for the job in `folder` (`adopt`: of its running trainer)."""
    log_path = folder / RUNNER_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "core.local.job_runner", str(folder)]
            + (["--adopt"] if adopt else []),
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    ref = ProcessRef.of(process.pid)
    # Reap it when it ends, so a long-lived TUI collects no zombies.
    threading.Thread(target=process.wait, daemon=True).start()
    return ref


TERMINAL_PHASES = {
    "done": JobStatus.COMPLETED,
    "interrupted": JobStatus.CANCELED,
    "failed": JobStatus.FAILED,
}


def needs_settling(record: JobRecord) -> bool:
    """The record says the job runs, but its supervisor is gone."""
    return record.status in ACTIVE and not (record.runner is not None and record.runner.alive())


def trainer_outcome(store: JobStore, record: JobRecord) -> tuple[JobStatus, str] | None:
    """How this attempt's trainer said it ended (its last terminal event), if it said so."""
    try:
        events, _ = read_events(store.path(record.name, EVENTS), record.events_offset)
    except OSError:
        return None
    for event in reversed(events):
        status = TERMINAL_PHASES.get(str(event.get("phase")))
        if status is not None:
            message = str(event.get("message") or "")
            if status == JobStatus.FAILED:
                tail = log_tail(store.path(record.name, STD_LOG))
                message = f"the trainer failed: {message}" + (
                    f"; last lines of the log:\n{tail}" if tail else ""
                )
            return status, "" if status == JobStatus.COMPLETED else message
    return None


def settle(store: JobStore, record: JobRecord, *, adopt: bool = True) -> JobRecord:
    """Bring an active record whose supervisor died back in line with its trainer: a new
    supervisor adopts a trainer that still runs (`adopt`); an ended trainer's own last event
    gives the outcome; a trainer that ended without one (killed) makes the job Failed."""
    if not needs_settling(record):
        return record
    if record.trainer is not None and record.trainer.alive():
        if adopt:
            record.runner = launch_runner(store.folder(record.name), adopt=True)
            store.write(record)
        return record
    said = trainer_outcome(store, record) if record.trainer is not None else None
    if said is not None:
        record.status, record.error = said
    else:
        tail = log_tail(store.path(record.name, STD_LOG)) or log_tail(
            store.path(record.name, RUNNER_LOG)
        )
        runner = f" (pid {record.runner.pid})" if record.runner else ""
        record.status = JobStatus.FAILED
        record.error = f"the job stopped unexpectedly: its runner process{runner} is gone" + (
            f"; last lines of the log:\n{tail}" if tail else ""
        )
    record.ended_at = time.time()
    store.write(record)
    return record


def start_next(store: JobStore) -> str | None:
    """Start the longest-waiting queued job if nothing runs; its name, or None."""
    records = [settle(store, record) for record in store.records()]
    if any(record.status in ACTIVE for record in records):
        return None
    queued = [record for record in records if record.status == JobStatus.QUEUED]
    if not queued:
        return None
    chosen = min(queued, key=lambda record: record.queued_at)
    chosen.status = JobStatus.NOT_STARTED
    chosen.runner = launch_runner(store.folder(chosen.name))
    store.write(chosen)
    return chosen.name


# -- the supervisor ----------------------------------------------------------------------


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the trainer was killed by {name}"
    return f"the trainer exited with code {code}"


class Supervisor:
    """Runs one job's trainer to its end and records the outcome."""

    def __init__(self, folder: Path) -> None:
        self.store = JobStore(folder.parent)
        self.name = folder.name
        self.store_root = folder.parent.parent
        self.signalled = False

    def run(self, *, adopt: bool = False) -> int:
        # Handlers first: a cancel that arrives while the job is being claimed is kept.
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        record = self._adopt() if adopt else self._claim()
        if record is None:
            return 0
        try:
            if adopt:
                status, error, code = self._watch(record)
            else:
                status, error, code = self._supervise(record)
        except Exception as exc:
            traceback.print_exc()
            status, error, code = JobStatus.FAILED, f"the job runner failed: {exc}", None
        try:
            run_id = self.store.read(self.name).run_id
        except Exception:  # an unreadable record: _finish says so
            run_id = ""
        if run_id:
            self._close_run(run_id, status)
        self._finish(status, error, code)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signalled = True

    def _update(self, change: Callable[[JobRecord], None]) -> JobRecord:
        with self.store.locked():
            record = self.store.read(self.name)
            change(record)
            self.store.write(record)
            return record

    def _claim(self) -> JobRecord | None:
        """Take the job if it is still waiting for this process; else let the queue move."""
        with self.store.locked():
            record = self.store.read(self.name)
            mine = record.runner is not None and record.runner.pid == os.getpid()
            if record.status != JobStatus.NOT_STARTED or not mine:
                print(f"job {self.name} is {record.status}; nothing to run", flush=True)
                start_next(self.store)
                return None
            record.status = JobStatus.RUNNING
            record.started_at = record.started_at or time.time()
            record.ended_at, record.error, record.exit_code = None, "", None
            self.store.write(record)
            return record

    def _adopt(self) -> JobRecord | None:
        """Take over a running trainer whose supervisor died (`settle` started us for it)."""
        with self.store.locked():
            record = self.store.read(self.name)
            mine = record.runner is not None and record.runner.pid == os.getpid()
            if record.status not in ACTIVE or not mine or record.trainer is None:
                print(f"job {self.name} is {record.status}; nothing to adopt", flush=True)
                return None
            print(f"adopted the trainer (pid {record.trainer.pid}) of job {self.name}", flush=True)
            return record

    def _watch(self, record: JobRecord) -> tuple[JobStatus, str, int | None]:
        """Wait for a trainer that is not our child (pass a cancel on), then read its outcome."""
        trainer = record.trainer
        assert trainer is not None
        kill_at: float | None = None
        while trainer.alive():
            kill_at = self._pass_cancel_on(trainer.pid, kill_at)
            time.sleep(0.2)
        said = trainer_outcome(self.store, self.store.read(self.name))
        print(f"the adopted trainer ended: {said[0] if said else 'without a final event'}")
        if said is not None:
            return said[0], said[1], None
        if self.signalled:
            return JobStatus.CANCELED, "the trainer was stopped before saving a checkpoint", None
        tail = log_tail(self.store.path(self.name, STD_LOG))
        error = "the trainer ended without saying how (killed?)" + (
            f"; last lines of the log:\n{tail}" if tail else ""
        )
        return JobStatus.FAILED, error, None

    def _supervise(self, record: JobRecord) -> tuple[JobStatus, str, int | None]:
        if not record.run_id:
            from core.local.tracking import create_run

            experiment_id, run_id = create_run(
                self.store_root, record.experiment_name, record.name, record.tags
            )

            def remember_run(current: JobRecord) -> None:
                current.run_id, current.experiment_id = run_id, experiment_id

            record = self._update(remember_run)
        if self.signalled:
            return JobStatus.CANCELED, "canceled before the trainer started", None

        command = record.command + (["--resume"] if record.resume else [])
        events = self.store.path(self.name, EVENTS)
        events_offset = events.stat().st_size if events.exists() else 0
        log_path = self.store.path(self.name, STD_LOG)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            trainer = subprocess.Popen(
                command,
                cwd=self.store.folder(self.name),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so cancel reaches its workers
                env=self._trainer_env(record),
            )
        trainer_ref = ProcessRef.of(trainer.pid)

        def remember_trainer(current: JobRecord) -> None:
            current.trainer, current.events_offset = trainer_ref, events_offset

        record = self._update(remember_trainer)
        print(f"started the trainer (pid {trainer.pid}): {' '.join(command)}", flush=True)
        code = self._wait(trainer)
        print(f"{describe_exit(code)}", flush=True)
        return self._outcome(code, canceled=self.signalled)

    def _trainer_env(self, record: JobRecord) -> dict[str, str]:
        from core.local.tracking import tracking_uri

        env = {key: value for key, value in os.environ.items() if key not in RUN_VARIABLES}
        env.update(
            MLFLOW_TRACKING_URI=tracking_uri(self.store_root),
            MLFLOW_RUN_ID=record.run_id,
            MLFLOW_EXPERIMENT_ID=record.experiment_id,
            PHIOPS_EVENTS_FILE=str(self.store.path(self.name, EVENTS)),
            PYTHONUNBUFFERED="1",
        )
        if offline_hub(record.base_model):
            env["HF_HUB_OFFLINE"] = "1"  # the cached model loads at once, without retries
        return env

    def _wait(self, trainer: subprocess.Popen) -> int:
        """Wait for the trainer; on a signal pass SIGTERM on, then SIGKILL after the grace."""
        kill_at: float | None = None
        while True:
            try:
                return trainer.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            kill_at = self._pass_cancel_on(trainer.pid, kill_at)

    def _pass_cancel_on(self, pid: int, kill_at: float | None) -> float | None:
        """After our SIGTERM: SIGTERM to the trainer's group, SIGKILL once the grace is over;
        the time to kill at (None while no cancel came)."""
        if self.signalled and kill_at is None:
            grace = self.store.read(self.name).cancel_grace or DEFAULT_CANCEL_GRACE
            print(f"stopping the trainer (SIGTERM, {grace:g}s to save a checkpoint)", flush=True)
            self._signal_group(pid, signal.SIGTERM)
            return time.monotonic() + grace
        if kill_at is not None and time.monotonic() > kill_at:
            print("the trainer did not stop in time: SIGKILL", flush=True)
            self._signal_group(pid, signal.SIGKILL)
            return float("inf")
        return kill_at

    @staticmethod
    def _signal_group(pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)

    def _outcome(self, code: int, canceled: bool) -> tuple[JobStatus, str, int]:
        if code == 0:
            return JobStatus.COMPLETED, "", code
        if code == INTERRUPTED_EXIT:
            return JobStatus.CANCELED, "", code
        if canceled:
            return JobStatus.CANCELED, f"{describe_exit(code)} before saving a checkpoint", code
        tail = log_tail(self.store.path(self.name, STD_LOG))
        error = describe_exit(code) + (f"; last lines of the log:\n{tail}" if tail else "")
        return JobStatus.FAILED, error, code

    def _finish(self, status: JobStatus, error: str, code: int | None) -> None:
        """Record the outcome, then start the next queued job; neither stops the other (a
        damaged record, ours or another job's, is said in the runner's log)."""
        with self.store.locked():
            try:
                record = self.store.read(self.name)
                record.status, record.error, record.exit_code = status, error, code
                record.ended_at = time.time()
                self.store.write(record)
                print(f"job {self.name}: {status}", flush=True)
            except (OSError, UnreadableRecord) as problem:
                print(f"job {self.name} ended {status}, but it cannot be recorded: {problem}")
            try:
                started = start_next(self.store)
            except Exception:
                traceback.print_exc()
                return
            if started:
                print(f"started the next queued job, {started}", flush=True)
            for problem in self.store.problems:
                print(f"skipped: {problem}", flush=True)

    def _close_run(self, run_id: str, status: JobStatus) -> None:
        """End the MLflow run if the trainer could not (it was killed, or never started)."""
        from core.local.tracking import close_run

        mlflow_status = {
            JobStatus.COMPLETED: "FINISHED",
            JobStatus.FAILED: "FAILED",
            JobStatus.CANCELED: "KILLED",
        }[status]
        try:
            close_run(self.store_root, run_id, mlflow_status)
        except Exception:
            traceback.print_exc()


def offline_hub(base_model: str) -> bool:
    """A hub-id base model while the hub cannot be reached: the trainer should use the cache
    only (the submit check made sure the model is there, or the job was queued before)."""
    from core.data.hub import hub_reachable, looks_like_hub_id

    return looks_like_hub_id(base_model) and not Path(base_model).exists() and not hub_reachable()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    adopt = "--adopt" in args
    args = [arg for arg in args if arg != "--adopt"]
    if len(args) != 1:
        print("usage: python -m core.local.job_runner JOB_DIR [--adopt]", file=sys.stderr)
        return 2
    return Supervisor(Path(args[0]).resolve()).run(adopt=adopt)


if __name__ == "__main__":
    sys.exit(main())
