"""The Azure deployment's scoring code, served the way Azure ML serves it: by the real
`azureml-inference-server-http` (`azmlinfsrv`, gunicorn) in a virtualenv of its own.

The package pins an older OpenTelemetry than Prompt flow needs, so it cannot share the
project's venv. `scoring_venv()` builds `.venv-scoring/` at the repository root from the
deployment's own environment file (`core/azure/scoring/conda.yml`), with this machine's
torch in place of the CUDA build (the CPU wheel bootstrap.sh installs), and reuses it while
a stamp of those requirements matches — a fresh clone builds it once (a few minutes), later
runs take none. `AzureScoringServer` lays the registered model out as Azure ML mounts it
(`AZUREML_MODEL_DIR/<folder>`), assembles the code folder as `deploy` does, and runs
`azmlinfsrv --entry_script score.py` in it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from core.azure import scoring

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-scoring"


def requirements() -> list[str]:
    """The deployment's pip pins, torch replaced by the version installed here."""
    local_torch = f"torch=={version('torch').split('+')[0]}"
    return [local_torch if pin.startswith("torch==") else pin for pin in scoring.pip_requirements()]


def scoring_venv() -> Path:
    """The virtualenv's python, built or reused (see the module's doc)."""
    wanted = requirements()
    stamp_text = json.dumps([sys.version, wanted])
    stamp = hashlib.sha256(stamp_text.encode()).hexdigest()
    python = VENV / "bin" / "python"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(REPO / ".venv-scoring.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time
        marker = VENV / ".phiops-stamp"
        if python.exists() and marker.is_file() and marker.read_text() == stamp:
            return python
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        result = subprocess.run(
            [*pip, *wanted],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            raise RuntimeError(f"building {VENV} failed: {result.stderr[-3000:]}")
        marker.write_text(stamp)
    return python


def free_port() -> int:
    """A port the OS picks (azmlinfsrv takes no port 0, so it is asked for one and told)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AzureScoringServer:
    """`azmlinfsrv` serving the deployment's code folder and a model mounted as on Azure."""

    def __init__(self, python: Path, model: Path, folder: Path) -> None:
        self.python, self.model, self.folder = python, model, folder
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> AzureScoringServer:
        code = scoring.code_folder(self.folder / "code")
        model_dir = self.folder / "azureml-models" / "phi3-finetuned" / "1"
        model_dir.mkdir(parents=True)
        shutil.copytree(self.model, model_dir / self.model.name)  # e.g. mlflow_model/
        home = self.folder / "home"
        home.mkdir()
        self.log = self.folder / "azmlinfsrv.log"
        port, health = free_port(), free_port()
        env = {
            "PATH": f"{self.python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),  # gunicorn's control socket goes under $HOME
            "AZUREML_MODEL_DIR": str(model_dir),
            "PHIOPS_SCORING_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        command = [str(self.python.parent / "azmlinfsrv"), "--entry_script", "score.py"]
        command += ["--port", str(port), "--health_port", str(health)]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=code,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{port}"
        self.scoring_uri = f"{self.url}/score"
        deadline = time.monotonic() + 180
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            try:
                if httpx.get(self.url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return self

    def score(self, body: object, **headers: str) -> httpx.Response:
        return httpx.post(self.scoring_uri, json=body, headers=headers, timeout=120)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def azure_scoring_server(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The session's trained tiny model's MLflow model, deployed as on Azure ML."""
    python = scoring_venv()
    folder = tmp_path_factory.mktemp("azure-deployment")
    with AzureScoringServer(python, trained_model_dir / "mlflow_model", folder) as server:
        yield server
