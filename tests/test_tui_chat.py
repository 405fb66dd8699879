"""The Chat tab through the real chat service and session store.

The endpoint here is the flow tests' `ScriptedEndpoint` (a real HTTP server replying from a
script): it is for the paths a real model cannot be made to take on demand — a failure, a
stream slow enough to stop. Answers from the real scoring server are in
test_tui_chat_served.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.chat.sessions import SessionStore
from tests.fixtures_chat import Reply, ScriptedEndpoint
from tests.fixtures_tui_tabs import TabHarness, screen_text, services_for, wait_for
from tui.tabs.chat import AnswerView, ChatTab, ErrorView, PromptInput, QuestionView, check_params
from tui.tabs.chat_dialogs import ExportScreen, LoadSessionScreen

KEY = "scripted-test-key-0123456789abcdef"


@pytest.fixture
def chat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project: Path) -> Path:
    """A user data dir of this test's own (the session store lives there)."""
    home = tmp_path / "home"
    monkeypatch.setenv("PHIOPS_HOME", str(home))
    return home


def endpoint_env(monkeypatch: pytest.MonkeyPatch, endpoint: ScriptedEndpoint) -> None:
    monkeypatch.setenv("PHIOPS_ENDPOINT_URL", endpoint.scoring_uri)
    monkeypatch.setenv("PHIOPS_ENDPOINT_KEY", KEY)


async def ask(pilot, tab: ChatTab, question: str) -> None:
    tab.query_one(PromptInput).focus()
    for character in question:
        await pilot.press(character if character != " " else "space")
    await pilot.press("ctrl+j")
    await wait_for(pilot, lambda: tab.asking is None)


def test_generation_settings_are_checked_in_one_sentence() -> None:
    assert check_params("0.2", "64") == (0.2, 64)
    with pytest.raises(ValueError, match="Temperature must be from 0 to 5"):
        check_params("9", "64")
    with pytest.raises(ValueError, match="whole number"):
        check_params("0.7", "lots")


