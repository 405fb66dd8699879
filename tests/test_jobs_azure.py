"""Azure ML jobs without a network: the real SDK's entities and calls, against the fake Azure
at the HTTP transport (tests/azure_standins.py): environments, the cluster and its quota,
the job's code and data uploaded to blob storage, run history, the workspace's MLflow."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.azure import jobs as azure_jobs
from core.azure.jobs import AzureJobs, AzureLogStream, plan
from core.backend import JobSpec, JobStatus
from core.config import Config
from core.errors import PhiopsError
from tests.azure_fake.mlflow_rest import MlflowRuns
from tests.azure_fake.transport import AzureError
from tests.azure_standins import GPU_FAMILY, GPU_SIZE, SUBSCRIPTION, AzureWorld, provision
from tests.helpers import run_phiops

VM = GPU_SIZE  # Standard_NC24ads_A100_v4: 24 vCPUs, one A100
FAMILY = GPU_FAMILY
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
        subscription_id=SUBSCRIPTION,
        resource_group="phi3-rg",
        workspace="phi3-ws",
        location="eastus2",
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


# -- the entities ---------------------------------------------------------------------------


def split_documents(text: str) -> dict[str, str]:
    return {part.splitlines()[0].lstrip("# "): part for part in text.split("---\n")}


def test_planned_entities_round_trip_through_the_sdk_schemas(config: Config) -> None:
    from azure.ai.ml import load_compute, load_environment, load_job

    config.compute_vm_size = "Standard_NC96ads_A100_v4"  # four A100s a node
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
    assert job.distribution.process_count_per_instance == 4  # NC96ads_A100_v4 has 4 GPUs
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
    assert (compute.type, compute.size, compute.min_instances) == (
        "amlcompute",
        "Standard_NC96ads_A100_v4",
        0,
    )
    assert compute.max_instances == 2
    assert config.identity_name in compute.identity.user_assigned_identities[0].resource_id
    assert compute._to_dict() == planned.compute._to_dict()


def test_a_local_base_model_folder_becomes_an_input(config: Config, project: Path) -> None:
    (project / "tiny-model").mkdir()  # compute_vm_size has one GPU a node
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


# -- orchestration against the fake Azure ----------------------------------------------------


@pytest.fixture
def world(config: Config, monkeypatch: pytest.MonkeyPatch) -> AzureWorld:
    """A provisioned workspace without the cluster; the SDK's blob uploads meet it too."""
    made = provision(AzureWorld(), config)
    made.delete(made.compute()["id"])
    made.patch(monkeypatch)
    return made


def azure(config: Config, world: AzureWorld, **kwargs: Any) -> AzureJobs:
    return AzureJobs(config, world.clients(config), **kwargs)


def test_submit_creates_environment_and_compute_once_then_reuses_them(
    config: Config, world: AzureWorld
) -> None:
    said: list[str] = []
    job = azure(config, world).submit(spec(config), progress=said.append)
    assert job.status == JobStatus.QUEUED and job.backend == "azure"
    assert job.output_dir == f"azureml://jobs/{job.name}/outputs/model_output"
    kinds = [kind for kind, _ in world.created]
    assert kinds.count("environment") == 1 and kinds.count("compute") == 1
    cluster = world.compute()["properties"]["properties"]
    assert cluster["vmSize"] == VM
    sent = world.get(f"{world.workspace()['id']}/jobs/{job.name}")["properties"]
    env_name, env_version = next(n for k, n in world.created if k == "environment").split(":")
    assert sent["environmentId"].endswith(f"/environments/{env_name}/versions/{env_version}")
    assert sent["codeId"] and "--model-output-dir ${{outputs.model_output}}" in sent["command"]
    assert sent["inputs"]["train_data"]["uri"].startswith("azureml://")  # uploaded, not local
    uploaded = {path.rsplit("/", 1)[-1] for (_, _, path) in world.blobs}
    assert {"fine_tune.py", "conda.yml", "train.jsonl", "test.jsonl"} <= uploaded
    assert any("quota" in message for message in said)

    again = azure(config, world).submit(spec(config))
    assert again.name != job.name
    kinds = [kind for kind, _ in world.created]
    assert kinds.count("environment") == 1 and kinds.count("compute") == 1


