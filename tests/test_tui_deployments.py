"""The Deployments tab on the local backend: real gateway and scoring-server processes.

The project is the deploy tests' `local_job_project` (a model trained by a real local job);
this module deploys to its own endpoint name, drives every operation through the tab's
keys and dialogs, checks what the backend then reports, and leaves no process behind.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.config import load_config
from tests.fixtures_deploy import endpoint_pids, gone
from tests.fixtures_tui_tabs import TabHarness, screen_text, wait_for
from tui.screens import ConfirmScreen
from tui.services import Services
from tui.tabs.deployments import DeploymentsTab
from tui.tabs.deployments_dialogs import DeployScreen, TrafficScreen
from tui.tabs.deployments_widgets import Selection

pytestmark = pytest.mark.slow

ENDPOINT = "tui-ep"


@pytest.fixture(scope="module")
def deploy_project(local_job_project):
    """(folder, backend, versions): two registered versions; the endpoint deleted after."""
    folder, backend, job = local_job_project
    versions = [backend.register_model(job.name, "phi3-tiny") for _ in range(2)]
    yield folder, backend, versions
    if ENDPOINT in backend._endpoints.store.names():
        backend.delete_endpoint(ENDPOINT)


def services(folder: Path) -> Services:
    """What `phiops tui` builds in the folder: the config, the backend built lazily."""
    return Services(load_config(folder / "phiops.toml"))


def state(tab: DeploymentsTab) -> str | None:
    info = tab._endpoint(ENDPOINT)
    return None if info is None else info.state


def traffic(tab: DeploymentsTab) -> dict[str, int] | None:
    info = tab._endpoint(ENDPOINT)
    return None if info is None else {name: pct for name, pct in info.traffic.items()}


async def select(pilot, tab: DeploymentsTab, deployment: str | None) -> None:
    """Move the cursor to a row with the arrow keys, as a user would."""
    table = tab.query_one("#deploy-table")
    key = f"dep:{ENDPOINT}/{deployment}" if deployment else f"ep:{ENDPOINT}"
    target = table.get_row_index(key)
    table.focus()
    while table.cursor_row != target:
        await pilot.press("down" if table.cursor_row < target else "up")
    await pilot.pause()


async def confirm(pilot, app) -> None:
    """Cancel has the focus in a confirmation: Tab to the action, Enter."""
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("tab", "enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))


async def deploy(pilot, app, tab: DeploymentsTab, version: str, share: int) -> None:
    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(app.screen, DeployScreen))
    screen = app.screen
    options = screen.query_one("#deploy-models")
    ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
    options.highlighted = ids.index(f"phi3-tiny:{version}")
    screen.query_one("#deploy-endpoint").value = ENDPOINT
    screen.query_one("#deploy-traffic").value = str(share)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: not isinstance(app.screen, DeployScreen))
    await wait_for(pilot, lambda: not tab.busy)


async def test_deploy_shift_roll_back_and_delete_from_the_tab(deploy_project) -> None:
    folder, backend, versions = deploy_project
    app = TabHarness(DeploymentsTab, services(folder))
    seen: list = []
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        tab = app.query_one(DeploymentsTab)
        await wait_for(pilot, lambda: tab.loaded)

        # deploy version 1: a new endpoint, blue takes everything
        await deploy(pilot, app, tab, versions[0].version, 100)
        progress = [m.text for m in seen if isinstance(m, DeploymentsTab.OperationProgress)]
        assert any("smoke-testing" in text for text in progress), progress
        await wait_for(pilot, lambda: traffic(tab) == {"blue": 100})
        info = backend.endpoint(ENDPOINT)
        assert [(d.name, d.state) for d in info.deployments] == [("blue", "Succeeded")]

        # the key: masked on screen, the real one only on the clipboard
        await select(pilot, tab, None)
        key = backend.endpoint_keys(ENDPOINT).primary
        await wait_for(pilot, lambda: "…" in tab.masked_keys.get(ENDPOINT, ""))
        shown = screen_text(app)
        assert key not in shown and info.scoring_uri in shown
        assert tab.masked_keys[ENDPOINT] in shown
        await pilot.press("c")
        await wait_for(pilot, lambda: app.clipboard == key)
        await pilot.press("u")
        assert app.clipboard == info.scoring_uri
        # the logs of the deployment taking the traffic, with the key masked if it is there
        await wait_for(pilot, lambda: tab.query_one("#deploy-logs").line_count > 0)
        assert key not in "\n".join(tab.query_one("#deploy-logs").lines)

        # version 2 beside it at 20%
        await deploy(pilot, app, tab, versions[1].version, 20)
        await wait_for(pilot, lambda: traffic(tab) == {"blue": 80, "green": 20})
        assert backend.endpoint(ENDPOINT).traffic == {"blue": 80, "green": 20}

        # shift: ↓ to green's share, 50 (blue takes the rest), Enter
        await select(pilot, tab, None)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrafficScreen))
        await pilot.press("down", "5", "0")
        await pilot.pause()
        plan = str(app.screen.query_one("#traffic-plan").render())
        assert "blue 80% → 50%" in plan and "green 20% → 50%" in plan
        await pilot.press("enter")
        await wait_for(pilot, lambda: traffic(tab) == {"blue": 50, "green": 50})

        # roll back: the split before the shift
        await pilot.press("b")
        await confirm(pilot, app)
        await wait_for(pilot, lambda: traffic(tab) == {"blue": 80, "green": 20})
        assert backend.endpoint(ENDPOINT).traffic == {"blue": 80, "green": 20}

        # stop (asks first) and start again: as after `phiops down`, on the same URI
        await select(pilot, tab, None)
        pids = endpoint_pids(backend._endpoints, ENDPOINT)
        assert len(pids) == 3  # the gateway, blue and green
        await pilot.press("s")
        await confirm(pilot, app)
        await wait_for(pilot, lambda: not tab.busy and state(tab) == "Stopped")
        assert all(gone(pid) for pid in pids)
        await wait_for(pilot, lambda: "s starts it" in screen_text(app))
        await pilot.press("s")  # starting asks nothing
        assert tab.busy.startswith("Starting")
        await wait_for(pilot, lambda: not tab.busy)
        await wait_for(pilot, lambda: state(tab) == "Succeeded")
        restarted = backend.endpoint(ENDPOINT)
        assert restarted.scoring_uri == info.scoring_uri
        assert restarted.traffic == {"blue": 80, "green": 20}
        reply = httpx.post(
            restarted.scoring_uri,
            json={"input_data": ["Hi"], "params": {"max_new_tokens": 2}},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert reply.status_code == 200

        # green still takes traffic: deleting it is refused before any dialog
        await select(pilot, tab, "green")
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("still takes 20%" in n.message for n in app._notifications)

        # move it all to blue, then delete green; Escape first changes nothing
        await select(pilot, tab, None)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrafficScreen))
        await pilot.press("down", "0")  # green's share; blue takes the rest
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: traffic(tab) == {"blue": 100, "green": 0})
        green_pid = backend._endpoints.store.read(ENDPOINT).deployments["green"].process.pid
        await select(pilot, tab, "green")
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await pilot.pause()
        assert "green" in backend.endpoint(ENDPOINT).traffic
        await pilot.press("x")
        await confirm(pilot, app)
        await wait_for(pilot, lambda: traffic(tab) == {"blue": 100})
        assert gone(green_pid)

        # delete the endpoint: X (x on its row deletes nothing and says so)
        record = backend._endpoints.store.read(ENDPOINT)
        pids = [record.gateway.pid, *(d.process.pid for d in record.deployments.values())]
        await select(pilot, tab, None)
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("X")
        await confirm(pilot, app)
        await wait_for(pilot, lambda: traffic(tab) is None and not tab.busy)
        assert ENDPOINT not in [info.name for info in backend.endpoints()]
        assert all(gone(pid) for pid in pids)


async def test_the_chat_tab_answers_through_the_local_endpoint(
    deploy_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a user does after deploying: open Chat and ask, no URL or key to copy anywhere."""
    from tests.fixtures_tui import make_app
    from tui.tabs.chat import AnswerView, ChatTab, ErrorView, PromptInput

    folder, backend, versions = deploy_project
    backend.deploy(versions[1], ENDPOINT)
    monkeypatch.setenv("PHIOPS_ENDPOINT_NAME", ENDPOINT)
    monkeypatch.delenv("PHIOPS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("PHIOPS_ENDPOINT_KEY", raising=False)
    app = make_app(folder, tab="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "chat" in app.tabs)
        tab = app.tabs["chat"]
        assert isinstance(tab, ChatTab)
        await wait_for(
            pilot, lambda: tab.query(PromptInput) and tab.query_one(PromptInput).has_focus
        )
        for route in ("direct", "flow"):
            tab.query_one("#chat-route").value = route
            tab.query_one("#chat-max-tokens").value = "16"
            tab.query_one(PromptInput).load_text("What is the capital of Chile?")
            await pilot.press("ctrl+j")
            await wait_for(pilot, lambda: tab.asking is None)
            assert not list(tab.query(ErrorView)), screen_text(app)
            answer = list(tab.query(AnswerView))[-1]
            assert answer.markdown.source.strip() and route in answer.meta


async def test_the_keys_keep_working_after_stop_and_start(deploy_project) -> None:
    """In the real app (tab strip, footer and all): s stops the endpoint after y, s starts
    it again; then, without Tab, the keyboard is still in the table — the footer shows the
    tab's keys, ↓ moves the cursor and c copies the key. (The footer used to drop to
    "f1 Help q Quit" and every key of the tab was dead until Tab was pressed.)"""
    from tests.fixtures_tui import make_app

    folder, backend, versions = deploy_project
    backend.deploy(versions[0], ENDPOINT)
    key = backend.endpoint_keys(ENDPOINT).primary
    app = make_app(folder, tab="deployments")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(
                pilot, lambda: "deployments" in app.tabs and app.tabs["deployments"].loaded
            )
            tab = app.tabs["deployments"]
            table = tab.query_one("#deploy-table")
            await wait_for(pilot, lambda: app.focused is table and state(tab) == "Succeeded")
            while tab.selection != Selection(ENDPOINT):
                await pilot.press("down")
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await wait_for(pilot, lambda: not tab.busy and state(tab) == "Stopped")
            await pilot.press("s")
            await wait_for(pilot, lambda: tab.busy.startswith("Starting"))
            await wait_for(pilot, lambda: not tab.busy)
            await wait_for(pilot, lambda: state(tab) == "Succeeded")
            await pilot.pause(1.5)  # past every focus restore after the dialog
            assert app.focused is table, app.focused
            assert "d Deploy" in screen_text(app).splitlines()[-1]
            await pilot.press("down")
            await wait_for(pilot, lambda: tab.selection == Selection(ENDPOINT, "blue"))
            await pilot.press("c")
            await wait_for(pilot, lambda: app.clipboard == key)
    finally:
        backend.delete_endpoint(ENDPOINT)
