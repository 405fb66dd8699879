"""The one definition of phiops' evaluation metrics: a row's scores, and their aggregates.

The evaluation flow's nodes (`score.py`, `aggregate.py`) call these functions, and phiops
loads this file from here for its in-process path, so both give the same numbers. It needs
only the standard library, numpy and rouge-score (whose tokenizer is a regular expression
and whose Porter stemmer is code: nothing is downloaded).

Per row: ROUGE-L F1 against the reference, exact and contains match (after normalising
case, punctuation and spaces), empty answer, stopped at the end of the turn or cut at
`max_new_tokens` (when the answer's token count is known), answer/reference length in
words, latency and tokens/s (when timed), and the reference's loss under the model (when
computed). Aggregates come with 95% bootstrap intervals: the rows are resampled with a
fixed seed, so a rerun on the same rows gives the same interval.
"""

import functools
import math
import re
import string
from collections.abc import Callable, Sequence
from typing import Any

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95

# Aggregate name -> (per-row field, statistic); statistic "mean" or a percentile.
MEANS = {
    "rougeL": "rougeL",
    "exact_match": "exact_match",
    "contains_match": "contains_match",
    "empty_rate": "empty",
    "stopped_rate": "stopped",
    "length_ratio": "length_ratio",
    "tokens_per_s": "tokens_per_s",
}
PERCENTILES = {"latency_p50_s": ("latency_s", 50.0), "latency_p95_s": ("latency_s", 95.0)}
# What "better" means for each aggregate: +1 higher is better, -1 lower is, 0 neither.
DIRECTION = {
    "rougeL": 1,
    "exact_match": 1,
    "contains_match": 1,
    "empty_rate": -1,
    "stopped_rate": 1,
    "length_ratio": 0,
    "tokens_per_s": 1,
    "latency_p50_s": -1,
    "latency_p95_s": -1,
    "ref_loss": -1,
    "ref_perplexity": -1,
}
ORDER = list(DIRECTION)

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}‘’“”…–—]")


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed (SQuAD's normalisation, no articles
    removed: a chat answer's articles are part of it)."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


@functools.cache
def scorer() -> Any:
    """ROUGE's scorer, made once."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F1 (longest common subsequence of stemmed words)."""
    if not answer.strip() or not reference.strip():
        return 0.0
    return float(scorer().score(reference, answer)["rougeL"].fmeasure)


def words(text: str) -> int:
    return len(text.split())


def score_row(
    answer: str,
    reference: str,
    *,
    answer_tokens: int | None = None,
    max_new_tokens: int | None = None,
    finished: bool | None = None,
    latency_s: float | None = None,
) -> dict[str, Any]:
    """One row's scores. `finished` (the server said whether it stopped at the end of the
    turn) wins over the token count; with neither, `stopped` is None (unknown)."""
    answer = answer or ""
    reference = reference or ""
    said, wanted = normalize(answer), normalize(reference)
    if finished is None and answer_tokens is not None and max_new_tokens:
        finished = answer_tokens < max_new_tokens
    timed = latency_s is not None and latency_s > 0
    return {
        "rougeL": rouge_l(answer, reference),
        "exact_match": float(bool(wanted) and said == wanted),
        "contains_match": float(bool(wanted) and wanted in said),
        "empty": float(not answer.strip()),
        "stopped": None if finished is None else float(finished),
        "length_ratio": words(answer) / max(words(reference), 1),
        "answer_tokens": answer_tokens,
        "latency_s": latency_s if timed else None,
        "tokens_per_s": (answer_tokens / latency_s) if timed and answer_tokens else None,
    }


# -- aggregates ---------------------------------------------------------------------------


def _column(rows: Sequence[dict[str, Any]], name: str) -> Any:
    """The field as a float array with NaN where a row has no value."""
    import numpy as np

    return np.array(
        [float(row[name]) if row.get(name) is not None else math.nan for row in rows], dtype=float
    )


def _statistics(rows: Sequence[dict[str, Any]]) -> dict[str, Callable[[Any], Any]]:
    """Aggregate name -> function of a (samples, rows) index array giving one value a sample.

    NaN marks a missing value; a sample whose rows all lack it gives NaN."""
    import numpy as np

    stats: dict[str, Callable[[Any], Any]] = {}

    def mean_of(values: Any) -> Callable[[Any], Any]:
        return lambda index: _nanreduce(np.nanmean, values[index])

    def percentile_of(values: Any, q: float) -> Callable[[Any], Any]:
        return lambda index: _nanpercentile(values[index], q)

    for name, field in MEANS.items():
        values = _column(rows, field)
        if not np.isnan(values).all():
            stats[name] = mean_of(values)
    for name, (field, q) in PERCENTILES.items():
        values = _column(rows, field)
        if not np.isnan(values).all():
            stats[name] = percentile_of(values, q)
    loss, tokens = _column(rows, "ref_loss_sum"), _column(rows, "ref_tokens")
    known = ~np.isnan(loss) & ~np.isnan(tokens)
    if known.any():
        loss, tokens = np.where(known, loss, 0.0), np.where(known, tokens, 0.0)

        def per_token(index: Any) -> Any:
            total = tokens[index].sum(axis=-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(total > 0, loss[index].sum(axis=-1) / total, math.nan)

        stats["ref_loss"] = per_token
        stats["ref_perplexity"] = lambda index: np.exp(per_token(index))
    return stats


def _nanpercentile(values: Any, q: float) -> Any:
    """np.nanpercentile along the last axis, the same numbers. Its NaN handling loops over
    the samples in Python (~0.1 s for 1000 bootstrap samples); a sample without NaN gets
    the same value from np.percentile at once, so only the others take that loop."""
    import numpy as np

    gaps = np.isnan(values).any(axis=-1)
    result = np.empty(values.shape[:-1], dtype=float)
    result[~gaps] = np.percentile(values[~gaps], q, axis=-1)
    if gaps.any():
        result[gaps] = _nanreduce(lambda a, axis: np.nanpercentile(a, q, axis=axis), values[gaps])
    return result


def _nanreduce(reduce: Callable[..., Any], values: Any) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN samples give NaN, said so
        return reduce(values, axis=-1)


def _samples(count: int, samples: int, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed).integers(0, count, size=(samples, count))


def _interval(values: Any) -> tuple[float | None, float | None]:
    import numpy as np

    kept = values[~np.isnan(values)]
    if not len(kept):
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(kept, [tail, 100 - tail])
    return float(low), float(high)


def _clean(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def aggregate(
    rows: Sequence[dict[str, Any]],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, dict[str, float | int | None]]:
    """Each aggregate as {"value", "low", "high", "n"}: the value on all rows and the 95%
    bootstrap interval (every aggregate resampled with the same row indices)."""
    import numpy as np

    if not rows:
        return {}
    stats = _statistics(rows)
    everything = np.arange(len(rows))[None, :]
    index = _samples(len(rows), samples, seed)
    result: dict[str, dict[str, float | int | None]] = {}
    for name in ORDER:
        if name not in stats:
            continue
        value = _clean(stats[name](everything)[0])
        low, high = _interval(np.asarray(stats[name](index), dtype=float))
        result[name] = {"value": value, "low": low, "high": high, "n": _count(rows, name)}
    return result


def _count(rows: Sequence[dict[str, Any]], name: str) -> int:
    field = MEANS.get(name) or PERCENTILES.get(name, ("ref_loss_sum",))[0]
    return sum(1 for row in rows if row.get(field) is not None)


def difference(
    before: Sequence[dict[str, Any]],
    after: Sequence[dict[str, Any]],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, dict[str, float | None]]:
    """after − before for each aggregate, on paired rows (the same conversations, in the
    same order), with a paired bootstrap interval: one that excludes 0 is a real change."""
    import numpy as np

    if len(before) != len(after):
        raise ValueError("difference() needs the same rows on both sides")
    if not before:
        return {}
    first, second = _statistics(before), _statistics(after)
    everything = np.arange(len(before))[None, :]
    index = _samples(len(before), samples, seed)
    result: dict[str, dict[str, float | None]] = {}
    for name in ORDER:
        if name not in first or name not in second:
            continue
        value = _clean(second[name](everything)[0] - first[name](everything)[0])
        spread = np.asarray(second[name](index), dtype=float) - np.asarray(
            first[name](index), dtype=float
        )
        low, high = _interval(spread)
        result[name] = {"value": value, "low": low, "high": high}
    return result
