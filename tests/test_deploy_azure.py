"""Deploying on Azure ML without a network: the Azure backend's real MLClient against the fake
Azure at the HTTP transport (tests/azure_standins.py), which answers the models, online
endpoints and deployments REST calls as the spec says and keeps what the SDK sent."""

from __future__ import annotations

import json
import stat
from typing import Any

import pytest

from core.azure.endpoints import PREVIOUS_TRAFFIC_TAG
from core.backend import Backend, ModelVersion, RequestSettings
from core.errors import NotFoundError, PhiopsError
from core.secrets import endpoint_key_name, mask, redact
from tests import fixtures_deploy_azure
from tests.azure_standins import SUBSCRIPTION, workspace_id
from tests.fixtures_deploy_azure import SERVING_FAMILY, AzureDeploy

azure_deploy = fixtures_deploy_azure.azure_deploy

ENDPOINT = "phi3-endpoint"


def endpoint_rest(az: AzureDeploy, name: str = ENDPOINT) -> dict[str, Any]:
    """The endpoint as Azure keeps it (its REST payload)."""
    found = az.world.get(
        f"{workspace_id(SUBSCRIPTION, 'phi3-rg', 'phi3-ws')}/onlineEndpoints/{name}"
    )
    assert found is not None
    return found


def tags(az: AzureDeploy) -> dict[str, str]:
    return dict(endpoint_rest(az).get("tags") or {})


def deploy(az: AzureDeploy, traffic: int = 100, **kwargs: Any) -> Any:
    model = az.backend.register_model()
    return az.backend.deploy(
        model, ENDPOINT, traffic=traffic, progress=az.progress.append, **kwargs
    )


def created(az: AzureDeploy, kind: str) -> list[str]:
    return [name for each, name in az.world.created if each == kind]


# -- registry ---------------------------------------------------------------------------------


def test_register_makes_a_new_version_each_time(azure_deploy: AzureDeploy) -> None:
    backend = azure_deploy.backend
    first = backend.register_model()  # the latest completed job: the running one is skipped
    second = backend.register_model("calm_river_1a2b3c")
    assert (first.name, first.version, second.version) == ("phi3-finetuned", "1", "2")
    assert first.job_name == "calm_river_1a2b3c"
    assert first.source.endswith("/calm_river_1a2b3c/outputs/model_output/paths/mlflow_model")
    assert first.created_at
    other = backend.register_model("calm_river_1a2b3c", name="phi3-other")
    assert other.ref == "phi3-other:1"

    assert [m.ref for m in backend.models("phi3-finetuned")] == [
        "phi3-finetuned:2",
        "phi3-finetuned:1",
    ]
    assert [m.ref for m in backend.models()] == [
        "phi3-finetuned:2",
        "phi3-finetuned:1",
        "phi3-other:1",
    ]
    stored = azure_deploy.world.get(
        f"{workspace_id(SUBSCRIPTION, 'phi3-rg', 'phi3-ws')}/models/phi3-finetuned/versions/1"
    )
    assert stored["properties"]["modelType"] == "mlflow_model"
    assert stored["properties"]["tags"]["job_name"] == "calm_river_1a2b3c"


def test_register_refuses_an_unfinished_or_unknown_job(azure_deploy: AzureDeploy) -> None:
    with pytest.raises(PhiopsError, match="job busy_cloud_4d5e6f is Running; only a completed"):
        azure_deploy.backend.register_model("busy_cloud_4d5e6f")
    with pytest.raises(NotFoundError, match="not found"):
        azure_deploy.backend.register_model("no_such_job")
    assert not [key for key in azure_deploy.world.arm if "/models/" in key]


# -- deploy: endpoint, blue/green, smoke test ---------------------------------------------


def test_the_azure_backend_is_a_backend(azure_deploy: AzureDeploy) -> None:
    assert isinstance(azure_deploy.backend, Backend)


