"""Microsoft.MachineLearningServices: workspaces, computes, VM sizes and usages, datastores,
code and environment versions, models, online endpoints and deployments, jobs. Shapes from
the spec's examples (stable 2024-10-01); the SDK's own deserializers read them."""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

from tests.azure_fake.arm import GROUP, require_group
from tests.azure_fake.server import ARM, ROUTER, lro
from tests.azure_fake.transport import AzureError, Reply, Request, not_found
from tests.azure_fake.world import (
    LOCATION,
    ML,
    VM_SIZES,
    AzureWorld,
    rg_id,
    system_data,
    workspace_id,
)

WS = GROUP + r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
NAME = r"(?P<name>[^/]+)"
LOCATIONS = (
    r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.MachineLearningServices"
    r"/locations/(?P<location>[^/]+)"
)


def require_workspace(world: AzureWorld, sub: str, group: str, ws: str) -> dict:
    require_group(world, sub, group)
    found = world.get(workspace_id(sub, group, ws))
    if found is None:
        raise not_found(
            f"The Resource '{ML}/workspaces/{ws}' under resource group '{group}' was not found.",
            "ResourceNotFound",
        )
    return found


def child(world: AzureWorld, resource_id: str, what: str) -> dict:
    found = world.get(resource_id)
    if found is None:
        raise not_found(f"{what} not found.", "UserError")
    return found


# -- workspaces --------------------------------------------------------------------------


@ROUTER.add("GET", ARM, WS, "workspaces.get")
def get_workspace(world: AzureWorld, request: Request, sub: str, group: str, ws: str) -> dict:
    return require_workspace(world, sub, group, ws)


@ROUTER.add(
    "GET",
    ARM,
    GROUP + r"/providers/Microsoft\.MachineLearningServices/workspaces",
    "workspaces.list",
)
def list_workspaces(world: AzureWorld, request: Request, sub: str, group: str) -> dict:
    return {"value": world.children(f"{rg_id(sub, group)}/providers/{ML}", "workspaces")}


# -- computes, sizes, usages ---------------------------------------------------------------


@ROUTER.add("GET", ARM, WS + r"/computes/" + NAME, "compute.get")
def get_compute(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str
) -> dict:
    require_workspace(world, sub, group, ws)
    found = world.get(f"{workspace_id(sub, group, ws)}/computes/{name}")
    if found is None:
        raise not_found(f"Compute {name} not found in workspace {ws}.", "UserError")
    nodes = world.nodes.get(name, 0)
    found["properties"]["properties"]["currentNodeCount"] = nodes
    found["properties"]["properties"]["nodeStateCounts"]["idleNodeCount"] = nodes
    return found


@ROUTER.add("GET", ARM, WS + r"/computes", "compute.list")
def list_computes(world: AzureWorld, request: Request, sub: str, group: str, ws: str) -> dict:
    require_workspace(world, sub, group, ws)
    return {"value": world.children(workspace_id(sub, group, ws), "computes")}


@ROUTER.add("PUT", ARM, WS + r"/computes/" + NAME, "compute.begin_create_or_update")
def put_compute(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str
) -> Reply:
    require_workspace(world, sub, group, ws)
    body = request.json()
    properties = body["properties"]
    if properties.get("computeType") != "AmlCompute":
        raise AzureError(
            400, "BadRequest", f"unexpected computeType {properties.get('computeType')}"
        )
    settings = properties["properties"]
    scale = settings.get("scaleSettings") or {}
    identity = body.get("identity") or {}
    identities = list((identity.get("userAssignedIdentities") or {}).keys())
    existed = world.compute(name, group, ws) is not None
    stored = world.add_compute(
        name,
        settings["vmSize"],
        group=group,
        workspace=ws,
        subscription=sub,
        min_nodes=int(scale.get("minNodeCount", 0)),
        max_nodes=int(scale.get("maxNodeCount", 1)),
        identity_id=identities[0] if identities else "",
    )
    stored["properties"]["properties"]["scaleSettings"]["nodeIdleTimeBeforeScaleDown"] = scale.get(
        "nodeIdleTimeBeforeScaleDown", "PT30M"
    )
    (world.updates if existed else world.created).append(("compute", name))
    return lro(world, request, stored, status=200 if existed else 201)


