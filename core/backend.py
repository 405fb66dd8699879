"""The one interface both backends implement; the CLI and TUI see nothing else.

The records are plain dataclasses with Azure ML's vocabulary (job statuses, endpoints,
deployments, traffic), so what works on the local backend means the same on Azure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class JobStatus(StrEnum):
    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)


class FindingState(StrEnum):
    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"
    UNKNOWN = "unknown"


@dataclass
class Finding:
    """One line of a resources check: what was checked, how it stands, and the fix."""

    name: str
    state: FindingState
    detail: str = ""
    fix: str = ""
    required: bool = True


@dataclass
class JobSpec:
    """What a fine-tuning job needs; the same on both backends."""

    train_file: str
    eval_file: str
    base_model: str
    trainer_args: list[str] = field(default_factory=list)
    display_name: str = ""
    experiment_name: str = "phi3-finetune"
    instance_count: int = 1
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class JobInfo:
    name: str
    status: JobStatus
    display_name: str = ""
    experiment_name: str = ""
    backend: str = "local"
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    error: str = ""
    output_dir: str = ""
    run_id: str = ""
    studio_url: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    spec: JobSpec | None = None  # what it was submitted with, where the backend keeps it

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return data


@dataclass
class LogLine:
    """One log line and the position just after it, to resume a stream without loss."""

    text: str
    offset: int
    source: str = "user_logs/std_log.txt"


@dataclass
class MetricPoint:
    key: str
    step: int
    value: float
    timestamp: float = 0.0


@dataclass
class ModelVersion:
    name: str
    version: str
    source: str = ""
    job_name: str = ""
    created_at: float | None = None
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass
class RequestSettings:
    """The seed's deployment settings, as defaults."""

    max_concurrent_requests_per_instance: int = 3
    request_timeout_ms: int = 180_000
    max_queue_wait_ms: int = 120_000


@dataclass
class ProbeSettings:
    initial_delay: int = 500
    period: int = 100
    failure_threshold: int = 30
    timeout: int = 10
    success_threshold: int = 1


@dataclass
class DeploymentInfo:
    name: str
    endpoint: str
    model: str = ""
    state: str = ""
    instance_type: str = ""
    instance_count: int = 1
    scoring_uri: str = ""
    request_settings: RequestSettings = field(default_factory=RequestSettings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EndpointInfo:
    name: str
    state: str = ""
    scoring_uri: str = ""
    auth_mode: str = "key"
    traffic: dict[str, int] = field(default_factory=dict)
    deployments: list[DeploymentInfo] = field(default_factory=list)
    backend: str = "local"
    deployed: str = ""  # set by `deploy`: the deployment that call created
    previous_traffic: dict[str, int] | None = None  # the split `rollback` restores, if any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EndpointKeys:
    primary: str
    secondary: str = ""


Progress = Callable[[str], None]
"""A callback long operations use to say what they are doing, one short phrase at a time."""


@runtime_checkable
class EndpointControl(Protocol):
    """Stopping and starting endpoints whose processes run on this machine.

    A backend offers it through `Backend.endpoint_control()`; one whose endpoints cannot be
    stopped (an Azure endpoint runs, and is billed, until deleted) returns None there, so a
    caller asks the backend instead of checking its name.
    """

    problems: list[str]  # records the last `stop_all` could not read, a sentence each

    def start(self, endpoint: str, progress: Progress | None = None) -> EndpointInfo:
        """Start a stopped endpoint's gateway and deployments again, on the same URI."""
        ...

    def stop(self, endpoint: str) -> EndpointInfo:
        """Stop the endpoint's processes; its deployments, split, keys and URI are kept."""
        ...

    def stop_all(self) -> list[str]:
        """Stop every endpoint's processes (`phiops down`); the names of those stopped."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Everything the CLI and TUI may ask of a backend."""

    name: str

    def resources(self) -> list[Finding]: ...

    def submit_job(self, spec: JobSpec, progress: Progress | None = None) -> JobInfo: ...

    def jobs(self) -> list[JobInfo]: ...

    def job_status(self, name: str) -> JobInfo: ...

    def stream_logs(
        self, name: str, since: int = 0, follow: bool = True
    ) -> AsyncIterator[LogLine]: ...

    def job_events(self, name: str, since: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The trainer's progress events after byte `since`, and the offset to poll next."""
        ...

    def resume_job(self, name: str) -> JobInfo: ...

    def metrics(self, name: str) -> list[MetricPoint]: ...

    def cancel(self, name: str) -> JobInfo: ...

    def register_model(
        self, job_name: str | None = None, name: str | None = None
    ) -> ModelVersion: ...

    def models(self, name: str | None = None) -> list[ModelVersion]: ...

    def deploy(
        self,
        model: ModelVersion,
        endpoint: str,
        deployment: str | None = None,
        traffic: int = 100,
        progress: Progress | None = None,
        *,
        request_settings: RequestSettings | None = None,
    ) -> EndpointInfo: ...

    def endpoints(self) -> list[EndpointInfo]: ...

    def endpoint(self, name: str) -> EndpointInfo: ...

    def endpoint_keys(self, name: str) -> EndpointKeys: ...

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> EndpointInfo: ...

    def rollback(self, endpoint: str) -> EndpointInfo: ...

    def delete_deployment(self, endpoint: str, deployment: str) -> None: ...

    def delete_endpoint(self, endpoint: str) -> None: ...

    def deployment_logs(self, endpoint: str, deployment: str, lines: int = 100) -> str: ...

    def endpoint_control(self) -> EndpointControl | None:
        """Start/stop for endpoints that run on this machine; None where they cannot stop."""
        ...

    def record_problems(self) -> list[str]:
        """Records the last listing could not read (damaged local files), a sentence each;
        what was readable was listed. Empty where the backend keeps no local records."""
        ...
