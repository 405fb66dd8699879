"""The Azure ML environment files agree with each other and cover what the trainer imports."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

TRAINER = Path(__file__).resolve().parents[1] / "trainer"
# Imported by the trainer but installed as a dependency of a pinned package.
TRANSITIVE = {"huggingface_hub": "transformers"}


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[name.lower()] = version
    return found


def requirements() -> dict[str, str]:
    return pins((TRAINER / "requirements.txt").read_text().splitlines())


def test_conda_file_installs_exactly_the_requirements() -> None:
    conda = yaml.safe_load((TRAINER / "conda.yml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == requirements()
    assert "python=3.11" in conda["dependencies"]


def test_every_third_party_import_of_the_trainer_is_pinned() -> None:
    local = {path.stem for path in TRAINER.glob("*.py")}
    pinned = set(requirements())
    for path in TRAINER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in local or top in sys.stdlib_module_names or top == "__future__":
                    continue
                assert TRANSITIVE.get(top, top) in pinned, f"{path.name} imports {top}"


def test_pins_match_what_the_tests_ran_with() -> None:
    """The trainer is tested with these versions; torch and mlflow are the documented
    exceptions (requirements.txt says why)."""
    from importlib.metadata import version

    for name, pinned in requirements().items():
        if name in {"torch", "mlflow", "azureml-mlflow"}:
            continue  # Azure's torch is a CUDA 12 build; azureml-mlflow caps mlflow at 3.15
        assert version(name).split("+")[0] == pinned, name


def test_the_project_pins_the_trainer_versions() -> None:
    """pyproject.toml installs what the Azure ML job installs, so local runs test the same."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(spec.split("==") for spec in declared if "==" in spec)
    for name, pinned in requirements().items():
        if name in {"torch", "mlflow", "azureml-mlflow"}:
            continue  # torch comes from bootstrap.sh; mlflow: see requirements.txt
        assert pins.get(name) == pinned, name
