"""Blue/green traffic plans, shared by the local and Azure endpoints.

Pure functions over traffic maps (deployment name -> percent), so both backends move
traffic the same way and the rules are tested once: a new deployment starts at 0%, takes
its share only after a smoke test, the old one keeps the rest until it is deleted on
purpose, and a rollback restores the split that was in place before the last shift.
"""

from __future__ import annotations

from core.errors import PhiopsError

COLOURS = ("blue", "green")


def next_deployment_name(existing: list[str]) -> str:
    """`blue`, then `green`, then `blue-2`, `green-2`, ... never a name in use."""
    round_ = 1
    while True:
        for colour in COLOURS:
            name = colour if round_ == 1 else f"{colour}-{round_}"
            if name not in existing:
                return name
        round_ += 1


def validate_traffic(traffic: dict[str, int], deployments: list[str]) -> dict[str, int]:
    """Check a requested split: known deployments, 0..100 each, 100 in total (or all 0)."""
    unknown = sorted(set(traffic) - set(deployments))
    if unknown:
        raise PhiopsError(f"No deployment named {', '.join(unknown)} on this endpoint.")
    for name, share in traffic.items():
        if not 0 <= share <= 100:
            raise PhiopsError(f"Traffic for {name} must be between 0 and 100, not {share}.")
    total = sum(traffic.values())
    if total not in (0, 100):
        raise PhiopsError(f"Traffic shares must add up to 100, not {total}.")
    return {name: int(share) for name, share in traffic.items()}


def shift_traffic(current: dict[str, int], new: str, share: int) -> dict[str, int]:
    """Give `new` `share`% and scale the others down in proportion to what they had."""
    if not 0 <= share <= 100:
        raise PhiopsError(f"Traffic must be between 0 and 100, not {share}.")
    others = {name: pct for name, pct in current.items() if name != new}
    rest = 100 - share
    total = sum(others.values())
    if not others:
        return {new: 100}
    if total == 0:
        # Nobody had traffic: the new deployment takes all of it, whatever was asked.
        return {new: 100, **{name: 0 for name in others}}
    plan = {name: pct * rest // total for name, pct in others.items()}
    # Hand the rounding remainder to the deployment that had the most.
    biggest = max(others, key=lambda name: others[name])
    plan[biggest] += rest - sum(plan.values())
    plan[new] = share
    return plan


def rollback_plan(current: dict[str, int], previous: dict[str, int] | None) -> dict[str, int]:
    """The split to restore; an error when there is nothing to roll back to."""
    if not previous or previous == current:
        raise PhiopsError("Nothing to roll back to: the traffic split has not changed.")
    return dict(previous)


def without(traffic: dict[str, int], deployment: str) -> dict[str, int]:
    """The split once `deployment` is gone; refuses while it still takes traffic."""
    if traffic.get(deployment, 0) > 0 and sum(traffic.values()) > traffic[deployment]:
        raise PhiopsError(
            f"Deployment {deployment} still takes {traffic[deployment]}% of the traffic; "
            "shift it away first (phiops endpoints traffic or rollback)."
        )
    return {name: pct for name, pct in traffic.items() if name != deployment}
