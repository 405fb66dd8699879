"""Pick the backend a config names. Each backend module is imported only when chosen."""

from __future__ import annotations

from core.backend import Backend
from core.config import Config
from core.errors import ConfigError


def get_backend(config: Config, name: str | None = None) -> Backend:
    """The backend `name` (default: the config's), built lazily so startup stays light."""
    chosen = name or config.backend
    if chosen == "local":
        from core.local.backend import LocalBackend

        return LocalBackend(config)
    if chosen == "azure":
        from core.azure.backend import AzureBackend

        return AzureBackend(config)
    raise ConfigError(f"unknown backend '{chosen}'; use 'local' or 'azure'")
