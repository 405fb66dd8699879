"""Chat sessions in a small SQLite database in the user's data dir: resumable, exportable.

Every operation opens its own short connection (WAL, busy timeout), so the CLI, TUI workers
and threads can share the file. The file is private to its owner (0600): chats may hold
anything the user typed.

Turns have a role: `user`, `assistant`, or `error` (a request that failed — kept, so a
session shows what happened and nothing the user typed is lost).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import NotFoundError, PhiopsError
from core.paths import user_data_dir

DB_FILENAME = "chat.sqlite3"
ROLES = ("system", "user", "assistant", "error")
TITLE_LENGTH = 60
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    route TEXT NOT NULL DEFAULT 'flow'
);
CREATE TABLE IF NOT EXISTS turns (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at REAL NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS turns_by_session ON turns(session_id, seq);
"""


@dataclass
class ChatSessionInfo:
    id: str
    title: str
    created_at: float
    updated_at: float
    route: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "route": self.route,
        }


@dataclass
class Turn:
    role: str
    content: str
    created_at: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "content": self.content,
            "created_at": self.created_at,
            "meta": self.meta,
        }


class ChatImportError(PhiopsError):
    """A JSONL export that cannot be read back."""


def new_session_id() -> str:
    """Short, readable and unique enough for one user's chats: 10 hex digits."""
    return secrets.token_hex(5)


