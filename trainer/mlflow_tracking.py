"""MLflow: curated parameters, per-step metrics, and the model in the `transformers` flavour.

transformers' own MLflow callback logs every TrainingArguments field (hundreds), which
overflows Azure ML's per-run parameter limit; the seed had to turn it off and so logged
nothing. Here the built-in integration stays off (`report_to="none"`) and this module logs
what a person compares runs by. Tracking happens only when `MLFLOW_TRACKING_URI` is set
(Azure ML sets it for a job; the local job runner does too), and `mlflow.start_run()`
continues the run named by `MLFLOW_RUN_ID`, which both pre-create.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METRICS = ("loss", "eval_loss", "learning_rate", "grad_norm", "epoch", "train_loss")
MODEL_ARTIFACT = "model"
# What a scoring request may set; the defaults are greedy decoding of a short answer.
# `return_full_text` is left out on purpose: MLflow ignores (with a warning) a parameter its
# signature does not declare, so the tutorial's `"return_full_text": true` still gets the
# answer alone (MLflow's own default with a prompt template) instead of the chat template's
# markers and the question in front of it.
INFERENCE_PARAMS = {
    "max_new_tokens": 256,
    "temperature": 1.0,
    "top_p": 1.0,
    "do_sample": False,
}


def tracking_requested() -> bool:
    return bool(os.environ.get("MLFLOW_TRACKING_URI"))


class Tracking:
    """One MLflow run for this job, or nothing when tracking is off (or not rank 0)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.run_id: str | None = None

    def start(self) -> None:
        if not self.enabled:
            return
        import mlflow

        run = mlflow.start_run()  # continues MLFLOW_RUN_ID when it is set
        self.run_id = run.info.run_id
        print(f"MLflow run {self.run_id} at {mlflow.get_tracking_uri()}", flush=True)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; on a resumed run keep the first values (MLflow params are immutable)."""
        if not self.enabled:
            return
        import mlflow

        existing = mlflow.get_run(self.run_id).data.params
        new = {key: str(value) for key, value in params.items() if key not in existing}
        changed = sorted(k for k, v in params.items() if k in existing and existing[k] != str(v))
        if changed:
            print(f"MLflow: keeping the run's first values of {', '.join(changed)}", flush=True)
        if new:
            mlflow.log_params(new)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self.enabled and metrics:
            import mlflow

            mlflow.log_metrics(dict(metrics), step=step)

    def log_model(self, package: PackagedModel) -> None:
        """Log the model as the run's `model` (a LoggedModel in MLflow 3)."""
        if not self.enabled:
            return
        import mlflow

        with _hub_lookups_off(package.base_model):
            mlflow.transformers.log_model(name=MODEL_ARTIFACT, **_flavor_args(package))

    def end(self, status: str) -> None:
        if self.run_id is not None:
            import mlflow

            mlflow.end_run(status=status)


def chat_prompt_template(tokenizer) -> str | None:
    """The model's own chat template rendered around `{prompt}`, for MLflow's pyfunc.

    A scoring request with a plain question is then wrapped exactly as training wrapped
    user turns, so a deployment without a scoring script answers in-format and stops.
    """
    marker = "\x00PROMPT\x00"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
        )
    except Exception:  # a template that insists on a system turn, say
        return None
    if text.count(marker) != 1 or "{" in text or "}" in text:
        return None
    return text.replace(marker, "{prompt}")


def _requirements() -> list[str]:
    """Pinned from this environment, so the serving image matches training (no slow guessing)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "torch", "transformers", "accelerate", "tokenizers", "safetensors"):
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return pins


@dataclass
class PackagedModel:
    """What goes into an MLflow model: the trained model, its tokenizer, and where it came from."""

    model: Any
    tokenizer: Any
    base_model: str  # hub id or local folder
    card: str  # model card text (README.md of the MLflow model)
    base_model_path: str | None = None  # a local base an unmerged LoRA adapter refers to


@contextlib.contextmanager
def _hub_lookups_off(base_model: str) -> Iterator[None]:
    """MLflow looks the model's card and licence up on the Hugging Face hub; for a local
    base there is nothing to find, and without network each lookup retries for ~30 s."""
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = saved or Path(base_model).is_dir()
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved


def _flavor_args(package: PackagedModel) -> dict[str, Any]:
    from huggingface_hub import ModelCard
    from mlflow.models import infer_signature

    signature = infer_signature(
        model_input=["What is the capital of France?"],
        model_output=["The capital of France is Paris."],
        params=INFERENCE_PARAMS,
    )
    return {
        "transformers_model": {"model": package.model, "tokenizer": package.tokenizer},
        "task": "text-generation",
        "signature": signature,
        "prompt_template": chat_prompt_template(package.tokenizer),
        "pip_requirements": _requirements(),
        "model_config": {"max_new_tokens": INFERENCE_PARAMS["max_new_tokens"]},
        "model_card": ModelCard(package.card),
        "base_model_path": package.base_model_path,
    }


def save_mlflow_model(package: PackagedModel, out: Path) -> None:
    """Write `out` as an MLflow `transformers` model with the tokenizer and a signature."""
    import mlflow

    with _hub_lookups_off(package.base_model):
        mlflow.transformers.save_model(path=str(out), **_flavor_args(package))
