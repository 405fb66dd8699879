"""The one dialog stack (`tui.screens`): every confirmation answers y / n / Enter / Escape
the same way, and a tab's dialog gives the keyboard back to where it was."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Button, Input

from tests.fixtures_tui_tabs import wait_for
from tui.screens import ConfirmScreen


class Asker(App):
    """A button and a field; `ask()` opens a confirmation and records the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[object] = []

    def compose(self) -> ComposeResult:
        yield Input(id="field")
        yield Button("go", id="go")

    def ask(self) -> None:
        self.push_screen(
            ConfirmScreen("Delete it?", "It cannot be undone.", yes="Delete"), self.answers.append
        )


@pytest.mark.parametrize(
    ("keys", "answer"),
    [
        (["y"], True),
        (["n"], False),
        (["enter"], False),
        (["escape"], False),
        (["tab", "enter"], True),
    ],
    ids=["y", "n", "enter-on-no", "escape", "tab-enter"],
)
async def test_a_confirmation_takes_y_n_enter_and_escape(keys: list[str], answer: bool) -> None:
    app = Asker()
    async with app.run_test(size=(80, 24)) as pilot:
        app.ask()
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "no"  # a stray Enter says no
        await pilot.press(*keys)
        await wait_for(pilot, lambda: app.answers)
        assert app.answers == [answer]
