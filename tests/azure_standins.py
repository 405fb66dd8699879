"""Stand-ins for the Azure SDK's operations, over one in-memory `AzureWorld`.

There is no network here, so tests talk to these instead of Azure. They keep the SDKs'
call signatures and answer with the SDKs' own models (built the way the SDKs build them:
`Model.deserialize(json)` for the management planes, `Usage._from_rest_object` for quota),
raise the SDKs' own errors (`ResourceNotFoundError`, `ResourceExistsError`,
`ClientAuthenticationError`), and check that what phiops sends is the right model type.

`world.clients(config)` returns a real `AzureClients` wired to stand-ins for every client
it builds; `world.patch(monkeypatch)` makes every `AzureClients(config)` in phiops do the
same, for CLI tests. Every create is recorded in `world.created` as (kind, name).

To add an operation for another area (jobs, endpoints, models), add a method to the
operations class it belongs to (or a new class, attached in `StandInMLClient.__init__`),
keeping the SDK's signature, and keep its state on the world.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
OTHER_SUBSCRIPTION = "99999999-8888-7777-6666-555555555555"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
LOCATION = "eastus2"
GPU_SIZE = "Standard_NC24ads_A100_v4"
GPU_FAMILY = "standardNCADSA100v4Family"
CPU_SIZE = "Standard_DS3_v2"
CPU_FAMILY = "standardDSv2Family"


def not_found(code: str, message: str) -> Exception:
    from azure.core.exceptions import ResourceNotFoundError

    return ResourceNotFoundError(f"({code}) {message}")


def forbidden(message: str) -> Exception:
    from azure.core.exceptions import HttpResponseError

    error = HttpResponseError(f"(AuthorizationFailed) {message}")
    error.status_code = 403
    return error


def rg_id(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


class Poller:
    """An `LROPoller` whose operation has already finished."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> Any:
        return self.value

    def done(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> None:
        return None


@dataclass
class AzureWorld:
    """What exists in the stand-in Azure, keyed the way ARM keys it (lower-cased ids)."""

    subscriptions: dict[str, str] = field(default_factory=lambda: {SUBSCRIPTION: "Research"})
    signed_in: bool = True
    groups: dict[tuple[str, str], Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)  # generic ARM resources by id
    workspaces: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    identities: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    role_assignments: list[Any] = field(default_factory=list)
    computes: dict[tuple[str, str, str, str], Any] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    quota: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {GPU_FAMILY: (0, 96), CPU_FAMILY: (0, 100)}
    )
    denied: set[str] = field(default_factory=set)  # operation names that answer 403
    created: list[tuple[str, str]] = field(default_factory=list)
    token_requests: int = 0
    # Deploy: the model registry, online endpoints and their deployments, keyed like computes
    # (subscription, group, workspace, name...), stored in the REST form the SDK sends.
    models: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[tuple[str, str, str, str], Any] = field(default_factory=dict)
    deployments: dict[tuple[str, str, str, str, str], Any] = field(default_factory=dict)
    endpoint_keys: dict[tuple[str, str, str, str], tuple[str, str]] = field(default_factory=dict)
    deployment_logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    failing_deployments: dict[str, str] = field(default_factory=dict)  # name -> why it fails
    broken_deployments: dict[str, str] = field(default_factory=dict)  # name -> its /score body
    invocations: list[dict[str, Any]] = field(default_factory=list)  # what reached /score
    updates: list[tuple[str, str]] = field(default_factory=list)  # changes to what existed
    deleted: list[tuple[str, str]] = field(default_factory=list)
    jobs: dict[str, Any] = field(default_factory=dict)

    # -- wiring ----------------------------------------------------------------------

    def overrides(self, config: Any) -> dict[str, Any]:
        sub = config.subscription_id
        return {
            "credential": StandInCredential(self),
            "subscription_client": StandInSubscriptionClient(self),
            "resource_client": StandInResourceClient(self, sub),
            "authorization_client": StandInAuthorizationClient(self, sub),
            "msi_client": StandInMSIClient(self, sub),
            "ml_client": StandInMLClient(self, sub, config.resource_group, config.workspace),
        }

    def clients(self, config: Any) -> Any:
        from core.azure.client import AzureClients

        return AzureClients(config, **self.overrides(config))

    def patch(self, monkeypatch: Any) -> None:
        """Every `AzureClients(config)` phiops builds gets this world's stand-ins."""
        import core.azure.client as client_module

        real = client_module.AzureClients
        world = self

        class PatchedClients(real):  # type: ignore[misc, valid-type]
            def __init__(self, config: Any, **overrides: Any) -> None:
                super().__init__(config, **overrides)
                for name, stand_in in world.overrides(config).items():
                    self.__dict__.setdefault(name, stand_in)  # explicit overrides win

        monkeypatch.setattr(client_module, "AzureClients", PatchedClients)

    def record(self, kind: str, name: str) -> None:
        self.created.append((kind, name))

    def check_subscription(self, subscription: str) -> None:
        if subscription not in self.subscriptions:
            raise not_found(
                "SubscriptionNotFound", f"The subscription '{subscription}' could not be found."
            )

    def guard(self, operation: str) -> None:
        if operation in self.denied:
            raise forbidden(f"The client does not have authorization to perform {operation}.")

    # -- seeding: what exists before the test ------------------------------------------

    def add_group(
        self, group: str, subscription: str = SUBSCRIPTION, location: str = LOCATION
    ) -> None:
        from azure.mgmt.resource.resources.models import ResourceGroup

        self.groups[subscription, group.lower()] = ResourceGroup(
            {
                "id": rg_id(subscription, group),
                "name": group,
                "location": location,
                "properties": {"provisioningState": "Succeeded"},
            }
        )

    def add_workspace(
        self,
        group: str,
        name: str,
        *,
        subscription: str = SUBSCRIPTION,
        location: str = LOCATION,
        registry: bool = True,
        insights: bool = True,
    ) -> Any:
        """A workspace as Azure ML answers for it, with its linked resources existing."""
        from azure.ai.ml.entities import Workspace

        base = f"{rg_id(subscription, group)}/providers"
        stem = name.replace("-", "")[:12]
        linked = {
            "storage_account": f"{base}/Microsoft.Storage/storageAccounts/{stem}store1234",
            "key_vault": f"{base}/Microsoft.KeyVault/vaults/{stem}kv1234",
        }
        if insights:
            linked["application_insights"] = f"{base}/Microsoft.insights/components/{stem}ai1234"
        if registry:
            linked["container_registry"] = (
                f"{base}/Microsoft.ContainerRegistry/registries/{stem}acr1234"
            )
        for resource_id in linked.values():
            self.resources[resource_id.lower()] = {"id": resource_id}
        workspace = Workspace(name=name, location=location, resource_group=group, **linked)
        self.workspaces[subscription, group.lower(), name] = workspace
        return workspace

    def add_identity(self, group: str, name: str, subscription: str = SUBSCRIPTION) -> Any:
        from azure.mgmt.msi.models import Identity

        resource_id = (
            f"{rg_id(subscription, group)}/providers/Microsoft.ManagedIdentity"
            f"/userAssignedIdentities/{name}"
        )
        number = len(self.identities) + 1
        identity = Identity.deserialize(
            {
                "id": resource_id,
                "name": name,
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "location": LOCATION,
                "properties": {
                    "tenantId": TENANT,
                    "clientId": f"c1e47000-0000-0000-0000-{number:012d}",
                    "principalId": f"0b1ec700-0000-0000-0000-{number:012d}",
                },
            }
        )
        self.identities[subscription, group.lower(), name] = identity
        return identity

    def grant(
        self, scope: str, role_guid: str, principal_id: str, subscription: str = SUBSCRIPTION
    ) -> None:
        from azure.mgmt.authorization.models import RoleAssignment

        definition = (
            f"/subscriptions/{subscription}/providers/Microsoft.Authorization"
            f"/roleDefinitions/{role_guid}"
        )
        name = f"{len(self.role_assignments):08d}-0000-0000-0000-000000000000"
        self.role_assignments.append(
            RoleAssignment.deserialize(
                {
                    "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
                    "name": name,
                    "type": "Microsoft.Authorization/roleAssignments",
                    "properties": {
                        "scope": scope,
                        "roleDefinitionId": definition,
                        "principalId": principal_id,
                        "principalType": "ServicePrincipal",
                    },
                }
            )
        )

    def add_compute(self, subscription: str, group: str, workspace: str, compute: Any) -> Any:
        """Store a compute as the service answers: through its REST form, provisioned."""
        from azure.ai.ml.entities import AmlCompute

        stored = AmlCompute._load_from_rest(compute._to_rest_object())
        stored.name = compute.name  # ARM puts the name in the URL, not the body
        stored._provisioning_state = "Succeeded"
        self.computes[subscription, group.lower(), workspace, compute.name] = stored
        return stored


