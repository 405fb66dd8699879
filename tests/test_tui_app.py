"""The app shell: start-up without heavy imports, `phiops` in a terminal, the palette,
help, notifications when a job changes state, the backend switch and the theme."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from core.backend import JobStatus
from tests.fixtures_tui import (
    make_app,
    notifications,
    ready,
    screen_text,
    wait_for,
    write_job,
)
from tests.helpers import BIN, HANG

HEAVY = ("torch", "transformers", "datasets", "mlflow", "azure.ai.ml", "promptflow", "trl")


def test_startup_and_every_tab_import_no_heavy_library(tui_project: Path) -> None:
    """The first frame and every tab, in a fresh interpreter: none of the ML/Azure stacks."""
    script = f"""
import asyncio, json, sys
from tests.fixtures_tui import make_app, ready
from pathlib import Path

async def main():
    app = make_app(Path({str(tui_project)!r}))
    seen = {{}}
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.pause(0.5)
        seen["first frame"] = [m for m in {HEAVY!r} if m in sys.modules]
        for key in "123465":  # the chat box (5) takes digits: last
            await pilot.press(key)
            await pilot.pause(0.5)
        await app.workers.wait_for_complete()
        seen["every tab"] = [m for m in {HEAVY!r} if m in sys.modules]
    print(json.dumps(seen))

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=HANG,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"first frame": [], "every tab": []}


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    data, deadline = b"", time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data += os.read(fd, 65536)
            except OSError:
                break
    return data


def test_bare_phiops_in_a_terminal_opens_the_app_and_q_quits(tui_project: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: `phiops` alone, in a terminal of 80×24
        os.chdir(tui_project)
        os.environ.update({"TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"})
        os.execv(str(BIN / "phiops"), [str(BIN / "phiops")])
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        seen = _read_until(fd, b"Deployments", timeout=HANG)
        assert b"phiops \xe2\x94\x82 local" in seen and b"Deployments" in seen, seen[-2000:]
        time.sleep(0.5)
        os.write(fd, b"q")
        _read_until(fd, b"\x00never", timeout=2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_phiops_tui_help_and_bare_phiops_without_a_terminal(tui_project: Path) -> None:
    from tests.helpers import run_phiops

    result = run_phiops("tui", "--help", cwd=tui_project)
    assert result.returncode == 0 and "--backend [local|azure]" in result.stdout
    assert "resources|dataset|jobs|deployments|chat|evaluate" in result.stdout  # every tab
    piped = run_phiops(cwd=tui_project)  # no terminal: the help, not the app
    assert piped.returncode == 0 and "Commands" in piped.stdout


async def test_the_palette_offers_every_action_and_runs_it(tui_project: Path) -> None:
    from textual.command import CommandPalette

    from tui.palette import COMMANDS, available
    from tui.tabs.jobs_dialogs import SubmitScreen

    app = make_app(tui_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        offered = {command.title: key for command, key in available(app)}
        assert offered["Submit a fine-tuning job…"] == "s"
        assert offered["Deploy a model…"] == "d" and offered["Delete the endpoint…"] == "X"
        assert offered["Send the question"] == "^j" and offered["Show Jobs"] == "3"
        assert offered["Ask two targets side by side…"] == "^b"
        assert offered["Evaluate a model…"] == "e" and offered["Stop the evaluation"] == "x"
        assert "Switch backend to azure" in offered and "Switch backend to local" not in offered
        # every tab action the palette names exists on its tab (or the app)
        for command in COMMANDS:
            owner = app.build_tab(command.tab) if command.tab else app
            name = command.action.split("(")[0]
            assert callable(getattr(owner, f"action_{name}", None)), command
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"submit a fine")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))
        assert app.query_one("#tabs").active == "jobs"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SubmitScreen))


def test_the_palette_lists_every_key_of_the_app_and_its_tabs() -> None:
    """Each binding with a description (shown in the footer or not) has a palette command
    that shows its key: the palette is where every key can be found."""
    from tui.palette import COMMANDS, bindings_of
    from tui.tabs import TABS

    listed = {(command.tab, command.key) for command in COMMANDS}
    missing = [
        (tab, binding.id)
        for tab in ["", *(tab_id for tab_id, _, _ in TABS)]
        for binding in bindings_of(tab)
        if binding.description and binding.id != "app.help2" and (tab, binding.id) not in listed
    ]
    assert missing == []


