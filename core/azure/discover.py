"""`phiops config init --from-azure`: the Azure ids, read from what the sign-in can see.

Every subscription the credential sees is searched for Azure ML workspaces (hubs and
projects are left out); values the user already gave (flags) narrow the search. When
exactly one workspace fits, its subscription, resource group, region and name are taken,
and the managed identity in its resource group is taken when there is one (or the one
named). Anything ambiguous is left out and said, so `config init` asks for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from core.azure import client as client_module
from core.azure.resources import Denied, reading
from core.config import Config

WORKSPACE_TYPE = "Microsoft.MachineLearningServices/workspaces"
MAX_SUBSCRIPTIONS = 25  # enough for a person; a tenant with hundreds should name one


def resource_group_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    lowered = [part.lower() for part in parts]
    return parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else ""


def discover_config(
    values: dict[str, Any], progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Settings found in Azure; `values` (what the user gave) are respected, not returned."""
    say = progress or (lambda message: None)
    config = dataclasses.replace(Config(), **_known(values))
    clients = client_module.AzureClients(config)
    say("signing in to Azure")
    clients.ensure_signed_in()

    wanted = values.get("subscription_id")
    with reading("the subscriptions"):
        subscriptions = [
            item
            for item in clients.subscription_client.subscriptions.list()
            if not wanted or item.subscription_id == wanted
        ]
    if not subscriptions:
        say(
            f"subscription {wanted} is not visible to this sign-in"
            if wanted
            else "this sign-in sees no subscription"
        )
        return {}
    if len(subscriptions) > MAX_SUBSCRIPTIONS:
        say(f"{len(subscriptions)} subscriptions: searching the first {MAX_SUBSCRIPTIONS}")
        subscriptions = subscriptions[:MAX_SUBSCRIPTIONS]

    found: list[tuple[str, Any, Any]] = []  # (subscription id, workspace, its clients)
    for subscription in subscriptions:
        scoped = clients.for_subscription(subscription.subscription_id)
        say(f"looking for workspaces in {subscription.display_name}")
        for workspace in _workspaces(scoped, say):
            if _fits(workspace, values):
                found.append((subscription.subscription_id, workspace, scoped))

    result: dict[str, Any] = {}
    if len(subscriptions) == 1:
        result["subscription_id"] = subscriptions[0].subscription_id
    if len(found) != 1:
        names = ", ".join(f"{ws.name} ({resource_group_of(ws.id)})" for _, ws, _ in found[:8])
        say(
            f"{len(found)} workspaces fit: {names}; pass --workspace and --resource-group"
            if found
            else "no Azure ML workspace found; `phiops resources ensure` can create one"
        )
        return result
    subscription_id, workspace, scoped = found[0]
    group = resource_group_of(workspace.id)
    result.update(
        subscription_id=subscription_id,
        resource_group=group,
        workspace=workspace.name,
        location=workspace.location,
    )
    say(f"found workspace {workspace.name} in {group} ({workspace.location})")
    result.update(_identity(scoped, group, values, say))
    return result


def _known(values: dict[str, Any]) -> dict[str, Any]:
    names = {spec.name for spec in dataclasses.fields(Config)}
    return {key: value for key, value in values.items() if key in names}


def _workspaces(clients: Any, say: Callable[[str], None]) -> list[Any]:
    """The subscription's Azure ML workspaces (kind Default), as generic resources."""
    try:
        with reading("the workspaces"):
            listed = list(
                clients.resource_client.resources.list(filter=f"resourceType eq '{WORKSPACE_TYPE}'")
            )
    except Denied:  # one unreadable subscription does not stop the search
        say(f"cannot list workspaces in subscription {clients.config.subscription_id}")
        return []
    return [item for item in listed if str(item.kind or "default").lower() == "default"]


def _fits(workspace: Any, values: dict[str, Any]) -> bool:
    group = values.get("resource_group")
    name = values.get("workspace")
    return (not name or workspace.name == name) and (
        not group or resource_group_of(workspace.id).lower() == str(group).lower()
    )


def _identity(
    clients: Any, group: str, values: dict[str, Any], say: Callable[[str], None]
) -> dict[str, Any]:
    """The user-assigned identity in the workspace's resource group: the named one, or the
    only one."""
    with reading("the managed identities"):
        identities = list(clients.msi_client.user_assigned_identities.list_by_resource_group(group))
    wanted = values.get("identity_name")
    if wanted:
        identities = [item for item in identities if item.name == wanted]
    if len(identities) != 1:
        names = ", ".join(item.name for item in identities[:8])
        say(
            f"{len(identities)} managed identities in {group}: {names}; pass --identity-name"
            if identities
            else f"no managed identity in {group}; `phiops resources ensure` creates one"
        )
        return {}
    identity = identities[0]
    say(f"found managed identity {identity.name}")
    return {"identity_name": identity.name, "identity_client_id": identity.client_id}