def add_job(world: AzureWorld, name: str, status: str = "Completed", **tags: str) -> Any:
    """A finished command job, as `ml_client.jobs.get` answers for it."""
    from azure.ai.ml.entities import CommandJob

    job = CommandJob(
        name=name,
        display_name=name,
        experiment_name="phi3-finetune",
        command="python fine_tune.py",
        environment="azureml:phi3-finetune-env:1",
        compute="gpu-cluster",
        tags={"phiops": "fine-tune", **tags},
    )
    job._status = status
    world.jobs[name] = job
    return job


class StandInCredential:
    """A `TokenCredential`; when the world is signed out it fails as DefaultAzureCredential does."""

    def __init__(self, world: AzureWorld) -> None:
        self.world = world

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken
        from azure.core.exceptions import ClientAuthenticationError

        self.world.token_requests += 1
        if not self.world.signed_in:
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed to retrieve a token from the included "
                "credentials.\nAttempted credentials:\n\tEnvironmentCredential: ...\n"
                "\tAzureCliCredential: Please run 'az login' to set up an account"
            )
        return AccessToken("stand-in-token", int(time.time()) + 3600)


# -- azure-mgmt-resource-subscriptions ---------------------------------------------------


class Subscriptions:
    def __init__(self, world: AzureWorld) -> None:
        self.world = world

    def _model(self, subscription: str) -> Any:
        from azure.mgmt.resource.subscriptions.models import Subscription

        return Subscription(
            {
                "id": f"/subscriptions/{subscription}",
                "subscriptionId": subscription,
                "displayName": self.world.subscriptions[subscription],
                "state": "Enabled",
                "tenantId": TENANT,
            }
        )

    def get(self, subscription_id: str, **kwargs: Any) -> Any:
        self.world.check_subscription(subscription_id)
        return self._model(subscription_id)

    def list(self, **kwargs: Any) -> list[Any]:
        return [self._model(subscription) for subscription in self.world.subscriptions]