@ROUTER.add("POST", ARM, WS + r"/computes/" + NAME + r"/listNodes", "compute.list_nodes")
def list_nodes(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str
) -> dict:
    get_compute(world, request, sub, group, ws, name)
    return {
        "nodes": [
            {
                "nodeId": f"tvmps_{index:040d}_d",
                "privateIpAddress": f"10.0.0.{index + 4}",
                "publicIpAddress": None,
                "port": 50000 + index,
                "nodeState": "idle",
                "runId": None,
            }
            for index in range(world.nodes.get(name, 0))
        ],
        "nextLink": None,
    }


@ROUTER.add("GET", ARM, LOCATIONS + r"/vmSizes", "compute.list_sizes")
def list_sizes(world: AzureWorld, request: Request, sub: str, location: str) -> dict:
    return {
        "value": [
            {
                "osVhdSizeMB": 1047552,
                "maxResourceVolumeMB": 28672,
                "memoryGB": 16.0,
                "lowPriorityCapable": True,
                "premiumIO": True,
                "supportedComputeTypes": ["AmlCompute", "ComputeInstance", "MIR"],
                **size,
            }
            for size in VM_SIZES
        ]
    }


def family_words(family: str) -> str:
    """`standardNCADSA100v4Family` → `Standard NCADSA100v4 Family`, as usages name it."""
    core = family.removeprefix("standard").removesuffix("Family")
    return f"Standard {core} Family"


@ROUTER.add("GET", ARM, LOCATIONS + r"/usages", "compute.list_usage")
def list_usages(world: AzureWorld, request: Request, sub: str, location: str) -> dict:
    """As the spec's Usage/list example: totals, then per VM family, dedicated and
    low-priority, subscription-wide (`vmFamily/usages`)."""
    dedicated = sum(used for used, _ in world.quota.values())
    value: list[dict[str, Any]] = [
        {
            "id": f"/subscriptions/{sub}/usages",
            "type": f"{ML}/dedicatedCores/usages",
            "currentValue": dedicated,
            "limit": 1000,
            "name": {
                "value": "Total Cluster Dedicated Regional vCPUs",
                "localizedValue": "Total Cluster Dedicated Regional vCPUs",
            },
            "unit": "Count",
        }
    ]
    for family, (used, limit) in world.quota.items():
        for tier, tier_used, tier_limit in (("Dedicated", used, limit), ("LowPriority", 0, -1)):
            words = f"{family_words(family)} Cluster {tier} vCPUs"
            value.append(
                {
                    "id": f"/subscriptions/{sub}/usages/{words.replace(' ', '_')}",
                    "type": f"{ML}/vmFamily/usages",
                    "currentValue": tier_used,
                    "limit": tier_limit,
                    "name": {
                        "value": family
                        if world.usage_names == "family" and tier == "Dedicated"
                        else words,
                        "localizedValue": words,
                    },
                    "unit": "Count",
                }
            )
    return {"value": value}


def vcpus(size: str) -> int:
    return next((int(s["vCPUs"]) for s in VM_SIZES if s["name"].lower() == size.lower()), 0)


def family_of(size: str) -> str:
    return next((s["family"] for s in VM_SIZES if s["name"].lower() == size.lower()), "")


# -- datastores, code, environments (what a job submit needs) ------------------------------


def datastore(sub: str, group: str, ws: str) -> dict:
    account = world_storage_account(sub, group, ws)
    return {
        "id": f"{workspace_id(sub, group, ws)}/datastores/workspaceblobstore",
        "name": "workspaceblobstore",
        "type": f"{ML}/workspaces/datastores",
        "properties": {
            "datastoreType": "AzureBlob",
            "accountName": account,
            "containerName": f"azureml-blobstore-{uuid.uuid5(uuid.NAMESPACE_DNS, ws)}",
            "endpoint": "core.windows.net",
            "protocol": "https",
            "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
            "credentials": {
                "credentialsType": "AccountKey",
                "secrets": {"secretsType": "AccountKey"},
            },
            "isDefault": True,
            "description": "",
            "tags": {},
            "properties": {},
        },
        "systemData": system_data(),
    }


