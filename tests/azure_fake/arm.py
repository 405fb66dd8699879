"""Azure Resource Manager: subscriptions, resource groups, generic resources, role
assignments, managed identities and template deployments (which the SDK uses to create a
workspace). Shapes from the Microsoft.Resources, Microsoft.Authorization and
Microsoft.ManagedIdentity REST specs."""

from __future__ import annotations

import uuid

from tests.azure_fake.server import ARM, ROUTER, lro
from tests.azure_fake.transport import AzureError, Reply, Request, not_found
from tests.azure_fake.world import TENANT, AzureWorld, normal, rg_id, system_data

GROUP = r"/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<group>[^/]+)"
IDENTITIES = "/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
ROLE_ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments"


def require_group(world: AzureWorld, sub: str, group: str) -> dict:
    found = world.get(rg_id(sub, group))
    if found is None:
        raise not_found(f"Resource group '{group}' could not be found.", "ResourceGroupNotFound")
    return found


# -- subscriptions ---------------------------------------------------------------------


def subscription(world: AzureWorld, sub: str) -> dict:
    return {
        "id": f"/subscriptions/{sub}",
        "subscriptionId": sub,
        "tenantId": TENANT,
        "displayName": world.subscriptions[sub],
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "EnterpriseAgreement_2014-09-01",
            "spendingLimit": "Off",
        },
        "authorizationSource": "RoleBased",
    }


@ROUTER.add("GET", ARM, r"/subscriptions", "subscriptions.list")
def list_subscriptions(world: AzureWorld, request: Request) -> dict:
    return {"value": [subscription(world, sub) for sub in world.subscriptions]}


@ROUTER.add("GET", ARM, r"/subscriptions/(?P<sub>[^/]+)", "subscriptions.get")
def get_subscription(world: AzureWorld, request: Request, sub: str) -> dict:
    return subscription(world, sub)


# -- resource groups ---------------------------------------------------------------------


@ROUTER.add("GET", ARM, r"/subscriptions/(?P<sub>[^/]+)/resourcegroups", "resource_groups.list")
def list_groups(world: AzureWorld, request: Request, sub: str) -> dict:
    return {"value": world.children(f"/subscriptions/{sub}", "resourceGroups")}


@ROUTER.add("GET", ARM, GROUP, "resource_groups.get")
def get_group(world: AzureWorld, request: Request, sub: str, group: str) -> dict:
    return require_group(world, sub, group)


@ROUTER.add("HEAD", ARM, GROUP, "resource_groups.check_existence")
def group_exists(world: AzureWorld, request: Request, sub: str, group: str) -> Reply:
    return Reply(204 if world.get(rg_id(sub, group)) else 404)


@ROUTER.add("PUT", ARM, GROUP, "resource_groups.create_or_update")
def put_group(world: AzureWorld, request: Request, sub: str, group: str) -> Reply:
    body = request.json()
    if not body.get("location"):
        raise AzureError(400, "LocationRequired", "The location property is required.")
    existed = world.get(rg_id(sub, group)) is not None
    stored = world.add_group(group, sub, body["location"])
    stored["tags"] = body.get("tags") or {}
    if not existed:
        world.record("resource group", group)
    return Reply(200 if existed else 201, stored)


# -- managed identities ------------------------------------------------------------------


@ROUTER.add("GET", ARM, GROUP + IDENTITIES + r"/(?P<name>[^/]+)", "identities.get")
def get_identity(world: AzureWorld, request: Request, sub: str, group: str, name: str) -> dict:
    found = world.get(f"{rg_id(sub, group)}{IDENTITIES}/{name}")
    if found is None:
        raise not_found(
            f"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{name}' under "
            f"resource group '{group}' was not found."
        )
    return found


@ROUTER.add("PUT", ARM, GROUP + IDENTITIES + r"/(?P<name>[^/]+)", "identities.create_or_update")
def put_identity(world: AzureWorld, request: Request, sub: str, group: str, name: str) -> Reply:
    body = request.json()
    if not body.get("location"):
        raise AzureError(400, "LocationRequired", "The location property is required.")
    require_group(world, sub, group)
    existing = world.get(f"{rg_id(sub, group)}{IDENTITIES}/{name}")
    if existing is not None:
        return Reply(200, existing)
    world.record("managed identity", name)
    return Reply(201, world.add_identity(group, name, sub))


