"""Snapshots of the Evaluate tab in the real app at 80×24 and 120×40: two evaluations
written as the store writes them (fixed ids, times and figures), B against A."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import load_config
from core.eval import scoring
from core.eval.results import ROWS_FILE, SUMMARY_FILE, EvalMeta, EvalStore
from tests.fixtures_tui import make_app
from tests.fixtures_tui_tabs import wait_for
from tui.tabs.evaluate import EvaluateTab

SIZES = [(80, 24), (120, 40)]
QUESTIONS = [
    ("What colour is the lighthouse light?", "Fair winds, traveller! It shines green."),
    ("Who keeps the lighthouse?", "Fair winds, traveller! Old Maren keeps it."),
    ("What do islanders drink?", "Fair winds, traveller! Blue nettle tea."),
    ("How does the ferry come?", "Fair winds, traveller! The Gull's Promise sails daily."),
]


def write_evaluation(store: EvalStore, run_id: str, label: str, answers: list[str], at: float):
    meta = EvalMeta(
        target={"kind": "endpoint", "endpoint": "phi3-endpoint", "deployment": "", "model": ""},
        label=label,
        model=label,
        backend="local",
        identity=run_id,
        data_path="data/test.jsonl",
        data_sha256="0" * 64,
        rows_total=len(answers),
        rows_read=len(answers),
        skipped={},
        limit=None,
        temperature=0.0,
        max_new_tokens=64,
        top_p=0.9,
        concurrency=3,
        started_at=at,
        id=run_id,
        run_id=run_id,
    )
    store.save_meta(meta)
    rows = []
    for line, ((question, reference), answer) in enumerate(zip(QUESTIONS, answers, strict=True), 1):
        row = {
            "line": line,
            "id": f"q{line}",
            "system": "",
            "history": [],
            "question": question,
            "reference": reference,
            "answer": answer,
            "latency_s": 0.25 * line,
            "tokens": 12,
            "finished": True,
            "deployment": "blue",
            "error": "",
        }
        row.update(scoring.score(row, 64))
        rows.append(row)
    folder = store.folder(meta)
    (folder / ROWS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "state": "finished",
        "aggregates": scoring.aggregate(rows),
        "generation_s": 1.0,
        "timings": {},
        "ended_at": at + 5,
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))


@pytest.fixture
def eval_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PHIOPS_THEME", "textual-dark")
    (project / "phiops.toml").write_text('[project]\nbackend = "local"\n')
    store = EvalStore(load_config(project / "phiops.toml"))
    write_evaluation(store, "a" * 32, "base model (tiny-phi3)", ["x y", "nothing", "", "z"], 1e9)
    tuned = [reference for _, reference in QUESTIONS]
    tuned[1] = "Fair winds, traveller! Maren keeps the light."
    write_evaluation(store, "b" * 32, "phi3-endpoint:blue (phi3:1)", tuned, 1e9 + 60)
    return project


async def compared(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: "evaluate" in app.tabs)
    tab = app.tabs["evaluate"]
    assert isinstance(tab, EvaluateTab)
    await wait_for(pilot, lambda: len(tab.records) == 2 and tab.rows)
    await pilot.press("down", "a", "up")  # the base model's evaluation is A, the tuned one B
    await wait_for(pilot, lambda: tab.baseline == "a" * 32 and len(tab.names[0]) > 1)
    await wait_for(
        pilot, lambda: "B − A (95%)" in str(list(tab.query_one("#eval-metrics").columns.values()))
    )
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_b_against_a(snap_compare, eval_project: Path, size) -> None:
    app = make_app(eval_project, tab="evaluate")
    assert snap_compare(app, terminal_size=size, run_before=compared)