def test_first_deploy_creates_the_endpoint_and_blue_takes_all_traffic(
    azure_deploy: AzureDeploy,
) -> None:
    az = azure_deploy
    info = deploy(az)
    assert created(az, "online endpoint") == [ENDPOINT]
    assert created(az, "online deployment") == ["blue"]
    assert info.traffic == {"blue": 100}
    assert info.backend == "azure" and info.state == "Succeeded" and info.auth_mode == "key"
    assert info.scoring_uri == f"https://{ENDPOINT}.eastus2.inference.ml.azure.com/score"
    [blue] = info.deployments
    assert (blue.model, blue.state, blue.instance_count) == ("phi3-finetuned:1", "Succeeded", 1)
    assert blue.instance_type == az.config.deployment_instance_type

    rest = endpoint_rest(az)  # what reached Azure
    assert rest["properties"]["authMode"] == "Key"
    assert list(rest["identity"]["userAssignedIdentities"]) == [az.config.identity_resource_id]
    # Nothing served before blue: there is nothing to roll back to.
    assert PREVIOUS_TRAFFIC_TAG not in tags(az)
    with pytest.raises(PhiopsError, match="Nothing to roll back to"):
        az.backend.rollback(ENDPOINT)

    plain, chat = az.world.invocations  # a plain question, then a conversation
    for smoke in (plain, chat):
        assert smoke["headers"]["azureml-model-deployment"] == "blue"
        assert smoke["traffic"] == {}  # tested before it took any traffic
        assert "params" in smoke["body"]
    assert isinstance(plain["body"]["input_data"][0], str)
    [conversation] = chat["body"]["input_data"]  # what the flow tool sends: chat messages
    assert [m["role"] for m in conversation] == ["user", "assistant", "user"]
    # The deployment runs phiops's scoring code in its own environment.
    blue = az.world.get(f"{endpoint_rest(az)['id']}/deployments/blue")["properties"]
    assert blue["codeConfiguration"]["scoringScript"] == "score.py"
    assert az.world.get(blue["codeConfiguration"]["codeId"]) is not None
    assert "/environments/phi3-scoring-env/versions/" in blue["environmentId"]
    uploaded = {path for (_, _, path) in az.world.blobs}
    assert any(path.endswith("/score.py") for path in uploaded)
    assert any(path.endswith("/core/serving/engine.py") for path in uploaded)
    assert az.progress[0] == "checking model phi3-finetuned:1"
    assert "creating endpoint phi3-endpoint" in az.progress
    assert az.progress.index("smoke-testing deployment blue") < az.progress.index(
        "moving traffic to 100% on blue"
    )


def test_second_deploy_is_green_beside_blue_and_never_touches_the_endpoint(
    azure_deploy: AzureDeploy,
) -> None:
    az = azure_deploy
    deploy(az)
    keys_before = az.backend.endpoint_keys(ENDPOINT)
    az.progress.clear()
    info = deploy(az)

    assert created(az, "online endpoint") == [ENDPOINT]  # created once, never again
    assert az.world.deleted == []
    assert az.backend.endpoint_keys(ENDPOINT) == keys_before  # same endpoint, same keys
    assert "creating endpoint phi3-endpoint" not in az.progress
    assert created(az, "online deployment") == ["blue", "green"]
    assert info.traffic == {"blue": 0, "green": 100}
    assert [d.model for d in info.deployments] == ["phi3-finetuned:1", "phi3-finetuned:2"]
    # green was smoke-tested by name while blue still had all the traffic.
    green = az.world.invocations[-1]
    assert green["headers"]["azureml-model-deployment"] == "green"
    assert green["traffic"] == {"blue": 100}
    assert json.loads(tags(az)[PREVIOUS_TRAFFIC_TAG]) == {"blue": 100}


