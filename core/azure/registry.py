"""The Azure ML model registry: a job's MLflow model registered as a new model version.

The trainer writes its MLflow model to `mlflow_model/` inside the job's declared output
(`core.azure.jobs.MODEL_OUTPUT`), so the asset points there, not at the output's root: an
MLflow model asset needs its `MLmodel` file at the top for Azure ML's no-code deployment.
Each registration leaves the version out, so Azure ML gives the next number; the job's name
rides along as a tag and as the asset's `job_name`, so a version always says where it came
from. Entities are built by `build_model` offline, for tests and for a look before sending.
"""

from __future__ import annotations

import re
from typing import Any

from core.backend import JobInfo, JobStatus, ModelVersion
from core.config import Config
from core.errors import NotFoundError, PhiopsError

MLFLOW_SUBFOLDER = "mlflow_model"
JOB_TAG = "job_name"
_REFERENCE = re.compile(r"^(?:azureml:)?([^:/]+):([^:/]+)$")
_ARM_ID = re.compile(r"/models/([^/]+)/versions/([^/]+)$")


def model_path(job_name: str) -> str:
    """Where a job's MLflow model lives, as a datastore URI Azure ML resolves."""
    from core.azure.jobs import MODEL_OUTPUT

    return f"azureml://jobs/{job_name}/outputs/{MODEL_OUTPUT}/paths/{MLFLOW_SUBFOLDER}"


def build_model(job: JobInfo, name: str) -> Any:
    """The `Model` entity a registration sends (no version: Azure ML numbers it)."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    if not name:
        raise PhiopsError("give the model a name (model_name in phiops.toml, or --name)")
    tags = {JOB_TAG: job.name, "phiops": "fine-tuned"}
    if job.tags.get("base_model"):
        tags["base_model"] = job.tags["base_model"]
    return Model(
        name=name,
        path=model_path(job.name),
        type=AssetTypes.MLFLOW_MODEL,
        description=f"Phi-3 fine-tuned by job {job.name} ({job.display_name or job.name}).",
        tags=tags,
    )


def model_reference(value: Any) -> tuple[str, str]:
    """(name, version) from `name:version`, `azureml:name:version` or a model's ARM id."""
    text = str(value or "")
    match = _ARM_ID.search(text) or _REFERENCE.match(text)
    if not match:
        return text, ""
    return match.group(1), match.group(2)


def to_model_version(model: Any) -> ModelVersion:
    context = getattr(model, "creation_context", None)
    created = getattr(context, "created_at", None)
    tags = getattr(model, "tags", None) or {}
    return ModelVersion(
        name=model.name,
        version=str(model.version or ""),
        source=str(getattr(model, "path", "") or ""),
        job_name=tags.get(JOB_TAG) or getattr(model, "job_name", None) or "",
        created_at=created.timestamp() if hasattr(created, "timestamp") else None,
        description=getattr(model, "description", None) or "",
    )


def _version_key(version: ModelVersion) -> tuple[int, str]:
    return (int(version.version), "") if version.version.isdigit() else (0, version.version)


class AzureRegistry:
    """The registry part of the Azure backend."""

    def __init__(self, config: Config, clients: Any) -> None:
        self.config = config
        self.clients = clients

    @property
    def ml_client(self) -> Any:
        return self.clients.ml_client

    def register_from_job(self, job: JobInfo, name: str) -> ModelVersion:
        """Register the job's MLflow model as the next version of `name`."""
        from core.azure.jobs import azure_errors

        if job.status != JobStatus.COMPLETED:
            raise PhiopsError(
                f"job {job.name} is {job.status}; only a completed job's model can be "
                "registered (leave the job out to take the latest completed one)"
            )
        model = build_model(job, name)
        with azure_errors(f"register model {name} from job {job.name}"):
            created = self.ml_client.models.create_or_update(model)
        return to_model_version(created)

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """One version (the latest when `version` is None); a sentence when it is missing."""
        from core.azure.jobs import azure_errors

        what = f"model {name}:{version}" if version else f"model {name}"
        try:
            with azure_errors(f"read {what}"):
                if version:
                    found = self.ml_client.models.get(name, version=version)
                else:
                    found = self.ml_client.models.get(name, label="latest")
        except NotFoundError:
            raise NotFoundError(
                f"{what} is not in the Azure ML workspace's model registry"
            ) from None
        return to_model_version(found)

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Versions of `name`, newest first; without a name, every model's versions."""
        from core.azure.jobs import azure_errors

        with azure_errors("list models"):
            if name:
                names = [name]
            else:
                names = sorted({container.name for container in self.ml_client.models.list()})
            found: list[ModelVersion] = []
            for each in names:
                versions = [to_model_version(m) for m in self.ml_client.models.list(name=each)]
                found += sorted(versions, key=_version_key, reverse=True)
        return found