def test_a_keymap_may_rebind_every_dialogs_keys() -> None:
    """`[tui] keymap` ids are checked against every binding of the app, its tabs and the
    modules beside them (dialogs, the Chat tab's two-target dialog)."""
    from tui.palette import known_binding_ids

    ids = known_binding_ids()
    assert {"deploy.submit", "evaluate_form.start", "compare_form.accept", "chat.compare"} <= ids


async def test_the_tui_table_rebinds_keys_and_picks_the_theme(
    tui_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[tui] keymap` and `theme` in phiops.toml: the new key works (the old one no longer),
    the palette and the footer show it, and an id that names no binding is reported."""
    from tui.palette import available
    from tui.tabs.jobs_dialogs import SubmitScreen

    (tui_project / "phiops.toml").write_text(
        '[project]\nbackend = "local"\n[tui]\ntheme = "ansi-dark"\n'
        '[tui.keymap]\n"jobs.submit" = "S"\n"jobs.nothing" = "z"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("PHIOPS_THEME")  # the fixture's; it would override the file's
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        assert app.theme == "ansi-dark"
        await wait_for(pilot, lambda: any("jobs.nothing" in n for n in notifications(app)))
        offered = {command.title: key for command, key in available(app)}
        assert offered["Submit a fine-tuning job…"] == "S"
        await wait_for(pilot, lambda: "S Submit" in screen_text(app).splitlines()[-1])
        await pilot.press("s")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, SubmitScreen)
        await pilot.press("S")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))


async def test_f1_and_question_mark_show_the_keys_of_the_tab(tui_project: Path) -> None:
    from tui.screens import HelpScreen

    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.pause(0.3)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = str(app.screen.query_one("#help-text").render())
        assert "Submit" in text and "Cancel job" in text and "filters the log" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))


async def test_number_keys_switch_tabs_and_focus_them(tui_project: Path) -> None:
    app = make_app(tui_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.pause(0.3)
        for key, tab in (("3", "jobs"), ("2", "dataset"), ("1", "resources")):
            await pilot.press(key)
            await wait_for(pilot, lambda tab=tab: app.query_one("#tabs").active == tab)
            await wait_for(
                pilot,
                lambda tab=tab: (
                    app.focused is not None
                    and any(node is app.tabs[tab] for node in app.focused.ancestors_with_self)
                ),
            )


async def test_a_job_changing_state_is_notified(tui_project: Path, log_writer) -> None:
    from tests.fixtures_tui import job_store

    store = job_store(tui_project)
    store.root.mkdir(parents=True, exist_ok=True)
    log = store.root / "writer.log"
    runner = log_writer(log, rate=10)
    write_job(tui_project, "brave_otter_1", JobStatus.RUNNING, runner=runner)
    app = make_app(tui_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: [job.name for job in app.jobs] == ["brave_otter_1"])
        assert "1 job active" in screen_text(app).splitlines()[0]
        record = store.read("brave_otter_1")
        record.status, record.ended_at = JobStatus.COMPLETED, time.time()
        store.write(record)
        await wait_for(
            pilot, lambda: any("Running → Completed" in text for text in notifications(app))
        )
        write_job(
            tui_project,
            "calm_heron_2",
            JobStatus.FAILED,
            created=time.time(),
            error="Traceback…\nValueError: bad row",
        )
        await wait_for(
            pilot, lambda: any("calm_heron_2 was submitted" in text for text in notifications(app))
        )


async def test_switching_backend_reloads_header_and_tabs(
    tui_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.azure_standins import AzureWorld

    AzureWorld().patch(monkeypatch)  # nothing exists there: the check says so
    app = make_app(tui_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: "Backend local" in screen_text(app))
        app.action_switch_backend("azure")
        await wait_for(pilot, lambda: "│ azure │" in screen_text(app).splitlines()[0])
        await wait_for(pilot, lambda: "Backend azure" in screen_text(app))
        assert "subscription" in screen_text(app)


def test_the_theme_follows_the_terminal() -> None:
    from tui.app import ANSI_THEME, DEFAULT_THEME, pick_theme

    assert pick_theme("", {"TERM": "xterm"}) == ANSI_THEME
    assert pick_theme("", {"TERM": "linux"}) == ANSI_THEME
    assert pick_theme("", {"TERM": "xterm-256color"}) == DEFAULT_THEME
    assert pick_theme("", {"TERM": "xterm", "COLORTERM": "truecolor"}) == DEFAULT_THEME
    assert pick_theme("ansi", {"TERM": "xterm-256color"}) == ANSI_THEME


async def test_a_tab_pane_paints_blank_until_its_tab_is_built(tui_project: Path) -> None:
    """A pane is empty until its tab is built (at the first frame, or when first shown): it
    must paint blank, not Textual's placeholder for an empty widget ("TabPane#chat"), which
    flashed on the first frame and on a tab's first visit."""
    app = make_app(tui_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        assert "chat" not in app.tabs
        assert "TabPane" not in str(app.query_one("TabPane#chat").render())


async def test_every_tabs_footer_fits_80_columns(tui_project: Path) -> None:
    """The footer's keys of each tab (every one it shows), then Help, Quit and the palette,
    all in 80 columns."""
    app = make_app(tui_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tabs = ("resources", "dataset", "jobs", "deployments", "evaluate", "chat")
        for key, tab in zip("123465", tabs, strict=True):  # the chat box takes digits: last
            await pilot.press(key)
            await wait_for(pilot, lambda tab=tab: tab in app.tabs and app.tabs[tab].is_mounted)
            await wait_for(
                pilot,
                lambda tab=tab: app.focused is not None and app.tabs[tab] in app.focused.ancestors,
            )
            await footer_fits(pilot, tab)
        await pilot.press("escape")  # out of the chat box: q quits there, and is shown
        await wait_for(pilot, lambda: not app.focused.check_consume_key("q", "q"))
        await footer_fits(pilot, "chat")


async def footer_fits(pilot, tab: str) -> None:
    """The footer shows every key `tab` declares shown, Help, Quit (unless the focus is a
    box that q types into) and the palette at the right edge, none of them cut."""
    from tui.palette import bindings_of

    app = pilot.app
    await pilot.pause()
    footer = screen_text(app).splitlines()[-1]
    assert "f1 Help" in footer and footer.rstrip().endswith("^p palette"), (tab, footer)
    shown = [f"{app.get_key_display(b)} {b.description}" for b in bindings_of(tab) if b.show]
    typing = app.focused.check_consume_key("q", "q")  # the chat box: q types a q
    wanted = [*shown, *([] if typing else ["q Quit"])]
    assert all(f"{key} " in footer for key in wanted), (tab, footer)


async def test_the_keys_keep_working_while_the_terminal_is_not_focused(tui_project: Path) -> None:
    """tmux (and most terminals) tell the app when its window loses focus. Textual then
    dropped the keyboard: the footer fell to "f1 Help q Quit" and every key of the tab was
    dead until Tab — for keys sent to a pane that is not the focused one (tmux send-keys, a
    paste), and after coming back. The tab keeps the keyboard, and shift+tab cannot strand
    it on the tab strip either."""
    from textual import events
    from textual.widgets import DataTable

    write_job(tui_project, "first_run_1", JobStatus.COMPLETED, log=["done"])
    write_job(tui_project, "second_run_2", JobStatus.COMPLETED, created=time.time(), log=["x"])
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab = app.tabs["jobs"]
        table = tab.query_one(DataTable)
        await wait_for(pilot, lambda: app.focused is table and table.row_count == 2)
        app.post_message(events.AppFocus())  # as a terminal reports it: focused, then not
        await pilot.pause(0.2)
        app.post_message(events.AppBlur())
        await pilot.pause(0.2)
        assert app.focused is table
        assert "s Submit" in screen_text(app).splitlines()[-1]
        await pilot.press("down")
        await wait_for(pilot, lambda: tab.selected == "first_run_1")
        app.post_message(events.AppFocus())
        await pilot.pause(0.2)
        assert app.focused is table
        await pilot.press("shift+tab")
        assert app.focused is not None and tab in app.focused.ancestors
