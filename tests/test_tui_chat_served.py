"""The Chat tab answered by the real scoring server on the session's trained tiny model.

The endpoint reaches the chat service the way a user's shell would give it
(`PHIOPS_ENDPOINT_URL` / `PHIOPS_ENDPOINT_KEY`); the local backend's own endpoint is used in
test_tui_deployments.py's chat check. Both the direct route and the in-process Prompt flow
route stream the answer piece by piece into the Markdown view.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.chat.sessions import SessionStore
from tests.fixtures_deploy import KEY, scoring_server  # noqa: F401
from tests.fixtures_tui_tabs import TabHarness, screen_text, services_for, wait_for
from tests.test_tui_chat import ask, chat_home  # noqa: F401
from tui.tabs.chat import AnswerView, ChatTab, ErrorView

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("route", ["direct", "flow"])
async def test_a_real_answer_streams_into_the_conversation(
    route: str,
    chat_home: Path,  # noqa: F811
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    scoring_server,  # noqa: F811
) -> None:
    monkeypatch.setenv("PHIOPS_ENDPOINT_URL", scoring_server.scoring_uri)
    monkeypatch.setenv("PHIOPS_ENDPOINT_KEY", KEY)
    app = TabHarness(ChatTab, services_for(project))
    messages: list = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        tab = app.query_one(ChatTab)
        tab.query_one("#chat-route").value = route
        tab.query_one("#chat-temperature").value = "0"
        tab.query_one("#chat-max-tokens").value = "24"
        await ask(pilot, tab, "What is the capital of Peru?")
        assert not list(tab.query(ErrorView)), screen_text(app)

        deltas = [m.text for m in messages if isinstance(m, ChatTab.Delta)]
        done = [m for m in messages if isinstance(m, ChatTab.Done)]
        assert len(deltas) > 1, "the answer should arrive in pieces"
        assert len(done) == 1 and done[0].answer == "".join(deltas)
        (view,) = tab.query(AnswerView)
        assert view.markdown.source.strip() == done[0].answer.strip()
        assert "tok/s" in view.meta and route in view.meta
        assert "capital" in done[0].answer.lower()

        turns = SessionStore().turns(tab.session.id)
        assert [t.role for t in turns] == ["user", "assistant"]
        assert turns[1].content == done[0].answer


async def test_serve_flow_starts_pf_flow_serve_and_chats_through_it(
    chat_home: Path,  # noqa: F811
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    scoring_server,  # noqa: F811
) -> None:
    from core.chat.flowserve import flow_servers, stop_flow_servers
    from tests.fixtures_deploy import gone

    monkeypatch.setenv("PHIOPS_ENDPOINT_URL", scoring_server.scoring_uri)
    monkeypatch.setenv("PHIOPS_ENDPOINT_KEY", KEY)
    services = services_for(project)
    app = TabHarness(ChatTab, services)
    messages: list = []
    try:
        async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
            tab = app.query_one(ChatTab)
            await tab.run_action("serve_flow")
            await wait_for(pilot, lambda: tab.route == "served")
            (record,) = flow_servers(services.config)
            assert tab.query_one("#chat-url").value == record.url
            assert KEY not in Path(f"/proc/{record.pid}/cmdline").read_text()

            tab.query_one("#chat-temperature").value = "0"
            tab.query_one("#chat-max-tokens").value = "16"
            await ask(pilot, tab, "What is the capital of Peru?")
            assert not list(tab.query(ErrorView)), screen_text(app)
            done = [m for m in messages if isinstance(m, ChatTab.Done)]
            assert len(done) == 1 and done[0].answer
            assert "served" in tab.query_one(AnswerView).meta

            await tab.run_action("stop_flow")
            await wait_for(pilot, lambda: tab.route == "flow")
            assert gone(record.pid)
    finally:
        stop_flow_servers(services.config)
    assert flow_servers(services.config) == []
