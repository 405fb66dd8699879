"""A local job's outcome when its supervisor dies, and damaged job records.

The trainer here is a stand-in that ends as `trainer/fine_tune.py` ends: it appends its
final progress event (`done`, `interrupted` or `failed`, the trainer's events contract) to
`$PHIOPS_EVENTS_FILE` and exits with the trainer's code. It waits for a file the test
creates, so the test can kill the supervisor first. Submits with bad data run the real
trainer, which refuses the data in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from core.backend import JobSpec, JobStatus
from core.config import Config
from core.errors import PhiopsError
from core.local.job_runner import start_next
from core.local.jobs import LocalJobs
from core.local.jobstore import RUNNER_LOG, JobRecord
from tests.fixtures_deploy import gone
from tests.helpers import run_phiops

EXIT_CODES = {"done": 0, "interrupted": 75, "failed": 1}


@pytest.fixture
def jobs(tmp_path: Path) -> LocalJobs:
    return LocalJobs(Config(path=tmp_path / "phiops.toml"))


def standin_trainer(release: Path, phase: str) -> list[str]:
    script = (
        "import json, os, pathlib, sys, time\n"
        f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.05)\n"
        "event = {'time': round(time.time(), 3), 'phase': %r, 'message': 'the end'}\n"
        "with open(os.environ['PHIOPS_EVENTS_FILE'], 'a') as events:\n"
        "    events.write(json.dumps(event) + '\\n')\n"
        "print('Done' if %r == 'done' else 'stopping', flush=True)\n"
        "sys.exit(%d)\n"
    ) % (phase, phase, EXIT_CODES[phase])
    return [sys.executable, "-c", script]


def start_job(jobs: LocalJobs, name: str, command: list[str]) -> JobRecord:
    """Queue a job with this command and let the queue start it; its record once running."""
    record = JobRecord(
        name=name, status=JobStatus.QUEUED, command=command, experiment_name="phi3-finetune"
    )
    jobs.store.folder(name).mkdir(parents=True)
    jobs.store.write(record)
    with jobs.store.locked():
        assert start_next(jobs.store) == name
    deadline = time.monotonic() + 120  # only catches a hang
    while (record := jobs.store.read(name)).trainer is None:
        assert time.monotonic() < deadline, record
        time.sleep(0.1)
    return record


def kill_runner(record: JobRecord) -> None:
    assert record.runner is not None
    os.kill(record.runner.pid, signal.SIGKILL)
    assert gone(record.runner.pid)


def test_a_job_whose_runner_was_killed_is_adopted_and_completes(
    jobs: LocalJobs, tmp_path: Path
) -> None:
    from core.local.tracking import mlflow_client

    release = tmp_path / "release"
    record = start_job(jobs, "adopted_job_1", standin_trainer(release, "done"))
    kill_runner(record)

    running = jobs.get(record.name)  # a look at the job adopts the orphaned trainer
    assert running.status == JobStatus.RUNNING
    adopter = jobs.store.read(record.name).runner
    assert adopter is not None and adopter.pid != record.runner.pid and adopter.alive()

    release.touch()
    finished = jobs.wait(record.name, timeout=120)
    assert finished.status == JobStatus.COMPLETED, finished.error
    assert not adopter.alive() or gone(adopter.pid)
    run = mlflow_client(jobs.config.store_path).get_run(finished.run_id)
    assert run.info.status == "FINISHED"
    log = jobs.store.path(record.name, RUNNER_LOG).read_text()
    assert "adopted the trainer" in log


@pytest.mark.parametrize(
    ("phase", "status"),
    [
        ("done", JobStatus.COMPLETED),
        ("interrupted", JobStatus.CANCELED),
        ("failed", JobStatus.FAILED),
    ],
)
def test_an_ended_trainers_own_last_event_decides_its_jobs_status(
    jobs: LocalJobs, tmp_path: Path, phase: str, status: JobStatus
) -> None:
    release = tmp_path / "release"
    record = start_job(jobs, f"orphan_{phase}_1", standin_trainer(release, phase))
    kill_runner(record)
    release.touch()  # the trainer ends with nobody watching
    assert record.trainer is not None and gone(record.trainer.pid)

    seen = LocalJobs(jobs.config).get(record.name)  # a later phiops looks
    assert seen.status == status, seen.error
    if status == JobStatus.FAILED:
        assert seen.error.startswith("the trainer failed: the end")


def write_damaged(jobs: LocalJobs) -> dict[str, object]:
    damaged = {
        "named_only_1": {"name": "named_only_1"},
        "bogus_status_2": {"name": "bogus_status_2", "status": "Bogus", "command": []},
        "a_list_3": [1, 2],
    }
    for name, data in damaged.items():
        jobs.store.folder(name).mkdir(parents=True, exist_ok=True)
        jobs.store.path(name, "job.json").write_text(json.dumps(data))
    return damaged


def test_damaged_job_records_break_neither_listing_nor_a_submit_nor_the_runner(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "base").mkdir()
    for name in ("train.jsonl", "test.jsonl"):
        (project / "data" / name).write_text('{"messages": "not a list"}\n')
    (project / "phiops.toml").write_text('[model]\nbase_model = "base"\n')
    from core.config import load_config

    jobs = LocalJobs(load_config(project / "phiops.toml"))
    damaged = write_damaged(jobs)

    spec = JobSpec("data/train.jsonl", "data/test.jsonl", "base")
    job = jobs.submit(spec)  # the real trainer refuses the data at once
    ended = jobs.wait(job.name, timeout=180)
    assert ended.status == JobStatus.FAILED and "line 1" in ended.error
    assert [info.name for info in jobs.list()] == [job.name]
    assert len(jobs.problems) == len(damaged)
    runner_log = jobs.store.path(job.name, RUNNER_LOG).read_text()
    assert "Traceback" not in runner_log and "skipped: the record of job" in runner_log

    listed = run_phiops("jobs", "list", "--json", cwd=project)
    assert listed.returncode == 1
    assert [item["name"] for item in json.loads(listed.stdout)] == [job.name]
    sentences = listed.stderr.strip().splitlines()
    assert len(sentences) == len(damaged)
    assert all(line.startswith("phiops: the record of job") for line in sentences)
    assert any("status is 'Bogus'" in line for line in sentences)


def test_a_submit_that_fails_leaves_no_queued_job(
    jobs: LocalJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.local.job_runner

    (tmp_path / "data").mkdir()
    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / "data" / name).write_text("{}\n")
    (tmp_path / "base").mkdir()

    def no_room(folder: Path, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.local.job_runner, "launch_runner", no_room)
    with pytest.raises(OSError):
        jobs.submit(JobSpec("data/train.jsonl", "data/test.jsonl", "base"))
    assert jobs.list() == [] and jobs.store.names() == []
    with pytest.raises(PhiopsError):
        jobs.get("anything")
