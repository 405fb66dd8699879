"""The Dataset tab: the virtual table over the preview engine, the conversation, statistics,
findings with jump-to-row, and prepare with progress."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures_tui import (
    make_app,
    notifications,
    ready,
    screen_text,
    wait_for,
)
from tui.tabs.dataset import histogram
from tui.widgets.rowtable import RowTable


def first_user(row: dict) -> str:
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


async def test_the_sample_is_shown_row_by_row_with_its_conversation(tui_project: Path) -> None:
    rows = [json.loads(line) for line in (tui_project / "data/train_data.jsonl").open()]
    app = make_app(tui_project, tab="dataset")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        table = app.query_one(RowTable)
        await wait_for(pilot, lambda: table.row_count == len(rows) and table.summary(0))
        text = screen_text(app)
        assert f"data/train_data.jsonl  {len(rows)} rows" in text
        assert first_user(rows[0])[:40] in text
        await wait_for(pilot, lambda: "Row 1" in screen_text(app))
        conversation = str(app.query_one("#ds-conversation-text").render())
        for message in rows[0]["messages"]:
            assert message["role"] in conversation
            assert message["content"][:30] in conversation
        # keys: down, page down, end, go to row
        await pilot.press("down")
        await wait_for(
            pilot, lambda: "Row 2" in str(app.query_one("#ds-conversation-text").render())
        )
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor == len(rows) - 1)
        await wait_for(pilot, lambda: first_user(rows[-1])[:30] in screen_text(app))
        await pilot.press("g")
        await pilot.press("ctrl+u", *"100", "enter")
        await wait_for(pilot, lambda: table.cursor == 99)
        await wait_for(
            pilot, lambda: "Row 100" in str(app.query_one("#ds-conversation-text").render())
        )
        assert first_user(rows[99])[:30] in str(app.query_one("#ds-conversation-text").render())


async def test_a_large_file_shows_its_first_rows_before_it_is_indexed(tui_project: Path) -> None:
    big = tui_project / "big.jsonl"
    line = (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "q " * 200},
                    {"role": "assistant", "content": "a " * 400},
                ]
            }
        )
        + "\n"
    )
    with big.open("w") as handle:
        for number in range(60_000):  # ~100 MB
            handle.write(line.replace('"q ', f'"question {number} ', 1))
    app = make_app(tui_project, tab="dataset")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        table = app.query_one(RowTable)
        await wait_for(pilot, lambda: table.row_count > 0)
        tab = app.tabs["dataset"]
        tab.open_path(big)
        await wait_for(pilot, lambda: tab.index is not None and table.summary(0) is not None)
        assert "question 0 " in screen_text(app)
        await wait_for(pilot, lambda: tab.index.is_complete and table.row_count == 60_000)
        await pilot.press("end")
        await wait_for(pilot, lambda: "question 59999" in screen_text(app))
        assert "60,000 rows" in screen_text(app)


async def test_validation_lists_problems_and_enter_jumps_to_the_row(tui_project: Path) -> None:
    from textual.widgets import OptionList

    rows = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"hi {n}"},
                    {"role": "assistant", "content": f"hello {n}"},
                ]
            }
        )
        for n in range(40)
    ]
    rows[6] = "{not json"
    rows[25] = json.dumps({"messages": [{"role": "user", "content": "only a question"}]})
    bad = tui_project / "bad.jsonl"
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    app = make_app(tui_project, tab="dataset")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["dataset"]
        table = app.query_one(RowTable)
        await wait_for(pilot, lambda: table.row_count > 0)
        await pilot.press("o", "ctrl+u", *"bad.jsonl", "enter")
        await wait_for(pilot, lambda: tab.path == bad and table.row_count == 40)
        await pilot.press("v")
        await wait_for(pilot, lambda: tab.report is not None)
        assert tab.report.invalid == 2
        await wait_for(pilot, lambda: "✗ 2 invalid" in screen_text(app))
        findings = app.query_one("#ds-findings", OptionList)
        lines = [str(findings.get_option_at_index(i).prompt) for i in range(findings.option_count)]
        assert lines[0].startswith("line 7: not valid JSON")
        assert any(line.startswith("line 26:") for line in lines)
        await pilot.press("f")  # focus the problems, pick the one on line 26, Enter
        await pilot.press("down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: table.cursor == 25)
        await wait_for(
            pilot, lambda: "no assistant" in str(app.query_one("#ds-conversation-text").render())
        )
        # the table marks invalid rows with the problem
        await wait_for(pilot, lambda: "✗ no assistant" in screen_text(app))
        await pilot.press("s")
        stats = str(app.query_one("#ds-stats-text").render())
        assert "38 valid, 2 invalid" in stats and "conversation length" in stats


async def test_prepare_from_the_form_writes_the_files_and_opens_them(project: Path) -> None:
    (project / "phiops.toml").write_text("", encoding="utf-8")
    from tests.fixtures_tui import make_app as build
    from tui.tabs.dataset_dialogs import PrepareScreen

    app = build(project, tab="dataset")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: "press p to prepare" in screen_text(app))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PrepareScreen))
        await pilot.press("tab", "ctrl+u", *"1.5", "ctrl+s")  # a bad fraction: said, kept open
        await wait_for(
            pilot, lambda: "below 1" in str(app.screen.query_one("#prepare-error").render())
        )
        await pilot.press("ctrl+u", *"0.25", "ctrl+s")
        table = app.query_one(RowTable)
        await wait_for(pilot, lambda: table.row_count > 0)
        assert (project / "data/train_data.jsonl").is_file()
        assert (project / "data/manifest.json").is_file()
        manifest = json.loads((project / "data/manifest.json").read_text())
        assert manifest["test_fraction"] == 0.25
        assert any("training and" in text for text in notifications(app))


def test_histogram_bins_count_every_value() -> None:
    values = [10] * 5 + [20] * 3 + [100] + [10_000]
    bars = histogram(values, bins=5)
    assert sum(count for _, _, count in bars) == len(values)
    assert bars[0][0] == 10 and bars[-1][1] == 10_000  # the last bin is open-ended
    assert histogram([]) == []


def test_validate_reports_each_valid_rows_size(tmp_path: Path) -> None:
    from core.data.validate import validate_file

    path = tmp_path / "rows.jsonl"
    good = {
        "messages": [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "de"}]
    }
    path.write_text(json.dumps(good) + "\nnot json\n" + json.dumps(good) + "\n")
    seen: list[tuple[int, int, int]] = []
    validate_file(path, on_valid=lambda line, turns, chars: seen.append((line, turns, chars)))
    assert seen == [(1, 2, 5), (3, 2, 5)]


def test_tab_completes_a_path_as_a_shell_does(tui_project: Path) -> None:
    from tui.tabs.dataset_dialogs import complete_path

    assert complete_path("data/tr", tui_project) == ("data/train_data.jsonl", [])
    assert complete_path("da", tui_project) == ("data/", [])  # a folder: a trailing /
    completed, choices = complete_path("data/t", tui_project)
    assert completed == "data/t" and {"test_data.jsonl", "train_data.jsonl"} <= set(choices)
    assert complete_path("data/nothing", tui_project) == ("data/nothing", [])
    absolute = str(tui_project / "data" / "te")
    assert complete_path(absolute, Path("/")) == (absolute + "st_data.jsonl", [])


async def test_the_open_dialog_completes_on_tab_and_problems_say_what_to_press(
    tui_project: Path,
) -> None:
    """o, a partial path, Tab: the path is completed (Tab used to leave the field); before
    validation the problems pane (f) says to press v; c/s/f switch the pane from inside it."""
    from textual.widgets import ContentSwitcher, Input

    from tui.tabs.dataset_dialogs import PathScreen

    app = make_app(tui_project, tab="dataset")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["dataset"]
        await wait_for(pilot, lambda: tab.index is not None)
        await pilot.press("f")
        await wait_for(pilot, lambda: "press v to validate" in screen_text(app))
        switcher = tab.query_one(ContentSwitcher)
        for key, pane in (("s", "ds-stats"), ("c", "ds-conversation"), ("f", "ds-findings")):
            await pilot.press(key)
            await wait_for(pilot, lambda pane=pane: switcher.current == pane)
            assert app.focused is not None and tab in app.focused.ancestors
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, PathScreen))
        field = app.screen.query_one(Input)
        field.value = "data/te"
        await pilot.press("tab")
        await wait_for(pilot, lambda: field.value == "data/test_data.jsonl")
        assert app.focused is field
        await pilot.press("enter")
        await wait_for(pilot, lambda: tab.path == tui_project / "data/test_data.jsonl")
