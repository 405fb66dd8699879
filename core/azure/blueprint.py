"""What phiops wants to exist in Azure, as names, the SDKs' own models, and `az` commands.

One place for the seed's resources: the finding names the check reports, the three roles
the compute's identity needs (built-in role GUIDs), the entities `ensure` creates
(`ResourceGroup`, `Workspace`, a registry as a `GenericResource`, `Identity`,
`RoleAssignmentCreateParameters`, `AmlCompute`) and the command a person would type
instead. The check (`resources.py`) and the creator (`ensure.py`) both read it.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

from core.config import Config

TAGS = {"created-by": "phiops"}
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
ACR_API_VERSION = "2023-07-01"
# API versions to ask whether a linked resource still exists, by resource type.
API_VERSIONS = {
    "microsoft.storage/storageaccounts": "2023-05-01",
    "microsoft.keyvault/vaults": "2023-07-01",
    "microsoft.containerregistry/registries": ACR_API_VERSION,
    "microsoft.insights/components": "2020-02-02",
}
QUOTA_REQUEST = (
    "quota is granted by Azure support, not by code: in Azure ML studio open Quota, pick the "
    "subscription and {location}, select {family} and choose Request quota (or Azure portal > "
    "Help + support > Create a support request > Service and subscription limits (quotas) > "
    "Machine Learning Service: Virtual Machine Quota), asking for at least {vcpus} vCPUs; "
    "see the numbers with `az ml compute list-usage --location {location} -o table`"
)

# Finding names, in the order the check reports them.
SUBSCRIPTION = "subscription"
RESOURCE_GROUP = "resource group"
WORKSPACE = "workspace"
STORAGE = "storage account"
KEY_VAULT = "key vault"
REGISTRY = "container registry"
INSIGHTS = "application insights"
IDENTITY = "managed identity"
IDENTITY_CLIENT_ID = "identity client id"
COMPUTE = "compute cluster"
QUOTA = "VM quota"


@dataclass(frozen=True)
class RoleNeed:
    """A built-in role the compute's identity needs, and which resource it applies to."""

    role: str
    definition_guid: str
    target: str  # RESOURCE_GROUP, STORAGE or REGISTRY

    @property
    def finding(self) -> str:
        return f"role {self.role}"

    def scope_in(self, workspace: Any) -> str | None:
        """The ARM id the role applies to, for a workspace-linked target (else None)."""
        attribute = {STORAGE: "storage_account", REGISTRY: "container_registry"}.get(self.target)
        return getattr(workspace, attribute, None) if attribute and workspace is not None else None


ROLE_NEEDS = (
    RoleNeed("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c", RESOURCE_GROUP),
    RoleNeed("Storage Blob Data Reader", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1", STORAGE),
    RoleNeed("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d", REGISTRY),
)
# Linked resources: finding name, Workspace attribute, required.
LINKED = (
    (STORAGE, "storage_account", True),
    (KEY_VAULT, "key_vault", True),
    (REGISTRY, "container_registry", True),
    (INSIGHTS, "application_insights", False),
)
ORDER = (
    SUBSCRIPTION,
    RESOURCE_GROUP,
    WORKSPACE,
    *(name for name, _, _ in LINKED),
    IDENTITY,
    IDENTITY_CLIENT_ID,
    *(need.finding for need in ROLE_NEEDS),
    COMPUTE,
    QUOTA,
)
NOT_REQUIRED = {INSIGHTS}


def role_definition_id(subscription_id: str, need: RoleNeed) -> str:
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization"
        f"/roleDefinitions/{need.definition_guid}"
    )


def resource_group_id(config: Config) -> str:
    return f"/subscriptions/{config.subscription_id}/resourceGroups/{config.resource_group}"


def last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def resource_type(resource_id: str) -> str:
    """`microsoft.storage/storageaccounts` for a storage account's ARM id."""
    parts = resource_id.strip("/").split("/")
    lowered = [part.lower() for part in parts]
    if "providers" not in lowered or len(parts) < lowered.index("providers") + 3:
        return ""
    index = lowered.index("providers")
    return f"{lowered[index + 1]}/{lowered[index + 2]}"


def state_text(state: Any) -> str:
    return str(getattr(state, "value", state) or "")


# -- the entities phiops creates (real SDK models) --------------------------------------


def build_resource_group(config: Config) -> Any:
    from azure.mgmt.resource.resources.models import ResourceGroup

    return ResourceGroup(location=config.location, tags=dict(TAGS))


def registry_name(config: Config) -> str:
    """A container registry name for a new workspace: alphanumeric, global, and the same on
    every run for this workspace, so a retried `ensure` finds the one it made."""
    stem = re.sub(r"[^a-z0-9]", "", config.workspace.lower())[:38] or "phiops"
    key = f"{config.subscription_id}/{config.resource_group}/{config.workspace}".lower()
    return f"{stem}acr{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def build_registry(config: Config) -> Any:
    """A Basic registry with the admin user on, as Azure ML makes for its workspaces."""
    from azure.mgmt.resource.resources.models import GenericResource, Sku

    return GenericResource(
        location=config.location,
        sku=Sku(name="Basic"),
        properties={"adminUserEnabled": True},
        tags=dict(TAGS),
    )


