"""The Evaluate tab and the Chat tab's two-target dialog in the real app at 80×24, without a
model: the dialogs answer as every dialog does (a refused form says why, Cancel and Escape
close, Enter closes a row), the keyboard comes back to the tab after each, a failed
evaluation is said and leaves the tab usable, and the focused pane is marked."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, DataTable, Input

from tests.fixtures_tui import make_app, notifications, ready, screen_text, wait_for
from tui.tabs.evaluate import EvaluateTab
from tui.tabs.evaluate_dialogs import EvaluateScreen, RowScreen


async def evaluate_tab(pilot) -> EvaluateTab:
    app = pilot.app
    await ready(pilot, app)
    tab = app.tabs["evaluate"]
    assert isinstance(tab, EvaluateTab)
    await wait_for(pilot, lambda: len(tab.records) == 2 and tab.rows)
    await wait_for(pilot, lambda: app.focused is tab.query_one("#eval-runs"))
    return tab


def in_tab(app, tab) -> bool:
    return app.focused is not None and tab in app.focused.ancestors


async def test_the_form_says_what_is_wrong_and_cancel_or_escape_close_it(
    eval_project: Path,
) -> None:
    app = make_app(eval_project, tab="evaluate")
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await evaluate_tab(pilot)
        for close in ("escape", "cancel"):
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, EvaluateScreen))
            assert app.screen.title_text  # what a dialog waiting for its tab is called
            app.screen.query_one("#eval-target", Input).value = "phi3-endpoint x:y:z"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "ENDPOINT or ENDPOINT:DEPLOYMENT" in screen_text(app))
            assert "Evaluate (ctrl+s)" in screen_text(app)  # a two-line error: buttons still fit
            app.screen.query_one("#eval-limit", Input).value = "0"
            app.screen.query_one("#eval-target", Input).value = "base"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "Limit must be a whole number" in screen_text(app))
            if close == "escape":
                await pilot.press("escape")
            else:
                app.screen.query_one("#cancel", Button).press()
            await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
            await wait_for(pilot, lambda: in_tab(app, tab))
            assert not tab.running and len(app.screen_stack) == 1


async def test_a_row_opens_in_full_and_enter_or_escape_give_the_keys_back(
    eval_project: Path,
) -> None:
    app = make_app(eval_project, tab="evaluate")
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await evaluate_tab(pilot)
        rows = tab.query_one("#eval-rows", DataTable)
        rows.focus()
        for close in ("enter", "escape"):
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RowScreen))
            assert "Reference" in screen_text(app)
            await pilot.press(close)
            await wait_for(pilot, lambda: not isinstance(app.screen, RowScreen))
            await wait_for(pilot, lambda: app.focused is rows)
        await pilot.press("e")  # the tab's keys still answer
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluateScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.focused is rows)


async def test_a_failed_evaluation_is_said_and_the_tab_keeps_its_keys(eval_project: Path) -> None:
    app = make_app(eval_project, tab="evaluate")
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await evaluate_tab(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluateScreen))
        app.screen.query_one("#eval-target", Input).value = "no-such-endpoint"
        app.screen.query_one("#eval-against", Input).value = ""
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, EvaluateScreen))
        await wait_for(pilot, lambda: tab._outcome.startswith("✗"))
        assert not tab.running and not tab.query_one("#eval-progress").display
        assert any(tab._outcome[2:] in text for text in notifications(app))
        await wait_for(pilot, lambda: in_tab(app, tab))
        await pilot.press("x")  # nothing runs now: said, not done
        await wait_for(pilot, lambda: "No evaluation is running." in notifications(app))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluateScreen))


async def test_the_focused_pane_is_marked(eval_project: Path) -> None:
    app = make_app(eval_project, tab="evaluate")
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await evaluate_tab(pilot)
        runs, rows = tab.query_one("#eval-runs-pane"), tab.query_one("#eval-rows-pane")
        await wait_for(pilot, lambda: runs.has_class("-focused") and not rows.has_class("-focused"))
        tab.query_one("#eval-rows").focus()
        await wait_for(pilot, lambda: rows.has_class("-focused") and not runs.has_class("-focused"))


async def test_the_help_lists_the_evaluate_keys(eval_project: Path) -> None:
    from tui.screens import HelpScreen

    app = make_app(eval_project, tab="evaluate")
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await evaluate_tab(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = str(app.screen.query_one("#help-text").render())
        shown = ("Evaluate  evaluate.run", "Set A  evaluate.baseline", "Stop  evaluate.stop")
        for line in (*shown, "q  Quit  app.quit"):  # the quit key with its id, not ^q's
            assert line in text, line
        await pilot.press("escape")
        await wait_for(pilot, lambda: in_tab(app, tab))


async def test_the_two_target_dialog_says_what_is_wrong_and_gives_the_keys_back(
    tui_project: Path,
) -> None:
    from tui.tabs.chat_compare import CompareScreen

    app = make_app(tui_project, tab="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["chat"]
        await wait_for(pilot, lambda: in_tab(app, tab))
        for close in ("escape", "cancel"):
            await pilot.press("ctrl+b")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
            assert app.screen.title_text
            app.screen.query_one("#compare-a", Input).value = "base"
            app.screen.query_one("#compare-b", Input).value = ""
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "Give both targets, or neither." in screen_text(app))
            assert "Compare (ctrl+s)" in screen_text(app)
            if close == "escape":
                await pilot.press("escape")
            else:
                app.screen.query_one("#cancel", Button).press()
            await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
            await wait_for(pilot, lambda: in_tab(app, tab))
            assert len(app.screen_stack) == 1 and tab.pair_labels is None


async def test_two_targets_that_cannot_open_are_said_whole(tui_project: Path) -> None:
    from tui.tabs.chat_compare import CompareScreen

    app = make_app(tui_project, tab="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["chat"]
        await wait_for(pilot, lambda: in_tab(app, tab))
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        app.screen.query_one("#compare-a", Input).value = "no-such-endpoint"
        app.screen.query_one("#compare-b", Input).value = "no-such-endpoint:green"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("no-such-endpoint" in n for n in notifications(app)))
        assert tab.pair_labels is None
        await wait_for(pilot, lambda: in_tab(app, tab))
        await pilot.press("ctrl+b")  # the keys still answer
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
