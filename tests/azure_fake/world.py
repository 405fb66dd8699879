"""The fake Azure's state: every resource as the REST API answers for it, keyed by its id.

ARM is a tree of ids (`/subscriptions/S/resourceGroups/G/providers/NS/type/name/...`), and
so is this world: `arm` maps each lower-cased id to the JSON the service would return for
it, written from the published REST spec (Azure/azure-rest-api-specs). Handlers (arm.py,
ml.py, dataplane.py) read and write it; tests seed it with the helpers below, read it back
with `get`, and steer it with the knobs (`quota`, `nodes`, `denied`, `throttled`,
`failing_deployments`, `signed_in`, ...).
"""

from __future__ import annotations

import secrets
import time
import uuid
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
SERVING_SIZE = "Standard_E4s_v3"
SERVING_FAMILY = "standardESv3Family"
ML = "Microsoft.MachineLearningServices"

# The VM sizes Azure ML offers here (GET .../locations/{l}/vmSizes), as the spec's example.
VM_SIZES = [
    {"name": GPU_SIZE, "family": GPU_FAMILY, "vCPUs": 24, "gpus": 1, "memoryGB": 220.0},
    {"name": "Standard_NC48ads_A100_v4", "family": GPU_FAMILY, "vCPUs": 48, "gpus": 2},
    {"name": "Standard_NC96ads_A100_v4", "family": GPU_FAMILY, "vCPUs": 96, "gpus": 4},
    {"name": CPU_SIZE, "family": CPU_FAMILY, "vCPUs": 4, "gpus": 0, "memoryGB": 14.0},
    {"name": SERVING_SIZE, "family": SERVING_FAMILY, "vCPUs": 4, "gpus": 0, "memoryGB": 32.0},
]


def rg_id(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def workspace_id(subscription: str, group: str, workspace: str) -> str:
    return f"{rg_id(subscription, group)}/providers/{ML}/workspaces/{workspace}"


def system_data() -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "createdAt": now,
        "createdBy": "phiops-tests@example.com",
        "createdByType": "User",
        "lastModifiedAt": now,
        "lastModifiedBy": "phiops-tests@example.com",
        "lastModifiedByType": "User",
    }


