"""The Azure deploy entities through azure-ai-ml's own schemas, offline: what `_to_dict()`
writes, what `load_online_endpoint` / `load_online_deployment` / `load_model` read back, and
the REST bodies the SDK would send."""

from __future__ import annotations

import dataclasses
import io

import pytest

from core.azure.endpoints import (
    build_deployment,
    build_endpoint,
    check_name,
    deployment_environment,
)
from core.azure.registry import build_model, model_path, model_reference
from core.backend import JobInfo, JobStatus, ModelVersion, ProbeSettings, RequestSettings
from core.errors import PhiopsError
from tests import fixtures_deploy_azure
from tests.fixtures_deploy_azure import SERVING_SIZE, AzureDeploy

azure_deploy = fixtures_deploy_azure.azure_deploy

MODEL = ModelVersion("phi3-finetuned", "4")
JOB = JobInfo(
    name="calm_river_1a2b3c",
    status=JobStatus.COMPLETED,
    display_name="capitals",
    tags={"base_model": "microsoft/Phi-3-mini-4k-instruct"},
)


def yaml_of(entity_dict: dict) -> io.StringIO:
    from azure.ai.ml._utils.utils import dump_yaml

    return io.StringIO(dump_yaml(entity_dict, default_flow_style=False, sort_keys=False))


def test_endpoint_is_key_authenticated_with_the_user_assigned_identity(
    azure_deploy: AzureDeploy,
) -> None:
    from azure.ai.ml import load_online_endpoint

    config = azure_deploy.config
    data = build_endpoint(config, "phi3-endpoint")._to_dict()
    assert data["name"] == "phi3-endpoint"
    assert data["auth_mode"] == "key"
    assert data["identity"]["type"] == "user_assigned"
    [identity] = data["identity"]["user_assigned_identities"]
    assert identity["resource_id"] == config.identity_resource_id
    assert identity["resource_id"].endswith("/userAssignedIdentities/phi3-identity")
    assert data["tags"] == {"phiops": "endpoint"}

    # azure-ai-ml 1.35 writes the identity's unknown principal_id/client_id as null, which its
    # own loader refuses ("Field may not be null"); Azure fills them in, so leave them out.
    for item in data["identity"]["user_assigned_identities"]:
        assert item.pop("principal_id") is None and item.pop("client_id") is None
    loaded = load_online_endpoint(yaml_of(data))
    assert loaded.auth_mode == "key" and loaded.tags == {"phiops": "endpoint"}
    [loaded_identity] = loaded.identity.user_assigned_identities
    assert loaded_identity.resource_id == config.identity_resource_id

    # What the SDK sends. A fresh entity: `_to_dict()` leaves the identity list as dicts.
    rest = build_endpoint(config, "phi3-endpoint")._to_rest_online_endpoint(location="eastus2")
    body = rest.as_dict()
    assert body["properties"]["authMode"] == "Key"
    assert body["identity"]["type"] == "UserAssigned"
    assert list(body["identity"]["userAssignedIdentities"]) == [config.identity_resource_id]


def test_without_an_identity_the_endpoint_gets_a_system_assigned_one(
    azure_deploy: AzureDeploy,
) -> None:
    config = dataclasses.replace(azure_deploy.config, identity_name="", identity_client_id="")
    data = build_endpoint(config, "phi3-endpoint")._to_dict()
    assert data["identity"]["type"] == "system_assigned"
    assert deployment_environment(config) == {
        "SUBSCRIPTION_ID": config.subscription_id,
        "RESOURCE_GROUP_NAME": "phi3-rg",
    }


