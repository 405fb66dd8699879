"""The delegation every backend shares: jobs, registry and endpoints are separate parts.

A backend is three parts plus a resources check. `ComposedBackend` turns them into the
`Backend` interface; each concrete backend only says how to build its parts, lazily, so
listing jobs never loads the serving stack and startup stays light.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from core.backend import (
    EndpointControl,
    EndpointInfo,
    EndpointKeys,
    Finding,
    JobInfo,
    JobSpec,
    LogLine,
    MetricPoint,
    ModelVersion,
    Progress,
    RequestSettings,
)
from core.config import Config


class ComposedBackend:
    """Subclasses set `name` and provide `_jobs`, `_registry`, `_endpoints`, `resources()`."""

    name: str
    _jobs: Any
    _registry: Any
    _endpoints: Any

    def __init__(self, config: Config) -> None:
        self.config = config

    def resources(self) -> list[Finding]:
        raise NotImplementedError

    def submit_job(self, spec: JobSpec, progress: Progress | None = None) -> JobInfo:
        return self._jobs.submit(spec, progress=progress)

    def jobs(self) -> list[JobInfo]:
        return self._jobs.list()

    def job_status(self, name: str) -> JobInfo:
        return self._jobs.get(name)

    def stream_logs(self, name: str, since: int = 0, follow: bool = True) -> AsyncIterator[LogLine]:
        return self._jobs.stream_logs(name, since, follow=follow)

    def job_events(self, name: str, since: int = 0) -> tuple[list[dict[str, Any]], int]:
        return self._jobs.events(name, since)

    def resume_job(self, name: str) -> JobInfo:
        return self._jobs.resume(name)

    def metrics(self, name: str) -> list[MetricPoint]:
        return self._jobs.metrics(name)

    def cancel(self, name: str) -> JobInfo:
        return self._jobs.cancel(name)

    def register_model(self, job_name: str | None = None, name: str | None = None) -> ModelVersion:
        job = self._jobs.get(job_name) if job_name else self._jobs.latest_completed()
        return self._registry.register_from_job(job, name or self.config.model_name)

    def models(self, name: str | None = None) -> list[ModelVersion]:
        return self._registry.list(name)

    def deploy(
        self,
        model: ModelVersion,
        endpoint: str,
        deployment: str | None = None,
        traffic: int = 100,
        progress: Progress | None = None,
        *,
        request_settings: RequestSettings | None = None,
    ) -> EndpointInfo:
        return self._endpoints.deploy(
            model, endpoint, deployment, traffic, progress, request_settings=request_settings
        )

    def endpoints(self) -> list[EndpointInfo]:
        return self._endpoints.list()

    def endpoint(self, name: str) -> EndpointInfo:
        return self._endpoints.get(name)

    def endpoint_keys(self, name: str) -> EndpointKeys:
        return self._endpoints.keys(name)

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> EndpointInfo:
        return self._endpoints.set_traffic(endpoint, traffic)

    def rollback(self, endpoint: str) -> EndpointInfo:
        return self._endpoints.rollback(endpoint)

    def delete_deployment(self, endpoint: str, deployment: str) -> None:
        self._endpoints.delete_deployment(endpoint, deployment)

    def delete_endpoint(self, endpoint: str) -> None:
        self._endpoints.delete_endpoint(endpoint)

    def deployment_logs(self, endpoint: str, deployment: str, lines: int = 100) -> str:
        return self._endpoints.logs(endpoint, deployment, lines)

    def endpoint_control(self) -> EndpointControl | None:
        return None  # a backend whose endpoints run on this machine says otherwise

    def record_problems(self) -> list[str]:
        # Only the parts already built: asking must not build (or sign in to) anything.
        parts = [self.__dict__.get(name) for name in ("_jobs", "_registry", "_endpoints")]
        return [problem for part in parts for problem in getattr(part, "problems", None) or []]