class StandInSubscriptionClient:
    def __init__(self, world: AzureWorld) -> None:
        self.subscriptions = Subscriptions(world)


# -- azure-mgmt-resource -------------------------------------------------------------------


class ResourceGroups:
    def __init__(self, world: AzureWorld, subscription: str) -> None:
        self.world, self.subscription = world, subscription

    def get(self, resource_group_name: str, **kwargs: Any) -> Any:
        self.world.check_subscription(self.subscription)
        self.world.guard("resource_groups.get")
        try:
            return self.world.groups[self.subscription, resource_group_name.lower()]
        except KeyError:
            raise not_found(
                "ResourceGroupNotFound",
                f"Resource group '{resource_group_name}' could not be found.",
            ) from None

    def check_existence(self, resource_group_name: str, **kwargs: Any) -> bool:
        return (self.subscription, resource_group_name.lower()) in self.world.groups

    def create_or_update(self, resource_group_name: str, parameters: Any, **kwargs: Any) -> Any:
        from azure.mgmt.resource.resources.models import ResourceGroup

        assert isinstance(parameters, ResourceGroup), type(parameters)
        assert parameters.location, "a resource group needs a location"
        self.world.check_subscription(self.subscription)
        self.world.add_group(resource_group_name, self.subscription, parameters.location)
        self.world.record("resource group", resource_group_name)
        return self.world.groups[self.subscription, resource_group_name.lower()]

    def list(self, **kwargs: Any) -> list[Any]:
        return [group for (sub, _), group in self.world.groups.items() if sub == self.subscription]


class Resources:
    """Generic ARM resources: the workspace's linked resources, the registry phiops makes."""

    def __init__(self, world: AzureWorld, subscription: str) -> None:
        self.world, self.subscription = world, subscription

    def check_existence_by_id(self, resource_id: str, *, api_version: str, **kwargs: Any) -> bool:
        assert api_version, "ARM needs an api-version"
        return resource_id.lower() in self.world.resources

    def begin_create_or_update(
        self,
        resource_group_name: str,
        resource_provider_namespace: str,
        parent_resource_path: str,
        resource_type: str,
        resource_name: str,
        parameters: Any,
        *,
        api_version: str,
        **kwargs: Any,
    ) -> Poller:
        from azure.mgmt.resource.resources.models import GenericResource

        assert isinstance(parameters, GenericResource), type(parameters)
        assert api_version
        if (self.subscription, resource_group_name.lower()) not in self.world.groups:
            raise not_found(
                "ResourceGroupNotFound",
                f"Resource group '{resource_group_name}' could not be found.",
            )
        resource_id = (
            f"{rg_id(self.subscription, resource_group_name)}/providers/"
            f"{resource_provider_namespace}/{resource_type}/{resource_name}"
        )
        self.world.resources[resource_id.lower()] = {"id": resource_id, **parameters.as_dict()}
        self.world.record(resource_type, resource_name)
        return Poller(parameters)

    def list(self, filter: str | None = None, **kwargs: Any) -> list[Any]:
        """Only what discovery asks: workspaces, by `resourceType eq '…'`."""
        from azure.mgmt.resource.resources.models import GenericResourceExpanded

        self.world.check_subscription(self.subscription)
        assert filter is None or "Microsoft.MachineLearningServices/workspaces" in filter
        return [
            GenericResourceExpanded(
                {
                    "id": f"{rg_id(sub, workspace.resource_group)}/providers/"
                    f"Microsoft.MachineLearningServices/workspaces/{name}",
                    "name": name,
                    "type": "Microsoft.MachineLearningServices/workspaces",
                    "location": workspace.location,
                    "kind": "Default",
                }
            )
            for (sub, _, name), workspace in self.world.workspaces.items()
            if sub == self.subscription
        ]


class StandInResourceClient:
    def __init__(self, world: AzureWorld, subscription: str) -> None:
        self.resource_groups = ResourceGroups(world, subscription)
        self.resources = Resources(world, subscription)


# -- azure-mgmt-authorization ----------------------------------------------------------------