async def test_a_failure_is_shown_in_the_conversation_and_the_question_comes_back(
    chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedEndpoint(default=Reply(status=500, json={"error": "model exploded"})) as ep:
        endpoint_env(monkeypatch, ep)
        app = TabHarness(ChatTab, services_for(project))
        async with app.run_test(size=(80, 24)) as pilot:
            tab = app.query_one(ChatTab)
            tab.query_one("#chat-route").value = "direct"
            await ask(pilot, tab, "What is the capital of Peru?")

            errors = list(tab.query(ErrorView))
            assert len(errors) == 1
            assert "HTTP 500" in errors[0].message and "model exploded" in errors[0].message
            assert KEY not in errors[0].message
            assert tab.query_one(PromptInput).text == "What is the capital of Peru?"
            assert [q.question for q in tab.query(QuestionView)] == ["What is the capital of Peru?"]
            assert not list(tab.query(AnswerView))  # no empty answer left behind
            text = screen_text(app)
            assert "HTTP 500" in text and KEY not in text

            turns = SessionStore().turns(tab.session.id)
            assert [t.role for t in turns] == ["user", "error"]
            assert ep.requests[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_input_history_walks_with_up_and_down_and_keeps_the_draft(
    chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedEndpoint(default=Reply(sse=["Lima", "."])) as ep:
        endpoint_env(monkeypatch, ep)
        app = TabHarness(ChatTab, services_for(project))
        async with app.run_test(size=(80, 24)) as pilot:
            tab = app.query_one(ChatTab)
            tab.query_one("#chat-route").value = "direct"
            await ask(pilot, tab, "one")
            await ask(pilot, tab, "two")
            box = tab.query_one(PromptInput)
            await pilot.press("d", "r", "a", "f", "t")
            await pilot.press("up")
            assert box.text == "two"
            await pilot.press("up")
            assert box.text == "one"
            await pilot.press("up")  # stays on the oldest
            assert box.text == "one"
            await pilot.press("down")
            assert box.text == "two"
            await pilot.press("down")
            assert box.text == "draft"


async def test_streamed_answer_gets_its_figures_and_is_stored(
    chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pieces = ["The ", "capital ", "of ", "Peru ", "is ", "**Lima**."]
    with ScriptedEndpoint(default=Reply(sse=pieces, piece_delay_s=0.02)) as ep:
        endpoint_env(monkeypatch, ep)
        app = TabHarness(ChatTab, services_for(project))
        messages = []
        async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
            tab = app.query_one(ChatTab)
            tab.query_one("#chat-route").value = "direct"
            await ask(pilot, tab, "Capital of Peru?")
            deltas = [m.text for m in messages if isinstance(m, ChatTab.Delta)]
            assert deltas == pieces  # one message per piece, in order
            (view,) = tab.query(AnswerView)
            assert view.markdown.source == "".join(pieces)
            assert "6 tokens" in view.meta and "tok/s" in view.meta and "direct" in view.meta
            assert "Lima" in screen_text(app)
            assert tab.last_answer == "".join(pieces)
            await pilot.press("ctrl+r")
            assert app.clipboard == "".join(pieces)
            turns = SessionStore().turns(tab.session.id)
            assert [(t.role, t.content) for t in turns] == [
                ("user", "Capital of Peru?"),
                ("assistant", "".join(pieces)),
            ]


async def test_escape_stops_a_slow_answer_and_keeps_what_came(
    chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = Reply(sse=["Lima ", "is ", "the ", "capital"], piece_delay_s=1.0)
    with ScriptedEndpoint(default=slow) as ep:
        endpoint_env(monkeypatch, ep)
        app = TabHarness(ChatTab, services_for(project))
        async with app.run_test(size=(80, 24)) as pilot:
            tab = app.query_one(ChatTab)
            tab.query_one("#chat-route").value = "direct"
            tab.query_one(PromptInput).load_text("Capital of Peru?")
            await pilot.press("ctrl+j")
            await wait_for(pilot, lambda: tab.streamed)
            await pilot.press("escape")
            await wait_for(pilot, lambda: tab.asking is None)
            assert tab.query_one(ErrorView).message == "Stopped."
            assert tab.query_one(AnswerView).meta == "(partial answer)"
            assert tab.query_one(PromptInput).text == "Capital of Peru?"
            turns = SessionStore().turns(tab.session.id)
            assert turns[-1].role == "error"
            assert turns[-1].meta["partial_answer"].startswith("Lima")


async def test_new_load_and_export_a_session(
    chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedEndpoint(default=Reply(sse=["Paris", "."])) as ep:
        endpoint_env(monkeypatch, ep)
        app = TabHarness(ChatTab, services_for(project))
        async with app.run_test(size=(80, 24)) as pilot:
            tab = app.query_one(ChatTab)
            tab.query_one("#chat-route").value = "direct"
            await ask(pilot, tab, "Capital of France?")
            first = tab.session.id

            await pilot.press("ctrl+n")
            assert tab.session is None and not list(tab.query(QuestionView))

            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: isinstance(app.screen, LoadSessionScreen))
            await pilot.press("enter")
            await wait_for(pilot, lambda: tab.session is not None and tab.session.id == first)
            await pilot.pause()
            assert [q.question for q in tab.query(QuestionView)] == ["Capital of France?"]
            (answer,) = tab.query(AnswerView)
            assert answer.markdown.source == "Paris." and "tok/s" in answer.meta

            for suffix, expected in (
                (".md", SessionStore().export_markdown(first)),
                (".jsonl", SessionStore().export_jsonl(first)),
            ):
                await pilot.press("ctrl+s")
                await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
                path = app.screen.query_one("#export-path")
                path.value = str(project / f"export{suffix}")
                await pilot.press("enter")
                target = project / f"export{suffix}"
                await wait_for(pilot, lambda target=target: target.exists())
                assert target.read_text() == expected
            lines = (project / "export.jsonl").read_text().splitlines()
            rows = [json.loads(line) for line in lines if line]
            assert any(row.get("content") == "Paris." for row in rows)


async def test_bad_settings_send_nothing(
    chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedEndpoint() as ep:
        endpoint_env(monkeypatch, ep)
        app = TabHarness(ChatTab, services_for(project))
        async with app.run_test(size=(80, 24)) as pilot:
            tab = app.query_one(ChatTab)
            tab.query_one("#chat-temperature").value = "9"
            tab.query_one(PromptInput).load_text("Hello?")
            await pilot.press("ctrl+j")
            await pilot.pause()
            assert "Temperature must be from 0 to 5" in screen_text(app)
            assert tab.query_one(PromptInput).text == "Hello?"
            assert ep.requests == [] and tab.session is None


async def test_in_the_app_keys_the_app_binds_still_type_into_the_question(
    chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """q quits and 1…5 switch tabs elsewhere; in the question box they are text."""
    from tests.fixtures_tui import make_app

    with ScriptedEndpoint(default=Reply(sse=["Yes", "."])) as ep:
        endpoint_env(monkeypatch, ep)
        app = make_app(project, tab="chat")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: "chat" in app.tabs)
            tab = app.tabs["chat"]
            assert isinstance(tab, ChatTab)
            await wait_for(pilot, lambda: app.focused is tab.query_one(PromptInput))
            tab.query_one("#chat-route").value = "direct"
            await pilot.press("q", "space", "1", "2", "question_mark")
            assert tab.query_one(PromptInput).text == "q 12?"
            assert app.query_one("#tabs").active == "chat" and app.is_running
            await pilot.press("ctrl+j")
            await wait_for(pilot, lambda: tab.asking is None and tab.last_answer == "Yes.")

            await app.run_tab_action("chat", "new_chat")  # what the palette's "New chat" runs
            assert tab.session is None and not list(tab.query(QuestionView))

            # Esc with no answer coming leaves the box; then the number keys switch tabs
            await pilot.press("escape")
            assert app.focused is tab.query_one("#chat-conversation")
            await pilot.press("4")
            await wait_for(pilot, lambda: app.query_one("#tabs").active == "deployments")


async def test_an_empty_or_cut_answer_says_why_and_the_history_can_be_trimmed(
    chat_home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty answer, or one stopped by max tokens, is not "answered in … 0 tokens": the
    conversation says why; ctrl+t goes on in a new chat holding the last good exchange;
    while waiting, the status line spins and counts seconds; the load list shows turns."""
    from tui.tabs.chat import NoticeView

    script = [
        Reply(sse=["Lima", "."], delay_s=1.5),
        Reply(json=[""]),
        Reply(sse=["one ", "two ", "three ", "four "]),
        Reply(json=[""]),
    ]
    with ScriptedEndpoint(script=script) as ep:
        endpoint_env(monkeypatch, ep)
        app = TabHarness(ChatTab, services_for(project))
        async with app.run_test(size=(80, 24)) as pilot:
            tab = app.query_one(ChatTab)
            tab.query_one("#chat-route").value = "direct"
            tab.query_one(PromptInput).load_text("Capital of Peru?")
            await pilot.press("ctrl+j")
            status = tab.query_one("#chat-status")
            await wait_for(pilot, lambda: " 1 s" in str(status.render()))
            assert str(status.render())[0] in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
            await wait_for(pilot, lambda: tab.asking is None)
            assert not tab.query(NoticeView)

            await ask(pilot, tab, "And of Chile?")
            (notice,) = tab.query(NoticeView)
            assert "answered nothing" in notice.message and "ctrl+t" in notice.message
            assert "Answered in" not in str(status.render())

            tab.query_one("#chat-max-tokens").value = "4"
            await ask(pilot, tab, "Count")
            assert "max tokens limit (4)" in tab.query(NoticeView)[-1].message

            first = tab.session.id
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: tab.session is not None and tab.session.id != first)
            turns = SessionStore().turns(tab.session.id)
            assert [(t.role, t.content) for t in turns] == [
                ("user", "Count"),
                ("assistant", "one two three four "),
            ]
            assert [q.question for q in tab.query(QuestionView)] == ["Count"]

            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: isinstance(app.screen, LoadSessionScreen))
            rows = app.screen.query_one("#load-sessions")
            prompts = [str(rows.get_option_at_index(i).prompt) for i in range(rows.option_count)]
            assert any("  2 turns" in p for p in prompts) and any("  6 turns" in p for p in prompts)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, LoadSessionScreen))
            await pilot.press("ctrl+n")  # a chat whose only answer is empty: nothing to keep
            await ask(pilot, tab, "Hello?")
            kept = tab.session.id
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: "Nothing to keep" in str(status.render()))
            assert tab.session.id == kept


async def test_escape_from_help_gives_the_keyboard_back(tui_project: Path) -> None:
    from tests.fixtures_tui import make_app, ready
    from tui.screens import HelpScreen

    app = make_app(tui_project, tab="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["chat"]
        conversation = tab.query_one("#chat-conversation")
        await wait_for(pilot, lambda: app.focused is tab.query_one(PromptInput))
        await pilot.press("escape")  # leave the box for the conversation
        await wait_for(pilot, lambda: app.focused is conversation)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.pause(0.3)
        assert app.focused is conversation
