"""The Dataset tab's dialogs: open a file (Tab completes the path), prepare data.

Each returns a plain value; the tab does the work."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from tui.screens import AskScreen, Modal, say


@dataclass(frozen=True)
class PrepareRequest:
    """What `data prepare` needs: a source ("sample", a path or a hub id), split, seed."""

    source: str
    test_fraction: float
    seed: int

    @property
    def sample(self) -> bool:
        return self.source.strip().lower() in ("", "sample")


def parse_prepare(source: str, fraction: str, seed: str) -> PrepareRequest:
    """The form's text as a request, or ValueError with the sentence to show."""
    try:
        share = float(fraction.strip())
    except ValueError:
        raise ValueError(f"The test fraction must be a number, not {fraction!r}.") from None
    if not 0 <= share < 1:
        raise ValueError(f"The test fraction must be at least 0 and below 1, not {share}.")
    try:
        number = int(seed.strip())
    except ValueError:
        raise ValueError(f"The seed must be a whole number, not {seed!r}.") from None
    return PrepareRequest(source.strip() or "sample", share, number)


class PrepareScreen(Modal[PrepareRequest]):
    """Where the rows come from and how they are split; writes the project's train/test files."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Prepare", id="prepare.submit")
    ]

    def __init__(self, source: str, train: str, test: str) -> None:
        super().__init__()
        self.source, self.train, self.test = source, train, test

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static("Prepare the training data", classes="title")
            with Grid():
                yield Label("Source")
                yield Input(self.source, id="prepare-source", compact=True)
                yield Label("Test fraction")
                yield Input("0.2", id="prepare-fraction", compact=True)
                yield Label("Seed")
                yield Input("42", id="prepare-seed", compact=True, type="integer")
            yield Static(
                "Source: `sample` (chats about Brindlemoor, offline), a .jsonl/.json/.parquet "
                f"file or folder, or a hub dataset id.\nWrites {self.train} and {self.test}.",
                classes="hint",
                markup=False,
            )
            yield Static("", id="prepare-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Prepare (ctrl+s)", id="submit", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#prepare-source", Input).focus()

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        try:
            request = parse_prepare(
                self.query_one("#prepare-source", Input).value,
                self.query_one("#prepare-fraction", Input).value,
                self.query_one("#prepare-seed", Input).value,
            )
        except ValueError as error:
            say(self.query_one("#prepare-error", Static), str(error))
            return
        self.dismiss(request)


def complete_path(text: str, base: Path) -> tuple[str, list[str]]:
    """Complete `text` as a shell does on Tab: to the one entry it starts, or to the longest
    prefix the entries share (then those entries are the second value). A relative path is
    read from `base`; `~` stays as typed. A folder gets a trailing `/`."""
    folder_text, _, prefix = text.rpartition("/")
    folder_text = folder_text + "/" if text.count("/") else ""
    folder = Path(os.path.expanduser(folder_text or "."))
    if not folder.is_absolute():
        folder = base / folder
    try:
        entries = sorted(
            entry.name + ("/" if entry.is_dir() else "")
            for entry in os.scandir(folder)
            if entry.name.startswith(prefix) and (prefix.startswith(".") or entry.name[0] != ".")
        )
    except OSError:
        return text, []
    if not entries:
        return text, []
    if len(entries) == 1:
        return folder_text + entries[0], []
    return folder_text + os.path.commonprefix(entries), entries  # noqa: RUF071 (names, by character)


class PathScreen(AskScreen[Path]):
    """Ask for a file's path; Tab completes it from the disk as a shell does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", "Complete the path", priority=True, id="path.complete"),
    ]

    def __init__(self, title: str, value: str, *, base: Path, **options) -> None:
        super().__init__(title, value, **options)
        self.base = base

    def action_complete(self) -> None:
        field = self.query_one(Input)
        completed, choices = complete_path(field.value, self.base)
        field.value = completed
        field.cursor_position = len(completed)
        shown = "  ".join(choices[:12]) + ("  …" if len(choices) > 12 else "")
        say(self.query_one("#ask-note", Static), shown)
        say(self.query_one("#ask-error", Static), "")
