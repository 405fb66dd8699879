"""The credential and SDK clients the Azure parts share, built lazily and without network.

`MLClient(...)` and the management clients make no call when constructed, so a command
only signs in when it first talks to Azure. Tests hand every client the same HTTP
`transport` (azure-core's, so the SDKs' own request building, polling and deserialization
run against it) and a `credential`; `overrides` may replace a whole client (keyword
arguments named like the properties below).
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any

from core.config import Config
from core.errors import ConfigError


class AzureClients:
    """One credential and the clients built on it, for one phiops.toml."""

    def __init__(self, config: Config, *, transport: Any = None, **overrides: Any) -> None:
        self.config = config
        self._transport = transport
        self._overrides = overrides
        self.__dict__.update(overrides)  # cached_property reads instance attributes first

    @property
    def _options(self) -> dict[str, Any]:
        """Keyword arguments every SDK client takes: the HTTP transport, when one is given."""
        return {"transport": self._transport} if self._transport is not None else {}

    def require(self, *keys: str) -> None:
        """Stop with one sentence when a setting Azure needs is empty."""
        missing = [key for key in keys if not getattr(self.config, key)]
        if missing:
            raise ConfigError(
                f"set {', '.join(missing)} for the Azure backend "
                f"(`phiops config set {missing[0]} …`, or `phiops config init --from-azure`)"
            )

    def for_subscription(self, subscription_id: str) -> AzureClients:
        """The same sign-in (and stand-ins) aimed at another subscription, for discovery."""
        config = dataclasses.replace(self.config, subscription_id=subscription_id)
        overrides = {**self._overrides, "credential": self.credential}
        return type(self)(config, transport=self._transport, **overrides)

    @cached_property
    def credential(self) -> Any:
        from core.azure.credentials import make_credential

        return make_credential(self.config.credential)

    def ensure_signed_in(self) -> None:
        """Get a management token now: "not signed in" is one sentence, said first."""
        from core.azure.credentials import ensure_signed_in

        ensure_signed_in(self.credential, self.config.credential)

    @cached_property
    def ml_client(self) -> Any:
        from azure.ai.ml import MLClient

        self.require("subscription_id", "resource_group", "workspace")
        return MLClient(
            credential=self.credential,
            subscription_id=self.config.subscription_id,
            resource_group_name=self.config.resource_group,
            workspace_name=self.config.workspace,
            **self._options,
        )

    @cached_property
    def subscription_client(self) -> Any:
        """Subscriptions the credential can see; not tied to one subscription."""
        from azure.mgmt.resource.subscriptions import SubscriptionClient

        return SubscriptionClient(self.credential, **self._options)

    @cached_property
    def resource_client(self) -> Any:
        """Resource groups and generic resources (the workspace's linked resources)."""
        from azure.mgmt.resource.resources import ResourceManagementClient

        self.require("subscription_id")
        return ResourceManagementClient(
            self.credential, self.config.subscription_id, **self._options
        )

    @cached_property
    def authorization_client(self) -> Any:
        """Role assignments."""
        from azure.mgmt.authorization import AuthorizationManagementClient

        self.require("subscription_id")
        return AuthorizationManagementClient(
            self.credential, self.config.subscription_id, **self._options
        )

    @cached_property
    def msi_client(self) -> Any:
        """User-assigned managed identities."""
        from azure.mgmt.msi import ManagedServiceIdentityClient

        self.require("subscription_id")
        return ManagedServiceIdentityClient(
            self.credential, self.config.subscription_id, **self._options
        )