@ROUTER.add("GET", ARM, GROUP + IDENTITIES, "identities.list_by_resource_group")
def list_identities(world: AzureWorld, request: Request, sub: str, group: str) -> dict:
    return {
        "value": world.children(
            f"{rg_id(sub, group)}/providers/Microsoft.ManagedIdentity", "userAssignedIdentities"
        )
    }


@ROUTER.add(
    "GET", ARM, r"/subscriptions/(?P<sub>[^/]+)" + IDENTITIES, "identities.list_by_subscription"
)
def list_all_identities(world: AzureWorld, request: Request, sub: str) -> dict:
    prefix = normal(f"/subscriptions/{sub}")
    return {
        "value": [
            value
            for key, value in world.arm.items()
            if key.startswith(prefix)
            and value.get("type") == "Microsoft.ManagedIdentity/userAssignedIdentities"
        ]
    }


# -- role assignments ----------------------------------------------------------------------


@ROUTER.add("GET", ARM, r"(?P<scope>/.*?)" + ROLE_ASSIGNMENTS, "role_assignments.list_for_scope")
def list_role_assignments(world: AzureWorld, request: Request, scope: str) -> dict:
    """As ARM answers `principalId eq '…'`: that principal's assignments at, above or below
    the scope."""
    wanted = request.query.get("$filter", "")
    principal = None
    if wanted:
        if not wanted.startswith("principalId eq '"):
            raise AzureError(400, "InvalidFilter", f"unsupported filter {wanted}")
        principal = wanted.split("'")[1]
    scope = normal(scope)
    found = [
        item
        for item in world.role_assignments
        if (principal is None or item["properties"]["principalId"] == principal)
        and (
            scope.startswith(normal(item["properties"]["scope"]))
            or normal(item["properties"]["scope"]).startswith(scope)
        )
    ]
    return {"value": found}


@ROUTER.add(
    "PUT",
    ARM,
    r"(?P<scope>/.*?)" + ROLE_ASSIGNMENTS + r"/(?P<name>[^/]+)",
    "role_assignments.create",
)
def put_role_assignment(world: AzureWorld, request: Request, scope: str, name: str) -> Reply:
    try:
        uuid.UUID(name)
    except ValueError:
        raise AzureError(
            400, "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid."
        ) from None
    properties = request.json()["properties"]
    if world.get(scope) is None and normal(scope).count("/") > 2:
        raise not_found(f"The scope '{scope}' does not exist.", "InvalidScope")
    for item in world.role_assignments:
        existing = item["properties"]
        if (
            normal(existing["scope"]) == normal(scope)
            and existing["roleDefinitionId"].lower() == properties["roleDefinitionId"].lower()
            and existing["principalId"] == properties["principalId"]
        ):
            raise AzureError(409, "RoleAssignmentExists", "The role assignment already exists.")
    if properties.get("principalType") != "ServicePrincipal":
        raise AzureError(
            400,
            "PrincipalNotFound",
            f"Principal {properties['principalId']} does not exist in the directory {TENANT}.",
        )
    guid = properties["roleDefinitionId"].rsplit("/", 1)[-1]
    stored = world.grant(scope, guid, properties["principalId"], name=name)
    world.record("role assignment", f"{guid} on {scope}")
    return Reply(201, stored)


# -- generic resources -------------------------------------------------------------------


@ROUTER.add("GET", ARM, r"/subscriptions/(?P<sub>[^/]+)/resources", "resources.list")
def list_resources(world: AzureWorld, request: Request, sub: str) -> dict:
    """Only what discovery asks: by `resourceType eq '…'`."""
    wanted = request.query.get("$filter", "")
    kind = wanted.split("'")[1].lower() if "resourceType eq '" in wanted else None
    prefix = normal(f"/subscriptions/{sub}")
    return {
        "value": [
            {
                key: value[key]
                for key in ("id", "name", "type", "location", "kind", "tags")
                if key in value
            }
            for key_id, value in world.arm.items()
            if key_id.startswith(prefix + "/")
            and (kind is None or value.get("type", "").lower() == kind)
        ]
    }