@dataclass
class AzureWorld:
    subscriptions: dict[str, str] = field(default_factory=lambda: {SUBSCRIPTION: "Research"})
    signed_in: bool = True
    arm: dict[str, dict[str, Any]] = field(default_factory=dict)
    quota: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {GPU_FAMILY: (0, 96), CPU_FAMILY: (0, 100), SERVING_FAMILY: (0, 24)}
    )
    usage_names: str = "spec"  # "spec": name.value as the spec's example; "family": the family
    nodes: dict[str, int] = field(default_factory=dict)  # cluster name -> nodes allocated now
    denied: set[str] = field(default_factory=set)  # route names that answer 403
    throttled: dict[str, int] = field(default_factory=dict)  # route name -> 429s to answer
    failures: dict[str, list[Any]] = field(default_factory=dict)  # route -> AzureErrors to raise
    created: list[tuple[str, str]] = field(default_factory=list)
    updates: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, host, path)
    unrouted: list[str] = field(default_factory=list)
    token_requests: int = 0
    token_lifetime: int = 3600
    issued_tokens: dict[str, int] = field(default_factory=dict)  # token -> expires on
    clock: Any = time.time  # what "now" is for token expiry
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)  # LRO status by id
    endpoint_keys: dict[tuple[str, str, str, str], tuple[str, str]] = field(default_factory=dict)
    deployment_logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    failing_deployments: dict[str, str] = field(default_factory=dict)  # name -> why it fails
    broken_deployments: dict[str, str] = field(default_factory=dict)  # name -> its /score body
    scorers: dict[str, Any] = field(default_factory=dict)  # deployment -> (body, headers) -> Reply
    invocations: list[dict[str, Any]] = field(default_factory=list)  # what reached /score
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run history: job -> details
    run_scripts: dict[str, list[Any]] = field(default_factory=dict)  # job -> answers per poll
    blobs: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    blob_metadata: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    blocks: dict[tuple[str, str, str], dict[str, bytes]] = field(default_factory=dict)
    job_outputs: dict[str, Any] = field(default_factory=dict)  # job -> local folder of outputs
    mlflow: Any = None  # a handler for the workspace's MLflow REST calls (dataplane.py)

    # -- reading and writing the tree -------------------------------------------------

    def get(self, resource_id: str) -> dict[str, Any] | None:
        return self.arm.get(normal(resource_id))

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.arm[normal(resource["id"])] = resource
        return resource

    def delete(self, resource_id: str) -> None:
        for key in [
            k
            for k in self.arm
            if k == normal(resource_id) or k.startswith(normal(resource_id) + "/")
        ]:
            del self.arm[key]

    def children(self, parent_id: str, kind: str) -> list[dict[str, Any]]:
        """Direct children of `parent_id` of one type (the path segment, e.g. `computes`)."""
        prefix = normal(parent_id) + "/" + kind.lower() + "/"
        return [
            value
            for key, value in self.arm.items()
            if key.startswith(prefix) and "/" not in key[len(prefix) :]
        ]

    def record(self, kind: str, name: str) -> None:
        self.created.append((kind, name))

    # -- seeding: what exists before the test -----------------------------------------

    def add_group(
        self, group: str, subscription: str = SUBSCRIPTION, location: str = LOCATION
    ) -> dict:
        return self.put(
            {
                "id": rg_id(subscription, group),
                "name": group,
                "type": "Microsoft.Resources/resourceGroups",
                "location": location,
                "properties": {"provisioningState": "Succeeded"},
            }
        )

    def add_resource(self, resource_id: str, location: str = LOCATION, **extra: Any) -> dict:
        """A generic ARM resource (storage account, key vault, registry, insights)."""
        provider, kind = resource_id.split("/providers/")[1].split("/")[:2]
        return self.put(
            {
                "id": resource_id,
                "name": resource_id.rsplit("/", 1)[-1],
                "type": f"{provider}/{kind}",
                "location": location,
                **extra,
            }
        )

    def add_workspace(
        self,
        group: str,
        name: str,
        *,
        subscription: str = SUBSCRIPTION,
        location: str = LOCATION,
        registry: bool | str = True,
        insights: bool = True,
    ) -> dict:
        """A workspace as Azure ML answers for it, with its linked resources existing."""
        base = f"{rg_id(subscription, group)}/providers"
        stem = name.replace("-", "")[:12]
        linked = {
            "storageAccount": f"{base}/Microsoft.Storage/storageAccounts/{stem}store1234",
            "keyVault": f"{base}/Microsoft.KeyVault/vaults/{stem}kv1234",
        }
        if insights:
            linked["applicationInsights"] = f"{base}/Microsoft.insights/components/{stem}ai1234"
        if registry is True:
            linked["containerRegistry"] = (
                f"{base}/Microsoft.ContainerRegistry/registries/{stem}acr1234"
            )
        elif registry:
            linked["containerRegistry"] = str(registry)
        for resource_id in linked.values():
            if self.get(resource_id) is None:
                self.add_resource(resource_id, location)
        ws_id = workspace_id(subscription, group, name)
        return self.put(
            {
                "id": ws_id,
                "name": name,
                "type": f"{ML}/workspaces",
                "location": location,
                "kind": "Default",
                "tags": {},
                "sku": {"name": "Basic", "tier": "Basic"},
                "identity": {
                    "type": "SystemAssigned",
                    "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, ws_id)),
                    "tenantId": TENANT,
                },
                "systemData": system_data(),
                "properties": {
                    "friendlyName": name,
                    "description": "",
                    **linked,
                    "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_DNS, ws_id)),
                    "discoveryUrl": f"https://{location}.api.azureml.ms/discovery",
                    "mlFlowTrackingUri": (
                        f"azureml://{location}.api.azureml.ms/mlflow/v1.0{ws_id}"
                    ),
                    "provisioningState": "Succeeded",
                    "hbiWorkspace": False,
                    "publicNetworkAccess": "Enabled",
                    "tenantId": TENANT,
                    "v1LegacyMode": False,
                },
            }
        )

    def workspace(
        self, group: str = "phi3-rg", name: str = "phi3-ws", sub: str = SUBSCRIPTION
    ) -> dict:
        found = self.get(workspace_id(sub, group, name))
        assert found is not None, f"no workspace {name}"
        return found

    def add_identity(self, group: str, name: str, subscription: str = SUBSCRIPTION) -> dict:
        resource_id = (
            f"{rg_id(subscription, group)}/providers/Microsoft.ManagedIdentity"
            f"/userAssignedIdentities/{name}"
        )
        number = sum(1 for key in self.arm if "/userassignedidentities/" in key) + 1
        return self.put(
            {
                "id": resource_id,
                "name": name,
                "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "location": LOCATION,
                "tags": {},
                "properties": {
                    "tenantId": TENANT,
                    "clientId": f"c1e47000-0000-0000-0000-{number:012d}",
                    "principalId": f"0b1ec700-0000-0000-0000-{number:012d}",
                },
            }
        )

    def identity(
        self, name: str = "phi3-identity", group: str = "phi3-rg", sub: str = SUBSCRIPTION
    ) -> dict:
        found = self.get(
            f"{rg_id(sub, group)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        )
        assert found is not None, f"no identity {name}"
        return found

    @property
    def role_assignments(self) -> list[dict]:
        return [value for key, value in self.arm.items() if "/roleassignments/" in key]

    def grant(
        self,
        scope: str,
        role_guid: str,
        principal_id: str,
        subscription: str = SUBSCRIPTION,
        name: str = "",
    ) -> dict:
        name = name or str(uuid.uuid4())
        return self.put(
            {
                "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
                "name": name,
                "type": "Microsoft.Authorization/roleAssignments",
                "properties": {
                    "scope": scope,
                    "roleDefinitionId": (
                        f"/subscriptions/{subscription}/providers/Microsoft.Authorization"
                        f"/roleDefinitions/{role_guid}"
                    ),
                    "principalId": principal_id,
                    "principalType": "ServicePrincipal",
                    "createdOn": "2025-01-01T00:00:00.0000000Z",
                },
            }
        )

    def revoke(self, role_guid: str) -> None:
        for item in self.role_assignments:
            if item["properties"]["roleDefinitionId"].lower().endswith(role_guid.lower()):
                self.delete(item["id"])

    def add_compute(
        self,
        name: str,
        size: str,
        *,
        group: str = "phi3-rg",
        workspace: str = "phi3-ws",
        subscription: str = SUBSCRIPTION,
        min_nodes: int = 0,
        max_nodes: int = 1,
        identity_id: str = "",
        state: str = "Succeeded",
    ) -> dict:
        """An AmlCompute cluster as GET .../computes/{name} answers for it."""
        resource_id = f"{workspace_id(subscription, group, workspace)}/computes/{name}"
        identity: dict[str, Any] = {"type": "None"}
        if identity_id:
            found = self.get(identity_id) or {"properties": {}}
            identity = {
                "type": "UserAssigned",
                "userAssignedIdentities": {
                    identity_id: {
                        "principalId": found["properties"].get("principalId"),
                        "clientId": found["properties"].get("clientId"),
                    }
                },
            }
        return self.put(
            {
                "id": resource_id,
                "name": name,
                "type": f"{ML}/workspaces/computes",
                "location": LOCATION,
                "identity": identity,
                "properties": {
                    "computeType": "AmlCompute",
                    "computeLocation": LOCATION,
                    "provisioningState": state,
                    "createdOn": "2025-01-01T00:00:00.0000000+00:00",
                    "modifiedOn": "2025-01-01T00:00:00.0000000+00:00",
                    "isAttachedCompute": False,
                    "disableLocalAuth": True,
                    "properties": {
                        "vmSize": size,
                        "vmPriority": "Dedicated",
                        "osType": "Linux",
                        "isolatedNetwork": False,
                        "scaleSettings": {
                            "maxNodeCount": max_nodes,
                            "minNodeCount": min_nodes,
                            "nodeIdleTimeBeforeScaleDown": "PT30M",
                        },
                        "remoteLoginPortPublicAccess": "Disabled",
                        "allocationState": "Steady",
                        "allocationStateTransitionTime": "2025-01-01T00:00:00.000Z",
                        "errors": None,
                        "currentNodeCount": 0,
                        "targetNodeCount": 0,
                        "nodeStateCounts": {
                            "preparingNodeCount": 0,
                            "runningNodeCount": 0,
                            "idleNodeCount": 0,
                            "unusableNodeCount": 0,
                            "leavingNodeCount": 0,
                            "preemptedNodeCount": 0,
                        },
                        "enableNodePublicIp": True,
                    },
                },
            }
        )

    def compute(
        self, name: str = "gpu-cluster", group: str = "phi3-rg", ws: str = "phi3-ws"
    ) -> dict | None:
        return self.get(f"{workspace_id(SUBSCRIPTION, group, ws)}/computes/{name}")

    def new_keys(self) -> tuple[str, str]:
        return secrets.token_urlsafe(24), secrets.token_urlsafe(24)


def normal(resource_id: str) -> str:
    """ARM ids compare case-insensitively; `resourcegroups` and `resourceGroups` are one."""
    return "/" + "/".join(part for part in resource_id.lower().split("/") if part)
