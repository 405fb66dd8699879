"""The local backend's findings: store, MLflow database, disk, Python, torch, GPU, data."""

from __future__ import annotations

import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from core.backend import FindingState
from core.backends import get_backend
from core.config import Config
from core.local import resources as local
from tests.conftest import REPO


@pytest.fixture
def config(project: Path) -> Config:
    return Config(path=project / "phiops.toml")


def findings(config: Config) -> dict:
    return {item.name: item for item in get_backend(config, "local").resources()}


def test_fresh_project(config: Config) -> None:
    found = findings(config)
    assert found["local store"].state == FindingState.MISSING
    assert not found["local store"].required
    assert found["MLflow database"].state == FindingState.MISSING
    assert found["training data"].fix.startswith("`phiops data prepare --sample`")
    assert found["python"].state == FindingState.OK
    assert found["torch"].detail.startswith("torch 2.")
    assert found["disk"].state == FindingState.OK
    assert "transformers" in found["libraries"].detail


def test_a_real_mlflow_store_is_counted(config: Config) -> None:
    from core.local.tracking import mlflow_client

    client = mlflow_client(config.store_path)
    experiment = client.create_experiment("phi3-finetune")
    client.create_run(experiment)
    client.create_run(experiment)
    client.create_registered_model("phi3-finetuned")
    (config.store_path / "jobs").mkdir()
    (config.store_path / "jobs" / "blob.bin").write_bytes(b"\0" * 3 * 1024 * 1024)
    found = findings(config)
    assert found["MLflow database"].state == FindingState.OK
    assert ": 2 run(s), 1 registered model(s), " in found["MLflow database"].detail
    assert found["local store"].state == FindingState.OK
    used = float(found["local store"].detail.rsplit(", ", 1)[1].split()[0])
    assert 3.0 <= used < 10


def test_a_damaged_database_is_wrong(config: Config) -> None:
    config.store_path.mkdir()
    (config.store_path / "mlflow.db").write_bytes(b"not a database at all" * 100)
    finding = findings(config)["MLflow database"]
    assert finding.state == FindingState.WRONG and finding.required
    assert "cannot be read" in finding.detail


def test_low_disk(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(local.shutil, "disk_usage", lambda path: usage(100 * 2**30, 0, 2**29))
    finding = findings(config)["disk"]
    assert finding.state == FindingState.WRONG
    assert finding.detail.startswith("only 512.0 MiB free of 100.0 GiB")


def test_gpu_with_a_cpu_only_torch(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "gpu_names", lambda: ["NVIDIA H100 80GB HBM3"])
    monkeypatch.setattr(local.metadata, "version", lambda name: "2.13.0+cpu")
    finding = findings(config)["GPU"]
    assert finding.state == FindingState.WRONG and not finding.required
    assert finding.detail == "NVIDIA H100 80GB HBM3, but torch is a CPU-only build"
    monkeypatch.setattr(local.metadata, "version", lambda name: "2.13.0+cu128")
    assert findings(config)["GPU"].state == FindingState.OK


def test_data_present(config: Config) -> None:
    (config.project_dir / "data").mkdir()
    for name in ("train_data.jsonl", "test_data.jsonl"):
        (config.project_dir / "data" / name).write_text('{"messages": []}\n')
    assert findings(config)["training data"].state == FindingState.OK


def test_light() -> None:
    """The Resources tab opens with this: no torch, no MLflow, no Azure SDK imported (its
    time is measured by benchmarks/bench_cli.py)."""
    code = (
        "import sys;"
        "from core.config import load_config; from core.local.resources import local_findings;"
        "local_findings(load_config());"
        "print(sorted(m for m in ('torch', 'mlflow', 'azure.ai.ml', 'transformers') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["[]"]