def world_storage_account(sub: str, group: str, ws: str) -> str:
    return ws.replace("-", "")[:12] + "store1234"


@ROUTER.add("GET", ARM, WS + r"/datastores", "datastores.list")
def list_datastores(world: AzureWorld, request: Request, sub: str, group: str, ws: str) -> dict:
    require_workspace(world, sub, group, ws)
    return {"value": [datastore(sub, group, ws)]}


@ROUTER.add("GET", ARM, WS + r"/datastores/" + NAME, "datastores.get")
def get_datastore(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str
) -> dict:
    require_workspace(world, sub, group, ws)
    if name != "workspaceblobstore":
        raise not_found(f"Datastore {name} not found.", "UserError")
    return datastore(sub, group, ws)


@ROUTER.add("POST", ARM, WS + r"/datastores/" + NAME + r"/listSecrets", "datastores.list_secrets")
def datastore_secrets(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str
) -> dict:
    import base64

    return {"secretsType": "AccountKey", "key": base64.b64encode(b"fake-account-key").decode()}


def versioned(
    world: AzureWorld,
    request: Request,
    resource_id: str,
    kind: str,
    name: str,
    version: str,
    body: dict | None = None,
) -> Reply:
    """PUT of a code/environment/model version: stored as sent (or as `body` says), with the
    read-only parts."""
    body = body or request.json()
    existed = world.get(resource_id) is not None
    stored = world.put(
        {
            "id": resource_id,
            "name": version,
            "type": f"{ML}/workspaces/{kind}/versions",
            "systemData": system_data(),
            "properties": {**body["properties"], "provisioningState": "Succeeded"},
        }
    )
    container_id = resource_id.rsplit("/versions/", 1)[0]
    container = world.get(container_id) or {
        "id": container_id,
        "name": name,
        "type": f"{ML}/workspaces/{kind}",
        "systemData": system_data(),
        "properties": {"isArchived": False, "tags": {}, "properties": {}},
    }
    numbers = [
        int(v["name"]) for v in world.children(container_id, "versions") if str(v["name"]).isdigit()
    ]
    container["properties"]["latestVersion"] = str(max(numbers)) if numbers else version
    container["properties"]["nextVersion"] = str(max(numbers, default=0) + 1)
    world.put(container)
    if not existed:
        world.record(kind.rstrip("s") if kind != "codes" else "code", f"{name}:{version}")
    return Reply(200 if existed else 201, stored)


@ROUTER.add(
    "GET",
    ARM,
    WS + r"/(?P<kind>codes|environments|models)/" + NAME + r"/versions/(?P<version>[^/]+)",
    "assets.get_version",
)
def get_version(
    world: AzureWorld,
    request: Request,
    sub: str,
    group: str,
    ws: str,
    kind: str,
    name: str,
    version: str,
) -> dict:
    require_workspace(world, sub, group, ws)
    return child(
        world,
        f"{workspace_id(sub, group, ws)}/{kind}/{name}/versions/{version}",
        f"{kind[:-1].capitalize()} container {name} version {version}",
    )


@ROUTER.add(
    "PUT",
    ARM,
    WS + r"/(?P<kind>codes|environments)/" + NAME + r"/versions/(?P<version>[^/]+)",
    "assets.create_version",
)
def put_version(
    world: AzureWorld,
    request: Request,
    sub: str,
    group: str,
    ws: str,
    kind: str,
    name: str,
    version: str,
) -> Reply:
    require_workspace(world, sub, group, ws)
    return versioned(
        world,
        request,
        f"{workspace_id(sub, group, ws)}/{kind}/{name}/versions/{version}",
        kind,
        name,
        version,
    )


@ROUTER.add(
    "GET", ARM, WS + r"/(?P<kind>codes|environments|models)/" + NAME, "assets.get_container"
)
def get_container(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, kind: str, name: str
) -> dict:
    require_workspace(world, sub, group, ws)
    return child(
        world,
        f"{workspace_id(sub, group, ws)}/{kind}/{name}",
        f"{kind[:-1].capitalize()} container {name}",
    )


