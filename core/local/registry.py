"""The local model registry: MLflow's, in the project's SQLite store (`<store>/mlflow.db`).

A job's trainer logs its model to the job's MLflow run (an MLflow 3 LoggedModel under
`<store>/mlartifacts/`); registering creates the next version of a registered model that
points at it, tagged with the job's name, exactly as the Azure backend registers the job's
output. A job whose run logged no model (tracking failed, an older job) is registered from
its output folder (`outputs/model/mlflow_model`), which holds the same MLflow model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from core.backend import JobInfo, JobStatus, ModelVersion
from core.config import Config
from core.errors import NotFoundError, PhiopsError

JOB_TAG = "job_name"  # the same tag the Azure registry sets


def _to_version(raw: Any) -> ModelVersion:
    tags = dict(getattr(raw, "tags", None) or {})
    created = getattr(raw, "creation_timestamp", None)
    return ModelVersion(
        name=raw.name,
        version=str(raw.version),
        source=str(raw.source or ""),
        job_name=tags.get(JOB_TAG, ""),
        created_at=created / 1000.0 if created else None,
        description=raw.description or "",
    )


def _file_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path if parsed.scheme else uri))
    raise PhiopsError(f"the model's files are at {uri}, which is not a local folder")


class LocalRegistry:
    """The registry part of the local backend."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from core.local.tracking import mlflow_client

            self._client = mlflow_client(self.config.store_path)
        return self._client

    # -- registering ---------------------------------------------------------------------

    def register_from_job(self, job: JobInfo, name: str) -> ModelVersion:
        """The job's MLflow model as the next version of `name`."""
        if not name:
            raise PhiopsError("give the model a name (model_name in phiops.toml, or --name)")
        if job.status != JobStatus.COMPLETED:
            raise PhiopsError(
                f"job {job.name} is {job.status}; only a completed job's model can be "
                "registered (leave the job out to take the latest completed one)"
            )
        source, model_id = self._job_model(job)
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(
                name, description="Phi-3 fine-tuned by phiops", tags={"phiops": "fine-tuned"}
            )
        created = client.create_model_version(
            name,
            source,
            run_id=job.run_id or None,
            tags={JOB_TAG: job.name, "phiops": "fine-tuned"},
            description=f"Phi-3 fine-tuned by job {job.name} ({job.display_name or job.name}).",
            model_id=model_id,
        )
        return _to_version(created)

    def _job_model(self, job: JobInfo) -> tuple[str, str | None]:
        """(source URI, logged model id) of the model the job produced."""
        if job.run_id:
            from mlflow.exceptions import MlflowException

            try:
                run = self.client.get_run(job.run_id)
                outputs = getattr(run, "outputs", None)
                for output in getattr(outputs, "model_outputs", None) or []:
                    logged = self.client.get_logged_model(output.model_id)
                    if logged.name == "model" and _has_model(logged.artifact_location):
                        return logged.artifact_location, logged.model_id
            except MlflowException:
                pass  # fall back to the output folder below
        folder = Path(job.output_dir) / "mlflow_model"
        if (folder / "MLmodel").is_file():
            return folder.resolve().as_uri(), None
        raise NotFoundError(
            f"job {job.name} left no MLflow model (neither in its MLflow run nor in "
            f"{folder}); was it trained by phiops' trainer?"
        )

    # -- reading -------------------------------------------------------------------------

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """One version (the latest when `version` is None); a sentence when it is missing."""
        versions = self.list(name)
        if version is None:
            if not versions:
                raise NotFoundError(
                    f"model {name} is not in the local registry; register one with "
                    "`phiops model register`"
                )
            return versions[0]
        for found in versions:
            if found.version == str(version):
                return found
        known = ", ".join(v.version for v in versions) or "none"
        raise NotFoundError(
            f"model {name}:{version} is not in the local registry (versions: {known})"
        )

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Versions of `name`, newest first; without a name, every model's, by name."""
        query = f"name = '{name}'" if name else ""
        if name and "'" in name:
            raise PhiopsError(f"model names cannot contain quotes: {name!r}")
        found = [_to_version(raw) for raw in self.client.search_model_versions(query)]
        return sorted(found, key=lambda v: (v.name, -_number(v.version)))

    def local_path(self, model: ModelVersion) -> Path:
        """The folder holding the version's MLflow model, checked to be servable."""
        from core.serving.modelfiles import find_model_files

        version = self.get(model.name, model.version or None)
        source = version.source
        if source.startswith("models:/"):
            model_id = source.removeprefix("models:/").split("/")[0]
            source = self.client.get_logged_model(model_id).artifact_location
        folder = _file_path(source)
        if not folder.is_dir():
            raise NotFoundError(
                f"the files of model {version.ref} are gone from {folder}; register the "
                "model again from its job"
            )
        find_model_files(folder)
        return folder


def _number(version: str) -> int:
    return int(version) if version.isdigit() else 0


def _has_model(location: str) -> bool:
    try:
        return (_file_path(location) / "MLmodel").is_file()
    except PhiopsError:
        return False