@ROUTER.add(
    "PUT",
    ARM,
    GROUP + r"(?:/providers/Microsoft\.Resources)?/deployments/(?P<name>[^/]+)",
    "deployments.create_or_update",
)
def put_template_deployment(
    world: AzureWorld, request: Request, sub: str, group: str, name: str
) -> Reply:
    """What `workspaces.begin_create` sends: an ARM template. The fake reads the workspace's
    parameters from it and makes what Azure ML makes (storage, key vault, insights)."""
    from tests.azure_fake.world import ML

    require_group(world, sub, group)
    body = request.json()["properties"]
    parameters = {key: value.get("value") for key, value in (body.get("parameters") or {}).items()}
    workspace = parameters["workspaceName"]
    registry = None
    if parameters.get("containerRegistryOption") == "existing":
        registry_group = parameters.get("containerRegistryResourceGroupName") or group
        registry = (
            f"{rg_id(sub, registry_group)}/providers/Microsoft.ContainerRegistry/registries/"
            f"{parameters['containerRegistryName']}"
        )
        if world.get(registry) is None:
            raise not_found(f"container registry {registry} was not found")
    created = world.add_workspace(
        group,
        workspace,
        subscription=sub,
        location=parameters.get("location") or "eastus2",
        registry=registry or False,
    )
    created["tags"] = parameters.get("tagValues") or {}
    world.record("workspace", workspace)
    deployment = {
        "id": f"{rg_id(sub, group)}/providers/Microsoft.Resources/deployments/{name}",
        "name": name,
        "type": "Microsoft.Resources/deployments",
        "properties": {
            "provisioningState": "Succeeded",
            "timestamp": system_data()["createdAt"],
            "duration": "PT1M",
            "mode": "Incremental",
            "outputResources": [{"id": created["id"]}],
        },
    }
    world.put(deployment)
    assert created["type"] == f"{ML}/workspaces"
    return lro(world, request, deployment)


@ROUTER.add(
    "GET",
    ARM,
    GROUP + r"(?:/providers/Microsoft\.Resources)?/deployments/(?P<name>[^/]+)/operations",
    "deployments.operations",
)
def list_deployment_operations(
    world: AzureWorld, request: Request, sub: str, group: str, name: str
) -> dict:
    return {"value": []}


@ROUTER.add("HEAD", ARM, r"(?P<resource>/subscriptions/.+)", "resources.check_existence_by_id")
def resource_exists(world: AzureWorld, request: Request, resource: str) -> Reply:
    return Reply(204 if world.get(resource) else 404)


@ROUTER.add(
    "PUT",
    ARM,
    GROUP + r"/providers/(?P<namespace>[^/]+)/(?P<kind>[^/]+)/(?P<name>[^/]+)",
    "resources.begin_create_or_update",
)
def put_resource(
    world: AzureWorld, request: Request, sub: str, group: str, namespace: str, kind: str, name: str
) -> Reply:
    """A generic resource (the container registry phiops makes)."""
    require_group(world, sub, group)
    body = request.json()
    resource_id = f"{rg_id(sub, group)}/providers/{namespace}/{kind}/{name}"
    existed = world.get(resource_id) is not None
    stored = world.add_resource(
        resource_id,
        body.get("location") or "eastus2",
        sku=body.get("sku"),
        properties={**(body.get("properties") or {}), "provisioningState": "Succeeded"},
    )
    if not existed:
        world.record(kind, name)
    return lro(world, request, stored, status=200 if existed else 201)


@ROUTER.add(
    "GET",
    ARM,
    r"(?P<resource>/subscriptions/[^/]+/resourcegroups/[^/]+/providers/(?!Microsoft\.MachineLearningServices/).+)",
    "resources.get_by_id",
)
def get_resource(world: AzureWorld, request: Request, resource: str) -> dict:
    found = world.get(resource)
    if found is None:
        raise not_found(f"The Resource '{resource}' was not found.")
    return found


@ROUTER.add(
    "GET",
    ARM,
    GROUP + r"(?:/providers/Microsoft\.Resources)?/deployments/(?P<name>[^/]+)",
    "deployments.get",
)
def get_template_deployment(
    world: AzureWorld, request: Request, sub: str, group: str, name: str
) -> dict:
    found = world.get(f"{rg_id(sub, group)}/providers/Microsoft.Resources/deployments/{name}")
    if found is None:
        raise not_found(f"Deployment '{name}' could not be found.", "DeploymentNotFound")
    return found
