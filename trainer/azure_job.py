"""What changes when fine_tune.py runs as an Azure ML command job, in one place.

Azure ML starts the job with `AZUREML_RUN_ID` (and `MLFLOW_RUN_ID`, `MLFLOW_TRACKING_URI`) in
its environment. Three things differ there from a local run:

- **No silent CPU.** A GPU node whose torch cannot reach CUDA (a wheel built for a newer CUDA
  than the node's driver) would train a 3.8 B model on CPU for days on a billed GPU node; the
  job stops at once with one sentence instead (also wherever `--require-gpu` is given).
- **The model goes to the declared output only.** Azure ML's tracking server does not
  implement MLflow 3's logged-models API, so `mlflow.<flavor>.log_model` fails there (404);
  registration reads the MLflow model from the job's output (`D/mlflow_model`) anyway.
  Anything the tracking server refuses after training is a warning, never a failed job.
- **Checkpoints on the node's own disk.** The output is a blob mount where a rename is a
  copy and a delete, and a checkpoint with optimizer state is ~20 GB for Phi-3-mini; the
  trainer writes checkpoints to local disk and mirrors only the newest complete one into
  `D/checkpoints/`, written once, `trainer_state.json` last (what makes it complete), so a
  restarted job (`--resume`, which the Azure job always passes) continues from there.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOCAL_CHECKPOINTS_ENV = "PHIOPS_LOCAL_CHECKPOINT_DIR"
COMPLETE_MARKER = "trainer_state.json"  # written last by transformers and by the mirror


def inside_azure_ml() -> bool:
    return bool(os.environ.get("AZUREML_RUN_ID"))


def gpu_problem(required: bool, allow_cpu: bool = False) -> str | None:
    """Why this job must not start on this machine: a GPU is required (by `--require-gpu`, or
    inside Azure ML unless `--allow-cpu` says the cluster has none) and torch cannot use one.
    None when all is well."""
    if not (required or (inside_azure_ml() and not allow_cpu)):
        return None
    import torch

    if torch.cuda.is_available():
        return None
    build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    where = "inside Azure ML" if inside_azure_ml() else "with --require-gpu"
    return (
        f"no usable CUDA GPU {where}: torch {torch.__version__} is {build} "
        f"(torch.version.cuda={torch.version.cuda}) and torch.cuda.is_available() is False, "
        "so the job stops instead of training on the CPU; the job's environment needs a torch "
        "built for a CUDA the node's NVIDIA driver supports (trainer/conda.yml)"
    )


def checkpoint_dir(output_dir: Path) -> Path:
    """Where the Trainer writes checkpoints: the node's disk on Azure ML, else D/checkpoints."""
    if not inside_azure_ml():
        return output_dir / "checkpoints"
    root = os.environ.get(LOCAL_CHECKPOINTS_ENV) or tempfile.gettempdir()
    return Path(root) / "phiops-checkpoints" / os.environ.get("AZUREML_RUN_ID", "job")


def resume_point(output_dir: Path, local: Path) -> Path | None:
    """The newest complete checkpoint: on this node's disk, else the one mirrored in D."""
    from checkpoints import latest_checkpoint

    candidates = (latest_checkpoint(local), latest_checkpoint(output_dir / "checkpoints"))
    found = [checkpoint for checkpoint in candidates if checkpoint is not None]
    return max(found, key=_step) if found else None


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[-1])


def mirror_checkpoint(checkpoint: Path, mirror: Path) -> Path:
    """Copy one complete checkpoint into `mirror` (the output), each file written once and the
    completeness marker last; then drop the older mirrored ones."""
    target = mirror / checkpoint.name
    if target.exists():  # a half copy from an interrupted attempt: it has no marker
        shutil.rmtree(target)
    marker = checkpoint / COMPLETE_MARKER
    for source in sorted(checkpoint.rglob("*")):
        if source.is_file() and source != marker:
            destination = target / source.relative_to(checkpoint)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    shutil.copyfile(marker, target / COMPLETE_MARKER)
    for older in mirror.glob("checkpoint-*"):
        if older != target and older.is_dir():
            shutil.rmtree(older, ignore_errors=True)
    return target


def mirror_callbacks(local: Path, output_dir: Path) -> list[Any]:
    """On Azure ML, a TrainerCallback that mirrors each checkpoint saved on this node's disk
    into D/checkpoints; elsewhere the checkpoints are in D already and there is none."""
    if local == output_dir / "checkpoints":
        return []
    from checkpoints import latest_checkpoint
    from transformers import TrainerCallback

    class MirrorCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            newest = latest_checkpoint(local)
            if newest is not None and state.is_world_process_zero:
                mirror_checkpoint(newest, output_dir / "checkpoints")
                print(f"Checkpoint {newest.name} mirrored to the job's output", flush=True)

    return [MirrorCheckpoints()]


def after_training(what: str, action: Callable[..., Any], *args: Any) -> None:
    """Run a tracking call made after the model is saved; a failure is a warning."""
    try:
        action(*args)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"fine_tune: warning: could not {what} ({type(error).__name__}: {first}); "
            "the model is saved in the job's output",
            file=sys.stderr,
            flush=True,
        )


def log_model(tracking: Any, package: Any) -> None:
    """Log the model to the tracking server, except on Azure ML (see the module's doc)."""
    if inside_azure_ml():
        if tracking.enabled:
            print(
                "Azure ML: the MLflow model is in the job's output (mlflow_model/); "
                "not logged to the run, whose tracking server has no logged-models API",
                flush=True,
            )
        return
    after_training("log the model to MLflow", tracking.log_model, package)