class RoleAssignments:
    def __init__(self, world: AzureWorld, subscription: str) -> None:
        self.world, self.subscription = world, subscription

    def list_for_scope(self, scope: str, filter: str | None = None, **kwargs: Any) -> list[Any]:
        """As ARM answers `principalId eq '…'`: that principal's assignments at, above or
        below the scope."""
        self.world.check_subscription(self.subscription)
        self.world.guard("role_assignments.list_for_scope")
        principal = None
        if filter:
            assert filter.startswith("principalId eq '"), filter
            principal = filter.split("'")[1]
        scope = scope.lower()
        return [
            item
            for item in self.world.role_assignments
            if (principal is None or item.principal_id == principal)
            and (scope.startswith(item.scope.lower()) or item.scope.lower().startswith(scope))
        ]

    def create(self, scope: str, role_assignment_name: str, parameters: Any, **kwargs: Any) -> Any:
        import uuid

        from azure.core.exceptions import ResourceExistsError
        from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

        assert isinstance(parameters, RoleAssignmentCreateParameters), type(parameters)
        uuid.UUID(role_assignment_name)  # ARM wants a GUID
        assert parameters.principal_type == "ServicePrincipal"
        self.world.check_subscription(self.subscription)
        for item in self.world.role_assignments:
            if (
                item.scope.lower() == scope.lower()
                and item.role_definition_id.lower() == parameters.role_definition_id.lower()
                and item.principal_id == parameters.principal_id
            ):
                raise ResourceExistsError(
                    "(RoleAssignmentExists) The role assignment already exists."
                )
        guid = parameters.role_definition_id.rsplit("/", 1)[-1]
        self.world.grant(scope, guid, parameters.principal_id, self.subscription)
        self.world.record("role assignment", f"{guid} on {scope}")
        return self.world.role_assignments[-1]


class StandInAuthorizationClient:
    def __init__(self, world: AzureWorld, subscription: str) -> None:
        self.role_assignments = RoleAssignments(world, subscription)


# -- azure-mgmt-msi ------------------------------------------------------------------------


class UserAssignedIdentities:
    def __init__(self, world: AzureWorld, subscription: str) -> None:
        self.world, self.subscription = world, subscription

    def get(self, resource_group_name: str, resource_name: str, **kwargs: Any) -> Any:
        self.world.check_subscription(self.subscription)
        try:
            return self.world.identities[
                self.subscription, resource_group_name.lower(), resource_name
            ]
        except KeyError:
            raise not_found(
                "ResourceNotFound",
                f"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{resource_name}' "
                f"under resource group '{resource_group_name}' was not found.",
            ) from None

    def create_or_update(
        self, resource_group_name: str, resource_name: str, parameters: Any, **kwargs: Any
    ) -> Any:
        from azure.mgmt.msi.models import Identity

        assert isinstance(parameters, Identity), type(parameters)
        assert parameters.location
        if (self.subscription, resource_group_name.lower()) not in self.world.groups:
            raise not_found(
                "ResourceGroupNotFound",
                f"Resource group '{resource_group_name}' could not be found.",
            )
        self.world.record("managed identity", resource_name)
        return self.world.add_identity(resource_group_name, resource_name, self.subscription)

    def list_by_resource_group(self, resource_group_name: str, **kwargs: Any) -> list[Any]:
        return [
            identity
            for (sub, group, _), identity in self.world.identities.items()
            if sub == self.subscription and group == resource_group_name.lower()
        ]

    def list_by_subscription(self, **kwargs: Any) -> list[Any]:
        return [i for (sub, _, _), i in self.world.identities.items() if sub == self.subscription]


class StandInMSIClient:
    def __init__(self, world: AzureWorld, subscription: str) -> None:
        self.user_assigned_identities = UserAssignedIdentities(world, subscription)


# -- azure-ai-ml's MLClient ------------------------------------------------------------------


class WorkspaceOperations:
    def __init__(self, world: AzureWorld, subscription: str, group: str) -> None:
        self.world, self.subscription, self.group = world, subscription, group

    def get(self, name: str | None = None, **kwargs: Any) -> Any:
        self.world.check_subscription(self.subscription)
        try:
            return self.world.workspaces[self.subscription, self.group.lower(), name]
        except KeyError:
            raise not_found(
                "ResourceNotFound",
                f"The Resource 'Microsoft.MachineLearningServices/workspaces/{name}' under "
                f"resource group '{self.group}' was not found.",
            ) from None

    def begin_create(self, workspace: Any, **kwargs: Any) -> Poller:
        """As Azure ML does: storage, key vault and insights are made; a registry is used
        only when one is named."""
        from azure.ai.ml.entities import Workspace

        assert isinstance(workspace, Workspace), type(workspace)
        workspace._to_rest_object()  # what the SDK sends; fails on a malformed entity
        group = workspace.resource_group or self.group
        if (self.subscription, group.lower()) not in self.world.groups:
            raise not_found(
                "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
            )
        registry = workspace.container_registry
        if registry and registry.lower() not in self.world.resources:
            raise not_found("ResourceNotFound", f"container registry {registry} was not found")
        created = self.world.add_workspace(
            group,
            workspace.name,
            subscription=self.subscription,
            location=workspace.location,
            registry=False,
        )
        created.container_registry = registry
        self.world.record("workspace", workspace.name)
        return Poller(created)

    def list(self, *, scope: str = "resource_group", **kwargs: Any) -> list[Any]:
        return [
            workspace
            for (sub, group, _), workspace in self.world.workspaces.items()
            if sub == self.subscription and (scope == "subscription" or group == self.group.lower())
        ]


