"""The app's one dialog stack: a generic modal box, confirm, ask for one value, help.

Every dialog here and in the tabs' `*_dialogs.py` is a `Modal`: a centred box that fits
80×24, Escape cancels, Tab moves between fields (with priority, see `FOCUS_KEYS`). They do
no work themselves: each returns a plain value through `dismiss`, and the caller runs the
operation in a worker. Tabs open them with `AppTab.open_dialog` (`tui.tabs.base`), which puts
the keyboard back where it was once the dialog closes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

ResultT = TypeVar("ResultT")

# Tab and shift+tab as priority bindings: the app then moves the focus before it hands the
# next key on. Textual's own (non-priority) Tab runs only after the key has bubbled up from
# the focused widget, so in a burst (a fast typist, a paste, tmux send-keys) the keys after
# a Tab still reached the field it was leaving.
FOCUS_KEYS: list[BindingType] = [
    Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
    Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True),
]


def say(widget: Static, text: str) -> None:
    """Show a one-line message in a dialog; an empty one takes no room."""
    widget.update(text)
    widget.display = bool(text)


class Modal(ModalScreen[ResultT]):
    """A centred box (`#box`) that fits 80×24; Escape dismisses with `CANCELLED`.

    Children use the classes `title`, `hint`, `warning`, `error` and `note` (these two
    hidden while empty: set them with `say`) and `buttons` (a right-aligned row)."""

    CANCELLED: ClassVar[object] = None
    title_text: str = ""  # what the box's title says

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="modal.cancel"),
        *FOCUS_KEYS,
    ]

    def action_cancel(self) -> None:
        self.dismiss(self.CANCELLED)  # type: ignore[arg-type]

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()


class ConfirmScreen(Modal[bool]):
    """Yes or no, the same way everywhere: `y` confirms, `n` or Escape declines, Enter
    presses the focused button — "No" has the focus, so a stray Enter changes nothing."""

    CANCELLED: ClassVar[object] = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(
        self, title: str, body: str = "", *, yes: str = "Yes", no: str = "No", warning: str = ""
    ) -> None:
        super().__init__()
        self.title_text, self.body = title, body
        self.yes, self.no, self.warning = yes, no, warning

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.title_text, classes="title", markup=False)
            if self.body:
                yield Static(self.body, id="confirm-body", markup=False)
            if self.warning:
                yield Static(self.warning, classes="warning", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self.no} (n)", id="no")
                yield Button(f"{self.yes} (y)", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed, "#yes, #no")
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class AskScreen(Modal[ResultT]):
    """One line of input. `check` turns the text into the value or raises ValueError with
    the sentence to show; the screen stays open until the value is good or the user leaves."""

    def __init__(
        self,
        title: str,
        value: str = "",
        *,
        hint: str = "",
        placeholder: str = "",
        check: Callable[[str], ResultT] | None = None,
        suggestions: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.title_text, self.value, self.hint = title, value, hint
        self.placeholder = placeholder
        self.check = check or (lambda text: text)
        self.suggestions = list(suggestions)

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.title_text, classes="title", markup=False)
            yield self.make_input()
            if self.hint:
                yield Static(self.hint, classes="hint", markup=False)
            yield Static("", id="ask-note", classes="note", markup=False)
            yield Static("", id="ask-error", classes="error")

    def make_input(self) -> Input:
        from textual.suggester import SuggestFromList

        suggester = SuggestFromList(self.suggestions) if self.suggestions else None
        return Input(self.value, placeholder=self.placeholder, id="ask-input", suggester=suggester)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            value = self.check(event.value)
        except ValueError as error:
            say(self.query_one("#ask-error", Static), str(error))
            return
        self.dismiss(value)


class HelpScreen(Modal[None]):
    """F1 / ?: the keys of the place you are in, then the app's (each with the id that
    `[tui] keymap` rebinds), then what the tab does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "cancel", "Close", id="help.close"),
        Binding("question_mark", "cancel", "Close", show=False),
        Binding("q", "cancel", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str, str]], about: str) -> None:
        super().__init__()
        self.keys, self.about = keys, about

    def compose(self) -> ComposeResult:
        text = Text()
        for key, description, binding_id in self.keys:
            text.append(f"{key:>14}", style="bold")
            text.append(f"  {description}")
            if binding_id:  # what `[tui] keymap` in phiops.toml rebinds
                text.append(f"  {binding_id}", style="dim")
            text.append("\n")
        if self.about:
            text.append("\n" + self.about.strip() + "\n")
        with Vertical(id="box"):
            yield Label("Keys (Escape closes)", classes="title")
            with VerticalScroll():
                yield Static(text, id="help-text")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
