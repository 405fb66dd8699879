"""Local jobs end to end: the real trainer on the tiny Phi-3 model, as detached processes.

One module-wide project: job A completes while job B waits in the queue; B is then killed
with SIGKILL; job C is canceled mid-training and resumed from its checkpoint; the CLI
reads them all. Every process a test starts is stopped in the fixture's teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.backend import JobInfo, JobSpec, JobStatus
from core.config import load_config
from core.jobevents import read_events
from core.local.jobs import LocalJobs
from core.local.jobstore import STD_LOG
from tests.helpers import HANG, run_phiops, run_phiops_in_terminal

pytestmark = pytest.mark.slow

FAST = ["--max-length", "128", "--logging-steps", "1"]  # ~0.1 s a step on the tiny model


@dataclass
class Project:
    folder: Path
    jobs: LocalJobs
    train: Path
    names: dict[str, str] = field(default_factory=dict)
    seen: dict[str, list[JobStatus]] = field(default_factory=dict)

    def spec(self, *args: str, name: str = "") -> JobSpec:
        config = self.jobs.config
        return JobSpec(
            config.train_data_path,
            config.test_data_path,
            config.base_model,
            trainer_args=[*FAST, *args],
            display_name=name,
        )


def stop_everything(jobs: LocalJobs) -> None:
    """Leave no process behind: SIGKILL every supervisor and trainer group still alive."""
    for record in jobs.store.records():
        for ref in (record.trainer, record.runner):
            if ref is not None and ref.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(ref.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def local(tmp_path_factory, chat_dataset, tiny_base_model) -> Iterator[Project]:
    folder = tmp_path_factory.mktemp("jobs-project")
    data = folder / "data"
    data.mkdir()
    train = shutil.copy(chat_dataset["train"], data / "train.jsonl")
    (folder / "phiops.toml").write_text(
        f'[data]\ntrain_data_path = "data/train.jsonl"\n'
        f'test_data_path = "{chat_dataset["eval"]}"\n'
        f'[model]\nbase_model = "{tiny_base_model}"\n'
    )
    jobs = LocalJobs(load_config(folder / "phiops.toml"))
    project = Project(folder, jobs, Path(train))
    try:
        yield project
    finally:
        stop_everything(jobs)


def wait_for(jobs: LocalJobs, name: str, done, timeout: float = HANG) -> JobInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(name)
        if done(job):
            return job
        assert not job.status.is_final, f"{name} ended before that: {job}"
        time.sleep(0.1)
    raise AssertionError(f"{name} did not get there in {timeout}s; now {jobs.get(name)}")


def training_step(jobs: LocalJobs, name: str) -> int:
    events, _ = read_events(jobs.events_path(name))
    steps = [event["step"] for event in events if event.get("phase") == "training"]
    return max(steps, default=0)


def collect(jobs: LocalJobs, name: str, since: int = 0) -> list:
    async def run() -> list:
        return [line async for line in jobs.stream_logs(name, since)]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def first_two(local: Project) -> Project:
    """Job A (8 steps) starts at once; job B, submitted while A runs, waits in the queue."""
    jobs = local.jobs
    a = jobs.submit(local.spec("--max-steps", "8", name="first"))
    b = jobs.submit(local.spec("--max-steps", "200", name="second"))
    local.names.update(a=a.name, b=b.name)
    local.seen[a.name] = [a.status]
    local.seen[b.name] = [b.status]
    # Editing the data now must not change the jobs: their inputs are snapshots.
    original = local.train.read_bytes()
    local.train.write_bytes(original + b"this line is not JSON\n")
    while not (job := jobs.get(a.name)).status.is_final:
        if job.status != local.seen[a.name][-1]:
            local.seen[a.name].append(job.status)
        if job.status == JobStatus.RUNNING:
            local.seen[b.name].append(jobs.get(b.name).status)
        time.sleep(0.05)
    local.seen[a.name].append(job.status)
    local.train.write_bytes(original)
    return local


def test_a_job_runs_to_completion_with_its_log_metrics_and_events(first_two: Project) -> None:
    jobs, name = first_two.jobs, first_two.names["a"]
    assert first_two.seen[name][0] == JobStatus.NOT_STARTED  # nothing ran: started at once
    assert JobStatus.RUNNING in first_two.seen[name]
    assert first_two.seen[name][-1] == JobStatus.COMPLETED, jobs.get(name).error

    job = jobs.get(name)
    assert (job.display_name, job.backend, job.error) == ("first", "local", "")
    assert job.created_at <= job.started_at <= job.ended_at
    lines = collect(jobs, name)
    log = jobs.store.path(name, STD_LOG)
    assert lines[-1].offset == log.stat().st_size
    assert any("'loss'" in line.text for line in lines)
    resumed = collect(jobs, name, since=lines[9].offset)
    assert [line.text for line in resumed] == [line.text for line in lines[10:]]

    points = jobs.metrics(name)
    losses = [point.step for point in points if point.key == "loss"]
    assert losses == list(range(1, 9))
    assert {"eval_loss", "learning_rate", "grad_norm"} <= {point.key for point in points}
    events, _ = read_events(jobs.events_path(name))
    assert events[-1]["phase"] == "done"
    assert {"loading", "training"} <= {event["phase"] for event in events}

    output = Path(job.output_dir)
    assert (output / "hf_model" / "config.json").is_file()
    assert (output / "mlflow_model" / "MLmodel").is_file()
    from core.local.tracking import mlflow_client

    run = mlflow_client(jobs.config.store_path).get_run(job.run_id)
    assert (run.info.status, run.info.run_name) == ("FINISHED", name)
    # The job read its snapshot, not the file we broke after submitting.
    assert "not JSON" not in (jobs.store.folder(name) / "inputs/train_data/train.jsonl").read_text()

    # A restarted phiops (a new service object) sees exactly the same.
    assert LocalJobs(load_config(jobs.config.path)).get(name) == job


def test_the_second_job_waits_then_is_killed_and_fails_with_its_log_tail(
    first_two: Project,
) -> None:
    jobs, name = first_two.jobs, first_two.names["b"]
    assert set(first_two.seen[name]) == {JobStatus.QUEUED}  # all the while A ran
    # A's supervisor started B when A ended.
    wait_for(jobs, name, lambda job: training_step(jobs, name) >= 2)
    trainer = jobs.store.read(name).trainer
    os.kill(trainer.pid, signal.SIGKILL)
    failed = wait_for(jobs, name, lambda job: job.status.is_final)
    assert failed.status == JobStatus.FAILED
    assert failed.error.startswith("the trainer was killed by SIGKILL; last lines of the log:\n")
    tail = jobs.store.path(name, STD_LOG).read_text().splitlines()[-1]
    assert failed.error.endswith(tail)
    assert LocalJobs(load_config(jobs.config.path)).get(name).status == JobStatus.FAILED


def test_cancel_saves_a_checkpoint_and_resume_continues_from_it(first_two: Project) -> None:
    jobs = first_two.jobs
    job = jobs.submit(first_two.spec("--max-steps", "30", "--max-length", "256", name="third"))
    first_two.names["c"] = job.name
    wait_for(jobs, job.name, lambda _: training_step(jobs, job.name) >= 2)
    canceled = jobs.cancel(job.name, grace=60)
    assert canceled.status == JobStatus.CANCELED, canceled.error
    record = jobs.store.read(job.name)
    assert record.exit_code == 75  # the trainer stopped itself after saving
    events, _ = read_events(jobs.events_path(job.name))
    assert events[-1]["phase"] == "interrupted"
    stopped_at = training_step(jobs, job.name)
    checkpoints = [path.name for path in jobs.checkpoints(job.name)]
    assert f"checkpoint-{stopped_at}" in checkpoints
    assert stopped_at < 30

    resumed = jobs.resume(job.name)
    assert resumed.status in (JobStatus.NOT_STARTED, JobStatus.QUEUED)
    done = wait_for(jobs, job.name, lambda job: job.status.is_final)
    assert done.status == JobStatus.COMPLETED, done.error
    assert done.run_id == canceled.run_id  # the same folder and MLflow run
    log = jobs.store.path(job.name, STD_LOG).read_text()
    assert f"checkpoint-{stopped_at}" in log
    steps = [point.step for point in jobs.metrics(job.name) if point.key == "loss"]
    assert steps == list(range(1, 31))  # continued after the checkpoint: no step twice


def test_the_cli_lists_shows_and_follows_jobs(first_two: Project) -> None:
    folder, names = first_two.folder, first_two.names
    listed = json.loads(run_phiops("jobs", "list", "--json", cwd=folder).stdout)
    by_name = {job["name"]: job["status"] for job in listed}
    assert by_name[names["a"]] == "Completed"

    shown = json.loads(run_phiops("jobs", "show", names["a"], "--json", cwd=folder).stdout)
    assert shown["progress"]["phase"] == "done" and shown["progress"]["step"] == 8

    logs = run_phiops("jobs", "logs", names["a"], cwd=folder)
    log_file = first_two.jobs.store.path(names["a"], STD_LOG)
    assert logs.stdout.splitlines() == log_file.read_text().splitlines()
    as_json = run_phiops("jobs", "logs", names["a"], "--json", "--since", "0", cwd=folder)
    last = json.loads(as_json.stdout.splitlines()[-1])
    assert last["offset"] == log_file.stat().st_size

    metrics = json.loads(run_phiops("jobs", "metrics", names["a"], "--json", cwd=folder).stdout)
    assert [m["step"] for m in metrics if m["key"] == "loss"] == list(range(1, 9))

    killed = run_phiops("jobs", "logs", names["b"], "--follow", cwd=folder)
    assert killed.returncode == 1 and "SIGKILL" in killed.stderr

    missing = run_phiops("jobs", "show", "no_such_job", cwd=folder)
    assert missing.returncode == 1
    assert missing.stderr == "phiops: no local job named 'no_such_job'; see `phiops jobs list`\n"


def test_train_submit_follow_streams_until_the_job_completes(first_two: Project) -> None:
    folder = first_two.folder
    result = run_phiops(
        "train", "submit", "--max-steps", "3", "--max-length", "128", "--follow", cwd=folder
    )
    assert result.returncode == 0, result.stderr
    assert "Completed" in result.stderr
    assert "'loss'" in result.stdout  # not a terminal: the trainer's log, streamed as it ran


def test_following_in_a_terminal_draws_progress_instead_of_metric_dicts(
    first_two: Project,
) -> None:
    folder = first_two.folder
    code, drawn = run_phiops_in_terminal(
        "train", "submit", "--max-steps", "4", "--max-length", "128", "--follow",
        "--", "--logging-steps", "1", cwd=folder,
    )  # fmt: skip
    assert code == 0, drawn[-3000:]
    assert "{'loss'" not in drawn  # no wall of dicts: the bar says it
    assert "training started at step 0/4" in drawn
    # The bar reaches the last step with its loss (the twin starts near ln 32064 = 10.4).
    assert re.search(r"(training|saving|done) .*4/4 .*loss \d+\.\d{4}", drawn), drawn[-3000:]
    assert "Data: " in drawn  # the log's other lines still scroll by
    assert "Completed" in drawn

    name = first_two.names["a"]  # a finished job, followed again: its whole story, at once
    code, again = run_phiops_in_terminal("jobs", "logs", name, "--follow", cwd=folder)
    assert code == 0 and "{'loss'" not in again and "8/8" in again
    assert "model saved to" in again
    code, raw = run_phiops_in_terminal("jobs", "logs", name, "--follow", "--raw", cwd=folder)
    assert code == 0 and "{'loss'" in raw and "8/8" not in raw
