"""The Deployments tab on the Azure backend, against the SDK stand-ins (no network).

What only Azure has: the charges warning before a deploy, and endpoints provisioned by the
SDK's own models. The local backend's tests (test_tui_deployments.py) cover the rest.
"""

from __future__ import annotations

import pytest

from tests.fixtures_deploy_azure import AzureDeploy, azure_deploy  # noqa: F401
from tests.fixtures_tui_tabs import wait_for
from tui.app import PhiopsApp
from tui.services import Services
from tui.tabs.deployments import DeploymentsTab
from tui.tabs.deployments_dialogs import DeployScreen, TrafficScreen


@pytest.fixture
def azure_services(azure_deploy: AzureDeploy) -> Services:  # noqa: F811
    return Services(azure_deploy.config, backend_name="azure", _backend=azure_deploy.backend)


async def test_deploy_on_azure_warns_of_charges_then_shows_the_endpoint(
    azure_deploy: AzureDeploy,  # noqa: F811
    azure_services: Services,
) -> None:
    model = azure_deploy.backend.register_model("calm_river_1a2b3c")
    app = PhiopsApp(azure_services, initial_tab="resources", job_poll_seconds=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("4")
        await wait_for(pilot, lambda: "deployments" in app.tabs and app.tabs["deployments"].loaded)
        tab = app.tabs["deployments"]
        assert isinstance(tab, DeploymentsTab)
        table = tab.query_one("#deploy-table")
        await wait_for(pilot, lambda: app.focused is table)
        assert "No endpoints on the azure backend" in str(tab.query_one("#deploy-details").render())

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen))
        screen = app.screen
        warning = " ".join(str(w.render()) for w in screen.query(".warning"))
        assert "Azure charges" in warning and "Standard_E4s_v3" in warning
        assert model.ref in str(screen.query_one("#deploy-models").get_option_at_index(0).prompt)

        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, DeployScreen))
        await wait_for(pilot, lambda: tab.busy == "" and tab.endpoints)
        # the keyboard is back in the table, not on the tab strip
        await wait_for(pilot, lambda: app.focused is table)
        info = tab.endpoints[0]
        assert info.name == "phi3-endpoint"
        assert [d.name for d in info.deployments] == ["blue"]
        assert info.traffic == {"blue": 100}

        key = azure_deploy.backend.endpoint_keys("phi3-endpoint").primary
        await wait_for(pilot, lambda: tab.masked_keys.get("phi3-endpoint", "").count("…") == 1)
        shown = app.export_screenshot()
        assert key not in shown
        assert tab.masked_keys["phi3-endpoint"] in shown

        await pilot.press("c")
        await wait_for(pilot, lambda: app.clipboard == key)


@pytest.fixture
def blue_green(azure_deploy: AzureDeploy) -> Services:  # noqa: F811
    """phi3-endpoint with blue (version 1, 10%) and green (version 2, 90%)."""
    backend = azure_deploy.backend
    backend.deploy(backend.register_model("calm_river_1a2b3c"), "phi3-endpoint")
    backend.deploy(backend.register_model("calm_river_1a2b3c"), "phi3-endpoint", traffic=90)
    return Services(azure_deploy.config, backend_name="azure", _backend=backend)


async def test_the_traffic_dialog_applies_what_is_typed(
    azure_deploy: AzureDeploy,  # noqa: F811
    blue_green: Services,
) -> None:
    """One share per deployment, opened on the current split (Enter there changes nothing);
    ↓ to green, 50, Enter: blue and green get 50% each, as the preview said."""
    app = PhiopsApp(blue_green, initial_tab="deployments", job_poll_seconds=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "deployments" in app.tabs and app.tabs["deployments"].loaded)
        tab = app.tabs["deployments"]
        await wait_for(pilot, lambda: app.focused is tab.query_one("#deploy-table"))
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrafficScreen))
        screen = app.screen
        assert [share.value for share in screen.shares] == ["10", "90"]
        await pilot.press("enter")  # the split as it is: nothing to apply
        await wait_for(
            pilot, lambda: "split already" in str(screen.query_one("#traffic-error").render())
        )
        assert isinstance(app.screen, TrafficScreen)
        await pilot.press("down", *"50")
        await wait_for(pilot, lambda: [s.value for s in screen.shares] == ["50", "50"])
        plan = str(screen.query_one("#traffic-plan").render())
        assert "blue 10% → 50%" in plan and "green 90% → 50%" in plan
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, TrafficScreen))
        await wait_for(
            pilot,
            lambda: tab.endpoints and tab.endpoints[0].traffic == {"blue": 50, "green": 50},
        )
        assert azure_deploy.backend.endpoint("phi3-endpoint").traffic == {"blue": 50, "green": 50}
        assert app.focused is tab.query_one("#deploy-table")  # the keyboard is back in the table


async def test_x_rollback_and_following_the_logs(
    azure_deploy: AzureDeploy,  # noqa: F811
    blue_green: Services,
) -> None:
    """x on an endpoint row deletes nothing (X is the endpoint's key); the rollback dialog
    shows the split it restores and takes y; l follows the logs, health probes folded."""
    from tui.screens import ConfirmScreen

    app = PhiopsApp(blue_green, initial_tab="deployments", job_poll_seconds=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "deployments" in app.tabs and app.tabs["deployments"].loaded)
        tab = app.tabs["deployments"]
        table = tab.query_one("#deploy-table")
        await wait_for(pilot, lambda: app.focused is table)
        assert tab.selection.deployment is None  # the endpoint's row
        await pilot.press("x")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("X deletes the whole endpoint" in n.message for n in app._notifications)
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert azure_deploy.backend.endpoint("phi3-endpoint").traffic  # still there

        tab.busy = "Deploying phi3-finetuned:3"  # while an operation runs, nothing is asked
        await pilot.press("b")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("Wait: Deploying" in n.message for n in app._notifications)
        tab.busy = ""

        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        body = str(app.screen.query_one("#confirm-body").render())
        assert "Now:      blue 10% / green 90%" in body and "Restores: blue 100%" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: tab.endpoints[0].traffic.get("blue") == 100)

        log = azure_deploy.world.deployment_logs[("phi3-endpoint", "blue")]
        log += ['127.0.0.1 - "GET /readiness HTTP/1.1" 200'] * 12 + ["scored a request"]
        title = tab.query_one("#deploy-logs-title")
        unmarked = title.styles.background
        await pilot.press("l")
        logs = tab.query_one("#deploy-logs")
        await wait_for(pilot, lambda: app.focused is logs and "scored a request" in logs.lines)
        await wait_for(pilot, lambda: title.styles.background != unmarked)  # the pane marked
        assert "· 12 health probes (readiness/liveness)" in logs.lines
        assert "following" in str(tab.query_one("#deploy-logs-title").render())
        log += ["a line written after l"]  # read again within seconds, not at the 30 s refresh
        await wait_for(pilot, lambda: logs.lines and logs.lines[-1] == "a line written after l")
