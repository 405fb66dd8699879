"""`ensure` against the fake Azure at the HTTP transport: the plan, what it creates (the
SDKs' own requests, the workspace through the ARM template deployment the SDK sends),
idempotence, --dry-run, and what it never does (change what exists, grant quota)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.azure.blueprint import ROLE_NEEDS, registry_name
from core.azure.ensure import ensure_resources, plan_resources
from core.azure.resources import check_resources, needs_attention
from core.backend import FindingState
from core.config import Config, load_config, write_config_values
from core.errors import PhiopsError
from tests.azure_fake.transport import AzureError
from tests.azure_standins import GPU_FAMILY, GPU_SIZE, SUBSCRIPTION, AzureWorld, provision

SETTINGS = {
    "backend": "azure",
    "subscription_id": SUBSCRIPTION,
    "resource_group": "phi3-rg",
    "workspace": "phi3-ws",
    "location": "eastus2",
    "identity_name": "phi3-identity",
    "compute_name": "gpu-cluster",
    "compute_vm_size": GPU_SIZE,
    "compute_max_nodes": 2,
}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "phiops.toml"
    write_config_values(path, SETTINGS)
    return load_config(path, env={})


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> AzureWorld:
    """An empty Azure; the SDK's own clients (the workspace's template deployment) meet it too."""
    made = AzureWorld()
    made.patch(monkeypatch)
    return made


def registry_id(config: Config) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/phi3-rg/providers/"
        f"Microsoft.ContainerRegistry/registries/{registry_name(config)}"
    )


def test_ensure_from_nothing_creates_everything_in_order(config: Config, world: AzureWorld) -> None:
    messages: list[str] = []
    report = ensure_resources(config, world.clients(config), progress=messages.append)
    kinds = [kind for kind, _ in world.created]
    assert kinds == [
        "resource group",
        "registries",
        "workspace",
        "managed identity",
        "role assignment",
        "role assignment",
        "role assignment",
        "compute",
    ]
    assert "creating workspace phi3-ws" in messages
    assert messages[0] == "create resource group phi3-rg in eastus2"
    assert len(report.created) == len(report.plan.steps) == 8  # + the recorded client id
    # afterwards the check finds everything in place
    states = {item.name: item.state for item in report.findings}
    assert set(states.values()) == {FindingState.OK}, states
    assert report.to_dict()["ok"] is True
    # the identity's client id went into phiops.toml
    identity = world.identity()
    client_id, principal = identity["properties"]["clientId"], identity["properties"]["principalId"]
    assert load_config(config.path, env={}).identity_client_id == client_id
    # the roles are the three of the seed, at their scopes, for the identity
    workspace = world.workspace()["properties"]
    assert workspace["containerRegistry"] == registry_id(config)
    granted = {
        (item["properties"]["roleDefinitionId"].rsplit("/", 1)[-1], item["properties"]["scope"])
        for item in world.role_assignments
    }
    assert granted == {
        (ROLE_NEEDS[0].definition_guid, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/phi3-rg"),
        (ROLE_NEEDS[1].definition_guid, workspace["storageAccount"]),
        (ROLE_NEEDS[2].definition_guid, registry_id(config)),
    }
    assert {item["properties"]["principalId"] for item in world.role_assignments} == {principal}
    # the cluster: min 0 nodes, max from config, scale-down, the identity attached (as sent)
    cluster = world.compute()
    scale = cluster["properties"]["properties"]["scaleSettings"]
    assert (scale["minNodeCount"], scale["maxNodeCount"]) == (0, 2)
    assert scale["nodeIdleTimeBeforeScaleDown"] == "PT30M"
    assert list(cluster["identity"]["userAssignedIdentities"]) == [identity["id"]]


def test_ensure_twice_creates_nothing_the_second_time(config: Config, world: AzureWorld) -> None:
    ensure_resources(config, world.clients(config))
    created = list(world.created)
    second = ensure_resources(config, world.clients(config))
    assert second.plan.steps == [] and second.created == []
    assert world.created == created


def test_dry_run_creates_nothing(config: Config, world: AzureWorld) -> None:
    world.add_group("phi3-rg")
    report = ensure_resources(config, world.clients(config), dry_run=True)
    assert world.created == []
    assert report.created == [] and report.dry_run
    actions = [step["action"] for step in report.to_dict()["steps"]]
    assert actions[0].startswith("create workspace phi3-ws with a storage account")
    assert "create managed identity phi3-identity" in actions
    assert actions[-1].startswith("create compute cluster gpu-cluster")
    assert load_config(config.path, env={}).identity_client_id == ""  # not even the file


def test_only_the_missing_role_is_planned(config: Config, world: AzureWorld) -> None:
    provision(world, config)
    write_config_values(config.path, {**SETTINGS, "identity_client_id": config.identity_client_id})
    config = load_config(config.path, env={})
    world.revoke(ROLE_NEEDS[1].definition_guid)
    plan = plan_resources(config, world.clients(config))
    assert [step.fixes for step in plan.steps] == ["role Storage Blob Data Reader"]
    assert plan.manual == []
    plan.apply()
    assert [kind for kind, _ in world.created] == ["role assignment"]
    assert not needs_attention(check_resources(config, world.clients(config)))


def test_quota_and_wrong_things_are_explained_not_changed(
    config: Config, world: AzureWorld
) -> None:
    provision(world, config)
    write_config_values(config.path, {**SETTINGS, "identity_client_id": config.identity_client_id})
    config = load_config(config.path, env={})
    world.quota[GPU_FAMILY] = (0, 0)
    world.add_compute("gpu-cluster", GPU_SIZE, max_nodes=1)  # no identity
    report = ensure_resources(config, world.clients(config))
    assert report.plan.steps == [] and world.created == []
    manual = {item.name: item for item in report.plan.manual}
    assert set(manual) == {"compute cluster", "VM quota"}
    assert manual["VM quota"].fix.startswith("quota is granted by Azure support, not by code")
    assert manual["compute cluster"].fix.startswith("az ml compute update --name gpu-cluster")
    assert world.compute()["identity"] == {"type": "None"}
    assert needs_attention(report.findings)


def test_registry_of_an_existing_workspace_is_not_attached_by_code(
    config: Config, world: AzureWorld
) -> None:
    world.add_group("phi3-rg")
    world.add_workspace("phi3-rg", "phi3-ws", registry=False)
    plan = plan_resources(config, world.clients(config))
    fixes = [step.fixes for step in plan.steps]
    assert "workspace" not in fixes and "role AcrPull" not in fixes
    assert "role Contributor" in fixes and "role Storage Blob Data Reader" in fixes
    manual = {item.name: item for item in plan.manual}
    assert manual["container registry"].state == FindingState.MISSING
    plan.apply()
    assert ("workspace", "phi3-ws") not in world.created
    assert "containerRegistry" not in world.workspace()["properties"]


def test_a_retry_after_a_failure_reuses_what_was_made(config: Config, world: AzureWorld) -> None:
    plan = plan_resources(config, world.clients(config))
    world.failures["deployments.create_or_update"] = [
        AzureError(400, "QuotaExceeded", "Maximum number of workspaces per region reached.")
    ]
    with pytest.raises(
        PhiopsError, match=r"Azure refused to create workspace phi3-ws \(.*QuotaExceeded"
    ):
        plan.apply()
    assert [kind for kind, _ in world.created] == ["resource group", "registries"]
    ensure_resources(config, world.clients(config))
    assert [kind for kind, _ in world.created].count("registries") == 1  # same name, reused
    assert [kind for kind, _ in world.created].count("resource group") == 1


def test_a_wrong_subscription_plans_nothing(config: Config, world: AzureWorld) -> None:
    config.subscription_id = "99999999-8888-7777-6666-555555555555"
    plan = plan_resources(config, world.clients(config))
    assert plan.steps == []
    assert plan.manual[0].name == "subscription" and plan.manual[0].state == FindingState.WRONG


def test_settings_left_empty_are_not_invented(config: Config, world: AzureWorld) -> None:
    config.workspace = ""
    config.identity_name = ""
    plan = plan_resources(config, world.clients(config))
    assert [step.fixes for step in plan.steps] == ["resource group"]
    manual = {item.name: item for item in plan.manual}
    assert manual["managed identity"].fix.startswith("`phiops config set identity_name")
    plan.apply()
    assert world.created == [("resource group", "phi3-rg")]
