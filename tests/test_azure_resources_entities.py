"""The entities `ensure` creates, validated offline by the SDKs' own models and schemas."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from core.azure.blueprint import (
    ROLE_NEEDS,
    build_cluster,
    build_identity,
    build_registry,
    build_resource_group,
    build_role_assignment,
    build_workspace,
    registry_name,
    role_assignment_name,
)
from core.config import Config
from tests.azure_standins import GPU_SIZE, SUBSCRIPTION

PRINCIPAL = "0b1ec700-0000-0000-0000-000000000001"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(
        path=tmp_path / "phiops.toml",
        subscription_id=SUBSCRIPTION,
        resource_group="phi3-rg",
        workspace="phi3-ws",
        location="eastus2",
        identity_name="phi3-identity",
        compute_name="gpu-cluster",
        compute_vm_size=GPU_SIZE,
        compute_max_nodes=3,
    )


def test_workspace_round_trips_through_the_sdk_schema(config: Config, tmp_path: Path) -> None:
    from azure.ai.ml import load_workspace

    registry = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/phi3-rg"
        "/providers/Microsoft.ContainerRegistry/registries/acr"
    )
    workspace = build_workspace(config, registry)
    data = workspace._to_dict()
    assert data["name"] == "phi3-ws"
    assert data["location"] == "eastus2"
    assert data["resource_group"] == "phi3-rg"
    assert data["container_registry"] == registry
    assert data["tags"] == {"created-by": "phiops"}
    assert "storage_account" not in data  # Azure ML makes the storage, key vault, insights
    path = tmp_path / "workspace.yml"
    workspace.dump(path)
    loaded = load_workspace(source=path)
    assert (loaded.name, loaded.location, loaded.container_registry) == (
        "phi3-ws",
        "eastus2",
        registry,
    )
    rest = workspace._to_rest_object()  # what begin_create sends
    assert rest.location == "eastus2"


def test_cluster_round_trips_through_the_sdk_schema(config: Config, tmp_path: Path) -> None:
    from azure.ai.ml import load_compute

    data = build_cluster(config)._to_dict()
    assert data["type"] == "amlcompute"
    assert data["size"] == GPU_SIZE
    assert (data["min_instances"], data["max_instances"]) == (0, 3)
    assert data["idle_time_before_scale_down"] == 1800
    assert data["identity"]["type"] == "user_assigned"
    assert data["identity"]["user_assigned_identities"] == [
        {"resource_id": config.identity_resource_id}
    ]
    path = tmp_path / "compute.yml"
    build_cluster(config).dump(path)
    loaded = load_compute(source=path)
    assert loaded.min_instances == 0 and loaded.max_instances == 3
    assert loaded.identity.user_assigned_identities[0].resource_id == config.identity_resource_id


def test_identity_model(config: Config) -> None:
    from azure.mgmt.msi.models import Identity

    identity = build_identity(config)
    assert isinstance(identity, Identity)
    assert identity.serialize() == {"location": "eastus2", "tags": {"created-by": "phiops"}}


@pytest.mark.parametrize("need", ROLE_NEEDS, ids=lambda need: need.role)
def test_role_assignment_parameters(config: Config, need) -> None:
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    parameters = build_role_assignment(config, need, PRINCIPAL)
    assert isinstance(parameters, RoleAssignmentCreateParameters)
    body = parameters.serialize()["properties"]
    assert body["roleDefinitionId"] == (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
        f"{need.definition_guid}"
    )
    assert body["principalId"] == PRINCIPAL
    assert body["principalType"] == "ServicePrincipal"
    assert parameters.as_dict()["principal_type"] == "ServicePrincipal"


def test_role_guids_are_the_built_in_ones() -> None:
    assert {need.role: need.definition_guid for need in ROLE_NEEDS} == {
        "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    }


def test_role_assignment_names_are_stable_guids() -> None:
    scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/phi3-rg"
    first = role_assignment_name(scope, ROLE_NEEDS[0], PRINCIPAL)
    assert uuid.UUID(first)
    assert role_assignment_name(scope.upper(), ROLE_NEEDS[0], PRINCIPAL) == first
    assert role_assignment_name(scope, ROLE_NEEDS[1], PRINCIPAL) != first


def test_resource_group_and_registry_models(config: Config) -> None:
    from azure.mgmt.resource.resources.models import GenericResource, ResourceGroup

    group = build_resource_group(config)
    assert isinstance(group, ResourceGroup)
    assert group.as_dict() == {"location": "eastus2", "tags": {"created-by": "phiops"}}
    registry = build_registry(config)
    assert isinstance(registry, GenericResource)
    assert registry.as_dict()["sku"] == {"name": "Basic"}
    assert registry.as_dict()["properties"] == {"adminUserEnabled": True}


def test_registry_name_is_valid_and_stable(config: Config) -> None:
    name = registry_name(config)
    assert re.fullmatch(r"[a-z0-9]{5,50}", name)
    assert name == registry_name(config)
    config.workspace = "Another_Workspace-With-A-Very-Long-Name-That-Goes-On-And-On"
    assert re.fullmatch(r"[a-z0-9]{5,50}", registry_name(config))
