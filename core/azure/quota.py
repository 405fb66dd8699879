"""The vCPU quota of a VM size's family in a region, read through azure-ai-ml: what a
cluster or a deployment may still take before Azure queues it forever or refuses it.

Shared by the jobs (a cluster's preflight), the endpoints (a deployment's preflight) and
the resources check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import PhiopsError

QUOTA_HELP = (
    "request more in Azure ML studio (Quotas page) or the Azure portal "
    "(Subscriptions > Usage + quotas), or pick another compute_vm_size"
)


@dataclass
class Quota:
    family: str
    used: int
    limit: int
    vcpus_per_node: int
    gpus_per_node: int


def vm_quota(ml_client: Any, vm_size: str, location: str | None) -> Quota:
    """The vCPU quota of `vm_size`'s family in the workspace's region."""
    location = location or None
    sizes = {size.name.lower(): size for size in ml_client.compute.list_sizes(location=location)}
    size = sizes.get(vm_size.lower())
    if size is None:
        raise PhiopsError(
            f"VM size {vm_size} is not offered for Azure ML compute in "
            f"{location or 'the workspace region'}; set compute_vm_size to one that is"
        )
    family = size.family or ""
    for usage in ml_client.compute.list_usage(location=location):
        if _usage_name(usage).lower() == family.lower():
            return Quota(
                family,
                _usage_current(usage),
                int(usage.limit or 0),
                int(size.v_cp_us or 0),
                int(size.gpus or 0),
            )
    raise PhiopsError(f"Azure reports no quota for VM family {family} ({vm_size}); {QUOTA_HELP}")


def _usage_current(usage: Any) -> int:
    """azure-ai-ml 1.35's `Usage._from_rest_object` copies the REST dict, so the count
    lands in `currentValue` and `current_value` stays None."""
    value = usage.current_value
    if value is None:
        value = getattr(usage, "currentValue", None)
    return int(value or 0)


def _usage_name(usage: Any) -> str:
    name = usage.name  # a UsageName, or the dict Usage._from_rest_object leaves
    if isinstance(name, dict):
        return str(name.get("value") or "")
    return str(getattr(name, "value", "") or "")


def check_quota(quota: Quota, vm_size: str, nodes: int) -> None:
    """Stop before creating or scaling a cluster that the quota would leave empty."""
    needed = quota.vcpus_per_node * nodes
    free = quota.limit - quota.used
    if needed > free:
        raise PhiopsError(
            f"not enough quota for {nodes} x {vm_size}: VM family {quota.family} uses "
            f"{quota.used} of {quota.limit} vCPUs and the job needs {needed}; {QUOTA_HELP}"
        )
