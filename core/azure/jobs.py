"""Azure ML jobs: the environment, the compute cluster, the command job, its logs and metrics.

Submitting builds real `azure-ai-ml` entities — an environment (a CUDA base image plus
`trainer/conda.yml`, versioned by their content so an unchanged one is reused), an
`AmlCompute` cluster (reused if it exists; before one is created or scaled, a quota check
for its VM family stops with the numbers instead of a job that queues forever) and a
`CommandJob` with `trainer/` as code, the train/test files as `uri_file` inputs and the
model folder as a declared `uri_folder` output. `plan()` builds the same entities without
touching Azure, for `--dry-run`.

`stream_logs` is the loop `ml_client.jobs.stream()` runs (poll the run's details, fetch
its streamable log files by their SAS URLs), turned into an async iterator: it fetches
only new bytes (HTTP Range from the last offset of each file), yields whole lines, never
prints, and survives a dropped connection or a restart without losing or repeating a line.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import shlex
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.azure.quota import check_quota, vm_quota
from core.backend import JobInfo, JobSpec, JobStatus, LogLine, MetricPoint, Progress
from core.config import Config
from core.errors import ConfigError, NotFoundError, PhiopsError
from core.jobcommon import TRAINER_DIR, metric_history, new_job_name
from core.logfollow import split_lines

BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04:latest"
ENVIRONMENT_NAME = "phi3-finetune-env"
CONDA_FILE = TRAINER_DIR / "conda.yml"
MODEL_OUTPUT = "model_output"
IDLE_SCALE_DOWN_SECONDS = 1800

# Azure ML's run statuses, in phiops' six.
AZURE_STATUS = {
    "NotStarted": JobStatus.NOT_STARTED,
    "Starting": JobStatus.QUEUED,
    "Provisioning": JobStatus.QUEUED,
    "Preparing": JobStatus.QUEUED,
    "Queued": JobStatus.QUEUED,
    "Running": JobStatus.RUNNING,
    "Finalizing": JobStatus.RUNNING,
    "CancelRequested": JobStatus.RUNNING,
    "Completed": JobStatus.COMPLETED,
    "Failed": JobStatus.FAILED,
    "NotResponding": JobStatus.FAILED,
    "Canceled": JobStatus.CANCELED,
    "Paused": JobStatus.CANCELED,
}

# GPUs per node of current training sizes, for planning offline; a live submit asks Azure.
# (NCv3 — NC6s_v3 and kin — was retired on 2025-09-30 and is left out.)
GPUS_PER_NODE = {
    "standard_nd40rs_v2": 8,
    "standard_nc24ads_a100_v4": 1,
    "standard_nc48ads_a100_v4": 2,
    "standard_nc96ads_a100_v4": 4,
    "standard_nd96asr_v4": 8,
    "standard_nd96amsr_a100_v4": 8,
    "standard_nc40ads_h100_v5": 1,
    "standard_nc80adis_h100_v5": 2,
    "standard_nd96isr_h100_v5": 8,
}


def planned_gpus(vm_size: str) -> int:
    """GPUs per node as far as phiops knows offline: the table, else one for an N-series
    (GPU) size and none for the others; a live submit asks Azure and corrects it."""
    size = vm_size.lower()
    return GPUS_PER_NODE.get(size, 1 if size.startswith("standard_n") else 0)


def job_status(azure_status: str | None) -> JobStatus:
    return AZURE_STATUS.get(azure_status or "", JobStatus.QUEUED)


# -- the entities ------------------------------------------------------------------------


@dataclass
class AzurePlan:
    """What a submit creates or reuses: the job, its environment and its compute."""

    job: Any
    environment: Any
    compute: Any

    def to_yaml(self) -> str:
        """Three YAML documents, which `load_job`, `load_environment` and `load_compute` read."""
        from azure.ai.ml._utils.utils import dump_yaml

        documents = {
            "job": job_dict(self.job),
            "environment": self.environment._to_dict(),
            "compute": self.compute._to_dict(),
        }
        return "---\n".join(
            f"# {kind}\n" + dump_yaml(data, default_flow_style=False, sort_keys=False)
            for kind, data in documents.items()
        )


def job_dict(job: Any) -> dict:
    """The job as the SDK's schema writes it, with local input paths kept local.

    The schema tries "azureml:<asset>" first for an input path, so it writes a local file
    as `azureml:/home/...`, which `load_job` then reads as a (missing) data asset.
    """
    data = job._to_dict()
    for name, value in (job.inputs or {}).items():
        path = getattr(value, "path", None)
        entry = data.get("inputs", {}).get(name)
        if path and isinstance(entry, dict) and not str(path).startswith("azureml:"):
            entry["path"] = str(path)
    return data


def submittable(job: Any) -> Any:
    """The job as `jobs.create_or_update` takes it: the `Command` that `load_job` makes of the
    YAML `--dry-run` prints. azure-ai-ml 1.35 refuses a bare `CommandJob` entity ("Non
    supported job type"); going through the printed YAML also means what the user saw is
    exactly what is sent."""
    import io
    import json

    import yaml
    from azure.ai.ml import load_job

    plain = json.loads(json.dumps(job_dict(job)))  # the schema's OrderedDicts as plain dicts
    return load_job(io.StringIO(yaml.safe_dump(plain, sort_keys=False)))


def environment_version(conda_file: Path, image: str = BASE_IMAGE) -> str:
    """A version named by content: the same image and conda.yml reuse the same environment."""
    digest = hashlib.sha256(image.encode() + b"\0" + conda_file.read_bytes()).hexdigest()
    return digest[:12]


def build_environment(conda_file: Path | None = None) -> Any:
    from azure.ai.ml.entities import Environment

    conda_file = conda_file or CONDA_FILE
    if not conda_file.is_file():
        raise PhiopsError(f"the trainer's conda file {conda_file} is missing")
    return Environment(
        name=ENVIRONMENT_NAME,
        version=environment_version(conda_file),
        image=BASE_IMAGE,
        conda_file=str(conda_file),
        description="phiops fine-tuning: CUDA base image plus trainer/conda.yml",
    )


def build_compute(config: Config, nodes: int) -> Any:
    from azure.ai.ml.entities import AmlCompute

    identity = None
    if config.identity_resource_id:
        from azure.ai.ml.entities import IdentityConfiguration, ManagedIdentityConfiguration

        identity = IdentityConfiguration(
            type="user_assigned",
            user_assigned_identities=[
                ManagedIdentityConfiguration(resource_id=config.identity_resource_id)
            ],
        )
    return AmlCompute(
        name=config.compute_name,
        size=config.compute_vm_size,
        location=config.location or None,
        min_instances=0,
        max_instances=max(config.compute_max_nodes, nodes),
        idle_time_before_scale_down=IDLE_SCALE_DOWN_SECONDS,
        tier="dedicated",
        identity=identity,
    )


def build_job(
    config: Config,
    spec: JobSpec,
    *,
    name: str,
    environment: str,
    gpus_per_node: int,
) -> Any:
    """The command job: same trainer command line as the local runner, on Azure's paths."""
    from azure.ai.ml import Input, Output, PyTorchDistribution
    from azure.ai.ml.entities import CommandJob, JobResourceConfiguration

    train = existing_file(config, spec.train_file, "training", "train_data_path")
    evaluation = existing_file(config, spec.eval_file, "evaluation", "test_data_path")
    inputs: dict[str, Any] = {
        "train_data": Input(type="uri_file", path=str(train)),
        "test_data": Input(type="uri_file", path=str(evaluation)),
    }
    base_model = spec.base_model
    local_model = config.resolve(base_model) if base_model else None
    if local_model is not None and local_model.is_dir():
        inputs["base_model"] = Input(type="uri_folder", path=str(local_model))
        base_model_arg = "${{inputs.base_model}}"
    elif base_model.startswith((".", "/", "~")):
        raise NotFoundError(f"the base model folder {local_model} does not exist")
    else:
        base_model_arg = shlex.quote(base_model)
    command = " ".join(
        [
            "python fine_tune.py",
            "--train-file ${{inputs.train_data}}",
            "--eval-file ${{inputs.test_data}}",
            f"--model-output-dir ${{{{outputs.{MODEL_OUTPUT}}}}}",
            f"--base-model {base_model_arg}",
            # A job Azure ML restarts (a low-priority node pre-empted) continues from the
            # checkpoint mirrored in its output; a new job's output is empty: step 0.
            "--resume",
            # No GPU on this cluster's nodes: say so, or the trainer stops rather than train
            # on a CPU it takes for a broken GPU setup.
            *(["--allow-cpu"] if gpus_per_node == 0 else []),
            *(shlex.quote(arg) for arg in config.revision_args(base_model)),
            *(shlex.quote(arg) for arg in spec.trainer_args),
        ]
    )
    nodes = spec.instance_count
    distributed = nodes > 1 or gpus_per_node > 1
    return CommandJob(
        name=name,
        display_name=spec.display_name or name,
        experiment_name=spec.experiment_name or config.experiment_name,
        tags={"phiops": "fine-tune", "base_model": base_model, **spec.tags},
        code=str(TRAINER_DIR),
        command=command,
        inputs=inputs,
        outputs={MODEL_OUTPUT: Output(type="uri_folder", mode="rw_mount")},
        environment=environment,
        compute=config.compute_name,
        resources=JobResourceConfiguration(instance_count=nodes),
        distribution=(
            PyTorchDistribution(process_count_per_instance=gpus_per_node) if distributed else None
        ),
        environment_variables={"PYTHONUNBUFFERED": "1"},
    )


def existing_file(config: Config, value: str, what: str, setting: str) -> Path:
    if not value:
        raise ConfigError(f"no {what} file given; set {setting} in phiops.toml")
    path = config.resolve(value)
    if not path.is_file():
        raise NotFoundError(
            f"the {what} file {path} does not exist; run `phiops data prepare` "
            f"or set {setting} in phiops.toml"
        )
    return path


def plan(config: Config, spec: JobSpec, name: str | None = None) -> AzurePlan:
    """The entities a submit would create, built offline (for `--dry-run` and `submit`)."""
    environment = build_environment()
    gpus = planned_gpus(config.compute_vm_size)
    job = build_job(
        config,
        spec,
        name=name or new_job_name(),
        environment=f"azureml:{environment.name}:{environment.version}",
        gpus_per_node=gpus,
    )
    return AzurePlan(job, environment, build_compute(config, spec.instance_count))


# -- the log stream ------------------------------------------------------------------------


TOKEN_MARGIN_S = 300  # renew the tracking token when it has less than this left
RUNS_OPERATIONS = "_runs_operations"  # the SDK's private run-history client on `jobs`
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}