class ComputeOperations:
    def __init__(self, world: AzureWorld, subscription: str, group: str, workspace: str) -> None:
        self.world = world
        self.key = (subscription, group.lower(), workspace)

    def _require_workspace(self) -> None:
        subscription, group, workspace = self.key
        if (subscription, group, workspace) not in self.world.workspaces:
            raise not_found("WorkspaceNotFound", f"Workspace {workspace} not found.")

    def get(self, name: str) -> Any:
        self._require_workspace()
        try:
            return self.world.computes[(*self.key, name)]
        except KeyError:
            raise not_found("ResourceNotFound", f"Compute {name} not found.") from None

    def list(self, *, compute_type: str | None = None) -> list[Any]:
        self._require_workspace()
        return [c for key, c in self.world.computes.items() if key[:3] == self.key]

    def list_nodes(self, name: str) -> list[Any]:
        from azure.ai.ml.entities import AmlComputeNodeInfo

        self.get(name)
        return [AmlComputeNodeInfo() for _ in range(self.world.nodes.get(name, 0))]

    def begin_create_or_update(self, compute: Any) -> Poller:
        from azure.ai.ml.entities import AmlCompute

        assert isinstance(compute, AmlCompute), type(compute)
        self._require_workspace()
        stored = self.world.add_compute(*self.key, compute)
        self.world.record("compute", compute.name)
        return Poller(stored)

    def list_sizes(
        self, *, location: str | None = None, compute_type: str | None = None
    ) -> list[Any]:
        from azure.ai.ml.entities import VmSize

        self.world.check_subscription(self.key[0])
        return [
            VmSize(name=GPU_SIZE, family=GPU_FAMILY, v_cp_us=24, gpus=1, memory_gb=220),
            VmSize(name="Standard_NC6s_v3", family="standardNCSv3Family", v_cp_us=6, gpus=1),
            VmSize(name=CPU_SIZE, family=CPU_FAMILY, v_cp_us=4, gpus=0),
        ]

    def list_usage(self, *, location: str | None = None) -> list[Any]:
        """As the SDK builds them: from the REST model, which leaves `name` a dict."""
        from azure.ai.ml._restclient.arm_ml_service.models import Usage as RestUsage
        from azure.ai.ml._restclient.arm_ml_service.models import UsageName
        from azure.ai.ml.entities import Usage

        self.world.check_subscription(self.key[0])
        self.world.guard("compute.list_usage")
        rest = [RestUsage(name=UsageName(value="TotalCores"), current_value=0, limit=1000)]
        rest += [
            RestUsage(name=UsageName(value=family), current_value=used, limit=limit)
            for family, (used, limit) in self.world.quota.items()
        ]
        return [Usage._from_rest_object(item) for item in rest]


# -- azure-ai-ml: models, online endpoints and deployments, jobs (deploy area) -------------


def bad_request(code: str, message: str, status: int = 400) -> Exception:
    from azure.core.exceptions import HttpResponseError

    error = HttpResponseError(f"({code}) {message}")
    error.status_code = status
    return error


class _WorkspaceScoped:
    def __init__(self, world: AzureWorld, subscription: str, group: str, workspace: str) -> None:
        self.world = world
        self.key = (subscription, group.lower(), workspace)
        self.group = group

    @property
    def workspace_id(self) -> str:
        subscription, _, workspace = self.key
        return (
            f"{rg_id(subscription, self.group)}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{workspace}"
        )

    @property
    def location(self) -> str:
        found = self.world.workspaces.get(self.key)
        return found.location if found is not None else LOCATION

    def _require_workspace(self) -> None:
        if self.key not in self.world.workspaces:
            raise not_found("WorkspaceNotFound", f"Workspace {self.key[2]} not found.")