def test_a_partial_share_scales_the_others_down(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    info = deploy(az, traffic=20)
    assert info.traffic == {"blue": 80, "green": 20}
    info = deploy(az, traffic=0)  # blue-2 waits at 0%: nothing moves
    assert info.traffic == {"blue": 80, "blue-2": 0, "green": 20}
    assert json.loads(tags(az)[PREVIOUS_TRAFFIC_TAG]) == {"blue": 100}


def test_rollback_restores_the_previous_split_and_back_again(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    deploy(az)
    assert az.backend.rollback(ENDPOINT).traffic == {"blue": 100, "green": 0}
    assert json.loads(tags(az)[PREVIOUS_TRAFFIC_TAG]) == {"green": 100}
    assert az.backend.rollback(ENDPOINT).traffic == {"blue": 0, "green": 100}
    # The tag lives on the endpoint, so another machine (a fresh backend) rolls back too.
    from core.azure.endpoints import AzureEndpoints

    elsewhere = AzureEndpoints(az.config, az.clients, az.registry, secrets=az.secrets)
    assert elsewhere.rollback(ENDPOINT).traffic == {"blue": 100, "green": 0}
    assert tags(az)["phiops"] == "endpoint"  # other tags are kept


def test_set_traffic_validates_and_keeps_the_previous_split(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    deploy(az)
    assert az.backend.set_traffic(ENDPOINT, {"blue": 50, "green": 50}).traffic == {
        "blue": 50,
        "green": 50,
    }
    assert json.loads(tags(az)[PREVIOUS_TRAFFIC_TAG]) == {"green": 100}
    with pytest.raises(PhiopsError, match="No deployment named red"):
        az.backend.set_traffic(ENDPOINT, {"red": 100})
    with pytest.raises(PhiopsError, match="add up to 100, not 90"):
        az.backend.set_traffic(ENDPOINT, {"blue": 90})
    assert az.backend.endpoint(ENDPOINT).traffic == {"blue": 50, "green": 50}


def test_a_deployment_that_fails_provisioning_leaves_the_traffic_alone(
    azure_deploy: AzureDeploy,
) -> None:
    az = azure_deploy
    deploy(az)
    az.world.failing_deployments["green"] = "ModuleNotFoundError: No module named 'mlflow'"
    updates = list(az.world.updates)
    with pytest.raises(PhiopsError) as failure:
        deploy(az)
    message = str(failure.value)
    assert message.startswith("deployment green on endpoint phi3-endpoint failed to provision")
    assert "User container has crashed or terminated" in message
    assert "the traffic is unchanged" in message
    assert "its log ends: " in message and "No module named 'mlflow'" in message
    assert "phiops endpoints logs phi3-endpoint --deployment green" in message
    assert "\n" not in message

    info = az.backend.endpoint(ENDPOINT)
    assert info.traffic == {"blue": 100, "green": 0}
    assert {d.name: d.state for d in info.deployments} == {"blue": "Succeeded", "green": "Failed"}
    assert az.world.updates == updates  # the endpoint was not touched
    assert {i["deployment"] for i in az.world.invocations} == {"blue"}  # no smoke test
    assert PREVIOUS_TRAFFIC_TAG not in tags(az)
    with pytest.raises(PhiopsError, match="green on endpoint phi3-endpoint is Failed"):
        az.backend.set_traffic(ENDPOINT, {"green": 100})
    # The next deploy goes beside the failed one; it stays until deleted on purpose.
    assert deploy(az).traffic == {"blue": 0, "blue-2": 100, "green": 0}


def test_a_deployment_that_fails_its_smoke_test_gets_no_traffic(
    azure_deploy: AzureDeploy,
) -> None:
    az = azure_deploy
    deploy(az)
    az.world.broken_deployments["green"] = '{"error": "CUDA out of memory"}'
    with pytest.raises(PhiopsError) as failure:
        deploy(az)
    message = str(failure.value)
    assert "deployment green on endpoint phi3-endpoint is up but failed its smoke test" in message
    assert "not a JSON list of strings" in message and "CUDA out of memory" in message
    assert "green stays at 0%" in message
    assert az.backend.endpoint(ENDPOINT).traffic == {"blue": 100, "green": 0}


def test_no_quota_stops_before_anything_is_created(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    az.world.quota[SERVING_FAMILY] = (20, 24)  # 4 free, one E4s_v3 (+20%: 2 x 4) needs 8
    with pytest.raises(PhiopsError) as failure:
        deploy(az)
    message = str(failure.value)
    assert message.startswith("not enough quota for 1 x Standard_E4s_v3")
    assert "uses 20 of 24 vCPUs and the deployment needs 8" in message
    assert "Quotas page" in message
    assert az.world.created[-1] == ("model", "phi3-finetuned:1")  # no endpoint, no deployment


def test_azures_own_quota_refusal_is_one_sentence(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    az.world.quota[SERVING_FAMILY] = (20, 24)
    az.world.denied.add("compute.list_usage")  # phiops cannot look: Azure says it instead
    with pytest.raises(PhiopsError) as failure:
        deploy(az)
    message = str(failure.value)
    assert message.startswith(
        "Azure ML refused to create deployment blue on endpoint phi3-endpoint for lack of quota"
    )
    assert "Current usage/limit: 20/24" in message and "Quotas page" in message
    assert created(az, "online deployment") == []


def test_an_existing_endpoint_is_reused_never_deleted(azure_deploy: AzureDeploy) -> None:
    """An endpoint someone made by hand, with a deployment named blue taking the traffic."""
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    az = azure_deploy
    ops = az.clients.ml_client
    ops.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name=ENDPOINT, auth_mode="key", tags={"owner": "alice"})
    ).result()
    model = az.backend.register_model()
    ops.online_deployments.begin_create_or_update(  # a no-code MLflow deployment
        ManagedOnlineDeployment(
            name="blue",
            endpoint_name=ENDPOINT,
            model=f"azureml:{model.name}:{model.version}",
            instance_type=az.config.deployment_instance_type,
            instance_count=1,
        )
    ).result()
    endpoint = ops.online_endpoints.get(ENDPOINT)
    endpoint.traffic = {"blue": 100}
    ops.online_endpoints.begin_create_or_update(endpoint).result()
    keys = ops.online_endpoints.get_keys(ENDPOINT)
    az.world.created.clear()

    info = az.backend.deploy(model, ENDPOINT, progress=az.progress.append)
    assert created(az, "online endpoint") == [] and az.world.deleted == []
    assert created(az, "online deployment") == ["green"]
    assert info.traffic == {"blue": 0, "green": 100}
    assert tags(az)["owner"] == "alice"  # the user's tags survive the traffic update
    assert ops.online_endpoints.get_keys(ENDPOINT).primary_key == keys.primary_key


def test_a_named_deployment_that_exists_is_not_overwritten(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    with pytest.raises(PhiopsError, match="deployment blue already exists on endpoint"):
        deploy(az, deployment="blue")
    assert created(az, "online deployment") == ["blue"]
    info = deploy(az, deployment="canary")
    assert info.traffic == {"blue": 0, "canary": 100}


def test_an_endpoint_without_keys_is_refused(azure_deploy: AzureDeploy) -> None:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    az = azure_deploy
    az.clients.ml_client.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name=ENDPOINT, auth_mode="aml_token")
    ).result()
    with pytest.raises(PhiopsError, match="uses aml_token authentication"):
        deploy(az)
    assert created(az, "online deployment") == []


def test_bad_input_is_refused_before_azure_is_asked(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    model = az.backend.register_model()
    with pytest.raises(PhiopsError, match="endpoint name 'x_y' is not valid"):
        az.backend.deploy(model, "x_y")
    with pytest.raises(PhiopsError, match="traffic must be between 0 and 100, not 120"):
        az.backend.deploy(model, ENDPOINT, traffic=120)
    with pytest.raises(PhiopsError, match="deployment name 'b' is not valid"):
        az.backend.deploy(model, ENDPOINT, deployment="b")
    with pytest.raises(NotFoundError, match="model phi3-finetuned:9 is not in the Azure ML"):
        az.backend.deploy(ModelVersion("phi3-finetuned", "9"), ENDPOINT)
    assert created(az, "online endpoint") == created(az, "online deployment") == []


def test_a_model_without_a_version_deploys_the_latest(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    az.backend.register_model()
    az.backend.register_model()
    info = az.backend.deploy(ModelVersion("phi3-finetuned", ""), ENDPOINT)
    assert [d.model for d in info.deployments] == ["phi3-finetuned:2"]


def test_long_operations_report_that_they_are_still_running(azure_deploy: AzureDeploy) -> None:
    class SlowPoller:
        def __init__(self) -> None:
            self.waits = 0

        def done(self) -> bool:
            return self.waits >= 3

        def wait(self, timeout: float | None = None) -> None:
            self.waits += 1

        def result(self) -> str:
            return "finished"

    said: list[str] = []
    result = azure_deploy.endpoints._wait(SlowPoller(), said.append, "provisioning deployment x")
    assert result == "finished"
    assert said == ["provisioning deployment x (0 min so far)"] * 2


# -- keys, status, logs ---------------------------------------------------------------------


def test_keys_come_from_azure_and_are_kept_owner_only(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    keys = az.backend.endpoint_keys(ENDPOINT)
    primary, secondary = az.world.endpoint_keys[
        (az.config.subscription_id, "phi3-rg", "phi3-ws", ENDPOINT)
    ]
    assert (keys.primary, keys.secondary) == (primary, secondary)
    assert az.secrets.get(endpoint_key_name("azure", ENDPOINT)) == primary
    assert stat.S_IMODE(az.secrets.path.stat().st_mode) == 0o600
    shown = mask(keys.primary)
    assert shown != primary and len(shown) < 12
    assert redact(f"Bearer {primary}", az.secrets.values()) == f"Bearer {shown}"
    # Nothing phiops says or returns about the endpoint carries the key.
    said = " ".join(az.progress) + json.dumps(az.backend.endpoint(ENDPOINT).to_dict())
    assert primary not in said and secondary not in said


def test_keys_of_a_token_endpoint_are_one_sentence(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    az.world.denied.add("online_endpoints.get_keys")
    with pytest.raises(PhiopsError, match="Azure ML refused to read the keys of endpoint"):
        az.backend.endpoint_keys(ENDPOINT)


def test_status_lists_endpoints_deployments_and_settings(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    deploy(az, traffic=10)
    [info] = az.backend.endpoints()
    assert info.name == ENDPOINT and info.traffic == {"blue": 90, "green": 10}
    green = info.deployments[1]
    assert green.name == "green" and green.endpoint == ENDPOINT
    assert green.scoring_uri == info.scoring_uri
    assert green.request_settings.max_concurrent_requests_per_instance == 3
    assert green.request_settings.request_timeout_ms == 180_000
    assert green.request_settings.max_queue_wait_ms == 120_000
    assert json.loads(json.dumps(info.to_dict()))["deployments"][0]["name"] == "blue"
    # Settings other than the seed's reach Azure and come back in the status.
    wanted = RequestSettings(
        max_concurrent_requests_per_instance=8, request_timeout_ms=60_000, max_queue_wait_ms=2_000
    )
    info = deploy(az, traffic=0, request_settings=wanted)
    settings = {d.name: d.request_settings for d in info.deployments}
    assert settings == {"blue": RequestSettings(), "green": RequestSettings(), "blue-2": wanted}
    with pytest.raises(NotFoundError, match="no online endpoint named nope-endpoint"):
        az.backend.endpoint("nope-endpoint")


def test_logs_are_the_deployments_tail(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    text = az.backend.deployment_logs(ENDPOINT, "blue", lines=2)
    assert text.splitlines() == ["Loading the model", "Model loaded; listening on port 5001"]
    with pytest.raises(NotFoundError, match="cannot read the logs of deployment red"):
        az.backend.deployment_logs(ENDPOINT, "red")


# -- delete ---------------------------------------------------------------------------------


def test_a_deployment_with_traffic_beside_another_is_not_deleted(
    azure_deploy: AzureDeploy,
) -> None:
    az = azure_deploy
    deploy(az)
    deploy(az, traffic=30)
    with pytest.raises(PhiopsError, match="Deployment green still takes 30% of the traffic"):
        az.backend.delete_deployment(ENDPOINT, "green")
    assert az.world.deleted == []
    with pytest.raises(NotFoundError, match="has no deployment named red"):
        az.backend.delete_deployment(ENDPOINT, "red")


def test_deleting_the_idle_deployment_keeps_rollback_honest(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    deploy(az)  # green 100, previous {"blue": 100}
    az.backend.delete_deployment(ENDPOINT, "blue")
    assert az.world.deleted == [("online deployment", "blue")]
    info = az.backend.endpoint(ENDPOINT)
    assert info.traffic == {"green": 100}
    assert PREVIOUS_TRAFFIC_TAG not in tags(az)  # blue is gone: nothing to roll back to
    with pytest.raises(PhiopsError, match="Nothing to roll back to"):
        az.backend.rollback(ENDPOINT)


def test_the_last_deployment_is_taken_out_of_traffic_then_deleted(
    azure_deploy: AzureDeploy,
) -> None:
    az = azure_deploy
    deploy(az)
    az.backend.delete_deployment(ENDPOINT, "blue")  # Azure refuses while it has traffic
    info = az.backend.endpoint(ENDPOINT)
    assert info.deployments == [] and info.traffic == {}


def test_delete_endpoint_forgets_its_key(azure_deploy: AzureDeploy) -> None:
    az = azure_deploy
    deploy(az)
    assert az.secrets.get(endpoint_key_name("azure", ENDPOINT))
    az.backend.delete_endpoint(ENDPOINT)
    assert ("online endpoint", ENDPOINT) in az.world.deleted
    assert az.backend.endpoints() == []
    assert az.secrets.get(endpoint_key_name("azure", ENDPOINT)) is None
    with pytest.raises(NotFoundError, match="cannot delete endpoint phi3-endpoint: not found"):
        az.backend.delete_endpoint(ENDPOINT)


def test_a_secrets_file_that_cannot_be_written_does_not_undo_a_deploy(
    azure_deploy: AzureDeploy,
) -> None:
    az = azure_deploy
    az.secrets.path.parent.mkdir(parents=True, exist_ok=True)
    az.secrets.path.write_text("{ not json")
    info = deploy(az)
    assert info.traffic == {"blue": 100}
    assert any(m.startswith("deployed, but the key was not kept:") for m in az.progress)
    assert az.secrets.path.read_text() == "{ not json"  # phiops never overwrites it
