"""The metrics, from the evaluation flow's own file (`flow/eval/eval_metrics.py`).

`flow/` never imports phiops, but phiops may load a file of it: the in-process path scores
with the very functions the flow's nodes call, so the two paths cannot drift apart.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

from core.chat.inprocess import FLOW_DIR

EVAL_FLOW_DIR = FLOW_DIR / "eval"
MODULE_NAME = "phiops_eval_metrics"


_loading = threading.Lock()


def metrics() -> ModuleType:
    """`flow/eval/eval_metrics.py`, loaded once (by one thread, when several ask)."""
    with _loading:
        return _load()


@functools.cache
def _load() -> ModuleType:
    path = EVAL_FLOW_DIR / "eval_metrics.py"
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the evaluation metrics from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def load_rouge() -> None:
    """ROUGE's scorer loaded now (nltk's import is most of it), not at the first row."""
    metrics().scorer()


def score(row: dict[str, Any], max_new_tokens: int) -> dict[str, Any]:
    """The row's scores (the fields the evaluation flow's `score` node returns)."""
    return metrics().score_row(
        row.get("answer") or "",
        row.get("reference") or "",
        answer_tokens=row.get("tokens"),
        max_new_tokens=max_new_tokens,
        finished=row.get("finished"),
        latency_s=row.get("latency_s"),
    )


def aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Aggregates with intervals over the scored rows (failed rows left out)."""
    return metrics().aggregate([row for row in rows if not row.get("error")])


def difference(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    return metrics().difference(before, after)
