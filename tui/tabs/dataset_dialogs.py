"""The Dataset tab's dialogs: prepare data. Each returns a plain value; the tab does the work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from tui.screens import Modal, say


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