# What `jobs.stream()` shows of a command job's logs when the SDK's helper is not there:
# rank 0's user log of the common runtime (user_logs/std_log.txt, std_log_process_0.txt).
STREAMABLE = re.compile(
    r"^user_logs/std_log(_process_0+)?\.txt$|^azureml-logs/70_driver_log(_0)?\.txt$"
)


def streamable_logs(log_files: dict[str, str]) -> list[str]:
    """The user log files `jobs.stream()` shows (rank 0 only), in its order."""
    try:  # the SDK's own filter, private: azure-ai-ml is capped at the tested minor
        from azure.ai.ml.operations._job_ops_helper import _get_sorted_filtered_logs
    except ImportError:
        return sorted(name for name in log_files if STREAMABLE.match(name))
    return _get_sorted_filtered_logs(list(log_files), "command")


class LineQueue(io.TextIOBase):
    """A text stream whose complete lines go to an asyncio queue (from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        self.loop, self.queue, self.rest = loop, queue, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.rest = (self.rest + text).split("\n")
        for line in lines:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, line)
        return len(text)

    def close_stream(self) -> None:
        if self.rest:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, self.rest)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)


async def public_stream(ml_client: Any, name: str, since: int = 0) -> AsyncIterator[LogLine]:
    """The SDK's public `jobs.stream(name)` as lines: it prints (to sys.stdout) the job's
    logs from the start until the job ends, so it runs in a thread with stdout captured,
    and `since` (bytes of lines already shown) skips what a previous call showed. Used only
    when the private path `stream_logs` polls is missing."""
    import contextlib

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    sink = LineQueue(loop, queue)

    def run() -> None:
        try:
            with contextlib.redirect_stdout(sink):
                ml_client.jobs.stream(name)
        finally:
            sink.close_stream()

    worker = asyncio.ensure_future(asyncio.to_thread(run))
    offset = 0
    while (text := await queue.get()) is not None:
        offset += len(text.encode()) + 1
        if offset > since:
            yield LogLine(text, offset, "jobs.stream")
    await worker  # the SDK's own error, if it failed


def transient(error: BaseException) -> bool:
    """A network hiccup or a busy service: worth trying again."""
    import httpx
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(error, httpx.TransportError | ServiceRequestError | ServiceResponseError):
        return True
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in (403, 408, 429) or error.response.status_code >= 500
    if isinstance(error, HttpResponseError):
        return (error.status_code or 0) in (408, 429) or (error.status_code or 0) >= 500
    return False


@dataclass
class AzureLogStream:
    """Follows one job's user logs. `offsets` (bytes per file, whole lines only) is the
    resume point; it advances as lines are yielded."""

    get_details: Callable[[], Any]
    http: Any  # httpx.AsyncClient
    offsets: dict[str, int] = field(default_factory=dict)
    min_interval: float = 2.0
    max_interval: float = 15.0
    max_failures: int = 20
    follow: bool = True  # False: one pass over what is there now
    _pending: dict[str, bytes] = field(default_factory=dict)

    async def lines(self) -> AsyncIterator[LogLine]:
        interval, failures = self.min_interval, 0
        while True:
            try:
                details = await asyncio.to_thread(self.get_details)
                status = str(details.status or "")
                got_any = False
                for source in streamable_logs(details.log_files or {}):
                    async for line in self._fetch(source, details.log_files[source]):
                        got_any = True
                        yield line
                failures = 0
            except Exception as error:
                if not transient(error):
                    raise
                failures += 1
                if failures >= self.max_failures:
                    raise PhiopsError(
                        f"lost the connection to Azure ML {failures} times in a row while "
                        f"following the logs ({error}); run the command again to resume"
                    ) from None
                await asyncio.sleep(min(self.max_interval, self.min_interval * 2**failures))
                continue
            if status in TERMINAL:
                for source, rest in list(self._pending.items()):
                    if rest:  # the job is over: an unterminated last line is complete
                        yield self._flush(source, rest)
                return
            if not self.follow:
                return
            interval = self.min_interval if got_any else min(interval * 1.5, self.max_interval)
            await asyncio.sleep(interval)

    async def _fetch(self, source: str, url: str) -> AsyncIterator[LogLine]:
        """The new bytes of one file (from its offset), as whole lines."""
        start = self.offsets.get(source, 0) + len(self._pending.get(source, b""))
        response = await self.http.get(url, headers={"Range": f"bytes={start}-"})
        if response.status_code in (404, 416):  # not there yet / nothing new
            return
        response.raise_for_status()
        data = response.content if response.status_code == 206 else response.content[start:]
        if not data:
            return
        data = self._pending.get(source, b"") + data
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if data.endswith(b"\r"):  # maybe the first half of \r\n
            cut = max(data.rfind(b"\n", 0, len(data) - 1), data.rfind(b"\r", 0, len(data) - 1))
            cut += 1
        complete, self._pending[source] = data[:cut], data[cut:]
        offset = self.offsets.get(source, 0)
        for text, end in split_lines(complete, offset):
            self.offsets[source] = end
            yield LogLine(text, end, source)

    def _flush(self, source: str, rest: bytes) -> LogLine:
        end = self.offsets.get(source, 0) + len(rest)
        self.offsets[source], self._pending[source] = end, b""
        return LogLine(rest.decode("utf-8", "replace"), end, source)


# -- the jobs part -------------------------------------------------------------------------


def ensure_environment(ml_client: Any, environment: Any) -> None:
    """Create the environment version unless it exists (versions are named by content)."""
    from azure.core.exceptions import ResourceNotFoundError

    with azure_errors(f"create environment {environment.name}"):
        try:
            ml_client.environments.get(environment.name, version=environment.version)
        except ResourceNotFoundError:
            ml_client.environments.create_or_update(environment)


@contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """Turn the SDK's failures into one sentence the CLI can print."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        yield
    except PhiopsError:
        raise
    except ClientAuthenticationError:
        # azure-identity's message is a page (one paragraph per credential it tried).
        from core.azure.credentials import SIGN_IN_HELP

        raise PhiopsError(f"cannot sign in to Azure to {what}; {SIGN_IN_HELP}") from None
    except ResourceNotFoundError as error:
        raise NotFoundError(f"cannot {what}: not found ({error.message})") from None
    except ServiceRequestError as error:
        raise PhiopsError(f"cannot reach Azure to {what} ({error.message})") from None
    except HttpResponseError as error:
        raise PhiopsError(f"Azure ML refused to {what} ({error.message})") from None


