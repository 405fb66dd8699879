"""Azure ML jobs without a network: real SDK entities, and orchestration against stand-ins
for MLClient's operations, blob storage (SAS URLs) and the workspace's MLflow server."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from core.azure import jobs as azure_jobs
from core.azure.jobs import AzureJobs, AzureLogStream, plan
from core.backend import JobSpec, JobStatus
from core.config import Config
from core.errors import PhiopsError
from tests.helpers import run_phiops

VM = "Standard_NC24s_v3"
FAMILY = "standardNCSv3Family"
STD_LOG = "user_logs/std_log.txt"


@pytest.fixture
def config(project: Path) -> Config:
    (project / "data").mkdir()
    (project / "data" / "train.jsonl").write_text('{"messages": []}\n')
    (project / "data" / "test.jsonl").write_text('{"messages": []}\n')
    return Config(
        path=project / "phiops.toml",
        train_data_path="data/train.jsonl",
        test_data_path="data/test.jsonl",
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="rg",
        workspace="ws",
        identity_name="phi3-identity",
        compute_name="gpu-cluster",
        compute_vm_size=VM,
    )


def spec(config: Config, **changes: Any) -> JobSpec:
    values = dict(
        train_file=config.train_data_path,
        eval_file=config.test_data_path,
        base_model="microsoft/Phi-3-mini-4k-instruct",
        trainer_args=["--epochs", "1", "--lora"],
        display_name="capitals",
        experiment_name="phi3-finetune",
        tags={"purpose": "test"},
    )
    return JobSpec(**{**values, **changes})


# -- stand-ins for MLClient's operations ----------------------------------------------------


class Poller:
    def __init__(self, value: Any = None) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


def not_found(what: str) -> Exception:
    from azure.core.exceptions import ResourceNotFoundError

    return ResourceNotFoundError(f"{what} not found")


class Environments:
    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], Any] = {}
        self.created: list[Any] = []

    def get(self, name: str, version: str) -> Any:
        if (name, version) not in self.stored:
            raise not_found(f"environment {name}:{version}")
        return self.stored[name, version]

    def create_or_update(self, environment: Any) -> Any:
        self.created.append(environment)
        self.stored[environment.name, environment.version] = environment
        return environment


class Compute:
    def __init__(self, limit: int, used: int = 0) -> None:
        self.clusters: dict[str, Any] = {}
        self.created: list[Any] = []
        self.limit, self.used = limit, used

    def get(self, name: str) -> Any:
        if name not in self.clusters:
            raise not_found(f"compute {name}")
        return self.clusters[name]

    def begin_create_or_update(self, compute: Any) -> Poller:
        self.created.append(compute)
        self.clusters[compute.name] = compute
        return Poller(compute)

    def list_sizes(self, location: str | None = None) -> list[Any]:
        from azure.ai.ml.entities import VmSize

        return [
            VmSize(name="Standard_NC24ads_A100_v4", family="standardNCADSA100v4Family", v_cp_us=24),
            VmSize(name=VM, family=FAMILY, v_cp_us=24, gpus=4),
        ]

    def list_usage(self, location: str | None = None) -> list[Any]:
        # As the SDK builds them: from the REST model, which leaves `name` a dict.
        from azure.ai.ml._restclient.arm_ml_service.models import Usage as RestUsage
        from azure.ai.ml._restclient.arm_ml_service.models import UsageName
        from azure.ai.ml.entities import Usage

        rest = RestUsage(name=UsageName(value=FAMILY), current_value=self.used, limit=self.limit)
        total = RestUsage(name=UsageName(value="TotalCores"), current_value=0, limit=1000)
        return [Usage._from_rest_object(item) for item in (total, rest)]


class Runs:
    """`jobs._runs_operations`: run details as the service answers them, one per poll."""

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.polls = 0

    def get_run_details(self, name: str) -> Any:
        self.polls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer() if callable(answer) else answer


class Jobs:
    def __init__(self) -> None:
        self.submitted: dict[str, Any] = {}
        self.canceled: list[str] = []
        self._runs_operations = Runs()

    def create_or_update(self, job: Any) -> Any:
        from azure.ai.ml.entities import CommandJob

        assert isinstance(job, CommandJob)
        job._status = "Starting"
        self.submitted[job.name] = job
        return job

    def get(self, name: str) -> Any:
        if name not in self.submitted:
            raise not_found(f"job {name}")
        return self.submitted[name]

    def list(self) -> list[Any]:
        return list(self.submitted.values())

    def begin_cancel(self, name: str) -> Poller:
        self.canceled.append(name)
        self.submitted[name]._status = "Canceled"
        return Poller()


class StandInMLClient:
    def __init__(self, limit: int = 96, used: int = 0) -> None:
        self.environments = Environments()
        self.compute = Compute(limit, used)
        self.jobs = Jobs()
        self.workspaces = SimpleNamespace(
            get=lambda name: SimpleNamespace(
                mlflow_tracking_uri=f"azureml://eastus2.api.azureml.ms/mlflow/v1.0/ws/{name}"
            )
        )


def azure(config: Config, ml_client: StandInMLClient, **kwargs: Any) -> AzureJobs:
    from core.azure.client import AzureClients

    return AzureJobs(config, AzureClients(config, ml_client=ml_client), **kwargs)


def run_details(status: str, logs: dict[str, str], error: str = "") -> Any:
    from azure.ai.ml._restclient.runhistory.models import RootError, RunDetails
    from azure.ai.ml._restclient.runhistory.models import RunHistoryErrorResponse as ErrorResponse

    failure = ErrorResponse(error=RootError(code="UserError", message=error)) if error else None
    return RunDetails(status=status, log_files=logs, error=failure)


# -- the entities ---------------------------------------------------------------------------


def split_documents(text: str) -> dict[str, str]:
    return {part.splitlines()[0].lstrip("# "): part for part in text.split("---\n")}


def test_planned_entities_round_trip_through_the_sdk_schemas(config: Config) -> None:
    from azure.ai.ml import load_compute, load_environment, load_job

    planned = plan(config, spec(config, instance_count=2), name="quiet_lamp_x1y2z3")
    documents = split_documents(planned.to_yaml())
    assert list(documents) == ["job", "environment", "compute"]

    job = load_job(io.StringIO(documents["job"]))
    assert job.type == "command" and job.name == "quiet_lamp_x1y2z3"
    assert (job.experiment_name, job.display_name) == ("phi3-finetune", "capitals")
    assert job.tags == {
        "phiops": "fine-tune",
        "base_model": spec(config).base_model,
        "purpose": "test",
    }
    assert Path(job.code) == azure_jobs.TRAINER_DIR
    assert job.inputs["train_data"].type == "uri_file"
    assert job.inputs["train_data"].path == str(config.resolve("data/train.jsonl"))
    assert job.outputs["model_output"].type == "uri_folder"
    assert "--model-output-dir ${{outputs.model_output}}" in job.command
    assert "--train-file ${{inputs.train_data}}" in job.command
    assert job.command.endswith("--epochs 1 --lora")
    assert job.resources.instance_count == 2
    assert job.distribution.type == "pytorch"
    assert job.distribution.process_count_per_instance == 4  # NC24s_v3 has 4 GPUs
    assert job.compute == "gpu-cluster"
    environment = planned.environment
    assert planned.job.environment == f"azureml:{environment.name}:{environment.version}"
    assert job.environment == f"{environment.name}:{environment.version}"  # as load_job reads it

    loaded_env = load_environment(io.StringIO(documents["environment"]))
    assert (loaded_env.name, loaded_env.version) == (environment.name, environment.version)
    assert loaded_env.image == azure_jobs.BASE_IMAGE
    assert loaded_env.conda_file == environment.conda_file  # trainer/conda.yml, inlined
    assert loaded_env._to_dict() == environment._to_dict()

    compute = load_compute(io.StringIO(documents["compute"]))
    assert (compute.type, compute.size, compute.min_instances) == ("amlcompute", VM, 0)
    assert compute.max_instances == 2
    assert config.identity_name in compute.identity.user_assigned_identities[0].resource_id
    assert compute._to_dict() == planned.compute._to_dict()


def test_a_local_base_model_folder_becomes_an_input(config: Config, project: Path) -> None:
    (project / "tiny-model").mkdir()
    config.compute_vm_size = "Standard_NC24ads_A100_v4"  # one GPU a node
    planned = plan(config, spec(config, base_model="tiny-model"), name="job_1")
    assert planned.job.inputs["base_model"].type == "uri_folder"
    assert "--base-model ${{inputs.base_model}}" in planned.job.command
    assert planned.job.distribution is None  # one node, one GPU: no launcher needed
    with pytest.raises(PhiopsError, match="does not exist"):
        plan(config, spec(config, base_model="./missing-model"))


def test_the_environment_version_follows_its_content(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yml", tmp_path / "b.yml"
    first.write_text("dependencies: [python=3.11]\n")
    second.write_text("dependencies: [python=3.11, pip]\n")
    assert azure_jobs.environment_version(first) == azure_jobs.environment_version(first)
    assert azure_jobs.environment_version(first) != azure_jobs.environment_version(second)


def test_dry_run_prints_yaml_the_sdk_loads_without_contacting_azure(config: Config) -> None:
    from azure.ai.ml import load_compute, load_environment, load_job

    (config.path).write_text(
        '[data]\ntrain_data_path = "data/train.jsonl"\ntest_data_path = "data/test.jsonl"\n'
        f'[azure]\ncompute_vm_size = "{VM}"\n'
    )
    # No subscription or workspace is configured: any call to Azure would fail.
    result = run_phiops("train", "submit", "--backend", "azure", "--dry-run", "--max-steps", "5")
    assert result.returncode == 0, result.stderr
    documents = split_documents(result.stdout)
    job = load_job(io.StringIO(documents["job"]))
    assert "--max-steps 5" in job.command
    load_environment(io.StringIO(documents["environment"]))
    assert load_compute(io.StringIO(documents["compute"])).size == VM
    as_json = run_phiops("train", "submit", "--backend", "azure", "--dry-run", "--json")
    assert json.loads(as_json.stdout)["compute"]["size"] == VM


# -- orchestration ----------------------------------------------------------------------------


def test_submit_creates_environment_and_compute_once_then_reuses_them(config: Config) -> None:
    ml = StandInMLClient()
    said: list[str] = []
    job = azure(config, ml).submit(spec(config), progress=said.append)
    assert job.status == JobStatus.QUEUED and job.backend == "azure"
    assert job.output_dir == f"azureml://jobs/{job.name}/outputs/model_output"
    assert len(ml.environments.created) == 1 and len(ml.compute.created) == 1
    assert ml.compute.created[0].size == VM
    submitted = ml.jobs.submitted[job.name]
    assert submitted.environment == "azureml:{0.name}:{0.version}".format(
        ml.environments.created[0]
    )
    assert any("quota" in message for message in said)

    again = azure(config, ml).submit(spec(config))
    assert again.name != job.name
    assert len(ml.environments.created) == 1 and len(ml.compute.created) == 1


def test_quota_zero_stops_before_creating_anything(config: Config) -> None:
    ml = StandInMLClient(limit=0)
    with pytest.raises(PhiopsError) as caught:
        azure(config, ml).submit(spec(config))
    message = str(caught.value)
    assert FAMILY in message and "uses 0 of 0 vCPUs" in message and "needs 24" in message
    assert "Quotas" in message  # how to ask for more
    assert ml.compute.created == [] and ml.jobs.submitted == {}


def test_an_existing_cluster_too_small_for_the_job_is_reported(config: Config) -> None:
    from azure.ai.ml.entities import AmlCompute

    ml = StandInMLClient()
    ml.compute.clusters["gpu-cluster"] = AmlCompute(name="gpu-cluster", size=VM, max_instances=1)
    with pytest.raises(PhiopsError, match="scales to 1 node"):
        azure(config, ml).submit(spec(config, instance_count=2))


def test_a_failed_job_reports_the_service_error_and_cancel_asks_azure(config: Config) -> None:
    ml = StandInMLClient()
    jobs = azure(config, ml)
    name = jobs.submit(spec(config)).name
    ml.jobs.submitted[name]._status = "Failed"
    ml.jobs._runs_operations.answers = [
        run_details("Failed", {}, error="Execution failed: exit code 1 (CUDA out of memory)")
    ]
    failed = jobs.get(name)
    assert failed.status == JobStatus.FAILED
    assert "CUDA out of memory" in failed.error
    assert [job.name for job in jobs.list()] == [name]

    other = jobs.submit(spec(config)).name
    assert jobs.cancel(other).status == JobStatus.CANCELED
    assert ml.jobs.canceled == [other]
    with pytest.raises(PhiopsError, match="cannot restart"):
        jobs.resume(other)


def test_metrics_come_from_the_workspace_mlflow_run(config: Config, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'workspace-mlflow.db'}")
    experiment = client.create_experiment("phi3-finetune", artifact_location=tmp_path.as_uri())
    run_id = client.create_run(experiment).info.run_id  # on Azure ML: the job's name
    for step, loss in enumerate([2.0, 1.5, 1.2], start=1):
        client.log_metric(run_id, "loss", loss, step=step)
    client.log_metric(run_id, "eval_loss", 1.4, step=3)
    points = azure(config, StandInMLClient(), mlflow_client=client).metrics(run_id)
    assert [(p.key, p.step, p.value) for p in points] == [
        ("eval_loss", 3, 1.4),
        ("loss", 1, 2.0),
        ("loss", 2, 1.5),
        ("loss", 3, 1.2),
    ]


def test_the_workspace_mlflow_is_reached_over_https_with_a_token(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.azure.client import AzureClients

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    credential = SimpleNamespace(get_token=lambda scope: SimpleNamespace(token="t0ken"))
    clients = AzureClients(config, ml_client=StandInMLClient(), credential=credential)
    client = AzureJobs(config, clients)._mlflow()
    assert client.tracking_uri == "https://eastus2.api.azureml.ms/mlflow/v1.0/ws/ws"
    import os

    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "t0ken"


# -- the log stream -------------------------------------------------------------------------


class Blobs:
    """Blob storage behind SAS URLs: honours Range, and can drop connections on request."""

    def __init__(self) -> None:
        self.content: dict[str, bytes] = {}
        self.drop: set[int] = set()  # request numbers that lose the connection
        self.requests = 0
        self.served = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests in self.drop:
            raise httpx.ReadError("connection reset by peer", request=request)
        data = self.content.get(request.url.path, b"")
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        if start >= len(data):
            return httpx.Response(416)
        self.served += len(data) - start
        return httpx.Response(206, content=data[start:])


def collect(jobs: AzureJobs, name: str, since: Any = 0) -> list[Any]:
    async def run() -> list[Any]:
        return [line async for line in jobs.stream_logs(name, since)]

    return asyncio.run(run())


def test_streaming_survives_dropped_connections_without_loss_or_repeats(config: Config) -> None:
    from azure.core.exceptions import ServiceRequestError

    ml = StandInMLClient()
    blobs = Blobs()
    url = "https://acct.blob.core.windows.net/azureml/ExperimentRun/dcid.x/user_logs/std_log.txt"
    path = httpx.URL(url).path
    logs = {
        STD_LOG: url + "?sig=1",
        "system_logs/lifecycler/execution-wrapper.log": url + "-system?sig=1",
    }
    growth = iter(
        [
            b"line 1\nline 2\npar",
            b"tial 3\r\nline 4\n",
            b"",
            b"line 5\n",
            b"last words, no newline",
        ]
    )

    def running() -> Any:
        blobs.content[path] = blobs.content.get(path, b"") + next(growth, b"")
        return run_details("Running", logs)

    ml.jobs._runs_operations.answers = [
        running,
        running,  # this poll's blob request drops (request 2)
        ServiceRequestError("connection aborted"),  # and the next details call fails
        running,
        running,
        running,
        lambda: run_details("Completed", logs),
    ]
    blobs.drop = {2}
    jobs = azure(
        config, ml, http_transport=httpx.MockTransport(blobs.handler), poll_interval=(0.001, 0.005)
    )
    lines = collect(jobs, "quiet_lamp")
    texts = [line.text for line in lines]
    assert texts == ["line 1", "line 2", "partial 3", "line 4", "line 5", "last words, no newline"]
    assert {line.source for line in lines} == {STD_LOG}  # system logs are not user output
    assert lines[-1].offset == len(blobs.content[path])
    assert blobs.served == len(blobs.content[path])  # every byte fetched exactly once

    # A restart resumes from the offset of the last line it showed.
    ml.jobs._runs_operations.answers = [run_details("Completed", logs)]
    resumed = collect(jobs, "quiet_lamp", since=lines[1].offset)
    assert [line.text for line in resumed] == texts[2:]
    offsets = {STD_LOG: lines[3].offset}
    assert [line.text for line in collect(jobs, "quiet_lamp", since=offsets)] == texts[4:]


def test_streaming_gives_up_with_one_sentence_after_repeated_failures() -> None:
    from azure.core.exceptions import ServiceRequestError

    def never() -> Any:
        raise ServiceRequestError("no route to host")

    async def run() -> None:
        async with httpx.AsyncClient() as http:
            stream = AzureLogStream(never, http, min_interval=0.001, max_failures=3)
            async for _ in stream.lines():
                pass

    with pytest.raises(PhiopsError, match="lost the connection to Azure ML 3 times"):
        asyncio.run(run())


def test_status_mapping_covers_azure_ml_statuses() -> None:
    from azure.ai.ml.operations._run_history_constants import RunHistoryConstants

    for status in RunHistoryConstants.ALL_STATUSES:
        assert status in azure_jobs.AZURE_STATUS
    assert azure_jobs.job_status("Finalizing") == JobStatus.RUNNING
    assert azure_jobs.job_status("Preparing") == JobStatus.QUEUED
