"""The vCPU quota of a VM size's family in a region, read through azure-ai-ml: what a
cluster or a deployment may still take before Azure queues it forever or refuses it.

Shared by the jobs (a cluster's preflight), the endpoints (a deployment's preflight) and
the resources check.
"""

from __future__ import annotations

import re
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
    """The vCPU quota of `vm_size`'s family in the workspace's region (dedicated tier)."""
    location = location or None
    sizes = {size.name.lower(): size for size in ml_client.compute.list_sizes(location=location)}
    size = sizes.get(vm_size.lower())
    if size is None:
        raise PhiopsError(
            f"VM size {vm_size} is not offered for Azure ML compute in "
            f"{location or 'the workspace region'}; set compute_vm_size to one that is"
        )
    family = size.family or ""
    usages = [u for u in ml_client.compute.list_usage(location=location) if _names(u, family)]
    usages.sort(key=lambda usage: "vmfamily" not in str(_field(usage, "type")).lower())
    if not usages:
        raise PhiopsError(
            f"Azure reports no quota for VM family {family} ({vm_size}); {QUOTA_HELP}"
        )
    usage = usages[0]  # the subscription's (vmFamily/usages) before a workspace's share
    return Quota(
        family,
        int(_field(usage, "current_value", "currentValue") or 0),
        int(_field(usage, "limit") or 0),
        int(_field(size, "v_cp_us", "vCPUs") or 0),
        int(_field(size, "gpus") or 0),
    )


def _field(entity: Any, *names: str) -> Any:
    """azure-ai-ml 1.35's `VmSize`/`Usage._from_rest_object` copy the REST model's dict onto
    the entity, so values sit under the REST names (`vCPUs`, `currentValue`) while the
    documented attributes (`v_cp_us`, `current_value`) stay None; read either."""
    for name in names:
        value = getattr(entity, name, None)
        if value is not None:
            return value
    return None


def _family_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _names(usage: Any, family: str) -> bool:
    """Whether `usage` counts the dedicated vCPUs of `family`. The service names a family's
    usage by the family itself (`standardNCADSA100v4Family`) or in words (`Standard
    NCADSA100v4 Family Cluster Dedicated vCPUs`, as the REST spec's example does)."""
    name = usage.name  # a UsageName, or the dict Usage._from_rest_object leaves
    values = (
        [name.get("value"), name.get("localizedValue")]
        if isinstance(name, dict)
        else [
            getattr(name, "value", None),
            getattr(name, "localized_value", None),
        ]
    )
    want = _family_key(family)
    for value in values:
        key = _family_key(str(value or ""))
        if "lowpriority" in key:
            return False
        if key.removesuffix("clusterdedicatedvcpus") == want:
            return True
    return False


def check_quota(quota: Quota, vm_size: str, nodes: int, allocated: int = 0) -> None:
    """Stop before creating or scaling a cluster that the quota would leave empty. Nodes the
    cluster holds now (`allocated`: idle ones wait out the scale-down delay) are counted in
    `used` already and serve the job, so only the nodes beyond them need free quota."""
    needed = quota.vcpus_per_node * max(0, nodes - allocated)
    free = quota.limit - quota.used
    if needed > free:
        holds = f" (the cluster holds {allocated} node(s) now)" if allocated else ""
        raise PhiopsError(
            f"not enough quota for {nodes} x {vm_size}{holds}: VM family {quota.family} uses "
            f"{quota.used} of {quota.limit} vCPUs and the job needs {needed} more; {QUOTA_HELP}"
        )