@ROUTER.add(
    "POST",
    ARM,
    WS + r"/codes/" + NAME + r"/versions/(?P<version>[^/]+)/startPendingUpload",
    "codes.start_pending_upload",
)
def code_pending_upload(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str, version: str
) -> dict:
    account = world_storage_account(sub, group, ws)
    path = f"LocalUpload/{uuid.uuid4().hex}"
    return {
        "blobReferenceForConsumption": {
            "blobUri": f"https://{account}.blob.core.windows.net/code/{path}",
            "storageAccountArmId": (
                f"{rg_id(sub, group)}/providers/Microsoft.Storage/storageAccounts/{account}"
            ),
            "credential": {
                "credentialType": "SAS",
                "sasUri": f"https://{account}.blob.core.windows.net/code/{path}?sv=2021-08-06&sig=fake",
            },
        },
        "pendingUploadId": str(uuid.uuid4()),
        "pendingUploadType": "TemporaryBlobReference",
    }


# -- models ------------------------------------------------------------------------------


@ROUTER.add(
    "PUT", ARM, WS + r"/models/" + NAME + r"/versions/(?P<version>[^/]+)", "models.create_or_update"
)
def put_model(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str, version: str
) -> Reply:
    """As Azure ML does for an `mlflow_model`: the path must hold an MLmodel file (read from
    the job's output folder the test maps), whose flavors the version reports."""
    require_workspace(world, sub, group, ws)
    resource_id = f"{workspace_id(sub, group, ws)}/models/{name}/versions/{version}"
    if world.get(resource_id) is not None:
        raise AzureError(409, "Conflict", f"Model {name}:{version} already exists.")
    body = request.json()
    properties = body["properties"]
    properties["flavors"] = (
        mlflow_flavors(world, properties.get("modelUri", ""))
        if properties.get("modelType") == "mlflow_model"
        else {}
    )
    return versioned(world, request, resource_id, "models", name, version, body)


def mlflow_flavors(world: AzureWorld, uri: str) -> dict[str, Any]:
    """The flavors of the MLmodel file at `uri` (azureml://jobs/J/outputs/O/paths/P); a job
    whose outputs the test did not map counts as the trainer's `transformers` model."""
    import yaml

    match = re.match(r"azureml://jobs/([^/]+)/outputs/([^/]+)/paths/(.+)$", uri)
    if not match or match.group(1) not in world.job_outputs:
        return {"transformers": {"data": {"task": "text-generation"}}}
    job, _, path = match.groups()
    folder = world.job_outputs[job] / path
    if not (folder / "MLmodel").is_file():
        raise AzureError(
            400,
            "UserError",
            f"No MLmodel file found at {uri}; an mlflow_model asset needs its MLmodel file "
            "at the top.",
        )
    flavors = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]
    return {
        flavor: {
            "data": {
                key: json.dumps(value) if not isinstance(value, str) else value
                for key, value in data.items()
                if not isinstance(value, dict | list)
            }
        }
        for flavor, data in flavors.items()
    }


@ROUTER.add(
    "GET", ARM, WS + r"/(?P<kind>codes|environments|models)/" + NAME + r"/versions", "assets.list"
)
def list_versions(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, kind: str, name: str
) -> dict:
    """Versions, oldest first, or as `$orderBy=createdtime desc` and `$top` ask."""
    require_workspace(world, sub, group, ws)
    versions = world.children(f"{workspace_id(sub, group, ws)}/{kind}/{name}", "versions")
    versions.sort(key=lambda v: (v["systemData"]["createdAt"], v["name"].zfill(12)))
    if "desc" in request.query.get("$orderby", "").lower():
        versions.reverse()
    if request.query.get("$top"):
        versions = versions[: int(request.query["$top"])]
    return {"value": versions}


@ROUTER.add("GET", ARM, WS + r"/models", "models.list")
def list_models(world: AzureWorld, request: Request, sub: str, group: str, ws: str) -> dict:
    require_workspace(world, sub, group, ws)
    return {"value": world.children(workspace_id(sub, group, ws), "models")}


