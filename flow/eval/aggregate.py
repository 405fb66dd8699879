"""The evaluation flow's aggregation node: every score's aggregate with its 95% bootstrap
interval, logged as the run's metrics (`NAME`, `NAME_low`, `NAME_high`)."""

from eval_metrics import aggregate as aggregate_rows
from promptflow.core import log_metric, tool


@tool
def aggregate(scores: list) -> dict:
    """The aggregates of the lines' scores (lines that failed to score are left out)."""
    rows = [row for row in scores if isinstance(row, dict)]
    result = aggregate_rows(rows)
    for name, figures in result.items():
        for suffix, key in (("", "value"), ("_low", "low"), ("_high", "high")):
            if figures[key] is not None:
                log_metric(name + suffix, figures[key])
    return result
