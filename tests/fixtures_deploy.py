"""Fixtures for the deploy tests: scoring servers on the session's trained model, and checks
that nothing they started is left running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.backend import RequestSettings

KEY = "test-key-" + "x" * 40
OTHER_KEY = "other-key-" + "y" * 40
AUTH = {"Authorization": f"Bearer {KEY}"}


def gone(pid: int, within: float = 20.0) -> bool:
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