# -- online endpoints and deployments --------------------------------------------------------


ENDPOINT = WS + r"/onlineEndpoints/(?P<endpoint>[^/]+)"
DEPLOYMENT = ENDPOINT + r"/deployments/(?P<deployment>[^/]+)"


def endpoint_key(sub: str, group: str, ws: str, endpoint: str) -> tuple[str, str, str, str]:
    return (sub, group.lower(), ws, endpoint)


def require_endpoint(world: AzureWorld, sub: str, group: str, ws: str, endpoint: str) -> dict:
    require_workspace(world, sub, group, ws)
    found = world.get(f"{workspace_id(sub, group, ws)}/onlineEndpoints/{endpoint}")
    if found is None:
        raise not_found(
            f"The Resource '{ML}/workspaces/{ws}/onlineEndpoints/{endpoint}' under resource "
            f"group '{group}' was not found."
        )
    return found


@ROUTER.add("GET", ARM, ENDPOINT, "online_endpoints.get")
def get_endpoint(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, endpoint: str
) -> dict:
    return require_endpoint(world, sub, group, ws, endpoint)


@ROUTER.add("GET", ARM, WS + r"/onlineEndpoints", "online_endpoints.list")
def list_endpoints(world: AzureWorld, request: Request, sub: str, group: str, ws: str) -> dict:
    require_workspace(world, sub, group, ws)
    return {"value": world.children(workspace_id(sub, group, ws), "onlineEndpoints")}


@ROUTER.add("PUT", ARM, ENDPOINT, "online_endpoints.begin_create_or_update")
def put_endpoint(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, endpoint: str
) -> Reply:
    """PUT replaces the endpoint (tags, traffic); keys and the scoring URI stay. Traffic is
    checked as the service checks it."""
    workspace = require_workspace(world, sub, group, ws)
    resource_id = f"{workspace_id(sub, group, ws)}/onlineEndpoints/{endpoint}"
    body = request.json()
    properties = body["properties"]
    traffic = {name: int(share) for name, share in (properties.get("traffic") or {}).items()}
    for name, share in traffic.items():
        deployment = world.get(f"{resource_id}/deployments/{name}")
        if deployment is None:
            raise AzureError(400, "BadArgument", f"Deployment {name} does not exist.")
        state = deployment["properties"]["provisioningState"]
        if share and state != "Succeeded":
            raise AzureError(400, "BadArgument", f"Deployment {name} is {state}.")
    if traffic and sum(traffic.values()) != 100:
        raise AzureError(400, "BadArgument", "Traffic values need to sum to 100.")
    existing = world.get(resource_id)
    location = workspace["location"]
    identity = body.get("identity") or {"type": "SystemAssigned"}
    stored = {
        "id": resource_id,
        "name": endpoint,
        "type": f"{ML}/workspaces/onlineEndpoints",
        "location": body.get("location") or location,
        "kind": body.get("kind") or "Managed",
        "tags": body.get("tags") or {},
        "identity": with_principals(world, identity),
        "systemData": system_data(),
        "properties": {
            "description": properties.get("description"),
            "authMode": properties.get("authMode", "Key"),
            "traffic": traffic,
            "mirrorTraffic": properties.get("mirrorTraffic") or {},
            "publicNetworkAccess": properties.get("publicNetworkAccess", "Enabled"),
            "properties": properties.get("properties") or {},
            "scoringUri": f"https://{endpoint}.{location}.inference.ml.azure.com/score",
            "swaggerUri": f"https://{endpoint}.{location}.inference.ml.azure.com/swagger.json",
            "provisioningState": "Succeeded",
        },
    }
    key = endpoint_key(sub, group, ws, endpoint)
    if existing is None:
        world.endpoint_keys[key] = world.new_keys()
        world.record("online endpoint", endpoint)
    else:
        world.updates.append(("online endpoint", endpoint))
    world.put(stored)
    creating = json.loads(json.dumps(stored))
    creating["properties"]["provisioningState"] = "Updating" if existing else "Creating"
    return lro(world, request, creating, status=200 if existing else 201)


