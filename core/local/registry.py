"""The local model registry: MLflow's, in the project's SQLite store (`<store>/mlflow.db`).

A job's trainer logs its model to the job's MLflow run (an MLflow 3 LoggedModel under
`<store>/mlartifacts/`); registering creates the next version of a registered model that
points at it, tagged with the job's name, exactly as the Azure backend registers the job's
output. A job whose run logged no model (tracking failed, an older job) is registered from
its output folder (`outputs/model/mlflow_model`), which holds the same MLflow model.

The registry lives in one SQLite file; if it is deleted or replaced, the endpoints and jobs
still refer to what it held. Listing says so (`problems`), and a new registration never
re-issues a version number an endpoint's deployment refers to.
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
        self.problems: list[str] = []  # what the last listing found the store has lost

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
        self._skip_served_versions(name, source)
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
        """Versions of `name`, newest first; without a name, every model's, by name. What the
        store lost (versions endpoints serve, runs jobs logged to) is said in `problems`."""
        query = f"name = '{name}'" if name else ""
        if name and "'" in name:
            raise PhiopsError(f"model names cannot contain quotes: {name!r}")
        found = [_to_version(raw) for raw in self.client.search_model_versions(query)]
        self.problems = self._lost({v.ref for v in found}, name)
        return sorted(found, key=lambda v: (v.name, -_number(v.version)))

    # -- what the endpoints and jobs refer to ----------------------------------------------

    def _served(self) -> dict[str, list[str]]:
        """Model refs (`name:version`) the endpoint records name → where (`endpoint/dep`)."""
        from core.errors import UnreadableRecord
        from core.local.endpointstore import EndpointStore

        store = EndpointStore(self.config.store_path / "endpoints")
        served: dict[str, list[str]] = {}
        for endpoint in store.names():
            try:
                record = store.read(endpoint)
            except (NotFoundError, UnreadableRecord):
                continue  # said by the endpoints' own listing
            for deployment in record.deployments.values():
                served.setdefault(deployment.model, []).append(f"{endpoint}/{deployment.name}")
        return served

    def _lost(self, registered: set[str], name: str | None) -> list[str]:
        from core.local.jobstore import JobStore
        from core.local.tracking import DB_FILENAME, known_run_ids

        database = self.config.store_path / DB_FILENAME
        problems = []
        missing = {
            ref: where
            for ref, where in self._served().items()
            if ref not in registered and (name is None or ref.split(":")[0] == name)
        }
        if missing:
            listed = "; ".join(f"{ref} (served by {', '.join(w)})" for ref, w in missing.items())
            problems.append(
                f"the local registry ({database}) no longer has models that endpoints refer "
                f"to: {listed}; was mlflow.db deleted or replaced? New registrations will "
                "not reuse these version numbers"
            )
        runs = known_run_ids(self.config.store_path) or set()
        jobs = [r for r in JobStore(self.config.store_path / "jobs").records() if r.run_id]
        gone = [record.name for record in jobs if record.run_id not in runs]
        if gone:
            problems.append(
                f"the local tracking store ({database}) has no MLflow run of {len(gone)} "
                f"job{'s' if len(gone) > 1 else ''} (e.g. {gone[0]}): their metrics and "
                "logged models are gone"
            )
        return problems

    def _skip_served_versions(self, name: str, source: str) -> None:
        """Make MLflow's next version of `name` higher than any an endpoint refers to: a
        version number is never issued twice, even by a registry that lost its history.
        MLflow numbers a new version after the highest row it holds, deleted ones included,
        so each missing number is created and deleted at once."""
        served = [
            _number(ref.split(":", 1)[1]) for ref in self._served() if ref.startswith(name + ":")
        ]
        highest = max(served, default=0)
        while True:
            taken = [
                _number(v.version) for v in self.client.search_model_versions(f"name = '{name}'")
            ]
            if max(taken, default=0) >= highest:
                return
            placeholder = self.client.create_model_version(
                name,
                source,
                description="a version number an endpoint refers to; kept from being re-issued",
                tags={"phiops": "reserved"},
            )
            self.client.delete_model_version(name, placeholder.version)
            if _number(placeholder.version) >= highest:
                return

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
    text = str(version)
    return int(text) if text.isdigit() else 0


def _has_model(location: str) -> bool:
    try:
        return (_file_path(location) / "MLmodel").is_file()
    except PhiopsError:
        return False
