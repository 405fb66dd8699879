"""The local backend: a job runner of local processes, MLflow in SQLite, local endpoints."""

from __future__ import annotations

from functools import cached_property

from core.backend import EndpointControl, EndpointInfo, Finding, Progress
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

    def start_endpoint(self, name: str, progress: Progress | None = None) -> EndpointInfo:
        """Start a stopped endpoint's gateway and deployments again, on the same URI."""
        return self.endpoint_control().start(name, progress=progress)

    def stop_endpoint(self, name: str) -> EndpointInfo:
        """Stop the endpoint's processes; its deployments, split, keys and URI are kept."""
        return self.endpoint_control().stop(name)
