"""The evaluation flow's per-line node: one answer's scores against its reference.

Optional facts use sentinels Prompt flow's typed inputs can carry: -1 for an unknown
number, "" for an unknown `finished`. No `from __future__ import annotations`: Prompt flow
loads tools from a path, and string annotations would not resolve.
"""

from typing import Any

from eval_metrics import score_row
from promptflow.core import tool


def _known(value: Any) -> Any:
    return None if value is None or value == "" or (value != value) or value < 0 else value


def _flag(value: Any) -> Any:
    text = str(value or "").strip().lower()
    return {"true": True, "1": True, "false": False, "0": False}.get(text)


@tool
def score(
    answer: str,
    reference: str,
    max_new_tokens: int = 0,
    answer_tokens: int = -1,
    finished: str = "",
    latency_s: float = -1,
    ref_loss_sum: float = -1,
    ref_tokens: int = -1,
) -> dict:
    """ROUGE-L, exact/contains match, empty, stopped, length ratio, latency, tokens/s."""
    tokens = _known(answer_tokens)
    scores = score_row(
        answer or "",
        reference or "",
        answer_tokens=int(tokens) if tokens is not None else None,
        max_new_tokens=int(max_new_tokens) if max_new_tokens else None,
        finished=_flag(finished),
        latency_s=_known(latency_s),
    )
    loss, counted = _known(ref_loss_sum), _known(ref_tokens)
    if loss is not None and counted:
        scores |= {"ref_loss_sum": float(loss), "ref_tokens": int(counted)}
    return scores
