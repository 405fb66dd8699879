"""The Chat tab's two-target mode: one question, two answers side by side.

`ctrl+b` asks for two targets (base and fine-tuned, or blue and green: `base`,
`model:NAME[:VERSION]`, `ENDPOINT[:DEPLOYMENT]`); `core.chat.pair.ChatPair` opens them in a
worker (starting a temporary scoring server for the base model or a registered version),
then each question goes to both and the two answers stream into two columns. Each side is a
stored conversation of its own. `ctrl+b` with the fields emptied (or a new chat) leaves the
mode and stops any temporary server.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Markdown, Static

from tui.screens import Modal, say
from tui.tabs.sentences import as_sentence


class PairAnswers(Horizontal):
    """Two answers side by side, each streaming into its own Markdown."""

    def __init__(self, labels: tuple[str, str]) -> None:
        super().__init__(classes="chat-pair")
        self.labels = labels
        self.streams: list = [None, None]
        self.texts = ["", ""]

    def compose(self) -> ComposeResult:
        for index, label in enumerate(self.labels):
            with Vertical(classes="chat-pair-side", id=f"chat-pair-{index}"):
                yield Static(Text(label, style="bold"), classes="chat-pair-label")
                yield Markdown("", classes="chat-markdown")
                yield Static("", classes="chat-meta", markup=False)

    def markdown(self, side: int) -> Markdown:
        return self.query_one(f"#chat-pair-{side} Markdown", Markdown)

    async def write(self, side: int, text: str) -> None:
        if self.streams[side] is None:
            self.streams[side] = Markdown.get_stream(self.markdown(side))
        self.texts[side] += text
        await self.streams[side].write(text)

    async def end(self, side: int, answer: str | None, meta: str) -> None:
        stream = self.streams[side]
        if stream is not None:
            await stream.stop()
            self.streams[side] = None
        if answer is not None and answer.strip() != self.texts[side].strip():
            await self.markdown(side).update(answer)
        self.query_one(f"#chat-pair-{side} .chat-meta", Static).update(meta)


class PairEvent(Message, bubble=False):
    """One side's piece (`text`), or its end (`done`: the answer, or `error`)."""

    def __init__(
        self,
        side: int,
        text: str = "",
        *,
        done: bool = False,
        answer: str | None = None,
        error: str = "",
        meta: str = "",
    ) -> None:
        super().__init__()
        self.side, self.text, self.done = side, text, done
        self.answer, self.error, self.meta = answer, error, meta


class PairOpened(Message, bubble=False):
    """The two targets are open (labels), or could not be (error)."""

    def __init__(self, labels: tuple[str, str] | None, error: str = "") -> None:
        super().__init__()
        self.labels, self.error = labels, error


class PairSaid(Message, bubble=False):
    """What opening the targets is doing (e.g. starting a temporary server)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class CompareScreen(Modal[tuple[str, str]]):
    """Two targets for the same question; empty both to leave the two-target mode. Enter
    moves on (in B it accepts), ctrl+s accepts, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "accept", "Compare", id="compare_form.accept"),
    ]

    def __init__(self, a: str, b: str) -> None:
        super().__init__()
        self.title_text = "Ask two targets side by side"
        self.a, self.b = a, b

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.title_text, classes="title", markup=False)
            with Grid():
                yield Label("A")
                yield Input(self.a, id="compare-a", compact=True)
                yield Label("B")
                yield Input(self.b, id="compare-b", compact=True)
            yield Static(
                "base, model:NAME[:VERSION] or ENDPOINT[:DEPLOYMENT] (e.g. phi3-endpoint:green)."
                " Empty both to go back to one answer.",
                classes="hint",
                markup=False,
            )
            yield Static("", id="compare-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Compare (ctrl+s)", id="accept", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#compare-a", Input).focus()

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        if event.input.id == "compare-b":
            self.action_accept()
        else:
            self.focus_next()

    @on(Button.Pressed, "#accept")
    def action_accept(self) -> None:
        from core.errors import PhiopsError
        from core.eval.targets import TargetSpec

        a = self.query_one("#compare-a", Input).value.strip()
        b = self.query_one("#compare-b", Input).value.strip()
        if not a and not b:
            self.dismiss(("", ""))
            return
        if not a or not b:
            say(self.query_one("#compare-error", Static), "Give both targets, or neither.")
            return
        try:
            TargetSpec.parse(a)
            TargetSpec.parse(b)
        except PhiopsError as error:
            say(self.query_one("#compare-error", Static), as_sentence(str(error)))
            return
        self.dismiss((a, b))