class ModelOperations(_WorkspaceScoped):
    """`ml_client.models`: versions numbered by the service when none is given."""

    def create_or_update(self, model: Any) -> Any:
        from datetime import UTC, datetime

        from azure.ai.ml._restclient.arm_ml_service.models import FlavorData, SystemData
        from azure.ai.ml.entities import Model

        assert isinstance(model, Model), type(model)
        assert model.name and model.path and model.type, "a model needs name, path and type"
        self._require_workspace()
        versions = self.world.models.setdefault((*self.key, model.name), {})
        version = model.version or str(
            max((int(v) for v in versions if v.isdigit()), default=0) + 1
        )
        if version in versions:
            raise bad_request("Conflict", f"Model {model.name}:{version} already exists.", 409)
        rest = model._to_rest_object()
        rest.id = f"{self.workspace_id}/models/{model.name}/versions/{version}"
        rest.name = version
        rest.system_data = SystemData(created_at=datetime.now(UTC), created_by="stand-in")
        # The service reads the flavours from the MLmodel file; the trainer's is transformers.
        rest.properties.flavors = (
            {"transformers": FlavorData(data={"task": "text-generation"})}
            if model.type == "mlflow_model"
            else {}
        )
        versions[version] = rest
        self.world.record("model", f"{model.name}:{version}")
        return Model._from_rest_object(rest)

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        from azure.ai.ml.entities import Model

        assert bool(version) != bool(label), "give a version or a label"
        self._require_workspace()
        versions = self.world.models.get((*self.key, name), {})
        if label == "latest" and versions:
            version = max(versions, key=lambda v: int(v) if v.isdigit() else 0)
        if version not in versions:
            raise not_found("UserError", f"Model container {name} version {version} not found.")
        return Model._from_rest_object(versions[version])

    def list(self, name: str | None = None, stage: str | None = None, **kwargs: Any) -> list[Any]:
        from azure.ai.ml._restclient.arm_ml_service.models import (
            ModelContainer,
            ModelContainerProperties,
        )
        from azure.ai.ml.entities import Model

        self._require_workspace()
        if name:
            versions = self.world.models.get((*self.key, name), {})
            return [Model._from_rest_object(rest) for rest in versions.values()]
        containers = []
        for key, versions in self.world.models.items():
            if key[:3] == self.key and versions:
                container = ModelContainer(
                    properties=ModelContainerProperties(latest_version=max(versions, key=int))
                )
                container.id = f"{self.workspace_id}/models/{key[3]}"
                container.name = key[3]
                containers.append(Model._from_container_rest_object(container))
        return containers

    def model_arm_id(self, reference: str) -> str:
        """`azureml:name:version` as the SDK's orchestrator resolves it (or not found)."""
        _, name, version = reference.split(":")
        versions = self.world.models.get((*self.key, name), {})
        if version not in versions:
            raise not_found("UserError", f"Model container {name} version {version} not found.")
        return f"{self.workspace_id}/models/{name}/versions/{version}"


class OnlineEndpointOperations(_WorkspaceScoped):
    """`ml_client.online_endpoints`, keeping azure-ai-ml 1.35's signatures and checks."""

    def _rest(self, name: str) -> Any:
        self._require_workspace()
        try:
            return self.world.endpoints[(*self.key, name)]
        except KeyError:
            raise not_found(
                "ResourceNotFound",
                f"The Resource 'Microsoft.MachineLearningServices/workspaces/{self.key[2]}/"
                f"onlineEndpoints/{name}' under resource group '{self.group}' was not found.",
            ) from None

    def _deployments(self, name: str) -> dict[str, Any]:
        return {
            key[4]: rest
            for key, rest in self.world.deployments.items()
            if key[:4] == (*self.key, name)
        }

    def get(self, name: str, *, local: bool = False) -> Any:
        """As the SDK answers: deployments without traffic appear with 0."""
        from azure.ai.ml.entities import OnlineEndpoint

        assert not local
        endpoint = OnlineEndpoint._from_rest_object(self._rest(name))
        for deployment in self._deployments(name):
            if not endpoint.traffic.get(deployment):
                endpoint.traffic[deployment] = 0
        return endpoint

    def list(self, *, local: bool = False) -> list[Any]:
        from azure.ai.ml.entities import OnlineEndpoint

        self._require_workspace()
        return [
            OnlineEndpoint._from_rest_object(rest)
            for key, rest in self.world.endpoints.items()
            if key[:3] == self.key
        ]

    def get_keys(self, name: str) -> Any:
        from azure.ai.ml.entities import EndpointAuthKeys

        self._rest(name)
        self.world.guard("online_endpoints.get_keys")
        primary, secondary = self.world.endpoint_keys[(*self.key, name)]
        return EndpointAuthKeys(primary_key=primary, secondary_key=secondary)

    def begin_create_or_update(self, endpoint: Any, *, local: bool = False) -> Poller:
        """PUT: the whole endpoint is replaced (tags, traffic); keys and URI stay."""
        import secrets

        from azure.ai.ml.entities import OnlineEndpoint

        assert isinstance(endpoint, OnlineEndpoint), type(endpoint)
        assert not local
        self._require_workspace()
        if endpoint.traffic:  # the SDK strips zero shares before sending
            endpoint.traffic = {k: v for k, v in endpoint.traffic.items() if int(v)}
        rest = endpoint._to_rest_online_endpoint(location=self.location)
        deployments = self._deployments(endpoint.name)
        traffic = dict(rest.properties.traffic or {})
        for name in traffic:
            if name not in deployments:
                raise bad_request("BadArgument", f"Deployment {name} does not exist.")
            state = deployments[name].properties.provisioning_state
            if state != "Succeeded":
                raise bad_request("BadArgument", f"Deployment {name} is {state}.")
        if traffic and sum(traffic.values()) != 100:
            raise bad_request("BadArgument", "Traffic values need to sum to 100.")
        key = (*self.key, endpoint.name)
        existing = self.world.endpoints.get(key)
        rest.id = f"{self.workspace_id}/onlineEndpoints/{endpoint.name}"
        rest.name = endpoint.name
        rest.properties.provisioning_state = "Succeeded"
        rest.properties.scoring_uri = (
            f"https://{endpoint.name}.{self.location}.inference.ml.azure.com/score"
        )
        if existing is None:
            self.world.endpoint_keys[key] = (secrets.token_urlsafe(24), secrets.token_urlsafe(24))
            self.world.record("online endpoint", endpoint.name)
        else:
            self.world.updates.append(("online endpoint", endpoint.name))
        self.world.endpoints[key] = rest
        return Poller(OnlineEndpoint._from_rest_object(rest))

    def begin_delete(self, name: str | None = None, *, local: bool = False) -> Poller:
        self._rest(str(name))
        for deployment in self._deployments(str(name)):
            del self.world.deployments[(*self.key, str(name), deployment)]
        del self.world.endpoints[(*self.key, str(name))]
        self.world.endpoint_keys.pop((*self.key, str(name)), None)
        self.world.deleted.append(("online endpoint", str(name)))
        return Poller(None)

    def invoke(
        self,
        endpoint_name: str,
        *,
        request_file: str | None = None,
        deployment_name: str | None = None,
        input_data: Any = None,
        params_override: Any = None,
        local: bool = False,
        **kwargs: Any,
    ) -> str:
        """POST /score as the SDK sends it: the body from `request_file`, the primary key,
        and the `azureml-model-deployment` header when a deployment is named."""
        import json

        from azure.ai.ml.exceptions import ValidationException

        with open(str(request_file), "rb") as handle:
            body = json.loads(handle.read())
        rest = self._rest(endpoint_name)
        deployments = self._deployments(endpoint_name)
        if deployment_name and deployment_name not in deployments:
            raise ValidationException(
                message=f"Deployment name {deployment_name} not found for this endpoint",
                no_personal_data_message="Deployment name not found for this endpoint",
            )
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.world.endpoint_keys[(*self.key, endpoint_name)][0]}",
        }
        if deployment_name:
            headers["azureml-model-deployment"] = deployment_name
        target = deployment_name
        if not target:
            traffic = rest.properties.traffic or {}
            target = max(traffic, key=lambda name: traffic[name]) if traffic else None
        self.world.invocations.append(
            {
                "endpoint": endpoint_name,
                "deployment": target,
                "headers": headers,
                "body": body,
                "traffic": dict(rest.properties.traffic or {}),  # the split when it arrived
            }
        )
        if target is None:
            raise bad_request("NoValidDeployments", "No valid deployments to route to.", 404)
        if deployments[target].properties.provisioning_state != "Succeeded":
            raise bad_request("DeploymentNotReady", f"Deployment {target} is not ready.", 424)
        if target in self.world.broken_deployments:
            return self.world.broken_deployments[target]
        inputs = body.get("input_data")
        assert isinstance(inputs, list) and inputs, body
        return json.dumps([f"{target} is ready." for _ in inputs])


