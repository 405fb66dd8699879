"""The Evaluate tab's dialogs: what to evaluate, and one conversation side by side in full.

Like every dialog (`tui.screens.Modal`) they return a plain value and do no work; the tab
runs the evaluation in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from tui.screens import Modal, say


@dataclass(frozen=True)
class EvalRequest:
    """What the form asked for, checked: a target, what to compare it with, the settings."""

    target: str
    against: str
    limit: int | None
    max_new_tokens: int


def read_request(target: str, against: str, limit: str, max_new_tokens: str) -> EvalRequest:
    """The form's text as a request, or ValueError with the sentence to show."""
    from core.errors import PhiopsError
    from core.eval.targets import TargetSpec
    from tui.tabs.sentences import as_sentence

    target, against = target.strip(), against.strip()
    if not target:
        raise ValueError("Give a target: ENDPOINT[:DEPLOYMENT], base or model:NAME[:VERSION].")
    for value in (target, against):
        if value:
            try:
                TargetSpec.parse(value)
            except PhiopsError as error:
                raise ValueError(as_sentence(str(error))) from None
    numbers: list[int | None] = []
    for text, label, high in ((limit, "Limit", None), (max_new_tokens, "Max new tokens", 4096)):
        text = text.strip()
        if not text:
            numbers.append(None)
            continue
        if not text.isdigit() or int(text) < 1 or (high and int(text) > high):
            bound = f" and at most {high}" if high else ""
            raise ValueError(f"{label} must be a whole number above 0{bound}, not {text!r}.")
        numbers.append(int(text))
    return EvalRequest(target, against, numbers[0], numbers[1] or 256)


class EvaluateScreen(Modal[EvalRequest]):
    """Target, what to compare it with, limit, answer length. Enter moves on; ctrl+s (or
    Enter in the last field) starts; Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "start", "Evaluate", id="evaluate_form.start"),
    ]

    FIELDS = (
        ("target", "Target"),
        ("against", "Compare with"),
        ("limit", "Limit (rows)"),
        ("tokens", "Max new tokens"),
    )

    def __init__(self, target: str, against: str = "base") -> None:
        super().__init__()
        self.title_text = "Evaluate on the test split"
        self.values = {"target": target, "against": against, "limit": "", "tokens": "256"}

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.title_text, classes="title", markup=False)
            with Grid():
                for key, label in self.FIELDS:
                    yield Label(label)
                    yield Input(self.values[key], id=f"eval-{key}", compact=True)
            yield Static(
                "Target and compare with: ENDPOINT[:DEPLOYMENT], base, or "
                "model:NAME[:VERSION]; leave compare empty to evaluate one. Empty limit: "
                "every conversation. Greedy answers; a fresh result of the other side is "
                "reused.",
                classes="hint",
                markup=False,
            )
            yield Static("", id="eval-form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Evaluate (ctrl+s)", id="start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#eval-target", Input).focus()

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        if event.input.id == "eval-tokens":
            self.action_start()
        else:
            self.focus_next()

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        value = {key: self.query_one(f"#eval-{key}", Input).value for key, _ in self.FIELDS}
        try:
            request = read_request(
                value["target"], value["against"], value["limit"], value["tokens"]
            )
        except ValueError as error:
            say(self.query_one("#eval-form-error", Static), str(error))
            return
        self.dismiss(request)


class RowScreen(Modal[None]):
    """One conversation in full: the question, the reference, and each side's answer.
    Enter or Escape closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "cancel", "Close", show=False, id="evaluate_row.close"),
    ]

    def __init__(self, row: dict[str, Any], names: tuple[str, str]) -> None:
        super().__init__()
        self.row, self.names = row, names
        self.title_text = f"Line {row.get('line')}"

    def compose(self) -> ComposeResult:
        row = self.row
        text = Text()
        for label, value in (
            ("System", row.get("system")),
            ("Question", row.get("question")),
            ("Reference", row.get("reference")),
        ):
            if value:
                text.append(f"{label}\n", style="bold")
                text.append(f"{value}\n\n")
        for side, name in zip(("a", "b"), self.names, strict=True):
            answer = row.get(f"answer_{side}")
            if answer is None:
                continue
            score = row.get(f"score_{side}")
            shown = f"{score:.2f}" if isinstance(score, float) else "–"
            text.append(f"{name}  (ROUGE-L {shown})\n", style="bold")
            text.append(f"{answer or '(empty)'}\n\n")
        with Vertical(id="box"):
            yield Label(f"{self.title_text} (Enter or Escape closes)", classes="title")
            with VerticalScroll():
                yield Static(text, id="row-text")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
