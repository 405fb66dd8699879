"""The local backend: a job runner of local processes, MLflow in SQLite, local endpoints."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from core.backend import EndpointControl, Finding, ModelVersion
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

    def endpoint_control(self) -> EndpointControl:
        """Local endpoints are processes on this machine: they stop and start."""
        return self._endpoints

    def model_path(self, model: ModelVersion) -> Path:
        """The folder of a registered version's files (evaluation serves and reads it)."""
        return self._registry.local_path(model)
