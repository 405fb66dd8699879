"""Two evaluations side by side: aggregates with intervals, the change with a paired
bootstrap interval, and the conversations whose score moved most.

Rows are paired by their line in the test file when both evaluations read the same file
(same sha256), else by conversation id; only conversations both answered are compared, so
"B − A" is a change on the same questions. A change whose 95% interval excludes 0 is
called better or worse (by the metric's direction); otherwise it is "no clear change".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import PhiopsError
from core.eval import scoring
from core.eval.results import EvalRecord

SHOWN_ROWS = 5


@dataclass
class MetricChange:
    name: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    change: dict[str, Any] | None
    verdict: str  # "better", "worse", "no clear change", or "" when not comparable


@dataclass
class RowChange:
    line: int
    question: str
    reference: str
    answer_a: str
    answer_b: str
    score_a: float
    score_b: float

    @property
    def delta(self) -> float:
        return self.score_b - self.score_a


@dataclass
class Comparison:
    a: EvalRecord
    b: EvalRecord
    paired: int
    metrics: list[MetricChange] = field(default_factory=list)
    rows: list[RowChange] = field(default_factory=list)

    def metric(self, name: str) -> MetricChange | None:
        return next((m for m in self.metrics if m.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"run_id": self.a.run_id, "target": self.a.meta.label, "model": self.a.meta.model},
            "b": {"run_id": self.b.run_id, "target": self.b.meta.label, "model": self.b.meta.model},
            "paired_rows": self.paired,
            "metrics": [m.__dict__ for m in self.metrics],
            "rows": [{**r.__dict__, "delta": r.delta} for r in self.rows],
        }


def verdict(name: str, change: dict[str, Any] | None) -> str:
    if not change or change.get("low") is None or change.get("high") is None:
        return ""
    direction = scoring.metrics().DIRECTION.get(name, 0)
    if change["low"] <= 0 <= change["high"]:
        return "no clear change"
    if direction == 0:  # neither way is better (answer length): say which way it went
        return "higher" if change["low"] > 0 else "lower"
    improved = (change["low"] > 0) == (direction > 0)
    return "better" if improved else "worse"


def _key(row: dict[str, Any], by_line: bool) -> Any:
    return row["line"] if by_line else row["id"]


def paired_rows(a: EvalRecord, b: EvalRecord) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    by_line = a.meta.data_sha256 == b.meta.data_sha256
    answered = {_key(row, by_line): row for row in b.rows if not row.get("error")}
    pairs = []
    for row in sorted(a.rows, key=lambda row: row["line"]):
        other = answered.get(_key(row, by_line))
        if other is not None and not row.get("error"):
            pairs.append((row, other))
    return pairs


def compare(a: EvalRecord, b: EvalRecord, shown: int = SHOWN_ROWS) -> Comparison:
    """B against A: aggregates of each (all their rows), change on the paired rows."""
    pairs = paired_rows(a, b)
    if not pairs:
        raise PhiopsError(
            f"evaluations {a.run_id[:12]} and {b.run_id[:12]} share no answered conversation"
        )
    changes = scoring.difference([p[0] for p in pairs], [p[1] for p in pairs])
    names = [n for n in scoring.metrics().ORDER if n in a.aggregates or n in b.aggregates]
    result = Comparison(a, b, len(pairs))
    for name in names:
        change = changes.get(name)
        result.metrics.append(
            MetricChange(
                name, a.aggregates.get(name), b.aggregates.get(name), change, verdict(name, change)
            )
        )
    moved = [
        RowChange(
            line=first["line"],
            question=first["question"],
            reference=first["reference"],
            answer_a=first.get("answer", ""),
            answer_b=second.get("answer", ""),
            score_a=float(first.get("rougeL") or 0.0),
            score_b=float(second.get("rougeL") or 0.0),
        )
        for first, second in pairs
    ]
    moved.sort(key=lambda row: (-abs(row.delta), row.line))
    result.rows = [row for row in moved if row.delta != 0][:shown]
    return result
