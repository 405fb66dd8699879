"""Modal screens the whole app shares: confirm, ask for one value, help.

They do no work themselves: each returns a plain value through `dismiss`, and the caller
runs the operation in a worker. Keyboard first: Escape cancels, Enter accepts, and a
destructive confirmation opens with "No" focused, so a stray Enter changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

# Tab and shift+tab as priority bindings: the app then moves the focus before it hands the
# next key on. Textual's own (non-priority) Tab runs only after the key has bubbled up from
# the focused widget, so in a burst (a fast typist, a paste, tmux send-keys) the keys after
# a Tab still reached the field it was leaving.
FOCUS_KEYS: list[BindingType] = [
    Binding("tab", "app.focus_next", "Next field", show=False, priority=True),
    Binding("shift+tab", "app.focus_previous", "Previous field", show=False, priority=True),
]


class Modal(ModalScreen):
    """A centred box that fits 80×24; Escape dismisses with None."""

    DEFAULT_CSS = """
    Modal { align: center middle; }
    Modal > #box {
        width: 72; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    Modal .title { text-style: bold; margin-bottom: 1; }
    Modal .error { color: $error; height: auto; }
    Modal .hint { color: $text-muted; height: auto; }
    Modal .buttons { height: auto; align-horizontal: right; margin-top: 1; }
    Modal .buttons Button { margin-left: 1; min-width: 8; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Cancel", id="modal.cancel"),
        *FOCUS_KEYS,
    ]

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class ConfirmScreen(Modal):
    """Yes or no; True only when the user confirms. "No" has the focus."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.detail, self.yes, self.no = question, detail, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.question, classes="title", markup=False)
            if self.detail:
                yield Static(self.detail, classes="hint", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self.no} (n)", id="no")
                yield Button(f"{self.yes} (y)", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_dismiss_none(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class AskScreen(Modal):
    """One line of input. `check` turns the text into the value or raises ValueError with
    the sentence to show; the screen stays open until the value is good or the user leaves."""

    def __init__(
        self,
        title: str,
        value: str = "",
        *,
        hint: str = "",
        placeholder: str = "",
        check: Callable[[str], object] | None = None,
        suggestions: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.title_text, self.value, self.hint = title, value, hint
        self.placeholder = placeholder
        self.check = check or (lambda text: text)
        self.suggestions = list(suggestions)

    def compose(self) -> ComposeResult:
        from textual.suggester import SuggestFromList

        with Vertical(id="box"):
            yield Static(self.title_text, classes="title", markup=False)
            suggester = SuggestFromList(self.suggestions) if self.suggestions else None
            yield Input(
                self.value, placeholder=self.placeholder, id="ask-input", suggester=suggester
            )
            if self.hint:
                yield Static(self.hint, classes="hint", markup=False)
            yield Static("", id="ask-error", classes="error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            value = self.check(event.value)
        except ValueError as error:
            self.query_one("#ask-error", Static).update(str(error))
            return
        self.dismiss(value)


class HelpScreen(Modal):
    """F1 / ?: the keys of the place you are in, then the app's, then what the tab does."""

    DEFAULT_CSS = """
    HelpScreen > #box { width: 76; height: 100%; max-height: 22; }
    HelpScreen VerticalScroll { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "dismiss_none", "Close", id="help.close"),
        Binding("question_mark", "dismiss_none", "Close", show=False),
        Binding("q", "dismiss_none", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]], about: str) -> None:
        super().__init__()
        self.keys, self.about = keys, about

    def compose(self) -> ComposeResult:
        text = Text()
        for key, description in self.keys:
            text.append(f"{key:>14}", style="bold")
            text.append(f"  {description}\n")
        if self.about:
            text.append("\n" + self.about.strip() + "\n")
        with Vertical(id="box"):
            yield Label("Keys (Escape closes)", classes="title")
            with VerticalScroll():
                yield Static(text, id="help-text")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
