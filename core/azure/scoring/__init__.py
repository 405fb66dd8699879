"""What an Azure ML deployment of phiops runs: the scoring script, its code folder and its
environment.

Decision (issue 14, defect 3): the deployment runs phiops's own scoring code rather than
Azure ML's no-code MLflow scoring. The no-code route takes one string column, so every
chat route would have to flatten a conversation into one string, which the model's MLflow
prompt template then wraps as a single user turn — the history would reach the model in
another shape than training used. With the scoring code, the request the flow tool,
`phiops chat`, `phiops score` and the TUI send (a list of chat messages, or strings) is
rendered by the model's own chat template and generation stops at `<|end|>`, exactly as on
the local endpoint, because it is the same engine (`core/serving/engine.py`).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import core

HERE = Path(__file__).resolve().parent
CORE = Path(core.__file__).resolve().parent
SCORING_SCRIPT = "score.py"
CONDA_FILE = HERE / "conda.yml"
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
ENVIRONMENT_NAME = "phi3-scoring-env"
# The modules of phiops the scoring script needs, and nothing else: they import only each
# other, the standard library and the environment's packages.
MODULES = (
    "__init__.py",
    "errors.py",
    "serving/__init__.py",
    "serving/engine.py",
    "serving/modelfiles.py",
    "serving/params.py",
)


def code_folder(target: Path) -> Path:
    """Assemble the deployment's code folder in `target`: score.py at the top, and the
    engine's modules under core/ as they are in this checkout."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / SCORING_SCRIPT, target / SCORING_SCRIPT)
    for module in MODULES:
        destination = target / "core" / module
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CORE / module, destination)
    return target


def environment_version(conda_file: Path = CONDA_FILE, image: str = BASE_IMAGE) -> str:
    """Named by content: the same image and conda file reuse the same environment."""
    return hashlib.sha256(image.encode() + b"\0" + conda_file.read_bytes()).hexdigest()[:12]


def build_environment() -> Any:
    from azure.ai.ml.entities import Environment

    return Environment(
        name=ENVIRONMENT_NAME,
        version=environment_version(),
        image=BASE_IMAGE,
        conda_file=str(CONDA_FILE),
        description="phiops scoring: Azure ML's inference server and phiops's engine",
    )


def pip_requirements(conda_file: Path = CONDA_FILE) -> list[str]:
    """The pip pins of the deployment's environment (for tests that build it locally)."""
    import yaml

    spec = yaml.safe_load(conda_file.read_text(encoding="utf-8"))
    return next(item["pip"] for item in spec["dependencies"] if isinstance(item, dict))
