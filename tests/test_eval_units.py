"""The evaluation's pure parts: the test file as cases, the metrics, intervals, the gate rule."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest

from core.errors import PhiopsError
from core.eval import scoring
from core.eval.data import NO_ASSISTANT, NO_QUESTION, NOT_A_CHAT, load_eval_set
from core.eval.generate import Params
from core.eval.targets import TargetSpec

FLOW_TOOL = Path(__file__).resolve().parents[1] / "flow" / "chat_tool.py"


def write(path: Path, lines: list) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


def chat(*turns: tuple[str, str], prompt_id: str = "") -> dict:
    row: dict = {"messages": [{"role": r, "content": c} for r, c in turns]}
    if prompt_id:
        row["prompt_id"] = prompt_id
    return row


def test_the_last_assistant_turn_is_the_reference_and_the_rest_the_prompt(tmp_path: Path):
    path = write(
        tmp_path / "test.jsonl",
        [
            chat(
                ("system", "You guide."),
                ("user", "Where?"),
                ("assistant", "Here."),
                ("user", "And then?"),
                ("assistant", "There."),
                prompt_id="p1",
            )
        ],
    )
    case = load_eval_set(path).cases[0]
    assert (case.line, case.id, case.system) == (1, "p1", "You guide.")
    assert case.history == (("Where?", "Here."),)
    assert (case.question, case.reference) == ("And then?", "There.")
    assert case.messages() == [
        {"role": "system", "content": "You guide."},
        {"role": "user", "content": "Where?"},
        {"role": "assistant", "content": "Here."},
        {"role": "user", "content": "And then?"},
    ]
    assert case.flow_row()["chat_history"] == [
        {"inputs": {"question": "Where?"}, "outputs": {"answer": "Here."}}
    ]


def test_rows_that_cannot_be_evaluated_are_skipped_and_counted_by_line(tmp_path: Path):
    path = write(
        tmp_path / "test.jsonl",
        [
            chat(("user", "Hi"), ("assistant", "Hello")),
            chat(("user", "Only a question")),
            "",
            "{not json",
            chat(("system", "s"), ("assistant", "Nobody asked")),
            chat(("user", "Q"), ("assistant", "A")),
            chat(("user", "Again")),
        ],
    )
    found = load_eval_set(path)
    assert [case.line for case in found.cases] == [1, 6]
    assert found.rows_read == 6  # the blank line is not a row
    assert found.skipped == {NO_ASSISTANT: 2, NOT_A_CHAT: 1, NO_QUESTION: 1}
    assert found.skipped_lines[NO_ASSISTANT] == [2, 7]
    sentence = found.skipped_sentence()
    assert sentence.startswith("skipped 4 rows: 2 with no assistant turn (lines 2, 7)")
    assert "not a JSON object" in sentence and "(line 4)" in sentence


def test_a_file_with_nothing_to_evaluate_is_one_sentence(tmp_path: Path):
    path = write(tmp_path / "test.jsonl", [chat(("user", "Only a question"))])
    with pytest.raises(PhiopsError, match=r"no conversation to evaluate \(skipped 1 row: 1 with"):
        load_eval_set(path)
    with pytest.raises(PhiopsError, match="does not exist; run `phiops data prepare`"):
        load_eval_set(tmp_path / "missing.jsonl")


def test_limit_keeps_the_first_evaluable_rows_and_the_hash_is_the_files(tmp_path: Path):
    rows = [chat(("user", f"Q{n}"), ("assistant", f"A{n}")) for n in range(5)]
    path = write(tmp_path / "test.jsonl", rows)
    assert [c.line for c in load_eval_set(path, limit=2).cases] == [1, 2]
    import hashlib

    assert load_eval_set(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_request_is_the_chat_tools_own(monkeypatch: pytest.MonkeyPatch):
    """The in-process path sends the bytes the flow's tool would (same messages, params)."""
    import importlib.util

    monkeypatch.setenv("APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED", "true")
    spec = importlib.util.spec_from_file_location("chat_tool_for_test", FLOW_TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    history = [{"inputs": {"question": "Where?"}, "outputs": {"answer": "Here."}}]
    messages = tool.build_messages("And then?", history, "You guide.")
    for params in (Params(), Params(temperature=0.7, max_new_tokens=12, top_p=0.5)):
        expected = tool.build_body(
            messages, params.temperature, params.max_new_tokens, params.top_p
        )
        assert params.body(messages) == expected
    assert tool.build_messages("Q", [], "")[0] == {"role": "user", "content": "Q"}


def test_row_scores():
    row = scoring.metrics().score_row(
        "Fair winds! The light is GREEN.",
        "The light is green.",
        answer_tokens=9,
        max_new_tokens=64,
        latency_s=0.5,
    )
    assert row["rougeL"] == pytest.approx(0.8)  # 4 of the 6 words, all 4 of the reference
    assert row["exact_match"] == 0.0 and row["contains_match"] == 1.0
    assert row["empty"] == 0.0 and row["stopped"] == 1.0
    assert row["length_ratio"] == pytest.approx(6 / 4)
    assert row["tokens_per_s"] == pytest.approx(18.0)
    exact = scoring.metrics().score_row("the light is green", "The light is green.")
    assert exact["exact_match"] == 1.0 and exact["rougeL"] == pytest.approx(1.0)
    assert exact["stopped"] is None  # neither the server nor a token count said
    cut = scoring.metrics().score_row("x " * 64, "y", answer_tokens=64, max_new_tokens=64)
    assert cut["stopped"] == 0.0
    told = scoring.metrics().score_row("", "y", answer_tokens=3, max_new_tokens=64, finished=False)
    assert told["stopped"] == 0.0 and told["empty"] == 1.0 and told["rougeL"] == 0.0


def test_aggregates_have_bootstrap_intervals_that_are_reproducible():
    metrics = scoring.metrics()
    rows = [
        metrics.score_row(
            "a b c", "a b c", latency_s=0.1 * (n + 1), answer_tokens=3, max_new_tokens=8
        )
        for n in range(10)
    ] + [metrics.score_row("x y z", "a b c", answer_tokens=8, max_new_tokens=8)] * 10
    first = metrics.aggregate(rows)
    assert first == metrics.aggregate(rows)  # fixed seed
    rouge = first["rougeL"]
    assert rouge["value"] == pytest.approx(0.5) and rouge["n"] == 20
    assert 0.2 < rouge["low"] < 0.5 < rouge["high"] < 0.8
    assert first["stopped_rate"]["value"] == pytest.approx(0.5)
    assert first["latency_p50_s"]["n"] == 10  # only the timed rows
    assert first["latency_p50_s"]["value"] == pytest.approx(0.55)
    assert "ref_loss" not in first
    same = metrics.aggregate([metrics.score_row("a", "a")] * 5)
    assert same["rougeL"] == {"value": 1.0, "low": 1.0, "high": 1.0, "n": 5}


@pytest.mark.parametrize("untimed", [0, 7])
def test_latency_percentiles_and_their_intervals_are_numpys_nanpercentile(untimed: int):
    """The bootstrap's percentiles skip NumPy's per-sample loop where a sample has no gap;
    the figures stay exactly np.nanpercentile's (rows without a latency are NaN)."""
    import numpy as np

    metrics = scoring.metrics()
    rng = np.random.default_rng(7)
    latencies = [float(x) for x in rng.gamma(2.0, 0.3, size=40)]
    rows = [metrics.score_row("a b", "a b c", latency_s=s, answer_tokens=2) for s in latencies]
    for row in rows[:untimed]:
        row["latency_s"] = None
    found = metrics.aggregate(rows)
    values = np.array([math.nan if r["latency_s"] is None else r["latency_s"] for r in rows])
    index = np.random.default_rng(metrics.BOOTSTRAP_SEED).integers(
        0, len(rows), size=(metrics.BOOTSTRAP_SAMPLES, len(rows))
    )
    for name, q in (("latency_p50_s", 50.0), ("latency_p95_s", 95.0)):
        assert found[name]["value"] == float(np.nanpercentile(values, q))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            samples = np.nanpercentile(values[index], q, axis=-1)
        kept = samples[~np.isnan(samples)]
        low, high = np.percentile(kept, [2.5, 97.5])
        assert (found[name]["low"], found[name]["high"]) == (float(low), float(high))
    assert found["latency_p50_s"]["n"] == len(rows) - untimed


def test_reference_loss_aggregates_per_token():
    metrics = scoring.metrics()
    rows = [{"ref_loss_sum": 2.0, "ref_tokens": 4}, {"ref_loss_sum": 6.0, "ref_tokens": 4}]
    found = metrics.aggregate(rows)
    assert found["ref_loss"]["value"] == pytest.approx(1.0)
    assert found["ref_perplexity"]["value"] == pytest.approx(2.718281828)


def test_a_paired_difference_is_real_only_when_its_interval_excludes_zero():
    metrics = scoring.metrics()
    worse = [metrics.score_row("x", "a b")] * 12
    better = [metrics.score_row("a b", "a b")] * 12
    change = metrics.difference(worse, better)["rougeL"]
    assert change == {"value": 1.0, "low": 1.0, "high": 1.0}
    noisy_a = [metrics.score_row(a, "a b") for a in ["a b", "x"] * 6]
    noisy_b = [metrics.score_row(a, "a b") for a in ["x", "a b"] * 6]
    mixed = metrics.difference(noisy_a, noisy_b)["rougeL"]
    assert mixed["value"] == 0.0 and mixed["low"] < 0 < mixed["high"]
    from core.eval.compare import verdict

    assert verdict("rougeL", change) == "better"
    assert verdict("rougeL", mixed) == "no clear change"
    assert verdict("latency_p50_s", {"value": 1.0, "low": 0.5, "high": 1.5}) == "worse"
    with pytest.raises(ValueError):
        metrics.difference(worse, better[:3])


def test_rouge_needs_no_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """ROUGE-L with stemming in a process whose nltk data path is empty and offline."""
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'flow/eval'); import eval_metrics as m;"
        "print(m.rouge_l('The puffins are nesting', 'puffins nest'))"
    )
    env = {"NLTK_DATA": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == pytest.approx(2 * 0.5 * 1.0 / 1.5)  # "nest" = "nesting"


def test_gate_rule_and_parsing():
    from core.eval.gate import Gate

    gate = Gate.parse("rougeL:0.02")
    assert gate == Gate("rougeL", 0.02)
    assert gate.passes(0.50, 0.51) and not gate.passes(0.48, 0.51)
    latency = Gate.parse("latency_p95_s:0.5")
    assert latency.passes(1.4, 1.0) and not latency.passes(1.6, 1.0)
    for bad, why in (
        ("bleu", "cannot gate on 'bleu'"),
        ("length_ratio", "cannot gate on 'length_ratio'"),
        ("rougeL:x", "must be a number"),
        ("rougeL:-1", "must be 0 or more"),
    ):
        with pytest.raises(PhiopsError, match=why):
            Gate.parse(bad)


def test_target_specs():
    assert TargetSpec.parse("phi3-endpoint:green").to_dict() == {
        "kind": "endpoint",
        "endpoint": "phi3-endpoint",
        "deployment": "green",
        "model": "",
    }
    assert TargetSpec.parse("base").kind == "base"
    assert TargetSpec.parse("base:/models/tiny").model == "/models/tiny"
    assert TargetSpec.parse("model:phi3:2").model == "phi3:2"
    with pytest.raises(PhiopsError):
        TargetSpec.parse("a:b:c")
