"""Fixtures for the Azure deploy tests: a provisioned fake Azure (at the HTTP transport), the
Azure backend wired to it, a completed job, and a secret store of the test's own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.azure.backend import AzureBackend
from core.azure.endpoints import AzureEndpoints
from core.azure.registry import AzureRegistry
from core.config import Config, load_config, write_config_values
from core.secrets import SecretStore
from tests.azure_standins import (
    GPU_SIZE,
    SERVING_FAMILY,
    SERVING_SIZE,
    SUBSCRIPTION,
    AzureWorld,
    add_job,
    provision,
)

__all__ = ["SERVING_FAMILY", "SERVING_SIZE", "AzureDeploy", "azure_deploy"]

SETTINGS = {
    "backend": "azure",
    "subscription_id": SUBSCRIPTION,
    "resource_group": "phi3-rg",
    "workspace": "phi3-ws",
    "location": "eastus2",
    "identity_name": "phi3-identity",
    "compute_name": "gpu-cluster",
    "compute_vm_size": GPU_SIZE,
    "endpoint_name": "phi3-endpoint",
    "deployment_instance_type": SERVING_SIZE,
    "deployment_instance_count": 1,
}


@dataclass
class AzureDeploy:
    """Everything a deploy test touches."""

    world: AzureWorld
    config: Config
    secrets: SecretStore
    clients: Any
    registry: AzureRegistry
    endpoints: AzureEndpoints
    backend: AzureBackend
    progress: list[str]


@pytest.fixture
def azure_deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AzureDeploy:
    path = tmp_path / "phiops.toml"
    write_config_values(path, SETTINGS)
    config = load_config(path, env={})
    world = provision(AzureWorld(), config)
    world.patch(monkeypatch)
    world.quota[SERVING_FAMILY] = (0, 24)
    add_job(world, "calm_river_1a2b3c", base_model="microsoft/Phi-3-mini-4k-instruct")
    add_job(world, "busy_cloud_4d5e6f", status="Running")
    clients = world.clients(config)
    secrets = SecretStore(tmp_path / "secrets" / "secrets.json")
    registry = AzureRegistry(config, clients)
    endpoints = AzureEndpoints(config, clients, registry, secrets=secrets, poll_seconds=0.01)
    backend = AzureBackend(config)
    # The backend's parts are cached properties: hand it the same wired parts.
    backend.__dict__.update(_clients=clients, _registry=registry, _endpoints=endpoints)
    return AzureDeploy(world, config, secrets, clients, registry, endpoints, backend, [])
