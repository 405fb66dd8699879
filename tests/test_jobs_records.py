"""Local job records, recovery and the queue, driven without the trainer (fast).

The end-to-end tests with the real trainer are in test_jobs_local.py; these pin down what
happens around it: a job whose processes died, the queue moving on, cancel and resume
refusals, names, and bad input.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.backend import JobSpec, JobStatus
from core.config import Config
from core.errors import NotFoundError, PhiopsError
from core.local.jobs import LocalJobs, new_job_name
from core.local.jobstore import STD_LOG, JobRecord, ProcessRef
from tests.helpers import HANG


@pytest.fixture
def jobs(tmp_path: Path) -> LocalJobs:
    return LocalJobs(Config(path=tmp_path / "phiops.toml"))


def add_record(jobs: LocalJobs, name: str, status: JobStatus, **values) -> JobRecord:
    record = JobRecord(name=name, status=status, experiment_name="phi3-finetune", **values)
    jobs.store.folder(name).mkdir(parents=True, exist_ok=True)
    jobs.store.write(record)
    return record


def finished_process() -> ProcessRef:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    ref = ProcessRef.of(process.pid)
    process.wait()
    return ref


def test_names_look_like_azure_ml_job_names() -> None:
    names = {new_job_name() for _ in range(20)}
    assert len(names) == 20
    assert all(re.fullmatch(r"[a-z]+_[a-z]+_[a-z0-9]{10}", name) for name in names)


def test_a_job_whose_processes_died_is_failed_and_the_queue_moves_on(
    jobs: LocalJobs, tmp_path: Path
) -> None:
    dead = add_record(jobs, "dead_job_1", JobStatus.RUNNING, command=[], runner=finished_process())
    log = jobs.store.path(dead.name, STD_LOG)
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"step {n}\n" for n in range(40)) + "RuntimeError: boom\n")
    marker = tmp_path / "ran"
    queued = add_record(
        jobs,
        "queued_job_2",
        JobStatus.QUEUED,
        command=[sys.executable, "-c", f"open({str(marker)!r}, 'w'); print('queued job ran')"],
    )

    restarted = LocalJobs(jobs.config)  # a new phiops process sees only what is on disk
    failed = restarted.get(dead.name)
    assert failed.status == JobStatus.FAILED
    assert "runner process" in failed.error and "is gone" in failed.error
    assert failed.error.endswith("step 39\nRuntimeError: boom")
    assert "step 20" not in failed.error  # the tail, not the whole log

    finished = restarted.wait(queued.name, timeout=HANG)
    assert finished.status == JobStatus.COMPLETED, finished.error
    assert marker.exists()
    assert [line.text for line in _lines(restarted, queued.name)] == ["queued job ran"]
    assert finished.run_id  # the supervisor made the MLflow run before starting the command


def _lines(jobs: LocalJobs, name: str) -> list:
    import asyncio

    async def collect() -> list:
        return [line async for line in jobs.stream_logs(name)]

    return asyncio.run(collect())


def test_a_queued_job_waits_while_another_runs_and_cancels_at_once(jobs: LocalJobs) -> None:
    running = add_record(
        jobs, "busy_job_1", JobStatus.RUNNING, command=[], runner=ProcessRef.of(os.getpid())
    )
    queued = add_record(jobs, "waiting_job_2", JobStatus.QUEUED, command=["false"])
    assert {job.name: job.status for job in jobs.list()} == {
        running.name: JobStatus.RUNNING,
        queued.name: JobStatus.QUEUED,
    }
    canceled = jobs.cancel(queued.name)
    assert canceled.status == JobStatus.CANCELED
    assert jobs.get(running.name).status == JobStatus.RUNNING


def test_resume_needs_an_ended_job_with_a_checkpoint(jobs: LocalJobs) -> None:
    add_record(jobs, "done_job_1", JobStatus.COMPLETED, command=[])
    add_record(jobs, "stopped_job_2", JobStatus.CANCELED, command=[])
    with pytest.raises(PhiopsError, match="is Completed; only a Canceled or Failed"):
        jobs.resume("done_job_1")
    with pytest.raises(PhiopsError, match="saved no checkpoint"):
        jobs.resume("stopped_job_2")
    with pytest.raises(NotFoundError, match="no local job named 'nope'"):
        jobs.get("nope")
    with pytest.raises(NotFoundError):
        jobs.stream_logs("nope")


def test_submit_with_missing_inputs_says_what_to_do(jobs: LocalJobs, tmp_path: Path) -> None:
    spec = JobSpec(train_file="data/train.jsonl", eval_file="data/test.jsonl", base_model="x")
    with pytest.raises(NotFoundError, match=r"training file .*train.jsonl does not exist; run"):
        jobs.submit(spec)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    (tmp_path / "data" / "test.jsonl").write_text("{}\n")
    missing_model = JobSpec(spec.train_file, spec.eval_file, base_model="./no-such-model")
    with pytest.raises(NotFoundError, match="base model folder"):
        jobs.submit(missing_model)
    with pytest.raises(PhiopsError, match="one process per job"):
        jobs.submit(JobSpec(spec.train_file, spec.eval_file, "x", instance_count=2))
    assert jobs.list() == []  # nothing half-made is left behind


def test_a_hub_model_neither_cached_nor_reachable_is_refused_at_once(
    jobs: LocalJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.local.job_runner import offline_hub

    (tmp_path / "data").mkdir()
    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / "data" / name).write_text("{}\n")
    import huggingface_hub.constants

    # An empty cache (the constant, since the library may have read its variables already).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub cannot be reached (and is not tried)
    spec = JobSpec("data/train.jsonl", "data/test.jsonl", "microsoft/Phi-3-mini-4k-instruct")
    with pytest.raises(PhiopsError, match=r"not in the Hugging Face cache .* scaffold-tiny"):
        jobs.submit(spec)
    assert jobs.list() == []
    # Cached, the same id is accepted, and the job's trainer is told to stay offline.
    snapshot = tmp_path / "hf" / "hub" / "models--microsoft--Phi-3-mini-4k-instruct"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text("abc123")
    (snapshot / "snapshots" / "abc123").mkdir(parents=True)
    (snapshot / "snapshots" / "abc123" / "config.json").write_text("{}")
    from core.data.hub import model_cached

    assert model_cached("microsoft/Phi-3-mini-4k-instruct")
    assert offline_hub("microsoft/Phi-3-mini-4k-instruct")
    assert not offline_hub(str(tmp_path / "data"))  # a local folder needs no hub


def test_cancel_escalates_to_sigkill_after_the_grace_period(jobs: LocalJobs) -> None:
    from core.local.job_runner import start_next

    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring SIGTERM', flush=True); time.sleep(120)"
    )
    add_record(jobs, "stubborn_job_1", JobStatus.QUEUED, command=[sys.executable, "-c", stubborn])
    with jobs.store.locked():
        assert start_next(jobs.store) == "stubborn_job_1"
    deadline = time.monotonic() + HANG
    while jobs.store.read("stubborn_job_1").trainer is None:
        assert time.monotonic() < deadline, jobs.get("stubborn_job_1")
        time.sleep(0.1)
    trainer = jobs.store.read("stubborn_job_1").trainer
    started = time.monotonic()
    canceled = jobs.cancel("stubborn_job_1", grace=1)
    assert canceled.status == JobStatus.CANCELED
    assert canceled.error == "the trainer was killed by SIGKILL before saving a checkpoint"
    assert time.monotonic() - started >= 1  # it gave the grace period before SIGKILL
    assert not trainer.alive()