class OnlineDeploymentOperations(_WorkspaceScoped):
    """`ml_client.online_deployments`. A name in `world.failing_deployments` fails to
    provision: the poller's `result()` raises, as the SDK's LRO poller does."""

    def _rest(self, name: str, endpoint_name: str) -> Any:
        self._require_workspace()
        try:
            return self.world.deployments[(*self.key, endpoint_name, name)]
        except KeyError:
            raise not_found(
                "ResourceNotFound",
                f"The Resource 'Microsoft.MachineLearningServices/workspaces/{self.key[2]}/"
                f"onlineEndpoints/{endpoint_name}/deployments/{name}' was not found.",
            ) from None

    def begin_create_or_update(
        self,
        deployment: Any,
        *,
        local: bool = False,
        vscode_debug: bool = False,
        skip_script_validation: bool = False,
        local_enable_gpu: bool = False,
        **kwargs: Any,
    ) -> Poller:
        from azure.ai.ml.entities import ManagedOnlineDeployment, OnlineDeployment

        assert isinstance(deployment, ManagedOnlineDeployment), type(deployment)
        assert not local
        self._require_workspace()
        endpoints = OnlineEndpointOperations(self.world, self.key[0], self.group, self.key[2])
        endpoints._rest(deployment.endpoint_name)  # the SDK checks the endpoint first
        self._check_quota(deployment)
        # The SDK's orchestrator turns `azureml:name:version` into the model's ARM id.
        models = ModelOperations(self.world, self.key[0], self.group, self.key[2])
        deployment.model = models.model_arm_id(str(deployment.model))
        rest = deployment._to_rest_object(location=self.location)
        rest.id = (
            f"{self.workspace_id}/onlineEndpoints/{deployment.endpoint_name}"
            f"/deployments/{deployment.name}"
        )
        rest.name = deployment.name
        if rest.properties.scale_settings is None:  # the service's default
            from azure.ai.ml._restclient.arm_ml_service.models import DefaultScaleSettings

            rest.properties.scale_settings = DefaultScaleSettings()
        failure = self.world.failing_deployments.get(deployment.name)
        rest.properties.provisioning_state = "Failed" if failure else "Succeeded"
        key = (*self.key, deployment.endpoint_name, deployment.name)
        (self.world.updates if key in self.world.deployments else self.world.created).append(
            ("online deployment", deployment.name)
        )
        self.world.deployments[key] = rest
        log = self.world.deployment_logs.setdefault((deployment.endpoint_name, deployment.name), [])
        log += ["Starting AzureML Inferencing Server", "Loading the MLflow model"]
        if failure:
            log += ["Traceback (most recent call last):", failure]
            return FailedPoller(
                bad_request(
                    "ResourceNotReady",
                    f"User container has crashed or terminated: {failure}. Please see "
                    "troubleshooting guide, available here: https://aka.ms/oe-tsg#error-resourcenotready",
                )
            )
        log.append("Model loaded; listening on port 5001")
        return Poller(OnlineDeployment._from_rest_object(rest))

    def _check_quota(self, deployment: Any) -> None:
        sizes = ComputeOperations(self.world, *self.key).list_sizes()
        size = next((s for s in sizes if s.name.lower() == deployment.instance_type.lower()), None)
        if size is None or size.family not in self.world.quota:
            return
        used, limit = self.world.quota[size.family]
        needed = size.v_cp_us * deployment.instance_count
        if used + needed > limit:
            raise bad_request(
                "BadArgument",
                f"Not enough quota available for {deployment.instance_type} in SubscriptionId "
                f"{self.key[0]}. Current usage/limit: {used}/{limit}. Additional needed: "
                f"{needed} Please see troubleshooting guide, available here: "
                "https://aka.ms/oe-tsg#error-outofquota",
            )

    def get(self, name: str, endpoint_name: str, *, local: bool = False) -> Any:
        from azure.ai.ml.entities import OnlineDeployment

        found = OnlineDeployment._from_rest_object(self._rest(name, endpoint_name))
        found.endpoint_name = endpoint_name
        return found

    def list(self, endpoint_name: str, *, local: bool = False) -> list[Any]:
        from azure.ai.ml.entities import OnlineDeployment

        self._require_workspace()
        return [
            OnlineDeployment._from_rest_object(rest)
            for key, rest in self.world.deployments.items()
            if key[:4] == (*self.key, endpoint_name)
        ]

    def begin_delete(self, name: str, endpoint_name: str, *, local: bool = False) -> Poller:
        self._rest(name, endpoint_name)
        endpoint = self.world.endpoints[(*self.key, endpoint_name)]
        if (endpoint.properties.traffic or {}).get(name):
            raise bad_request(
                "BadArgument", f"Deployment {name} has traffic; set its traffic to 0 first."
            )
        del self.world.deployments[(*self.key, endpoint_name, name)]
        self.world.deleted.append(("online deployment", name))
        return Poller(None)

    def get_logs(
        self,
        name: str,
        endpoint_name: str,
        lines: int,
        *,
        container_type: str | None = None,
        local: bool = False,
    ) -> str:
        self._rest(name, endpoint_name)
        log = self.world.deployment_logs.get((endpoint_name, name), [])
        return "\n".join(log[-lines:]) + "\n"


