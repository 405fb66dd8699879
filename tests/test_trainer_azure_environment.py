"""The Azure ML job's environment, resolved as Azure ML's image build would resolve it, offline
of Azure: `pip install --dry-run --report` of trainer/requirements.txt (what conda.yml's pip
section installs) against PyPI, with this machine's own pip settings (a local CPU torch, a
version cap) switched off. Azure ML's GPU nodes run NVIDIA driver 535, which runs CUDA 12.x
at most: no CUDA 13 package may come in, and torch must be a CUDA 12 build."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REQUIREMENTS = Path(__file__).resolve().parents[1] / "trainer" / "requirements.txt"


def cuda_major(name: str, version: str) -> int | None:
    """The CUDA major version a resolved package is built for, when it says so."""
    suffix = re.search(r"-cu(\d+)$", name)
    if suffix:
        return int(suffix.group(1))
    if name in {"cuda-toolkit", "cuda-bindings", "cuda-python"} or name.startswith("nvidia-cuda"):
        return int(version.split(".")[0])
    return None


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    report = tmp_path_factory.mktemp("pip-report") / "report.json"
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,  # no find-links to a local CPU wheel, no constraints
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env = {k: v for k, v in env.items() if k not in {"PIP_FIND_LINKS", "PIP_CONSTRAINT"}}
    command = [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--quiet"]
    command += ["--ignore-installed", "--index-url", "https://pypi.org/simple"]
    command += ["--report", str(report), "-r", str(REQUIREMENTS)]
    result = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    install = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item for item in install}


@pytest.mark.slow
def test_the_job_environment_brings_a_cuda_12_torch_and_nothing_for_cuda_13(
    resolved: dict[str, dict],
) -> None:
    versions = {name: item["metadata"]["version"] for name, item in resolved.items()}
    cuda = {name: cuda_major(name, version) for name, version in versions.items()}
    built_for = {name: major for name, major in cuda.items() if major is not None}
    assert built_for, "a GPU torch pulls in its CUDA runtime packages"
    assert set(built_for.values()) == {12}, {n: versions[n] for n in built_for}

    torch = resolved["torch"]
    assert torch["download_info"]["url"].startswith("https://files.pythonhosted.org/")
    assert "+cpu" not in versions["torch"]  # a GPU build, not this machine's CPU wheel
    requires = [line.split(";")[0].strip() for line in torch["metadata"]["requires_dist"]]
    assert any(r.startswith("nvidia-cuda-runtime-cu12") for r in requires), requires
    assert not any("cu13" in r or r.startswith("cuda-toolkit") for r in requires), requires

    pinned = dict(
        line.split("==")
        for line in (ln.split("#")[0].strip() for ln in REQUIREMENTS.read_text().splitlines())
        if line
    )
    for name, version in pinned.items():
        assert versions[name.lower()] == version, name  # every pin resolves as written
