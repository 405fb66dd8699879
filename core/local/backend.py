"""The local backend: a job runner of local processes, MLflow in SQLite, local endpoints."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from core.backend import EndpointInfo, Finding, ModelVersion, Progress
from core.composed import ComposedBackend


class LocalBackend(ComposedBackend):
    name = "local"

    @cached_property
    def _jobs(self):
        from core.local.jobs import LocalJobs

        return LocalJobs(self.config)

    @cached_property
    def _registry(self):
        from core.local.registry import LocalRegistry

        return LocalRegistry(self.config)

    @cached_property
    def _endpoints(self):
        from core.local.endpoints import LocalEndpoints

        return LocalEndpoints(self.config, self._registry)

    def resources(self) -> list[Finding]:
        from core.local.resources import local_findings

        return local_findings(self.config)

    # Local only: an Azure endpoint runs (and is billed) until it is deleted, so these are
    # not part of the Backend interface.

    def start_endpoint(self, name: str, progress: Progress | None = None) -> EndpointInfo:
        """Start a stopped endpoint's gateway and deployments again, on the same URI."""
        return self._endpoints.start(name, progress=progress)

    def stop_endpoint(self, name: str) -> EndpointInfo:
        """Stop the endpoint's processes; its deployments, split, keys and URI are kept."""
        return self._endpoints.stop(name)

    def model_path(self, model: ModelVersion) -> Path:
        """The folder of a registered version's files (evaluation serves and reads it)."""
        return self._registry.local_path(model)