class FailedPoller(Poller):
    """An `LROPoller` whose operation failed: `result()` raises what the service said."""

    def __init__(self, error: Exception) -> None:
        super().__init__(None)
        self.error = error

    def result(self, timeout: float | None = None) -> Any:
        raise self.error


class JobOperations:
    """Just enough of `ml_client.jobs` for `AzureJobs.get`/`list`: jobs seeded with
    `world.add_job`."""

    def __init__(self, world: AzureWorld) -> None:
        self.world = world
        self._runs_operations = self

    def get(self, name: str) -> Any:
        try:
            return self.world.jobs[name]
        except KeyError:
            raise not_found("UserError", f"Job {name} not found.") from None

    def list(self, **kwargs: Any) -> list[Any]:
        return list(self.world.jobs.values())

    def get_run_details(self, name: str) -> Any:
        from azure.ai.ml._restclient.runhistory.models import RunDetails

        return RunDetails(status=self.get(name).status, log_files={})


class StandInMLClient:
    def __init__(self, world: AzureWorld, subscription: str, group: str, workspace: str) -> None:
        self.subscription_id, self.resource_group_name, self.workspace_name = (
            subscription,
            group,
            workspace,
        )
        self.workspaces = WorkspaceOperations(world, subscription, group)
        self.compute = ComputeOperations(world, subscription, group, workspace)
        self.models = ModelOperations(world, subscription, group, workspace)
        self.online_endpoints = OnlineEndpointOperations(world, subscription, group, workspace)
        self.online_deployments = OnlineDeploymentOperations(world, subscription, group, workspace)
        self.jobs = JobOperations(world)


def provision(world: AzureWorld, config: Any) -> AzureWorld:
    """Everything `config` needs exists and is granted: the world after a good `ensure`."""
    from core.azure.blueprint import ROLE_NEEDS, build_cluster

    sub, group = config.subscription_id, config.resource_group
    world.add_group(group, sub, config.location)
    workspace = world.add_workspace(
        group, config.workspace, subscription=sub, location=config.location
    )
    identity = world.add_identity(group, config.identity_name, sub)
    config.identity_client_id = identity.client_id
    scopes = {
        "resource group": rg_id(sub, group),
        "storage account": workspace.storage_account,
        "container registry": workspace.container_registry,
    }
    for need in ROLE_NEEDS:
        world.grant(scopes[need.target], need.definition_guid, identity.principal_id, sub)
    world.add_compute(sub, group, config.workspace, build_cluster(config))
    return world
