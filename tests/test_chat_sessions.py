"""core/chat/sessions.py: the SQLite session store, its exports and imports."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from core.chat.sessions import (
    ChatImportError,
    SessionStore,
    Turn,
    history_pairs,
    title_from,
)
from core.errors import NotFoundError, PhiopsError


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "home" / "chat.sqlite3")


def chat(store: SessionStore) -> str:
    session = store.create(route="direct")
    store.add_turn(session.id, "user", "What is the capital of Peru?", {"route": "direct"})
    store.add_turn(session.id, "assistant", "The capital of Peru is Lima.", {"tokens": 7})
    store.add_turn(session.id, "user", "And of Chile?")
    store.add_turn(session.id, "error", "cannot reach the endpoint at http://x/score")
    store.add_turn(session.id, "user", 'And of Chile? Unicode: ñ — 東京 "quotes"\nnew line')
    store.add_turn(session.id, "assistant", "Santiago.")
    return session.id


def test_default_path_is_in_the_user_data_dir() -> None:
    import os

    assert SessionStore().path == Path(os.environ["PHIOPS_HOME"]) / "chat.sqlite3"


def test_sessions_and_turns(store: SessionStore) -> None:
    first = store.create(title="named")
    second_id = chat(store)
    assert store.path.exists()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700

    second = store.get(second_id)
    assert second.title == "What is the capital of Peru?"  # named by its first question
    assert second.route == "direct"
    assert [s.id for s in store.list()] == [second_id, first.id]  # most recent first
    assert store.get(first.id).title == "named"

    turns = store.turns(second_id)
    assert [t.role for t in turns] == ["user", "assistant", "user", "error", "user", "assistant"]
    assert turns[1].meta == {"tokens": 7}
    assert turns[0].created_at <= turns[-1].created_at
    assert second.updated_at >= second.created_at


def test_missing_session_is_one_sentence(store: SessionStore) -> None:
    with pytest.raises(NotFoundError, match="no chat session 'nope'"):
        store.get("nope")
    with pytest.raises(NotFoundError):
        store.add_turn("nope", "user", "hello")
    with pytest.raises(NotFoundError):
        store.turns("nope")
    session = store.create()
    with pytest.raises(PhiopsError, match="role must be one of"):
        store.add_turn(session.id, "robot", "beep")


def test_find_by_prefix(store: SessionStore) -> None:
    session = store.create()
    assert store.find(session.id[:4]).id == session.id
    assert store.find(session.id).id == session.id
    with pytest.raises(NotFoundError):
        store.find("zz-not-there")


def test_history_pairs_leave_failed_questions_out(store: SessionStore) -> None:
    session_id = chat(store)
    assert history_pairs(store.turns(session_id)) == [
        ("What is the capital of Peru?", "The capital of Peru is Lima."),
        ('And of Chile? Unicode: ñ — 東京 "quotes"\nnew line', "Santiago."),
    ]
    assert history_pairs([Turn("user", "a", 0), Turn("user", "b", 0)]) == []


def test_markdown_export(store: SessionStore) -> None:
    session_id = chat(store)
    text = store.export_markdown(session_id)
    assert text.startswith("# What is the capital of Peru?\n")
    assert f"Session `{session_id}`" in text
    assert "**You:**\n\nWhat is the capital of Peru?" in text
    assert "**Assistant:**\n\nThe capital of Peru is Lima." in text
    assert "> **Error:** cannot reach the endpoint at http://x/score" in text


def test_jsonl_export_round_trips(store: SessionStore, tmp_path: Path) -> None:
    session_id = chat(store)
    exported = store.export_jsonl(session_id)
    lines = [json.loads(line) for line in exported.splitlines()]
    assert lines[0]["type"] == "session" and lines[0]["id"] == session_id
    assert [line["role"] for line in lines[1:]] == [t.role for t in store.turns(session_id)]

    other = SessionStore(tmp_path / "other.sqlite3")
    imported = other.import_jsonl(exported)
    assert imported.id == session_id
    assert other.export_jsonl(session_id) == exported  # lossless, byte for byte
    assert other.turns(session_id) == store.turns(session_id)

    again = store.import_jsonl(exported)  # the id is taken here: a new one, same content
    assert again.id != session_id
    assert store.turns(again.id) == store.turns(session_id)
    assert store.export_markdown(again.id).replace(again.id, session_id) == store.export_markdown(
        session_id
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no session line"),
        ("not json\n", "line 1 of the chat export is not JSON"),
        ('{"type": "turn", "role": "user", "content": "x"}\n', "no session line"),
        ('{"type": "session"}\n{"type": "turn", "role": "bot", "content": "x"}', "line 2"),
        ('{"type": "session"}\n{"type": "session"}\n', "a second session"),
        ('{"type": "session"}\n[1]\n', "not a JSON object"),
    ],
)
def test_bad_imports_change_nothing(store: SessionStore, text: str, words: str) -> None:
    with pytest.raises(ChatImportError, match=words):
        store.import_jsonl(text)
    assert store.list() == []


def test_threads_share_the_store(store: SessionStore) -> None:
    session = store.create()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(20):
                store.add_turn(session.id, "user", f"{worker}-{n}")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.turns(session.id)) == 80


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite3"
    path.write_text("this is not sqlite " * 100)
    with pytest.raises(PhiopsError, match="not a chat database"):
        SessionStore(path).list()
    assert path.read_text().startswith("this is not sqlite")


def test_titles_are_short() -> None:
    assert title_from("  a   b ") == "a b"
    long = title_from("word " * 40)
    assert len(long) <= 60 and long.endswith("…")