class AzureJobs:
    """The jobs part of the Azure backend. `http_transport` and `mlflow_client` let tests
    stand in for blob storage and the workspace's MLflow server."""

    def __init__(
        self,
        config: Config,
        clients: Any,
        *,
        http_transport: Any = None,
        mlflow_client: Any = None,
        poll_interval: tuple[float, float] = (2.0, 15.0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clients = clients
        self._http_transport = http_transport
        self._mlflow_client = mlflow_client
        self._poll_interval = poll_interval
        self._clock = clock
        self._tracking_token: Any = None

    @property
    def ml_client(self) -> Any:
        return self.clients.ml_client

    # -- submitting --------------------------------------------------------------------

    def plan(self, spec: JobSpec) -> AzurePlan:
        return plan(self.config, spec)

    def submit(self, spec: JobSpec, progress: Progress | None = None) -> JobInfo:
        """Environment (reused when unchanged), compute (quota first), then the job."""
        say = progress or (lambda message: None)
        planned = self.plan(spec)
        ml = self.ml_client
        say(f"checking environment {planned.environment.name}:{planned.environment.version}")
        ensure_environment(self.ml_client, planned.environment)
        say(f"checking compute {self.config.compute_name} and its quota")
        gpus = self._ensure_compute(planned.compute, spec.instance_count)
        if gpus != planned_gpus(self.config.compute_vm_size):
            planned = AzurePlan(
                build_job(
                    self.config,
                    spec,
                    name=planned.job.name,
                    environment=planned.job.environment,
                    gpus_per_node=gpus,
                ),
                planned.environment,
                planned.compute,
            )
        say(f"submitting job {planned.job.name} (uploading trainer/ and the data)")
        with azure_errors("submit the job"):
            created = ml.jobs.create_or_update(submittable(planned.job))
        return self._info(created)

    def _ensure_compute(self, compute: Any, nodes: int) -> int:
        """Reuse or create the cluster; the quota is checked before it can grow. Returns
        the GPUs per node Azure reports for its size."""
        from azure.core.exceptions import ResourceNotFoundError

        ml = self.ml_client
        with azure_errors(f"check compute {compute.name}"):
            try:
                existing = ml.compute.get(compute.name)
            except ResourceNotFoundError:
                existing = None
        if existing is not None:
            kind = str(getattr(existing, "type", "")).lower()
            if kind and kind != "amlcompute":
                raise PhiopsError(
                    f"compute {compute.name} is a {kind}, not a cluster; "
                    "set compute_name to a new or existing compute cluster"
                )
            if (existing.max_instances or 0) < nodes:
                raise PhiopsError(
                    f"compute {compute.name} scales to {existing.max_instances} node(s) but the "
                    f"job asks for {nodes}; ask for fewer or raise the cluster's maximum"
                )
        size = existing.size if existing is not None else compute.size
        with azure_errors("read the VM quota"):
            quota = vm_quota(ml, size, self.config.location)
            allocated = 0
            if existing is not None:
                allocated = max(
                    len(list(ml.compute.list_nodes(compute.name))), existing.min_instances or 0
                )
        check_quota(quota, size, nodes, allocated)
        if existing is None:
            with azure_errors(f"create compute {compute.name}"):
                ml.compute.begin_create_or_update(compute).result()
        return quota.gpus_per_node

    # -- reading -----------------------------------------------------------------------

    def get(self, name: str) -> JobInfo:
        with azure_errors(f"read job {name}"):
            job = self.ml_client.jobs.get(name)
            details = None
            runs = self._runs
            final_or_running = job_status(job.status).is_final or (
                job_status(job.status) == JobStatus.RUNNING
            )
            if runs is not None and final_or_running:
                details = runs.get_run_details(name)
        return self._info(job, details)

    def list(self, limit: int = 50) -> list[JobInfo]:
        """This project's experiment's jobs, newest first."""
        found = []
        with azure_errors("list jobs"):
            for job in self.ml_client.jobs.list():
                if getattr(job, "experiment_name", None) == self.config.experiment_name:
                    found.append(self._info(job))
                    if len(found) >= limit:
                        break
        return sorted(found, key=lambda info: info.created_at or 0, reverse=True)

    def latest_completed(self) -> JobInfo:
        for job in self.list():
            if job.status == JobStatus.COMPLETED:
                return job
        raise NotFoundError(
            f"no completed job in experiment {self.config.experiment_name} on Azure ML"
        )

    def cancel(self, name: str, **_: Any) -> JobInfo:
        with azure_errors(f"cancel job {name}"):
            self.ml_client.jobs.begin_cancel(name).result()
        return self.get(name)

    def resume(self, name: str) -> JobInfo:
        raise PhiopsError(
            "Azure ML cannot restart a finished job; submit a new one (the local backend "
            "can resume a canceled job from its checkpoint)"
        )

    def events(self, name: str, since: int = 0) -> tuple[list[dict], int]:
        """Progress events live in the job's output folder on Azure, readable after the
        job; while it runs, follow its metrics instead."""
        return [], since

    def metrics(self, name: str) -> list[MetricPoint]:
        """The job's MLflow metrics: on Azure ML the run id is the job name."""
        from mlflow.exceptions import MlflowException

        with azure_errors(f"read the metrics of job {name}"):
            try:
                return metric_history(self._mlflow(), name)
            except MlflowException as error:
                first = str(error.message).strip().splitlines()[0][:300]
                raise PhiopsError(
                    f"the workspace's MLflow refused the metrics of job {name} ({first})"
                ) from None

    def _mlflow(self) -> Any:
        """The workspace's MLflow server over plain MLflow REST, with an Azure token.

        azureml-mlflow would add the `azureml://` scheme, but it pins an older
        mlflow-skinny than phiops uses; the REST API it wraps takes a bearer token.
        """
        if self._mlflow_client is None:
            from mlflow.tracking import MlflowClient

            workspace = self.ml_client.workspaces.get(self.config.workspace)
            uri = "https://" + workspace.mlflow_tracking_uri.removeprefix("azureml://")
            self._mlflow_client = MlflowClient(tracking_uri=uri)
            self._renew_token = True
        if getattr(self, "_renew_token", False):
            self._fresh_token()
        return self._mlflow_client

    def _fresh_token(self) -> None:
        """The bearer token MLflow sends (read from MLFLOW_TRACKING_TOKEN on each request),
        renewed when it has less than TOKEN_MARGIN_S left: Azure's last about an hour, and
        the TUI follows a job's metrics for longer."""
        import os

        token = self._tracking_token
        if token is None or token.expires_on - self._clock() < TOKEN_MARGIN_S:
            token = self.clients.credential.get_token("https://management.azure.com/.default")
            self._tracking_token = token
        os.environ["MLFLOW_TRACKING_TOKEN"] = token.token

    @property
    def _runs(self) -> Any:
        """What `jobs.stream()` polls: private, so None when a future SDK moved it."""
        return getattr(self.ml_client.jobs, RUNS_OPERATIONS, None)

    def _info(self, job: Any, details: Any = None) -> JobInfo:
        status = job_status(getattr(job, "status", None))
        context = getattr(job, "creation_context", None)
        created = getattr(context, "created_at", None)
        error = ""
        if details is not None and status == JobStatus.FAILED and details.error is not None:
            root = getattr(details.error, "error", None)
            error = str(getattr(root, "message", "") or details.error)
        return JobInfo(
            name=job.name,
            status=status,
            display_name=getattr(job, "display_name", "") or job.name,
            experiment_name=getattr(job, "experiment_name", "") or "",
            backend="azure",
            created_at=created.timestamp() if created else None,
            started_at=_timestamp(getattr(details, "start_time_utc", None)),
            ended_at=_timestamp(getattr(details, "end_time_utc", None)),
            error=error,
            output_dir=f"azureml://jobs/{job.name}/outputs/{MODEL_OUTPUT}",
            run_id=job.name,
            studio_url=getattr(job, "studio_url", "") or "",
            tags=dict(getattr(job, "tags", None) or {}),
        )

    # -- following the log -------------------------------------------------------------

    def stream_logs(
        self, name: str, since: int | dict[str, int] = 0, follow: bool = True
    ) -> AsyncIterator[LogLine]:
        """New log lines until the job ends (or, without `follow`, what is there now).
        `since` is the offset of the last line seen in the main log, or a {file: offset}
        map as `AzureLogStream.offsets` keeps it."""
        return self._stream(name, since, follow)

    async def _stream(
        self, name: str, since: int | dict[str, int], follow: bool
    ) -> AsyncIterator[LogLine]:
        import httpx

        offsets = dict(since) if isinstance(since, dict) else {}
        runs = self._runs
        if runs is None:
            with azure_errors(f"follow the logs of job {name}"):
                async for line in public_stream(
                    self.ml_client, name, since if isinstance(since, int) else 0
                ):
                    yield line
            return

        def details() -> Any:
            found = runs.get_run_details(name)
            if not offsets and isinstance(since, int) and since:
                primary = streamable_logs(found.log_files or {})
                offsets[primary[0] if primary else "user_logs/std_log.txt"] = since
            return found

        stream = AzureLogStream(
            details,
            None,
            offsets,
            min_interval=self._poll_interval[0],
            max_interval=self._poll_interval[1],
            follow=follow,
        )
        async with httpx.AsyncClient(transport=self._http_transport, timeout=60) as http:
            stream.http = http
            with azure_errors(f"follow the logs of job {name}"):
                async for line in stream.lines():
                    yield line


def _timestamp(value: Any) -> float | None:
    return value.timestamp() if hasattr(value, "timestamp") else None
