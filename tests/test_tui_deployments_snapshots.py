"""Snapshots of the Deployments tab in the real app at 80×24 and 120×40.

Two states with nothing that changes from run to run: the local backend with no endpoint
yet, and an Azure endpoint (SDK stand-ins) with blue and green deployments, its keys set to
fixed strings so the masked key is the same in every run. Update with `--snapshot-update`
after checking the new SVGs by eye.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures_deploy_azure import AzureDeploy, azure_deploy  # noqa: F401
from tests.fixtures_tui import make_app
from tests.fixtures_tui_tabs import wait_for
from tui.app import PhiopsApp
from tui.services import Services
from tui.tabs.deployments import DeploymentsTab

SIZES = [(80, 24), (120, 40)]
FIXED_KEYS = ("snapshotPrimaryKey0123456789abcd", "snapshotSecondaryKey0123456789ab")


@pytest.fixture(autouse=True)
def _same_colours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHIOPS_THEME", "textual-dark")


async def loaded(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.query(DeploymentsTab))
    tab = pilot.app.query_one(DeploymentsTab)
    await wait_for(pilot, lambda: tab.loaded and not tab.busy)
    await wait_for(pilot, lambda: tab.query_one("#deploy-logs").line_count or not tab.endpoints)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_local_without_endpoints(snap_compare, project: Path, size) -> None:
    app = make_app(project, tab="deployments")
    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.fixture
def blue_green(azure_deploy: AzureDeploy) -> Services:  # noqa: F811
    """phi3-endpoint with blue (version 1, 10%) and green (version 2, 90%)."""
    backend = azure_deploy.backend
    first = backend.register_model("calm_river_1a2b3c")
    backend.deploy(first, "phi3-endpoint")
    second = backend.register_model("calm_river_1a2b3c")
    backend.deploy(second, "phi3-endpoint", traffic=90)
    world = azure_deploy.world
    for key in world.endpoint_keys:
        world.endpoint_keys[key] = FIXED_KEYS
    azure_deploy.config.theme = "textual-dark"  # its config ignores PHIOPS_THEME (env={})
    return Services(azure_deploy.config, backend_name="azure", _backend=backend)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_azure_blue_green(snap_compare, blue_green: Services, size) -> None:
    app = PhiopsApp(blue_green, initial_tab="deployments", job_poll_seconds=60)
    assert snap_compare(app, terminal_size=size, run_before=loaded)


def test_azure_deployment_row_and_traffic_dialog(snap_compare, blue_green: Services) -> None:
    async def open_traffic(pilot) -> None:
        await loaded(pilot)
        await pilot.press("down", "t")
        await pilot.pause()

    app = PhiopsApp(blue_green, initial_tab="deployments", job_poll_seconds=60)
    assert snap_compare(app, terminal_size=(80, 24), run_before=open_traffic)
