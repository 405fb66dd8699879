"""The local backend's resources: the store, the MLflow database, disk, Python, torch, GPU.

What the TUI's Resources tab and `phiops resources check` show on the local backend, as
the same findings as on Azure. It must be quick (the tab opens with it), so versions come
from package metadata and the GPU from the driver's files; torch itself is never imported.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import sys
from importlib import metadata
from pathlib import Path

from core.backend import Finding, FindingState
from core.config import Config
from core.local.tracking import DB_FILENAME

GIB = 1024**3
MIB = 1024**2
LOW_DISK_BYTES = 2 * GIB  # below this, a checkpoint of even a small model may not fit
PYTHON = (3, 11)
LIBRARIES = ("transformers", "trl", "peft", "mlflow", "promptflow")


def local_findings(config: Config) -> list[Finding]:
    """One finding per local resource, in the order a person checks them."""
    store = config.store_path
    return [
        store_finding(store),
        mlflow_finding(store / DB_FILENAME),
        disk_finding(store),
        python_finding(),
        torch_finding(),
        libraries_finding(),
        gpu_finding(),
        data_finding(config),
    ]


def store_finding(store: Path) -> Finding:
    if not store.exists():
        return Finding(
            "local store",
            FindingState.MISSING,
            f"{store} is created by the first job",
            "`phiops train submit` or `phiops demo`",
            required=False,
        )
    if not store.is_dir() or not os.access(store, os.W_OK):
        return Finding(
            "local store",
            FindingState.WRONG,
            f"{store} is not a writable folder",
            f"`chmod u+w {store}`, or `phiops config set store_dir PATH`",
        )
    return Finding("local store", FindingState.OK, f"{store}, {_size(folder_bytes(store))} used")


def mlflow_finding(database: Path) -> Finding:
    """The tracking store: its runs and registered models, read with sqlite3 (read-only)."""
    if not database.exists():
        return Finding(
            "MLflow database",
            FindingState.MISSING,
            f"{database} is created by the first job",
            "`phiops train submit` or `phiops demo`",
            required=False,
        )
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
            models = db.execute("SELECT count(*) FROM registered_models").fetchone()[0]
    except sqlite3.Error as error:
        return Finding(
            "MLflow database",
            FindingState.WRONG,
            f"{database} cannot be read ({error})",
            f"move {database} aside; phiops makes a new one on the next job",
        )
    return Finding(
        "MLflow database",
        FindingState.OK,
        f"{database}: {runs} run(s), {models} registered model(s), "
        f"{_size(database.stat().st_size)}",
    )


def disk_finding(store: Path) -> Finding:
    existing = next((path for path in (store, *store.parents) if path.exists()), Path("/"))
    usage = shutil.disk_usage(existing)
    detail = f"{_size(usage.free)} free of {_size(usage.total)} at {existing}"
    if usage.free < LOW_DISK_BYTES:
        return Finding(
            "disk",
            FindingState.WRONG,
            f"only {detail}",
            "free some space (old jobs' checkpoints live in the store's jobs/ folder)",
        )
    return Finding("disk", FindingState.OK, detail)


def python_finding() -> Finding:
    version = platform.python_version()
    if sys.version_info[:2] != PYTHON:
        return Finding(
            "python",
            FindingState.WRONG,
            f"Python {version}; phiops is built and tested on {PYTHON[0]}.{PYTHON[1]}",
            "run scripts/bootstrap.sh, which makes a Python 3.11 .venv",
        )
    return Finding("python", FindingState.OK, f"Python {version} ({sys.executable})")


def torch_finding() -> Finding:
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return Finding(
            "torch",
            FindingState.MISSING,
            "torch is not installed",
            "run scripts/bootstrap.sh (it installs the pinned torch)",
        )
    build = "CPU-only build" if "+cpu" in version else "build with GPU support"
    return Finding("torch", FindingState.OK, f"torch {version} ({build})")


def libraries_finding() -> Finding:
    found, missing = [], []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Finding(
            "libraries",
            FindingState.MISSING,
            f"not installed: {', '.join(missing)}",
            "`.venv/bin/pip install -e '.[dev]'`",
        )
    return Finding("libraries", FindingState.OK, ", ".join(found))


def gpu_names() -> list[str]:
    """NVIDIA GPUs the driver reports, read from /proc (no torch, no subprocess)."""
    folder = Path("/proc/driver/nvidia/gpus")
    names = []
    if folder.is_dir():
        for information in sorted(folder.glob("*/information")):
            for line in information.read_text(errors="replace").splitlines():
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
    return names


def gpu_finding() -> Finding:
    names = gpu_names()
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        names = names or ["Apple silicon (MPS)"]
    if not names:
        return Finding(
            "GPU",
            FindingState.MISSING,
            "none: training runs on the CPU (minutes for the tiny model; the Azure backend "
            "is for Phi-3-mini)",
            required=False,
        )
    try:
        cpu_only = "+cpu" in metadata.version("torch")
    except metadata.PackageNotFoundError:
        cpu_only = False
    if cpu_only and platform.system() != "Darwin":
        return Finding(
            "GPU",
            FindingState.WRONG,
            f"{', '.join(names)}, but torch is a CPU-only build",
            "install a CUDA build of torch into .venv (pytorch.org lists the command)",
            required=False,
        )
    return Finding("GPU", FindingState.OK, ", ".join(names))


def data_finding(config: Config) -> Finding:
    paths = [config.resolve(config.train_data_path), config.resolve(config.test_data_path)]
    absent = [str(path) for path in paths if not path.is_file()]
    if absent:
        return Finding(
            "training data",
            FindingState.MISSING,
            f"not found: {', '.join(absent)}",
            "`phiops data prepare --sample` (or `phiops data prepare --source PATH`)",
            required=False,
        )
    return Finding(
        "training data",
        FindingState.OK,
        ", ".join(f"{path.name} {_size(path.stat().st_size)}" for path in paths),
    )


def folder_bytes(folder: Path) -> int:
    """Bytes under `folder`, walked with scandir (no stat per name twice)."""
    total, pending = 0, [folder]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def _size(count: int) -> str:
    if count >= GIB:
        return f"{count / GIB:.1f} GiB"
    return f"{count / MIB:.1f} MiB"
