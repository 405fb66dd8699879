"""`check_resources` against the fake Azure (the SDKs' own HTTP calls, answered as the REST
spec says): every finding ok / missing / wrong, with its message and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.azure.blueprint import ROLE_NEEDS
from core.azure.credentials import NotSignedInError
from core.azure.resources import check_resources, needs_attention
from core.backend import Finding, FindingState
from core.config import Config
from tests.azure_standins import (
    CPU_SIZE,
    GPU_FAMILY,
    GPU_SIZE,
    OTHER_SUBSCRIPTION,
    SUBSCRIPTION,
    AzureWorld,
    provision,
)

OK, MISSING, WRONG, UNKNOWN = (
    FindingState.OK,
    FindingState.MISSING,
    FindingState.WRONG,
    FindingState.UNKNOWN,
)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(
        path=tmp_path / "phiops.toml",
        backend="azure",
        subscription_id=SUBSCRIPTION,
        resource_group="phi3-rg",
        workspace="phi3-ws",
        location="eastus2",
        identity_name="phi3-identity",
        compute_name="gpu-cluster",
        compute_vm_size=GPU_SIZE,
    )


@pytest.fixture
def world(config: Config) -> AzureWorld:
    return provision(AzureWorld(), config)


def check(world: AzureWorld, config: Config) -> dict[str, Finding]:
    return {item.name: item for item in check_resources(config, world.clients(config))}


def test_everything_in_place_is_ok(world: AzureWorld, config: Config) -> None:
    world.nodes["gpu-cluster"] = 2
    findings = check(world, config)
    assert {name: item.state for name, item in findings.items()} == dict.fromkeys(findings, OK)
    assert not needs_attention(list(findings.values()))
    assert findings["subscription"].detail == f"Research ({SUBSCRIPTION}), Enabled"
    assert findings["storage account"].detail == "phi3wsstore1234"
    assert "Standard_NC24ads_A100_v4, Succeeded, 0-1 nodes, 2 node(s) now" in (
        findings["compute cluster"].detail
    )
    assert "identity phi3-identity" in findings["compute cluster"].detail
    assert findings["VM quota"].detail == (
        f"{GPU_FAMILY} in eastus2: 0 of 96 vCPUs used; 1 x {GPU_SIZE} needs 24"
    )
    assert findings["role AcrPull"].detail == "AcrPull on container registry phi3wsacr1234"
    assert world.created == []  # a check never creates


def test_not_signed_in_is_one_sentence(world: AzureWorld, config: Config) -> None:
    world.signed_in = False
    with pytest.raises(NotSignedInError) as raised:
        check(world, config)
    message = str(raised.value)
    assert message.startswith("cannot sign in to Azure: no Azure login was found; run `az login`")
    assert "--device-code" in message and "\n" not in message
    assert "EnvironmentCredential" not in message  # not the SDK's page of text


def test_subscription_missing_from_config(world: AzureWorld, config: Config) -> None:
    config.subscription_id = ""
    findings = check(world, config)
    assert findings["subscription"].state == MISSING
    assert "phiops config init --from-azure" in findings["subscription"].fix
    assert findings["workspace"].state == UNKNOWN  # nothing else can be looked at
    assert findings["workspace"].detail == "not checked until the items above are fixed"


def test_subscription_id_that_is_not_a_guid(world: AzureWorld, config: Config) -> None:
    config.subscription_id = "my-subscription"
    finding = check(world, config)["subscription"]
    assert finding.state == WRONG
    assert finding.detail == "subscription_id 'my-subscription' is not a subscription id (a GUID)"
    assert "az account list -o table" in finding.fix


def test_wrong_subscription_names_the_ones_the_login_sees(
    world: AzureWorld, config: Config
) -> None:
    config.subscription_id = OTHER_SUBSCRIPTION
    findings = check(world, config)
    finding = findings["subscription"]
    assert finding.state == WRONG and finding.required
    assert finding.detail == (
        f"subscription {OTHER_SUBSCRIPTION} is not visible to the signed-in account; "
        f"it sees Research ({SUBSCRIPTION})"
    )
    assert "phiops config set subscription_id ID" in finding.fix
    assert "az login --tenant" in finding.fix
    assert needs_attention(list(findings.values()))


def test_missing_resource_group(config: Config) -> None:
    findings = check(AzureWorld(), config)
    finding = findings["resource group"]
    assert finding.state == MISSING
    assert finding.detail == "resource group phi3-rg does not exist"
    assert finding.fix == (
        "`phiops resources ensure`, or: az group create --name phi3-rg --location eastus2"
    )
    assert findings["managed identity"].state == MISSING
    assert "az identity create --name phi3-identity --resource-group phi3-rg" in (
        findings["managed identity"].fix
    )


def test_missing_workspace(config: Config) -> None:
    world = AzureWorld()
    world.add_group("phi3-rg")
    finding = check(world, config)["workspace"]
    assert finding.state == MISSING
    assert finding.detail == "workspace phi3-ws does not exist in phi3-rg"
    assert finding.fix.endswith(
        "az ml workspace create --name phi3-ws --resource-group phi3-rg --location eastus2"
    )


def test_workspace_in_another_region(world: AzureWorld, config: Config) -> None:
    config.location = "westus"
    finding = check(world, config)["workspace"]
    assert finding.state == WRONG
    assert "is in eastus2, but location is westus" in finding.detail
    assert finding.fix == "`phiops config set location eastus2`"


def test_workspace_without_registry_and_a_deleted_storage_account(config: Config) -> None:
    world = AzureWorld()
    world.add_group("phi3-rg")
    workspace = world.add_workspace("phi3-rg", "phi3-ws", registry=False, insights=False)
    world.delete(workspace["properties"]["storageAccount"])
    identity = world.add_identity("phi3-rg", "phi3-identity")
    config.identity_client_id = identity["properties"]["clientId"]
    findings = check(world, config)
    assert findings["container registry"].state == MISSING
    assert "AcrPull cannot be granted until it has one" in findings["container registry"].detail
    assert "az acr create --name phi3wsacr" in findings["container registry"].fix
    assert findings["role AcrPull"].state == MISSING
    assert findings["role AcrPull"].detail == "AcrPull waits for the workspace's container registry"
    assert findings["storage account"].state == WRONG
    assert findings["storage account"].detail == (
        "the workspace uses storage account phi3wsstore1234, which no longer exists"
    )
    insights = findings["application insights"]
    assert insights.state == MISSING and not insights.required
    assert findings["key vault"].state == OK


def test_identity_not_named_or_not_there(world: AzureWorld, config: Config) -> None:
    config.identity_name = ""
    finding = check(world, config)["managed identity"]
    assert finding.state == MISSING
    assert "no identity_name in phiops.toml" in finding.detail
    assert finding.fix.startswith("`phiops config set identity_name phi3-identity`")

    config.identity_name = "other-identity"
    finding = check(world, config)["managed identity"]
    assert finding.state == MISSING
    assert finding.detail == "identity other-identity does not exist in phi3-rg"
    assert "az identity create --name other-identity" in finding.fix


def test_identity_client_id_empty_or_different(world: AzureWorld, config: Config) -> None:
    actual = config.identity_client_id
    config.identity_client_id = ""
    finding = check(world, config)["identity client id"]
    assert finding.state == MISSING
    assert finding.fix.endswith(f"`phiops config set identity_client_id {actual}`")

    config.identity_client_id = "00000000-0000-0000-0000-000000000000"
    finding = check(world, config)["identity client id"]
    assert finding.state == WRONG
    assert finding.detail == (
        "identity_client_id is 00000000-0000-0000-0000-000000000000, but identity "
        f"phi3-identity has client id {actual}"
    )


def test_missing_role_assignment_gives_the_az_command(world: AzureWorld, config: Config) -> None:
    acr_pull = ROLE_NEEDS[2]
    world.revoke(acr_pull.definition_guid)
    findings = check(world, config)
    finding = findings["role AcrPull"]
    registry = world.workspace()["properties"]["containerRegistry"]
    principal = world.identity()["properties"]["principalId"]
    assert finding.state == MISSING and finding.required
    assert finding.detail == "phi3-identity lacks AcrPull on container registry phi3wsacr1234"
    assert finding.fix == (
        "`phiops resources ensure`, or: az role assignment create "
        f"--assignee-object-id {principal} --assignee-principal-type ServicePrincipal "
        f'--role "AcrPull" --scope {registry}'
    )
    assert findings["role Contributor"].state == OK
    assert needs_attention(list(findings.values()))


def test_inherited_role_counts(world: AzureWorld, config: Config) -> None:
    contributor = ROLE_NEEDS[0]
    principal = world.identity()["properties"]["principalId"]
    world.revoke(contributor.definition_guid)
    world.grant(f"/subscriptions/{SUBSCRIPTION}", contributor.definition_guid, principal)
    finding = check(world, config)["role Contributor"]
    assert finding.state == OK
    assert finding.detail.endswith(f"(inherited from /subscriptions/{SUBSCRIPTION})")


def test_role_assignments_the_login_may_not_read(world: AzureWorld, config: Config) -> None:
    world.denied.add("role_assignments.list_for_scope")
    finding = check(world, config)["role Contributor"]
    assert finding.state == UNKNOWN and finding.required
    assert "may not read role assignments on phi3-rg" in finding.detail


def test_quota_zero_for_the_gpu_family(world: AzureWorld, config: Config) -> None:
    world.quota[GPU_FAMILY] = (0, 0)
    findings = check(world, config)
    finding = findings["VM quota"]
    assert finding.state == MISSING and finding.required
    assert finding.detail == (
        f"no quota for {GPU_FAMILY} in eastus2: 0 of 0 vCPUs used; 1 x {GPU_SIZE} needs 24"
    )
    assert finding.fix.startswith("quota is granted by Azure support, not by code")
    assert "Azure ML studio open Quota" in finding.fix
    assert f"select {GPU_FAMILY}" in finding.fix and "at least 24 vCPUs" in finding.fix
    assert "az ml compute list-usage --location eastus2" in finding.fix
    assert needs_attention(list(findings.values()))


def test_quota_used_up(world: AzureWorld, config: Config) -> None:
    world.quota[GPU_FAMILY] = (80, 96)
    finding = check(world, config)["VM quota"]
    assert finding.state == WRONG
    assert finding.detail.startswith("not enough free quota for one node")


def test_vm_size_not_offered(world: AzureWorld, config: Config) -> None:
    config.compute_vm_size = "Standard_ND96amsr_A100_v4"
    findings = check(world, config)
    assert findings["VM quota"].state == OK  # the existing cluster's size is what counts
    assert findings["compute cluster"].state == WRONG
    assert "its VM size is Standard_NC24ads_A100_v4, not compute_vm_size" in (
        findings["compute cluster"].detail
    )
    world.delete(world.compute()["id"])
    quota = check(world, config)["VM quota"]
    assert quota.state == WRONG
    assert "Standard_ND96amsr_A100_v4 is not offered" in quota.detail


def test_compute_missing_is_optional_and_others_are_listed(
    world: AzureWorld, config: Config
) -> None:
    world.delete(world.compute()["id"])
    world.add_compute("cpu", CPU_SIZE, max_nodes=2)
    findings = check(world, config)
    finding = findings["compute cluster"]
    assert finding.state == MISSING and not finding.required
    assert "az ml compute create --name gpu-cluster --type AmlCompute" in finding.fix
    assert "--min-instances 0 --max-instances 1 --idle-time-before-scale-down 1800" in finding.fix
    assert "--user-assigned-identities /subscriptions/" in finding.fix
    assert findings["compute cpu"].detail.startswith("cpu: Standard_DS3_v2, Succeeded, 0-2 nodes")
    assert not needs_attention(list(findings.values()))


def test_compute_without_the_identity(world: AzureWorld, config: Config) -> None:
    world.add_compute("gpu-cluster", GPU_SIZE)
    finding = check(world, config)["compute cluster"]
    assert finding.state == WRONG
    assert finding.detail == "gpu-cluster: identity phi3-identity is not attached"
    assert finding.fix.startswith("az ml compute update --name gpu-cluster")
    assert f"--user-assigned-identities {config.identity_resource_id}" in finding.fix


@pytest.mark.parametrize("names", ["spec", "family"])
def test_quota_is_read_whichever_way_the_service_names_the_family(
    world: AzureWorld, config: Config, names: str
) -> None:
    """The REST spec's example names a family's usage in words ("Standard NCADSA100v4
    Family Cluster Dedicated vCPUs"), the service also by the family itself; the size's
    vCPUs come back under the REST key `vCPUs`. Low-priority usage of the same family
    (limit -1) must not be taken for it."""
    world.usage_names = names
    world.quota[GPU_FAMILY] = (72, 96)
    finding = check(world, config)["VM quota"]
    assert finding.state == OK
    assert (
        finding.detail == f"{GPU_FAMILY} in eastus2: 72 of 96 vCPUs used; 1 x {GPU_SIZE} needs 24"
    )