def with_principals(world: AzureWorld, identity: dict[str, Any]) -> dict[str, Any]:
    """The identity as the service answers it: principal and client ids filled in."""
    answer = dict(identity)
    if "SystemAssigned" in str(identity.get("type")):
        answer.update(
            principalId=str(uuid.uuid4()), tenantId="72f988bf-86f1-41af-91ab-2d7cd011db47"
        )
    users = identity.get("userAssignedIdentities") or {}
    answer["userAssignedIdentities"] = {
        resource_id: {
            "principalId": (world.get(resource_id) or {"properties": {}})["properties"].get(
                "principalId"
            ),
            "clientId": (world.get(resource_id) or {"properties": {}})["properties"].get(
                "clientId"
            ),
        }
        for resource_id in users
    } or None
    if answer["userAssignedIdentities"] is None:
        del answer["userAssignedIdentities"]
    return answer


@ROUTER.add("DELETE", ARM, ENDPOINT, "online_endpoints.begin_delete")
def delete_endpoint(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, endpoint: str
) -> Reply:
    stored = require_endpoint(world, sub, group, ws, endpoint)
    world.delete(stored["id"])
    world.endpoint_keys.pop(endpoint_key(sub, group, ws, endpoint), None)
    world.deleted.append(("online endpoint", endpoint))
    return lro(world, request, None)


@ROUTER.add("POST", ARM, ENDPOINT + r"/listKeys", "online_endpoints.get_keys")
def endpoint_keys(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, endpoint: str
) -> dict:
    require_endpoint(world, sub, group, ws, endpoint)
    primary, secondary = world.endpoint_keys[endpoint_key(sub, group, ws, endpoint)]
    return {"primaryKey": primary, "secondaryKey": secondary}


def require_deployment(
    world: AzureWorld, sub: str, group: str, ws: str, endpoint: str, deployment: str
) -> dict:
    require_endpoint(world, sub, group, ws, endpoint)
    found = world.get(
        f"{workspace_id(sub, group, ws)}/onlineEndpoints/{endpoint}/deployments/{deployment}"
    )
    if found is None:
        raise not_found(
            f"The Resource '{ML}/workspaces/{ws}/onlineEndpoints/{endpoint}/deployments/"
            f"{deployment}' under resource group '{group}' was not found."
        )
    return found


@ROUTER.add("GET", ARM, DEPLOYMENT, "online_deployments.get")
def get_deployment(
    world: AzureWorld,
    request: Request,
    sub: str,
    group: str,
    ws: str,
    endpoint: str,
    deployment: str,
) -> dict:
    return require_deployment(world, sub, group, ws, endpoint, deployment)


@ROUTER.add("GET", ARM, ENDPOINT + r"/deployments", "online_deployments.list")
def list_deployments(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, endpoint: str
) -> dict:
    stored = require_endpoint(world, sub, group, ws, endpoint)
    return {"value": world.children(stored["id"], "deployments")}


