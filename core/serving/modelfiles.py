"""Where a saved model's weights and tokenizer are, whatever folder the user points at.

The trainer writes `D/hf_model/` (a plain Hugging Face folder) and `D/mlflow_model/` (an
MLflow `transformers` model: weights under `model/`, tokenizer under
`components/tokenizer/`); a registered version points at an MLflow model. The server
accepts any of these, so a job's output folder, a registered version and a hand-made
folder all serve the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import NotFoundError, PhiopsError

MLMODEL = "MLmodel"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass(frozen=True)
class ModelFiles:
    """The folders to load from, and the MLflow prompt template if the model has one."""

    model_dir: Path
    tokenizer_dir: Path
    prompt_template: str | None = None
    kind: str = "hf"  # "hf" or "mlflow"

    def context_tokens(self) -> int:
        """The model's context (`max_position_embeddings`), read without loading it; 0 if
        its config does not say."""
        import json

        try:
            config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
            return int(config.get("max_position_embeddings") or 0)
        except (OSError, ValueError, TypeError, AttributeError):
            return 0


def _is_hf(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in TOKENIZER_FILES
    )


def _from_mlmodel(folder: Path) -> ModelFiles:
    import yaml

    try:
        spec = yaml.safe_load((folder / MLMODEL).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise PhiopsError(f"the MLflow model in {folder} cannot be read ({error})") from None
    flavor = (spec.get("flavors") or {}).get("transformers")
    if not isinstance(flavor, dict):
        raise PhiopsError(
            f"the MLflow model in {folder} has no transformers flavour; phiops serves "
            "models saved by its trainer (mlflow.transformers)"
        )
    if flavor.get("peft_adaptor"):
        raise PhiopsError(
            f"the MLflow model in {folder} is an unmerged LoRA adapter; train without "
            "--no-merge to get a model the local endpoint can serve"
        )
    model_dir = folder / str(flavor.get("model_binary") or "model")
    components = flavor.get("components") or []
    tokenizer_dir = folder / "components" / "tokenizer" if "tokenizer" in components else model_dir
    if not (model_dir / "config.json").is_file():
        raise PhiopsError(f"the MLflow model in {folder} has no weights under {model_dir.name}/")
    template = (spec.get("metadata") or {}).get("prompt_template")
    return ModelFiles(model_dir, tokenizer_dir, template or None, "mlflow")


def find_model_files(path: str | Path) -> ModelFiles:
    """The model in `path`: an MLflow model, a Hugging Face folder, or a trainer output."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise NotFoundError(f"the model folder {folder} does not exist")
    for candidate in (folder, folder / "mlflow_model", folder / "hf_model"):
        if (candidate / MLMODEL).is_file():
            return _from_mlmodel(candidate)
        if _is_hf(candidate):
            return ModelFiles(candidate, candidate)
    raise NotFoundError(
        f"no model in {folder}: expected an MLflow model (MLmodel) or a Hugging Face "
        "folder (config.json and tokenizer files), or a trainer output holding one"
    )
