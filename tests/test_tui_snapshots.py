"""Snapshots of the Resources, Dataset and Jobs tabs at 80×24 and 120×40.

Everything shown is fixed: Resources on a provisioned stand-in Azure, the sample dataset,
jobs written with fixed names and times (UTC). `pytest --snapshot-update` rewrites them;
look at the SVGs in tests/__snapshots__/ before accepting a change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.backend import JobStatus
from tests.azure_standins import GPU_SIZE, SUBSCRIPTION, AzureWorld, provision
from tests.fixtures_tui import T0, make_app, ready, training_events, wait_for, write_job

SIZES = [(80, 24), (120, 40)]
AZURE = f"""[project]
backend = "azure"
[azure]
subscription_id = "{SUBSCRIPTION}"
resource_group = "phi3-rg"
workspace = "phi3-ws"
location = "eastus2"
identity_name = "phi3-identity"
compute_name = "gpu-cluster"
compute_vm_size = "{GPU_SIZE}"
"""


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_resources_tab(snap_compare, tui_project: Path, monkeypatch, size) -> None:
    from core.config import load_config

    (tui_project / "phiops.toml").write_text(AZURE, encoding="utf-8")
    world = AzureWorld()
    world.patch(monkeypatch)
    config = load_config(tui_project / "phiops.toml")
    provision(world, config)
    with open(tui_project / "phiops.toml", "a", encoding="utf-8") as handle:
        handle.write(f'identity_client_id = "{config.identity_client_id}"\n')
    app = make_app(tui_project, poll=3600)

    async def loaded(pilot) -> None:
        await ready(pilot, app)
        await wait_for(pilot, lambda: app.tabs["resources"].findings)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_dataset_tab(snap_compare, tui_project: Path, size) -> None:
    from tui.widgets.rowtable import RowTable

    app = make_app(tui_project, tab="dataset", poll=3600)

    async def loaded(pilot) -> None:
        await ready(pilot, app)
        await wait_for(pilot, lambda: app.query(RowTable))
        table = app.query_one(RowTable)
        await wait_for(pilot, lambda: table.row_count and table.summary(0))
        await wait_for(pilot, lambda: app.focused is table)
        await pilot.press("down", "down")
        await wait_for(
            pilot, lambda: "Row 3" in str(app.query_one("#ds-conversation-text").render())
        )
        rows = min(table.size.height, table.row_count)
        await wait_for(pilot, lambda: all(table.summary(n) for n in range(rows)))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_jobs_tab(snap_compare, tui_project: Path, size) -> None:
    from textual.widgets import Log

    from tui.widgets.chart import LossChart

    write_job(
        tui_project,
        "amusing_knee_8vsw0vbz86",
        JobStatus.COMPLETED,
        display_name="first run",
        events=training_events(40),
        log=[f"{{'loss': {3 * 0.95**n:.4f}, 'epoch': {n / 40:.2f}}}" for n in range(1, 41)],
    )
    write_job(
        tui_project,
        "bold_lamp_3k2j4h5g6f",
        JobStatus.FAILED,
        created=T0 - 3600,
        log=["ValueError: row 7 is not JSON"],
        error="ValueError: row 7 is not JSON",
    )
    write_job(
        tui_project,
        "quiet_fern_9a8s7d6f5g",
        JobStatus.CANCELED,
        created=T0 - 7200,
        log=["stopped by a signal after a checkpoint"],
    )
    app = make_app(tui_project, tab="jobs", poll=3600)

    async def loaded(pilot) -> None:
        await ready(pilot, app)
        await wait_for(pilot, lambda: app.query(LossChart))
        chart = app.query_one(LossChart)
        await wait_for(pilot, lambda: len(chart.loss) == 40 and len(chart.eval_loss) == 4)
        await wait_for(pilot, lambda: app.query_one(Log).line_count == 40)
        await wait_for(pilot, lambda: app.tabs["jobs"].log_ended)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=loaded)