@ROUTER.add("PUT", ARM, DEPLOYMENT, "online_deployments.begin_create_or_update")
def put_deployment(
    world: AzureWorld,
    request: Request,
    sub: str,
    group: str,
    ws: str,
    endpoint: str,
    deployment: str,
) -> Reply:
    """Quota is checked at once (400, as the service does); a name in
    `world.failing_deployments` fails to provision (the LRO ends Failed)."""
    stored_endpoint = require_endpoint(world, sub, group, ws, endpoint)
    body = request.json()
    properties = body["properties"]
    model = properties.get("model") or ""
    if model and world.get(model) is None:
        raise not_found(f"Model {model} not found.", "UserError")
    for key in ("environmentId",):
        if properties.get(key) and world.get(properties[key]) is None:
            raise not_found(f"Environment {properties[key]} not found.", "UserError")
    code = (properties.get("codeConfiguration") or {}).get("codeId")
    if code and world.get(code) is None:
        raise not_found(f"Code {code} not found.", "UserError")
    check_deployment_quota(world, sub, body)
    resource_id = f"{stored_endpoint['id']}/deployments/{deployment}"
    failure = world.failing_deployments.get(deployment)
    state = "Failed" if failure else "Succeeded"
    stored = {
        "id": resource_id,
        "name": deployment,
        "type": f"{ML}/workspaces/onlineEndpoints/deployments",
        "location": stored_endpoint["location"],
        "kind": "Managed",
        "tags": body.get("tags") or {},
        "sku": body.get("sku") or {"name": "Default", "capacity": 1},
        "systemData": system_data(),
        "properties": {
            **properties,
            "scaleSettings": properties.get("scaleSettings") or {"scaleType": "Default"},
            "provisioningState": state,
        },
    }
    existed = world.get(resource_id) is not None
    (world.updates if existed else world.created).append(("online deployment", deployment))
    world.put(stored)
    log = world.deployment_logs.setdefault((endpoint, deployment), [])
    log += ["Starting AzureML Inferencing Server", "Loading the model"]
    error = None
    if failure:
        log += ["Traceback (most recent call last):", failure]
        error = {
            "code": "ResourceNotReady",
            "message": (
                f"User container has crashed or terminated: {failure}. Please see "
                "troubleshooting guide, available here: https://aka.ms/oe-tsg#error-resourcenotready"
            ),
        }
    else:
        log.append("Model loaded; listening on port 5001")
    creating = json.loads(json.dumps(stored))
    creating["properties"]["provisioningState"] = "Creating"
    return lro(world, request, creating, status=200 if existed else 201, error=error)


def check_deployment_quota(world: AzureWorld, sub: str, body: dict) -> None:
    size = body["properties"].get("instanceType") or ""
    count = int((body.get("sku") or {}).get("capacity") or 1)
    family = family_of(size)
    if family not in world.quota:
        return
    used, limit = world.quota[family]
    needed = vcpus(size) * math.ceil(count * 1.2)
    if used + needed > limit:
        raise AzureError(
            400,
            "BadArgument",
            f"Not enough quota available for {size} in SubscriptionId {sub}. Current usage/limit: "
            f"{used}/{limit}. Additional needed: {needed} Please see troubleshooting guide, "
            "available here: https://aka.ms/oe-tsg#error-outofquota",
        )


@ROUTER.add("DELETE", ARM, DEPLOYMENT, "online_deployments.begin_delete")
def delete_deployment(
    world: AzureWorld,
    request: Request,
    sub: str,
    group: str,
    ws: str,
    endpoint: str,
    deployment: str,
) -> Reply:
    stored = require_deployment(world, sub, group, ws, endpoint, deployment)
    owner = require_endpoint(world, sub, group, ws, endpoint)
    if (owner["properties"].get("traffic") or {}).get(deployment):
        raise AzureError(
            400, "BadArgument", f"Deployment {deployment} has traffic; set its traffic to 0 first."
        )
    world.delete(stored["id"])
    world.deleted.append(("online deployment", deployment))
    return lro(world, request, None)


@ROUTER.add("POST", ARM, DEPLOYMENT + r"/getLogs", "online_deployments.get_logs")
def deployment_logs(
    world: AzureWorld,
    request: Request,
    sub: str,
    group: str,
    ws: str,
    endpoint: str,
    deployment: str,
) -> dict:
    require_deployment(world, sub, group, ws, endpoint, deployment)
    tail = int(request.json().get("tail") or 100)
    log = world.deployment_logs.get((endpoint, deployment), [])
    return {"content": "\n".join(log[-tail:]) + "\n"}


# -- jobs ---------------------------------------------------------------------------------


@ROUTER.add("GET", ARM, WS + r"/jobs/" + NAME, "jobs.get")
def get_job(world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str) -> dict:
    require_workspace(world, sub, group, ws)
    found = world.get(f"{workspace_id(sub, group, ws)}/jobs/{name}")
    if found is None:
        raise not_found(f"Job {name} not found.", "UserError")
    run = world.runs.get(name)
    if run is not None:
        found["properties"]["status"] = run["status"]
    return found


