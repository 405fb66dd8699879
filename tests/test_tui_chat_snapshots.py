"""Snapshots of the Chat tab in the real app at 80×24 and 120×40 (pytest-textual-snapshot).

The conversation is a session written to the real store with fixed figures and loaded with
ctrl+o, so nothing on screen changes from run to run (latency, ports, times).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.chat.sessions import SessionStore
from tests.fixtures_tui import make_app
from tests.fixtures_tui_tabs import wait_for
from tests.test_tui_chat import chat_home  # noqa: F401
from tui.tabs.chat import ChatTab

SIZES = [(80, 24), (120, 40)]
ANSWER = """The capital of **Peru** is *Lima*. Two more:

- Chile: `Santiago`
- Kenya: `Nairobi`"""


@pytest.fixture
def chat_project(chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    monkeypatch.setenv("PHIOPS_THEME", "textual-dark")
    store = SessionStore()
    session = store.create(title="Capitals of South America", route="direct")
    store.add_turn(session.id, "user", "What is the capital of Peru?", {"route": "direct"})
    meta = {"route": "direct", "latency_s": 0.84, "tokens": 37}
    store.add_turn(session.id, "assistant", ANSWER, meta)
    store.add_turn(session.id, "user", "And of Spain?", {"route": "direct"})
    failure = "cannot reach the endpoint at http://127.0.0.1:5001/score (connection refused)"
    store.add_turn(session.id, "error", failure, {"route": "direct"})
    return project


async def steady(pilot) -> ChatTab:
    """The chat tab built and focused, with cursors that do not blink (a blink is a diff)."""
    app = pilot.app
    await wait_for(pilot, lambda: "chat" in app.tabs)
    tab = app.tabs["chat"]
    assert isinstance(tab, ChatTab)
    for widget in app.query("Input, TextArea"):
        widget.cursor_blink = False
    return tab


async def load_the_session(pilot) -> None:
    app = pilot.app
    tab = await steady(pilot)
    await wait_for(pilot, lambda: app.focused is not None and tab in app.focused.ancestors)
    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: app.screen.query("#load-sessions"))
    await pilot.press("enter")
    await wait_for(pilot, lambda: tab.session is not None)
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_empty_chat(snap_compare, chat_project: Path, size) -> None:
    async def shown(pilot) -> None:
        await steady(pilot)
        await pilot.pause(0.3)

    assert snap_compare(make_app(chat_project, tab="chat"), terminal_size=size, run_before=shown)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_loaded_conversation_with_an_error(snap_compare, chat_project: Path, size) -> None:
    app = make_app(chat_project, tab="chat")
    assert snap_compare(app, terminal_size=size, run_before=load_the_session)