def test_quota_zero_stops_before_creating_anything(config: Config, world: AzureWorld) -> None:
    world.quota[FAMILY] = (0, 0)
    with pytest.raises(PhiopsError) as caught:
        azure(config, world).submit(spec(config))
    message = str(caught.value)
    assert FAMILY in message and "uses 0 of 0 vCPUs" in message and "needs 24" in message
    assert "Quotas" in message  # how to ask for more
    assert [kind for kind, _ in world.created] == ["environment"]


def test_a_resubmit_within_the_idle_window_uses_the_node_the_cluster_holds(
    config: Config, world: AzureWorld
) -> None:
    """The seed's quota is one node's worth (24 vCPUs). Right after a job, the cluster keeps
    its node for the idle time, and that node is what uses the 24: the next job runs on it."""
    world.add_compute("gpu-cluster", VM, identity_id=world.identity()["id"])
    world.quota[FAMILY] = (24, 24)
    world.nodes["gpu-cluster"] = 1
    assert azure(config, world).submit(spec(config)).status == JobStatus.QUEUED
    world.nodes["gpu-cluster"] = 0  # scaled down, and the quota is used elsewhere
    with pytest.raises(PhiopsError, match="uses 24 of 24 vCPUs and the job needs 24 more"):
        azure(config, world).submit(spec(config))


def test_an_existing_cluster_too_small_for_the_job_is_reported(
    config: Config, world: AzureWorld
) -> None:
    world.add_compute("gpu-cluster", VM, max_nodes=1)
    with pytest.raises(PhiopsError, match="scales to 1 node"):
        azure(config, world).submit(spec(config, instance_count=2))


def test_a_failed_job_reports_the_service_error_and_cancel_asks_azure(
    config: Config, world: AzureWorld
) -> None:
    jobs = azure(config, world)
    name = jobs.submit(spec(config)).name
    world.runs[name] = {
        "status": "Failed",
        "error": "Execution failed: exit code 1 (CUDA out of memory)",
    }
    failed = jobs.get(name)
    assert failed.status == JobStatus.FAILED
    assert "CUDA out of memory" in failed.error
    assert [job.name for job in jobs.list()] == [name]

    other = jobs.submit(spec(config)).name
    assert jobs.cancel(other).status == JobStatus.CANCELED
    assert ("POST", "management.azure.com") in {
        (m, h) for m, h, p in world.requests if p.endswith(f"/jobs/{other}/cancel")
    }
    with pytest.raises(PhiopsError, match="cannot restart"):
        jobs.resume(other)