def build_workspace(config: Config, container_registry: str | None = None) -> Any:
    """The workspace; Azure ML creates its storage account, key vault and insights."""
    from azure.ai.ml.entities import Workspace

    return Workspace(
        name=config.workspace,
        location=config.location,
        resource_group=config.resource_group,
        description="phiops: fine-tune a Phi-3 model, deploy it and chat with it",
        container_registry=container_registry,
        tags=dict(TAGS),
    )


def build_identity(config: Config) -> Any:
    from azure.mgmt.msi.models import Identity

    return Identity(location=config.location, tags=dict(TAGS))


def build_role_assignment(config: Config, need: RoleNeed, principal_id: str) -> Any:
    """`principal_type` ServicePrincipal lets Azure accept a just-created identity at once."""
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    return RoleAssignmentCreateParameters(
        role_definition_id=role_definition_id(config.subscription_id, need),
        principal_id=principal_id,
        principal_type="ServicePrincipal",
        description=f"phiops: {need.role} for the training and serving identity",
    )


def role_assignment_name(scope: str, need: RoleNeed, principal_id: str) -> str:
    """A GUID fixed by (scope, role, principal): a retried create is the same assignment."""
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{need.definition_guid}|{principal_id}")
    )


def build_cluster(config: Config) -> Any:
    """The training cluster: min 0 nodes (free when idle), the identity attached."""
    from core.azure.jobs import build_compute

    return build_compute(config, nodes=1)


def yaml_documents(documents: list[tuple[str, dict]]) -> str:
    """Entities as YAML documents, each headed by a comment saying what it is."""
    import json

    import yaml

    return "---\n".join(
        f"# {title}\n" + yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False)
        for title, data in documents
    )


def blueprint_documents(config: Config) -> list[tuple[str, dict]]:
    """Everything `ensure` creates where nothing exists yet, as the SDKs serialise it: the
    plan when Azure's state is unknown (`resources ensure --dry-run` without a sign-in)."""
    group = resource_group_id(config)
    registry = f"{group}/providers/Microsoft.ContainerRegistry/registries/{registry_name(config)}"
    principal = f"<principal id of {config.identity_name or 'the identity'}>"
    documents = [
        (f"resource group {config.resource_group}", build_resource_group(config).as_dict()),
        (f"container registry {registry_name(config)}", build_registry(config).as_dict()),
        (f"workspace {config.workspace}", build_workspace(config, registry)._to_dict()),
        (f"managed identity {config.identity_name}", build_identity(config).as_dict()),
    ]
    for need in ROLE_NEEDS:
        documents.append(
            (
                f"role assignment {need.role} on the {need.target}",
                build_role_assignment(config, need, principal).as_dict(),
            )
        )
    documents.append((f"compute cluster {config.compute_name}", build_cluster(config)._to_dict()))
    return documents


# -- fixes, as a person would type them ----------------------------------------------------


def fix_config(key: str, hint: str = "NAME") -> str:
    return f"`phiops config set {key} {hint}`, or `phiops config init --from-azure`"


def az_group_create(config: Config) -> str:
    return f"az group create --name {config.resource_group} --location {config.location}"


def az_workspace_create(config: Config) -> str:
    return (
        f"az ml workspace create --name {config.workspace} "
        f"--resource-group {config.resource_group} --location {config.location}"
    )


def az_identity_create(config: Config) -> str:
    return (
        f"az identity create --name {config.identity_name} "
        f"--resource-group {config.resource_group} --location {config.location}"
    )


def az_role_create(need: RoleNeed, principal_id: str, scope: str) -> str:
    return (
        f"az role assignment create --assignee-object-id {principal_id} "
        f'--assignee-principal-type ServicePrincipal --role "{need.role}" --scope {scope}'
    )


def az_compute_create(config: Config) -> str:
    from core.azure.jobs import IDLE_SCALE_DOWN_SECONDS

    command = (
        f"az ml compute create --name {config.compute_name} --type AmlCompute "
        f"--size {config.compute_vm_size} --min-instances 0 "
        f"--max-instances {config.compute_max_nodes} "
        f"--idle-time-before-scale-down {IDLE_SCALE_DOWN_SECONDS} "
        f"--resource-group {config.resource_group} --workspace-name {config.workspace}"
    )
    if config.identity_resource_id:
        command += (
            " --identity-type UserAssigned --user-assigned-identities "
            + config.identity_resource_id
        )
    return command


def az_registry_attach(config: Config) -> str:
    name = registry_name(config)
    return (
        f"az acr create --name {name} --resource-group {config.resource_group} --sku Basic "
        f"--admin-enabled true, then az ml workspace update --name {config.workspace} "
        f"--resource-group {config.resource_group} --container-registry "
        f"{resource_group_id(config)}/providers/Microsoft.ContainerRegistry/registries/{name} "
        "--update-dependent-resources (Azure ML also makes one at the first environment build)"
    )


def with_ensure(command: str) -> str:
    return f"`phiops resources ensure`, or: {command}"
