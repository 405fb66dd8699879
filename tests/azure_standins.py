"""Azure for the tests: a fake at the SDKs' HTTP transport, over one in-memory `AzureWorld`.

There is no network here, and hand-built SDK entities only encode our own assumptions, so
the tests talk to Azure's REST API instead — a fake of it (`tests/azure_fake/`). The real
`MLClient` and management clients build each request, poll each long-running operation
(201/202 + `Azure-AsyncOperation`) and deserialize each answer with their own code; the fake
answers with JSON shaped as the published REST spec says (field names, casing, ARM ids,
error bodies `{"error": {"code", "message"}}`), keeps what was created, and can refuse the
way Azure refuses: 403 (`world.denied`), throttling 429 with `Retry-After`
(`world.throttled`), quota (`world.quota`), a deployment that fails to provision
(`world.failing_deployments`), an expired token.

`world.clients(config)` returns a real `AzureClients` whose clients send through the fake;
`world.patch(monkeypatch)` makes every `AzureClients(config)` phiops builds do the same and
routes every `requests` call in the process (the SDK's own blob and ARM-deployment clients
too) to the fake — loopback addresses excepted, anything else refused. Every create is
recorded in `world.created` as (kind, name).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from tests.azure_fake import server
from tests.azure_fake.ml import add_job as _add_job
from tests.azure_fake.transport import FakeAzureAdapter, install, transport
from tests.azure_fake.world import (
    CPU_FAMILY,
    CPU_SIZE,
    GPU_FAMILY,
    GPU_SIZE,
    LOCATION,
    OTHER_SUBSCRIPTION,
    SERVING_FAMILY,
    SERVING_SIZE,
    SUBSCRIPTION,
    TENANT,
    rg_id,
    workspace_id,
)
from tests.azure_fake.world import AzureWorld as _WorldState

__all__ = [
    "CPU_FAMILY",
    "CPU_SIZE",
    "GPU_FAMILY",
    "GPU_SIZE",
    "LOCATION",
    "OTHER_SUBSCRIPTION",
    "SERVING_FAMILY",
    "SERVING_SIZE",
    "SUBSCRIPTION",
    "TENANT",
    "AzureWorld",
    "FakeCredential",
    "add_job",
    "provision",
    "rg_id",
    "workspace_id",
]


class FakeCredential:
    """A `TokenCredential`. Signed out, it fails as DefaultAzureCredential does; tokens last
    `world.token_lifetime` seconds and read `expired-…` to the fake once they are past it."""

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
        expires = int(self.world.clock()) + self.world.token_lifetime
        self.world.issued_tokens[f"token-{self.world.token_requests}"] = expires
        return AccessToken(f"token-{self.world.token_requests}", expires)


class AzureWorld(_WorldState):
    """The fake's state plus the wiring that points phiops' clients at it."""

    @cached_property
    def adapter(self) -> FakeAzureAdapter:
        return FakeAzureAdapter(lambda request: server.serve(self, request))

    def transport(self) -> Any:
        return transport(self.adapter)

    def credential(self) -> FakeCredential:
        return FakeCredential(self)

    def clients(self, config: Any, **overrides: Any) -> Any:
        from core.azure.client import AzureClients

        overrides.setdefault("credential", self.credential())
        return AzureClients(config, transport=self.transport(), **overrides)

    def patch(self, monkeypatch: Any) -> None:
        """Every `AzureClients(config)` phiops builds, and every `requests` call, meets the fake."""
        import core.azure.client as client_module

        install(monkeypatch, self.adapter)
        real = client_module.AzureClients
        world = self

        class PatchedClients(real):  # type: ignore[misc, valid-type]
            def __init__(self, config: Any, *, transport: Any = None, **overrides: Any) -> None:
                overrides.setdefault("credential", world.credential())
                super().__init__(config, transport=transport or world.transport(), **overrides)

        monkeypatch.setattr(client_module, "AzureClients", PatchedClients)


def add_job(world: AzureWorld, name: str, status: str = "Completed", **tags: str) -> dict:
    """A command job of the project's experiment, as `jobs.get` answers for it."""
    return _add_job(world, name, status, **tags)


def provision(world: AzureWorld, config: Any) -> AzureWorld:
    """Everything `config` needs exists and is granted: the world after a good `ensure`."""
    from core.azure.blueprint import ROLE_NEEDS

    sub, group = config.subscription_id, config.resource_group
    world.add_group(group, sub, config.location)
    workspace = world.add_workspace(
        group, config.workspace, subscription=sub, location=config.location
    )
    identity = world.add_identity(group, config.identity_name, sub)
    config.identity_client_id = identity["properties"]["clientId"]
    principal = identity["properties"]["principalId"]
    scopes = {
        "resource group": rg_id(sub, group),
        "storage account": workspace["properties"]["storageAccount"],
        "container registry": workspace["properties"]["containerRegistry"],
    }
    for need in ROLE_NEEDS:
        world.grant(scopes[need.target], need.definition_guid, principal, sub)
    world.add_compute(
        config.compute_name,
        config.compute_vm_size,
        group=group,
        workspace=config.workspace,
        subscription=sub,
        max_nodes=config.compute_max_nodes,
        identity_id=identity["id"],
    )
    return world
