"""What needs no Azure state needs no sign-in (defect 9), sizes that exist today (defect 4):
`resources ensure --dry-run` and `deploy --dry-run` print the SDK's YAML of their entities
without reaching Azure; a sign-in failure during a deploy is one sentence; the defaults are
current VM sizes and `--max-queue-wait` says managed endpoints ignore it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from core.config import Config, write_config_values
from core.errors import PhiopsError
from tests import fixtures_deploy_azure
from tests.azure_standins import GPU_SIZE, AzureWorld
from tests.fixtures_deploy_azure import AzureDeploy
from tests.test_resources_cli import SETTINGS, phiops

azure_deploy = fixtures_deploy_azure.azure_deploy
RETIRED = ("nc6s_v3", "nc12s_v3", "nc24s_v3", "nc24rs_v3")  # NCv3, retired 2025-09-30


@pytest.fixture
def signed_out(project: Path, monkeypatch: pytest.MonkeyPatch) -> AzureWorld:
    monkeypatch.setenv("COLUMNS", "250")
    world = AzureWorld(signed_in=False)
    world.patch(monkeypatch)
    write_config_values(project / "phiops.toml", SETTINGS)
    return world


def test_ensure_dry_run_signed_out_prints_every_entity_as_the_sdks_yaml(
    signed_out: AzureWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    from azure.ai.ml import load_compute, load_workspace

    code, out, err = phiops(capsys, "resources", "ensure", "--dry-run")
    assert code == 0, err
    parts = {part.splitlines()[0].lstrip("# "): part for part in out.split("---\n")}
    titles = list(parts)
    assert titles[0] == "resource group phi3-rg" and titles[2] == "workspace phi3-ws"
    assert titles[1].startswith("container registry phi3wsacr")
    assert sum(title.startswith("role assignment") for title in titles) == 3
    workspace = load_workspace(io.StringIO(parts["workspace phi3-ws"]))
    assert workspace.container_registry.endswith("/registries/" + titles[1].split()[-1])
    cluster = load_compute(io.StringIO(parts["compute cluster gpu-cluster"]))
    assert (cluster.size, cluster.min_instances) == (GPU_SIZE, 0)
    assert "cannot sign in to Azure" in err and "\n" not in err.strip()
    assert signed_out.requests == []  # nothing reached Azure

    code, out, _ = phiops(capsys, "resources", "ensure", "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["signed_in"] is False and len(data["entities"]) == 8


def test_deploy_dry_run_prints_endpoint_environment_and_deployment_without_azure(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No subscription configured and no sign-in: any call to Azure would fail."""
    from azure.ai.ml import load_environment, load_online_deployment, load_online_endpoint

    (project / "phiops.toml").write_text('[project]\nbackend = "azure"\n')
    args = ("deploy", "--dry-run", "--model", "phi3-finetuned:3", "--max-concurrent", "5")
    code, out, err = phiops(capsys, *args)
    assert code == 0, err
    parts = out.split("---\n")
    titles = [part.splitlines()[0] for part in parts]
    assert titles[0] == "# endpoint phi3-endpoint (created only if absent)"
    endpoint = load_online_endpoint(io.StringIO(parts[0].replace("principal_id: null\n", "")
                                                .replace("client_id: null\n", "")))  # fmt: skip
    assert endpoint.auth_mode == "key"
    environment = load_environment(io.StringIO(parts[1]))
    assert environment.name == "phi3-scoring-env"
    pins = yaml.safe_load(parts[1])["conda_file"]["dependencies"][-1]["pip"]
    assert any(pin.startswith("azureml-inference-server-http==") for pin in pins)
    deployment = yaml.safe_load(parts[2])
    assert deployment["model"] == "azureml:phi3-finetuned:3"
    assert deployment["code_configuration"]["scoring_script"] == "score.py"
    assert deployment["instance_type"] == "Standard_E4s_v3"
    assert deployment["request_settings"]["max_concurrent_requests_per_instance"] == 5
    assert load_online_deployment(io.StringIO(parts[2].replace(  # the code folder is described
        deployment["code_configuration"]["code"].split(",")[0], "."))).name == "blue"  # fmt: skip
    assert "blue, green" in err

    code, _, err = phiops(capsys, "deploy", "--dry-run", "--backend", "local")
    assert code == 1 and "the local backend has no entities to show" in err


def test_a_sign_in_failure_during_deploy_is_one_sentence(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    model = az.backend.register_model()
    az.world.signed_in = False
    with pytest.raises(PhiopsError) as failure:
        az.backend.deploy(model, "phi3-endpoint")
    message = str(failure.value)
    assert message.startswith("cannot sign in to Azure to ") and "run `az login`" in message
    assert "\n" not in message and "EnvironmentCredential" not in message


def test_defaults_are_sizes_that_exist_today() -> None:
    from core.azure.jobs import GPUS_PER_NODE

    config = Config()
    assert config.deployment_instance_type == "Standard_E4s_v3"  # the seed serves here
    assert config.compute_vm_size == "Standard_NC24ads_A100_v4"  # and trains here
    assert not [size for size in GPUS_PER_NODE if size.endswith(RETIRED)]


def test_max_queue_wait_says_managed_endpoints_ignore_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = phiops(capsys, "deploy", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "Azure ML managed online endpoints ignore it" in flat