def test_deployment_has_the_seed_defaults_and_round_trips(azure_deploy: AzureDeploy) -> None:
    from azure.ai.ml import load_online_deployment

    config = azure_deploy.config
    assert config.identity_client_id  # provision() recorded the identity's client id
    data = build_deployment(config, MODEL, "phi3-endpoint", "green")._to_dict()
    assert (data["name"], data["endpoint_name"]) == ("green", "phi3-endpoint")
    assert data["type"] == "managed"
    assert data["model"] == "azureml:phi3-finetuned:4"
    assert (data["instance_type"], data["instance_count"]) == (SERVING_SIZE, 1)
    assert data["request_settings"] == {
        "request_timeout_ms": 180_000,
        "max_concurrent_requests_per_instance": 3,
        "max_queue_wait_ms": 120_000,
    }
    for probe in ("liveness_probe", "readiness_probe"):
        assert data[probe] == {
            "period": 100,
            "initial_delay": 500,
            "timeout": 10,
            "success_threshold": 1,
            "failure_threshold": 30,
        }
    assert data["environment_variables"] == {
        "SUBSCRIPTION_ID": config.subscription_id,
        "RESOURCE_GROUP_NAME": "phi3-rg",
        "UAI_CLIENT_ID": config.identity_client_id,
        "AZURE_CLIENT_ID": config.identity_client_id,
    }
    assert data["tags"] == {"phiops": "deployment", "model": "phi3-finetuned:4"}

    loaded = load_online_deployment(yaml_of(data))
    assert loaded._to_dict() == data

    body = build_deployment(config, MODEL, "phi3-endpoint", "green")._to_rest_object(
        location="eastus2"
    )
    properties = body.as_dict()["properties"]
    assert properties["endpointComputeType"] == "Managed"
    assert properties["requestSettings"] == {
        "maxQueueWait": "PT2M",
        "maxConcurrentRequestsPerInstance": 3,
        "requestTimeout": "PT3M",
    }
    assert properties["livenessProbe"]["initialDelay"] == "PT8M20S"  # 500 s
    assert properties["readinessProbe"]["period"] == "PT1M40S"  # 100 s
    assert body.as_dict()["sku"] == {"name": "Default", "capacity": 1}


def test_deployment_settings_can_be_overridden(azure_deploy: AzureDeploy) -> None:
    config = dataclasses.replace(
        azure_deploy.config, deployment_instance_type="Standard_DS3_v2", deployment_instance_count=2
    )
    data = build_deployment(
        config,
        MODEL,
        "phi3-endpoint",
        "blue",
        settings=RequestSettings(1, 60_000, 1_000),
        probe=ProbeSettings(initial_delay=30, period=10, failure_threshold=3),
    )._to_dict()
    assert (data["instance_type"], data["instance_count"]) == ("Standard_DS3_v2", 2)
    assert data["request_settings"]["max_concurrent_requests_per_instance"] == 1
    assert data["liveness_probe"]["initial_delay"] == 30
    with pytest.raises(PhiopsError, match="deployment_instance_count must be at least 1"):
        build_deployment(
            dataclasses.replace(config, deployment_instance_count=0), MODEL, "e-1", "blue"
        )


def test_model_points_at_the_mlflow_folder_of_the_jobs_declared_output() -> None:
    from azure.ai.ml import load_model

    from core.azure.jobs import MODEL_OUTPUT

    model = build_model(JOB, "phi3-finetuned")
    data = model._to_dict()
    assert data["path"] == (
        f"azureml://jobs/calm_river_1a2b3c/outputs/{MODEL_OUTPUT}/paths/mlflow_model"
    )
    assert data["path"] == model_path(JOB.name)
    assert data["type"] == "mlflow_model"
    assert data["name"] == "phi3-finetuned"
    assert "version" not in data  # Azure ML numbers each registration
    assert data["tags"] == {
        "job_name": "calm_river_1a2b3c",
        "phiops": "fine-tuned",
        "base_model": "microsoft/Phi-3-mini-4k-instruct",
    }
    assert "calm_river_1a2b3c" in data["description"]
    assert load_model(yaml_of(data))._to_dict() == data
    rest = model._to_rest_object().as_dict()["properties"]
    assert (rest["modelType"], rest["modelUri"]) == ("mlflow_model", data["path"])


@pytest.mark.parametrize(
    "name", ["ab", "1endpoint", "ends-with-", "has_underscore", "x" * 33, "", "sp ace"]
)
def test_bad_names_are_one_sentence_before_azure(name: str) -> None:
    with pytest.raises(PhiopsError, match="3 to 32 letters, digits and hyphens"):
        check_name(name, "endpoint")


def test_good_names_pass() -> None:
    for name in ("phi3-endpoint", "blue", "green-2", "E12"):
        assert check_name(name, "deployment") == name


def test_model_references_are_read_in_every_form() -> None:
    arm = (
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices"
        "/workspaces/w/models/phi3-finetuned/versions/7"
    )
    assert model_reference(arm) == ("phi3-finetuned", "7")
    assert model_reference("azureml:phi3-finetuned:7") == ("phi3-finetuned", "7")
    assert model_reference("phi3-finetuned:7") == ("phi3-finetuned", "7")
    assert model_reference("odd") == ("odd", "")


def test_the_deploy_modules_load_no_sdk() -> None:
    """The CLI and TUI import these at startup paths; the SDK (~2 s) loads only on use."""
    import subprocess
    import sys

    code = (
        "import sys, core.azure.endpoints, core.azure.registry, core.azure.backend\n"
        "print(sorted(m for m in sys.modules if m.startswith(('azure', 'torch', 'mlflow'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
