"""The Azure ML backend: command jobs, the workspace registry, managed online endpoints.

`AzureClients` holds the credential and the SDK clients the parts share; building it makes
no network call, so a command that fails to sign in says so when it first needs Azure.
"""

from __future__ import annotations

from functools import cached_property

from core.backend import Finding
from core.composed import ComposedBackend


class AzureBackend(ComposedBackend):
    name = "azure"

    @cached_property
    def _clients(self):
        from core.azure.client import AzureClients

        return AzureClients(self.config)

    @cached_property
    def _jobs(self):
        from core.azure.jobs import AzureJobs

        return AzureJobs(self.config, self._clients)

    @cached_property
    def _registry(self):
        from core.azure.registry import AzureRegistry

        return AzureRegistry(self.config, self._clients)

    @cached_property
    def _endpoints(self):
        from core.azure.endpoints import AzureEndpoints

        return AzureEndpoints(self.config, self._clients, self._registry)

    def resources(self) -> list[Finding]:
        from core.azure.resources import check_resources

        return check_resources(self.config, self._clients)
