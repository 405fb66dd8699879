"""The Chat tab's dialogs: pick a saved session, and where to export one.

Like every dialog here they return a plain value and do no work; the tab's workers read
and write the session store.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.screens import Modal, say

if TYPE_CHECKING:
    from core.chat.sessions import ChatSessionInfo


def _when(timestamp: float | str | None) -> str:
    if isinstance(timestamp, int | float):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
    return str(timestamp or "")[:16].replace("T", " ")


def _count(turns: int) -> str:
    return f"{turns:>3} turn{'s' if turns != 1 else ' '}"


class LoadSessionScreen(Modal[str]):
    """Saved sessions, most recent first, with their date and number of turns; returns the
    chosen session's id."""

    def __init__(self, sessions: list[ChatSessionInfo], turns: dict[str, int]) -> None:
        super().__init__()
        self.title_text = "Load a chat session"
        self.sessions = sessions
        self.turns = turns

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.title_text, classes="title")
            yield OptionList(
                *[
                    Option(
                        f"{_when(info.updated_at)}  {_count(self.turns.get(info.id, 0))}  "
                        f"{info.route:<6}  {info.title or '(untitled)'}",
                        id=info.id,
                    )
                    for info in self.sessions
                ],
                id="load-sessions",
            )
            yield Static("Enter loads, Escape cancels.", classes="hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class ExportScreen(Modal[str]):
    """A file to export the session to; `.jsonl` means JSON lines, anything else Markdown."""

    def __init__(self, default_path: str) -> None:
        super().__init__()
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static("Export this chat", classes="title")
            yield Label("File (.md for Markdown, .jsonl for JSON lines)")
            yield Input(self.default_path, id="export-path")
            yield Static("", id="export-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Export", id="submit", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    def _submit(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            say(self.query_one("#export-error", Static), "Name the file to write.")
            return
        self.dismiss(path)