@ROUTER.add("GET", ARM, WS + r"/jobs", "jobs.list")
def list_jobs(world: AzureWorld, request: Request, sub: str, group: str, ws: str) -> dict:
    require_workspace(world, sub, group, ws)
    return {
        "value": [
            get_job(world, request, sub, group, ws, job["name"])
            for job in world.children(workspace_id(sub, group, ws), "jobs")
        ]
    }


@ROUTER.add("PUT", ARM, WS + r"/jobs/" + NAME, "jobs.create_or_update")
def put_job(world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str) -> Reply:
    workspace = require_workspace(world, sub, group, ws)
    body = request.json()
    properties = body["properties"]
    for key in ("environmentId", "codeId", "computeId"):
        value = properties.get(key)
        if value and value.startswith("/subscriptions/") and world.get(value) is None:
            raise not_found(f"{key} {value} was not found.", "UserError")
    location = workspace["location"]
    base = workspace_id(sub, group, ws)
    stored = world.put(
        {
            "id": f"{workspace_id(sub, group, ws)}/jobs/{name}",
            "name": name,
            "type": f"{ML}/workspaces/jobs",
            "systemData": system_data(),
            "properties": {
                **properties,
                "status": "Starting",
                "services": {
                    "Studio": {
                        "jobServiceType": "Studio",
                        "endpoint": f"https://ml.azure.com/runs/{name}?wsid={base}",
                    },
                    "Tracking": {
                        "jobServiceType": "Tracking",
                        "endpoint": f"azureml://{location}.api.azureml.ms/mlflow/v1.0{base}?",
                    },
                },
            },
        }
    )
    world.runs.setdefault(name, {"status": "Starting", "log_files": {}})
    world.record("job", name)
    return Reply(201, stored)


@ROUTER.add("POST", ARM, WS + r"/jobs/" + NAME + r"/cancel", "jobs.begin_cancel")
def cancel_job(
    world: AzureWorld, request: Request, sub: str, group: str, ws: str, name: str
) -> Reply:
    get_job(world, request, sub, group, ws, name)
    world.runs.setdefault(name, {"log_files": {}})["status"] = "Canceled"
    reply = lro(world, request, None)
    reply.status, reply.headers["Location"] = 202, reply.headers["Azure-AsyncOperation"]
    return reply


def add_job(
    world: AzureWorld,
    name: str,
    status: str = "Completed",
    *,
    sub: str = "11111111-2222-3333-4444-555555555555",
    group: str = "phi3-rg",
    ws: str = "phi3-ws",
    experiment: str = "phi3-finetune",
    **tags: str,
) -> dict:
    """A command job as GET .../jobs/{name} answers for it (spec: Job/CommandJob/get)."""
    base = workspace_id(sub, group, ws)
    world.runs[name] = {"status": status, "log_files": {}}
    return world.put(
        {
            "id": f"{base}/jobs/{name}",
            "name": name,
            "type": f"{ML}/workspaces/jobs",
            "systemData": system_data(),
            "properties": {
                "jobType": "Command",
                "displayName": name,
                "experimentName": experiment,
                "description": None,
                "tags": {"phiops": "fine-tune", **tags},
                "properties": {},
                "status": status,
                "command": "python fine_tune.py",
                "codeId": f"{base}/codes/{uuid.uuid4()}/versions/1",
                "environmentId": f"{base}/environments/phi3-finetune-env/versions/1",
                "computeId": f"{base}/computes/gpu-cluster",
                "inputs": {},
                "outputs": {
                    "model_output": {
                        "jobOutputType": "uri_folder",
                        "mode": "ReadWriteMount",
                        "uri": f"azureml://datastores/workspaceblobstore/paths/azureml/{name}/model_output/",
                    }
                },
                "environmentVariables": {},
                "resources": {"instanceCount": 1, "shmSize": "2g", "properties": {}},
                "isArchived": False,
                "services": {
                    "Studio": {
                        "jobServiceType": "Studio",
                        "endpoint": f"https://ml.azure.com/runs/{name}?wsid={base}",
                    }
                },
            },
        }
    )


__all__ = ["LOCATION", "add_job"]