def title_from(question: str) -> str:
    words = " ".join(question.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"


def history_pairs(turns: list[Turn]) -> list[tuple[str, str]]:
    """(question, answer) for each question the model answered; failed ones are left out."""
    pairs = []
    for previous, turn in itertools.pairwise(turns):
        if previous.role == "user" and turn.role == "assistant":
            pairs.append((previous.content, turn.content))
    return pairs


class SessionStore:
    """The chat database. `path` defaults to `<user data dir>/chat.sqlite3`."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else user_data_dir() / DB_FILENAME
        self._ready = False

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._create()
        try:
            connection = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as error:
            raise PhiopsError(
                f"{self.path}: the chat database cannot be opened ({error})"
            ) from None
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            with connection:
                yield connection
        except sqlite3.DatabaseError as error:
            raise PhiopsError(f"{self.path}: the chat database cannot be used ({error})") from None
        finally:
            connection.close()

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        try:
            connection = sqlite3.connect(self.path, timeout=10)
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(SCHEMA)
            finally:
                connection.close()
        except sqlite3.DatabaseError as error:
            raise PhiopsError(
                f"{self.path}: not a chat database ({error}); move it away and phiops starts a "
                "new one"
            ) from None
        self._ready = True

    # -- sessions ------------------------------------------------------------------------

    def create(self, title: str = "", route: str = "flow") -> ChatSessionInfo:
        now = time.time()
        info = ChatSessionInfo(new_session_id(), title, now, now, str(route))
        with self._connect() as db:
            db.execute(
                "INSERT INTO sessions (id, title, created_at, updated_at, route) "
                "VALUES (?, ?, ?, ?, ?)",
                (info.id, info.title, info.created_at, info.updated_at, info.route),
            )
        return info

    def get(self, id: str) -> ChatSessionInfo:
        """The session `id`; NotFoundError (one sentence) when there is none."""
        with self._connect() as db:
            row = db.execute(
                "SELECT id, title, created_at, updated_at, route FROM sessions WHERE id = ?",
                (id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no chat session '{id}'; `phiops chat --list` shows them")
        return ChatSessionInfo(*row)

    def find(self, prefix: str) -> ChatSessionInfo:
        """The session whose id is or starts with `prefix` (ids are long to type)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, title, created_at, updated_at, route FROM sessions "
                "WHERE id = ? OR substr(id, 1, ?) = ? ORDER BY id = ? DESC",
                (prefix, len(prefix), prefix, prefix),
            ).fetchall()
        if rows and (rows[0][0] == prefix or len(rows) == 1):
            return ChatSessionInfo(*rows[0])
        if rows:
            names = ", ".join(row[0] for row in rows[:5])
            raise NotFoundError(f"chat session '{prefix}' is ambiguous: it starts {names}")
        raise NotFoundError(f"no chat session '{prefix}'; `phiops chat --list` shows them")

    def list(self) -> list[ChatSessionInfo]:
        """Every session, most recently used first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, title, created_at, updated_at, route FROM sessions "
                "ORDER BY updated_at DESC, created_at DESC"
            ).fetchall()
        return [ChatSessionInfo(*row) for row in rows]

    def delete(self, id: str) -> None:
        with self._connect() as db:
            if db.execute("DELETE FROM sessions WHERE id = ?", (id,)).rowcount == 0:
                raise NotFoundError(f"no chat session '{id}'")

    # -- turns ---------------------------------------------------------------------------

    def add_turn(
        self, id: str, role: str, content: str, meta: dict[str, Any] | None = None
    ) -> Turn:
        """Append a turn; the first question also names an untitled session."""
        if role not in ROLES:
            raise PhiopsError(f"a chat turn's role must be one of {', '.join(ROLES)}, not {role!r}")
        turn = Turn(role, content, time.time(), dict(meta or {}))
        with self._connect() as db:
            found = db.execute("SELECT title FROM sessions WHERE id = ?", (id,)).fetchone()
            if found is None:
                raise NotFoundError(f"no chat session '{id}'; `phiops chat --list` shows them")
            db.execute(
                "INSERT INTO turns (session_id, role, content, created_at, meta) "
                "VALUES (?, ?, ?, ?, ?)",
                (id, turn.role, turn.content, turn.created_at, json.dumps(turn.meta)),
            )
            title = found[0] or (title_from(content) if role == "user" else "")
            db.execute(
                "UPDATE sessions SET updated_at = ?, title = ? WHERE id = ?",
                (turn.created_at, title, id),
            )
        return turn

    def turns(self, id: str) -> list[Turn]:
        self.get(id)
        with self._connect() as db:
            rows = db.execute(
                "SELECT role, content, created_at, meta FROM turns WHERE session_id = ? "
                "ORDER BY seq",
                (id,),
            ).fetchall()
        return [Turn(role, text, at, json.loads(meta or "{}")) for role, text, at, meta in rows]

    # -- export / import -----------------------------------------------------------------

    def export_markdown(self, id: str) -> str:
        """A readable transcript: the title, then each turn under its speaker."""
        info = self.get(id)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created_at))
        lines = [f"# {info.title or 'Chat'}", "", f"Session `{info.id}` · {when} · {info.route}"]
        heading = {"user": "You", "assistant": "Assistant", "system": "System"}
        for turn in self.turns(id):
            lines.append("")
            if turn.role == "error":
                lines.append(f"> **Error:** {turn.content}")
                continue
            lines += [f"**{heading.get(turn.role, turn.role)}:**", "", turn.content]
        return "\n".join(lines) + "\n"

    def export_jsonl(self, id: str) -> str:
        """One JSON object a line: the session, then its turns, in order (lossless)."""
        info = self.get(id)
        lines = [json.dumps({"type": "session", **info.to_dict()}, ensure_ascii=False)]
        for turn in self.turns(id):
            lines.append(json.dumps({"type": "turn", **turn.to_dict()}, ensure_ascii=False))
        return "\n".join(lines) + "\n"

    def import_jsonl(self, text: str) -> ChatSessionInfo:
        """Read an `export_jsonl` back; a new id if that one is taken. All or nothing."""
        header, turns = _parse_export(text)
        info = ChatSessionInfo(
            id=str(header.get("id") or new_session_id()),
            title=str(header.get("title") or ""),
            created_at=float(header.get("created_at") or time.time()),
            updated_at=float(header.get("updated_at") or time.time()),
            route=str(header.get("route") or "flow"),
        )
        with self._connect() as db:
            taken = db.execute("SELECT 1 FROM sessions WHERE id = ?", (info.id,)).fetchone()
            if taken:
                info.id = new_session_id()
            db.execute(
                "INSERT INTO sessions (id, title, created_at, updated_at, route) "
                "VALUES (?, ?, ?, ?, ?)",
                (info.id, info.title, info.created_at, info.updated_at, info.route),
            )
            db.executemany(
                "INSERT INTO turns (session_id, role, content, created_at, meta) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (info.id, turn.role, turn.content, turn.created_at, json.dumps(turn.meta))
                    for turn in turns
                ],
            )
        return info


def _parse_export(text: str) -> tuple[dict[str, Any], list[Turn]]:
    header: dict[str, Any] | None = None
    turns: list[Turn] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            raise ChatImportError(f"line {number} of the chat export is not JSON") from None
        if not isinstance(item, dict):
            raise ChatImportError(f"line {number} of the chat export is not a JSON object")
        kind = item.get("type")
        if kind == "session":
            if header is not None:
                raise ChatImportError(f"line {number}: a second session in one chat export")
            header = item
        elif kind == "turn":
            role, content = item.get("role"), item.get("content")
            if role not in ROLES or not isinstance(content, str):
                raise ChatImportError(
                    f"line {number} of the chat export is a turn without a known role and text"
                )
            meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
            turns.append(Turn(role, content, float(item.get("created_at") or 0.0), meta))
        else:
            raise ChatImportError(f"line {number} of the chat export has no type session or turn")
    if header is None:
        raise ChatImportError("the chat export has no session line")
    return header, turns
