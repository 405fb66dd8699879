"""The credential and SDK clients the Azure parts share, built lazily and without network.

`MLClient(...)` and the management clients make no call when constructed, so a command
only signs in when it first talks to Azure. Tests pass stand-ins through `overrides`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from core.config import Config
from core.errors import ConfigError


class AzureClients:
    """One credential and the clients built on it, for one phiops.toml."""

    def __init__(self, config: Config, **overrides: Any) -> None:
        self.config = config
        self.__dict__.update(overrides)  # cached_property reads instance attributes first

    def require(self, *keys: str) -> None:
        """Stop with one sentence when a setting Azure needs is empty."""
        missing = [key for key in keys if not getattr(self.config, key)]
        if missing:
            raise ConfigError(
                f"set {', '.join(missing)} for the Azure backend "
                f"(`phiops config set {missing[0]} …`, or `phiops config init --from-azure`)"
            )

    @cached_property
    def credential(self) -> Any:
        from core.azure.credentials import make_credential

        return make_credential(self.config.credential)

    @cached_property
    def ml_client(self) -> Any:
        from azure.ai.ml import MLClient

        self.require("subscription_id", "resource_group", "workspace")
        return MLClient(
            credential=self.credential,
            subscription_id=self.config.subscription_id,
            resource_group_name=self.config.resource_group,
            workspace_name=self.config.workspace,
        )