def test_metrics_come_from_the_workspace_mlflow_run_over_rest(
    config: Config, world: AzureWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    world.mlflow = MlflowRuns()
    for step, loss in enumerate([2.0, 1.5, 1.2], start=1):
        world.mlflow.log("quiet_lamp", "loss", step, loss)  # on Azure ML: the job's name
    world.mlflow.log("quiet_lamp", "eval_loss", 3, 1.4)
    points = azure(config, world).metrics("quiet_lamp")
    assert [(p.key, p.step, p.value) for p in points] == [
        ("eval_loss", 3, 1.4),
        ("loss", 1, 2.0),
        ("loss", 2, 1.5),
        ("loss", 3, 1.2),
    ]
    workspace = world.workspace()["id"]
    assert (
        "GET",
        "eastus2.api.azureml.ms",
        f"/mlflow/v1.0{workspace}/api/2.0/mlflow/runs/get",
    ) in (world.requests)


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


def test_streaming_survives_dropped_connections_without_loss_or_repeats(
    config: Config, world: AzureWorld
) -> None:
    """Run history (the SDK's own client, through the fake) lists the log files by SAS URL;
    the blob host drops a connection once and run history answers 503 once."""
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

    def running() -> dict:
        blobs.content[path] = blobs.content.get(path, b"") + next(growth, b"")
        return {"status": "Running", "log_files": logs}

    busy = AzureError(503, "ServiceUnavailable", "Run history is busy.", **{"Retry-After": "0"})
    world.run_scripts["quiet_lamp"] = [
        running,
        running,  # this poll's blob request drops (request 2)
        busy,  # and the next details call is refused once
        running,
        running,
        running,
        {"status": "Completed", "log_files": logs},
    ]
    blobs.drop = {2}
    jobs = azure(
        config,
        world,
        http_transport=httpx.MockTransport(blobs.handler),
        poll_interval=(0.001, 0.005),
    )
    lines = collect(jobs, "quiet_lamp")
    texts = [line.text for line in lines]
    assert texts == ["line 1", "line 2", "partial 3", "line 4", "line 5", "last words, no newline"]
    assert {line.source for line in lines} == {STD_LOG}  # system logs are not user output
    assert lines[-1].offset == len(blobs.content[path])
    assert blobs.served == len(blobs.content[path])  # every byte fetched exactly once

    # A restart resumes from the offset of the last line it showed.
    world.run_scripts["quiet_lamp"] = [{"status": "Completed", "log_files": logs}]
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


def test_without_the_private_run_history_path_the_public_stream_is_followed(
    config: Config, world: AzureWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A future azure-ai-ml may move `jobs._runs_operations`: the logs still come, from the
    SDK's public `jobs.stream()` (which prints them) turned into lines."""
    jobs = azure(config, world)
    name = jobs.submit(spec(config)).name
    url = f"https://acct.blob.core.windows.net/azureml/ExperimentRun/dcid.{name}/{STD_LOG}"
    world.blobs[("acct", "azureml", f"ExperimentRun/dcid.{name}/{STD_LOG}")] = (
        b"Data: 160 training rows\nDone: model saved\n"
    )
    logs = {STD_LOG: url + "?sv=1&sig=x"}

    def stream(since: int = 0) -> list[Any]:
        world.run_scripts[name] = [
            {"status": "Running", "log_files": logs},
            {"status": "Completed", "log_files": logs},
        ]
        return collect(jobs, name, since)

    monkeypatch.setattr(azure_jobs, "RUNS_OPERATIONS", "_runs_operations_moved")
    lines = stream()
    texts = [line.text for line in lines]
    assert "Data: 160 training rows" in texts and "Done: model saved" in texts
    assert any(text.startswith("RunId:") for text in texts)  # jobs.stream()'s own header
    assert [line.text for line in stream(since=lines[2].offset)] == texts[3:]
    assert jobs.get(name).status == JobStatus.COMPLETED  # reading needs no private path


def test_azure_ai_ml_is_capped_at_the_tested_minor() -> None:
    """phiops reads private SDK parts (run history, the log filter): a new minor must be
    tested before it is allowed in."""
    import tomllib
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet

    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    [spec] = [item for item in declared if item.startswith("azure-ai-ml")]
    allowed = SpecifierSet(spec.removeprefix("azure-ai-ml"))
    major, minor = (int(part) for part in version("azure-ai-ml").split(".")[:2])
    assert version("azure-ai-ml") in allowed
    assert f"{major}.{minor + 1}.0" not in allowed


def test_the_tracking_token_is_renewed_before_it_expires(
    config: Config, world: AzureWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure tokens last about an hour; the TUI reads metrics for longer than that."""
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    now = [1_000_000.0]
    world.clock = lambda: now[0]  # when the fake's tokens expire, and when phiops thinks it is
    world.mlflow = MlflowRuns()
    world.mlflow.log("quiet_lamp", "loss", 1, 2.0)
    jobs = azure(config, world, clock=lambda: now[0])
    assert [p.value for p in jobs.metrics("quiet_lamp")] == [2.0]
    for _ in range(3):  # hours go by between two looks
        now[0] += 3500
        assert [p.value for p in jobs.metrics("quiet_lamp")] == [2.0]
