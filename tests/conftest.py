"""Shared fixtures. Every test runs offline, with its own user data dir and Prompt flow home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep tests away from the user's own data, the network and Prompt flow's telemetry."""
    home = tmp_path_factory.mktemp("phiops-home")
    pf_home = tmp_path_factory.mktemp("pf-home")
    saved = dict(os.environ)
    for variable in list(os.environ):
        if variable.startswith("PHIOPS_"):
            del os.environ[variable]
    os.environ.update(
        {
            "PHIOPS_HOME": str(home),
            "PF_HOME_DIRECTORY": str(pf_home),
            "PF_DISABLE_TRACING": "true",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        }
    )
    (pf_home / "pf.yaml").write_text("telemetry:\n  enabled: false\n")
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("PHIOPS_CONFIG", raising=False)
    return folder
