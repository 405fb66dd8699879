"""Snapshots of the Evaluate tab in the real app at 80×24 and 120×40: two evaluations
written as the store writes them (`tests.fixtures_tui.eval_project`), B against A."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures_tui import make_app
from tests.fixtures_tui_tabs import wait_for
from tui.tabs.evaluate import EvaluateTab

SIZES = [(80, 24), (120, 40)]


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
