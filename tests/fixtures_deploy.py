"""Fixtures for the deploy tests: scoring servers on the session's trained model, and checks
that nothing they started is left running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backend import RequestSettings
from tests.helpers import HANG

KEY = "test-key-" + "x" * 40
OTHER_KEY = "other-key-" + "y" * 40
AUTH = {"Authorization": f"Bearer {KEY}"}


def gone(pid: int, within: float = HANG) -> bool:
    """True once no process (zombies count as gone) has this pid."""
    import psutil

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def served(model_dir: Path, settings: RequestSettings | None = None, **kwargs) -> Iterator:
    from core.serving.process import start_scoring_server

    server = start_scoring_server(model_dir, keys=[KEY, OTHER_KEY], settings=settings, **kwargs)
    try:
        yield server
    finally:
        server.stop()
        assert gone(server.pid), f"scoring server {server.pid} still runs"


@pytest.fixture(scope="session")
def scoring_server(trained_model_dir: Path):
    """A server on the trained model with room for batching (8 requests in flight)."""
    settings = RequestSettings(max_concurrent_requests_per_instance=8)
    yield from served(trained_model_dir / "mlflow_model", settings)


@pytest.fixture(scope="session")
def tight_server(trained_model_dir: Path):
    """A server that takes one request at a time, queues 300 ms and times out after 1.5 s."""
    settings = RequestSettings(
        max_concurrent_requests_per_instance=1, max_queue_wait_ms=300, request_timeout_ms=1500
    )
    yield from served(trained_model_dir, settings, deployment="tight")


# -- a project with a model trained by a real local job ------------------------------------


def endpoint_pids(endpoints, name: str) -> list[int]:
    """The processes one local endpoint has recorded: its gateway and deployments."""
    from core.local.endpointprocs import recorded_processes

    return [ref.pid for ref in recorded_processes(endpoints.store.read(name))]


def all_pids(endpoints) -> list[int]:
    """Every process the project's local endpoints have recorded."""
    return [pid for name in endpoints.store.names() for pid in endpoint_pids(endpoints, name)]


@pytest.fixture(scope="session")
def local_job_project(tmp_path_factory, chat_dataset, tiny_base_model):
    """A project whose local backend trained a model in a real job (Completed).

    Yields (folder, backend, job). Every endpoint process started in it is stopped at the
    end, and none may be left.
    """
    import shutil

    from core.backend import JobSpec, JobStatus
    from core.config import load_config
    from core.local.backend import LocalBackend
    from tests.conftest import QUICK_TRAINING

    folder = tmp_path_factory.mktemp("deploy-project")
    data = folder / "data"
    data.mkdir()
    shutil.copy(chat_dataset["train"], data / "train_data.jsonl")
    shutil.copy(chat_dataset["eval"], data / "test_data.jsonl")
    (folder / "phiops.toml").write_text(
        f'[model]\nbase_model = "{tiny_base_model}"\nmodel_name = "phi3-tiny"\n'
        '[deploy]\nendpoint_name = "phi3-endpoint"\n'
    )
    backend = LocalBackend(load_config(folder / "phiops.toml"))
    job = backend.submit_job(
        JobSpec(
            "data/train_data.jsonl",
            "data/test_data.jsonl",
            str(tiny_base_model),
            trainer_args=[*QUICK_TRAINING, "--epochs", "2"],
            display_name="deploy tests",
        )
    )
    job = backend._jobs.wait(job.name, timeout=HANG)
    assert job.status == JobStatus.COMPLETED, job.error
    try:
        yield folder, backend, job
    finally:
        endpoints = backend._endpoints
        pids = all_pids(endpoints)
        endpoints.stop_all()
        left = [pid for pid in pids if not gone(pid)]
        assert not left, f"endpoint processes left running: {left}"
