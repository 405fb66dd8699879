"""`phiops deploy --gate METRIC[:TOLERANCE]`: traffic moves only to a deployment that is
not worse than the current one on the held-out split.

1. The new deployment is created at 0% and smoke-tested as usual (blue/green).
2. It is evaluated on the test split, reached by its `azureml-model-deployment` header.
3. The deployment taking the most traffic now ("current") is evaluated the same way — an
   earlier finished evaluation of the same model behind it, on the same data with the same
   settings, is reused if it is fresh enough (24 h).
4. The gate passes when the new value is not worse than the current one by more than the
   tolerance (higher-is-better metrics: new ≥ current − tolerance; lower-is-better: new ≤
   current + tolerance). Then the new deployment takes its share; otherwise the traffic
   stays where it was, the comparison is shown, and the new deployment stays at 0% for a
   look (`phiops endpoints delete … --deployment …` removes it).

An endpoint with no deployment taking traffic has nothing to compare with: Azure ML and
phiops give a first deployment all the traffic, and the gate records its evaluation as the
baseline for the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import bluegreen
from core.backend import Backend, EndpointInfo, ModelVersion, RequestSettings
from core.config import Config
from core.errors import NotFoundError, PhiopsError
from core.eval import scoring
from core.eval.compare import Comparison, compare
from core.eval.results import EvalRecord
from core.eval.runner import EvalOptions, Evaluation
from core.eval.targets import TargetSpec


@dataclass(frozen=True)
class Gate:
    metric: str
    tolerance: float = 0.0

    @classmethod
    def parse(cls, value: str) -> Gate:
        """`rougeL`, `rougeL:0.02`; the metric must be one the evaluation reports."""
        name, _, tolerance = value.partition(":")
        known = scoring.metrics().DIRECTION
        if name not in known or known[name] == 0:
            usable = ", ".join(n for n, d in known.items() if d)
            raise PhiopsError(f"cannot gate on {name!r}; use one of {usable}")
        try:
            amount = float(tolerance) if tolerance else 0.0
        except ValueError:
            raise PhiopsError(f"the gate's tolerance must be a number, not {tolerance!r}") from None
        if amount < 0:
            raise PhiopsError(f"the gate's tolerance must be 0 or more, not {amount:g}")
        return cls(name, amount)

    def passes(self, new: float, current: float) -> bool:
        if scoring.metrics().DIRECTION[self.metric] > 0:
            return new >= current - self.tolerance
        return new <= current + self.tolerance

    def sentence(self, new: float, current: float) -> str:
        sign = "≥" if scoring.metrics().DIRECTION[self.metric] > 0 else "≤"
        bound = current - self.tolerance if sign == "≥" else current + self.tolerance
        return (
            f"{self.metric} {new:.4f} for the new deployment against {current:.4f} for the "
            f"current one (needed {sign} {bound:.4f})"
        )


@dataclass
class GateResult:
    endpoint: EndpointInfo
    deployment: str
    passed: bool
    reason: str
    new: EvalRecord
    current: EvalRecord | None = None
    current_reused: bool = False
    comparison: Comparison | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "deployment": self.deployment,
            "new_run": self.new.run_id,
            "current_run": self.current.run_id if self.current else None,
            "current_reused": self.current_reused,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }


def current_deployment(endpoint: EndpointInfo | None) -> str:
    if endpoint is None:
        return ""
    serving = {name: share for name, share in endpoint.traffic.items() if share > 0}
    return max(serving, key=lambda name: serving[name]) if serving else ""


def gated_deploy(
    config: Config,
    backend: Backend,
    model: ModelVersion,
    endpoint: str,
    gate: Gate,
    *,
    deployment: str | None = None,
    traffic: int = 100,
    request_settings: RequestSettings | None = None,
    options: EvalOptions | None = None,
    say: Callable[[str], None] | None = None,
    advance: Callable[[int, int], None] | None = None,
    transport: Any = None,
) -> GateResult:
    say = say or (lambda message: None)
    try:
        before = backend.endpoint(endpoint)
    except NotFoundError:
        before = None
    current = current_deployment(before)
    names_before = {d.name for d in before.deployments} if before else set()
    info = backend.deploy(
        model, endpoint, deployment, 0, progress=say, request_settings=request_settings
    )
    created = sorted({d.name for d in info.deployments} - names_before)
    new = info.deployed or deployment or (created[0] if created else "")
    evaluation = Evaluation(config, backend, say=say, advance=advance, transport=transport)
    options = options or EvalOptions()
    say(f"gate: evaluating the new deployment {new} on the test split")
    new_record = evaluation.run(TargetSpec("endpoint", endpoint=endpoint, deployment=new), options)
    new_value = _value(new_record, gate.metric)
    if not current or current == new:
        info = backend.endpoint(endpoint)
        info.deployed = new
        return GateResult(
            info, new, True, "nothing to compare with: no other deployment took traffic", new_record
        )
    say(f"gate: evaluating the current deployment {current}")
    current_record, reused = evaluation.reuse_or_run(
        TargetSpec("endpoint", endpoint=endpoint, deployment=current), options
    )
    if reused:
        say(f"gate: reusing evaluation {current_record.run_id[:12]} of {current}")
    comparison = compare(current_record, new_record)
    current_value = _value(current_record, gate.metric)
    passed = gate.passes(new_value, current_value)
    reason = gate.sentence(new_value, current_value)
    if passed:
        now = backend.endpoint(endpoint).traffic
        plan = bluegreen.shift_traffic(now, new, traffic)
        info = backend.set_traffic(endpoint, plan)
        say(f"gate passed: {reason}; traffic {_split(info.traffic)}")
    else:
        info = backend.endpoint(endpoint)
        say(f"gate held: {reason}; traffic stays {_split(info.traffic)}")
    info.deployed = new
    return GateResult(info, new, passed, reason, new_record, current_record, reused, comparison)


def _value(record: EvalRecord, metric: str) -> float:
    figures = record.aggregates.get(metric) or {}
    if figures.get("value") is None:
        raise PhiopsError(
            f"evaluation {record.run_id[:12]} has no {metric} (it needs what the target "
            "did not report); gate on another metric"
        )
    return float(figures["value"])


def _split(traffic: dict[str, int]) -> str:
    return ", ".join(f"{name} {share}%" for name, share in sorted(traffic.items())) or "none"
