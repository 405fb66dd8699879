"""The Jobs tab: coloured statuses, the live log (batched, pause, filter), the loss chart,
the submit form and cancel with confirmation — on jobs the local store really holds, and
one real training job on the tiny model."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Log

from core.backend import JobStatus
from core.local.jobstore import STD_LOG
from tests.fixtures_deploy_azure import azure_deploy  # noqa: F401
from tests.fixtures_tui import (
    T0,
    job_store,
    make_app,
    notifications,
    ready,
    screen_text,
    training_events,
    wait_for,
    write_job,
)
from tui.tabs.jobs import JobsTab, loss_points
from tui.widgets.chart import LossChart, log_scale, plot


def finished_jobs(project: Path) -> None:
    write_job(
        project,
        "amusing_knee_8vsw0vbz86",
        JobStatus.COMPLETED,
        display_name="first run",
        log=[f"step {n} loss {3 - n / 100:.2f}" for n in range(200)],
        events=training_events(40),
    )
    write_job(
        project,
        "bold_lamp_3k2j4h5g6f",
        JobStatus.FAILED,
        created=T0 + 600,
        log=["loading", "ValueError: row 7 is not JSON"],
        error="ValueError: row 7",
    )
    write_job(
        project,
        "quiet_fern_9a8s7d6f5g",
        JobStatus.CANCELED,
        created=T0 + 1200,
        log=["step 1", "stopped by a signal after a checkpoint"],
    )


async def test_jobs_are_listed_with_statuses_log_and_loss_chart(tui_project: Path) -> None:
    finished_jobs(tui_project)
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab: JobsTab = app.tabs["jobs"]
        table = app.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await wait_for(
            pilot,
            lambda: all(
                status in screen_text(app) for status in ("Canceled", "Failed", "Completed")
            ),
        )
        assert tab.selected == "quiet_fern_9a8s7d6f5g"  # newest first, selected
        await wait_for(pilot, lambda: "stopped by a signal" in "\n".join(app.query_one(Log).lines))
        await pilot.press("down", "down")
        await wait_for(pilot, lambda: tab.selected == "amusing_knee_8vsw0vbz86")
        await wait_for(pilot, lambda: app.query_one(Log).line_count == 200)
        chart = app.query_one(LossChart)
        await wait_for(pilot, lambda: len(chart.loss) == 40 and len(chart.eval_loss) == 4)
        assert chart.loss[-1] == (40.0, round(3.0 * 0.95**40, 4))
        await wait_for(pilot, lambda: "step 40/40" in screen_text(app))
        assert "━ loss" in screen_text(app) and "━ eval" in screen_text(app)
        # the failed job's error shows on its progress line
        await pilot.press("up")
        await wait_for(pilot, lambda: "ValueError: row 7" in screen_text(app))


async def test_a_running_jobs_log_follows_pauses_and_filters(tui_project: Path, log_writer) -> None:
    store = job_store(tui_project)
    (store.folder("busy_bee_1") / "user_logs").mkdir(parents=True)
    runner = log_writer(store.path("busy_bee_1", STD_LOG), rate=2000)
    write_job(tui_project, "busy_bee_1", JobStatus.RUNNING, runner=runner, created=time.time())
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab: JobsTab = app.tabs["jobs"]
        log = app.query_one(Log)
        await wait_for(pilot, lambda: log.line_count > 1000)
        assert log.line_count <= 5000  # max_lines
        await wait_for(pilot, lambda: log.is_vertical_scroll_end)
        # pause: the view stays where it is while lines keep coming
        await pilot.press("f")
        assert not tab.following and "paused" in screen_text(app)
        await pilot.pause(0.2)
        offset = log.scroll_offset.y
        await wait_for(pilot, lambda: tab.feed.total > 2000)
        await pilot.pause(0.3)
        assert log.scroll_offset.y == offset
        await pilot.press("f")
        await wait_for(pilot, lambda: log.is_vertical_scroll_end)
        # filter: only lines with the text, Escape shows all again
        await pilot.press("slash")
        await wait_for(pilot, lambda: app.focused is app.query_one("#jobs-filter"))
        await pilot.press(*"line 77")
        await wait_for(
            pilot, lambda: log.line_count >= 1 and all("line 77" in line for line in log.lines)
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: tab.filter == "" and log.line_count > 100)


async def test_submit_form_checks_numbers_and_cancel_asks_first(
    tui_project: Path, log_writer
) -> None:
    """A queued job (another one runs) is canceled only after the user says yes."""
    from tui.screens import ConfirmScreen
    from tui.tabs.jobs_dialogs import SubmitScreen

    store = job_store(tui_project)
    (store.folder("running_one") / "user_logs").mkdir(parents=True)
    runner = log_writer(store.path("running_one", STD_LOG), rate=5)
    write_job(tui_project, "running_one", JobStatus.RUNNING, runner=runner, created=T0)
    write_job(tui_project, "waiting_one", JobStatus.QUEUED, created=T0 + 60)
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab: JobsTab = app.tabs["jobs"]
        await wait_for(pilot, lambda: tab.selected == "waiting_one")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))
        app.screen.query_one("#submit-epochs").value = "-1"
        await pilot.press("ctrl+s")
        await wait_for(
            pilot,
            lambda: "Epochs must be above 0" in str(app.screen.query_one("#submit-error").render()),
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SubmitScreen))
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("enter")  # "Keep it" has the focus: nothing happens
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert store.read("waiting_one").status == JobStatus.QUEUED
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: store.read("waiting_one").status == JobStatus.CANCELED)
        await wait_for(
            pilot,
            lambda: any(
                "waiting_one" in text and "Canceled" in text for text in notifications(app)
            ),
        )


async def test_keys_typed_ahead_land_in_the_field_tab_moved_to(tui_project: Path) -> None:
    """A burst (a fast typist, a paste, tmux send-keys) reaches the app before any key is
    handled: each Tab must move the focus before the next character is delivered."""
    from textual import events

    from tui.tabs.jobs_dialogs import SubmitScreen

    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))
        burst = [*"run-a", "tab", "tab", "tab", "tab", "6", "tab", *"3e-3"]
        burst += ["tab", "8", "shift+tab", "shift+tab", "0"]
        for key in burst:
            app.post_message(events.Key(key, key if len(key) == 1 else None))  # all queued
        field = app.screen.query_one
        await wait_for(pilot, lambda: field("#submit-epochs").value == "0")  # Tab selects it
        assert field("#submit-display_name").value == "run-a"
        assert field("#submit-learning_rate").value == "3e-3"
        assert field("#submit-batch_size").value == "8"
        assert field("#submit-base_model").value == "microsoft/Phi-3-mini-4k-instruct"


async def test_a_submit_the_backend_refuses_keeps_what_was_typed(tui_project: Path) -> None:
    from tui.tabs.jobs_dialogs import SubmitScreen

    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))
        app.screen.query_one("#submit-display_name").value = "keep me"
        app.screen.query_one("#submit-train_file").value = "data/nowhere.jsonl"
        app.screen.query_one("#submit-epochs").value = "7"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("nowhere.jsonl" in t for t in notifications(app)))
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))
        field = app.screen.query_one
        assert field("#submit-display_name").value == "keep me"
        assert field("#submit-train_file").value == "data/nowhere.jsonl"
        assert field("#submit-epochs").value == "7"


@pytest.mark.slow
async def test_a_job_submitted_from_the_form_trains_with_live_log_and_loss(
    tui_project: Path, tiny_base_model: Path
) -> None:
    """The real trainer on the tiny model: submit, watch the log and the loss, completed."""
    from tui.tabs.jobs_dialogs import SubmitScreen

    app = make_app(tui_project, tab="jobs")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot, app)
            tab: JobsTab = app.tabs["jobs"]
            await wait_for(pilot, lambda: "No jobs yet" in screen_text(app))
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))
            screen = app.screen
            screen.query_one("#submit-display_name").value = "from the tui"
            screen.query_one("#submit-base_model").value = str(tiny_base_model)
            screen.query_one("#submit-max_steps").value = "12"
            screen.query_one("#submit-max_length").value = "128"
            # A from-scratch twin learns in 12 steps at the tests' rate, not the trainer's
            # default 5e-6 (which is for a pretrained Phi-3-mini).
            screen.query_one("#submit-learning_rate").value = "1e-2"
            screen.query_one(
                "#submit-extra"
            ).value = "--logging-steps 1 --eval-steps 4 --eval-strategy steps"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: tab.selected is not None)
            name = tab.selected
            await wait_for(pilot, lambda: any("Submitted" in text for text in notifications(app)))
            await wait_for(
                pilot,
                lambda: tab.job(name) is not None and tab.job(name).status == JobStatus.COMPLETED,
            )
            chart = app.query_one(LossChart)
            await wait_for(pilot, lambda: len(chart.loss) >= 10 and chart.eval_loss)
            assert chart.loss[-1][1] < chart.loss[0][1]  # it learned
            log = "\n".join(app.query_one(Log).lines)
            assert "fine_tune" in log or "loss" in log
            assert any("Running → Completed" in text for text in notifications(app))
            assert "from the tui" in screen_text(app)
            # its model goes to the registry, for the Deployments tab to deploy
            await pilot.press("m")
            await wait_for(
                pilot,
                lambda: any("Registered phi3-finetuned:" in text for text in notifications(app)),
            )
    finally:
        for record in job_store(tui_project).records():
            for ref in (record.trainer, record.runner):
                if ref is not None and ref.alive():
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(ref.pid, signal.SIGKILL)


def test_loss_points_and_the_braille_plot() -> None:
    loss, eval_loss = loss_points(training_events(20, eval_every=5))
    assert len(loss) == 20 and len(eval_loss) == 4
    lines = plot([(loss, "cyan"), (eval_loss, "magenta")], width=30, height=4)
    assert len(lines) == 4 and all(line.cell_len == 30 for line in lines)
    drawn = "".join(line.plain for line in lines)
    assert any(0x2800 < ord(char) <= 0x28FF for char in drawn)
    assert lines[0].plain.strip().startswith("3") or "│" in lines[0].plain


def test_a_loss_falling_a_hundredfold_is_drawn_to_the_last_step_on_a_log_axis() -> None:
    """As in the demo: 6.9 at step 1, ~0.08 from step 300 to 1080. A 7-character axis
    label (0.08304) once pushed the bottom row past the edge and the late steps vanished."""
    loss = [(float(step), max(6.9 * 0.985**step, 0.08304)) for step in range(1, 1081)]
    assert log_scale([value for _, value in loss])
    lines = plot([(loss, "cyan")], width=47, height=10)
    assert all(line.cell_len == 47 for line in lines)
    assert lines[-1].plain.startswith(" 0.083│")
    last_column = [line.plain[-1] for line in lines]
    assert any(0x2800 < ord(char) <= 0x28FF for char in last_column)  # the last steps drawn
    # Each row holds dots: on a log axis the curve crosses every row on its way down.
    assert all(any(0x2800 < ord(c) <= 0x28FF for c in line.plain[7:]) for line in lines)


async def test_backend_local_in_an_azure_project_keeps_the_whole_loss_chart(
    tui_project: Path, log_writer
) -> None:
    """`phiops tui --backend local` where phiops.toml says azure: the chart reads the local
    events a batch at a time, so wiping it on each read (as for Azure's whole metrics) left
    only the newest batch on screen."""
    import json

    from core.local.jobstore import EVENTS

    (tui_project / "phiops.toml").write_text('[project]\nbackend = "azure"\n', encoding="utf-8")
    store = job_store(tui_project)
    store.root.mkdir(parents=True, exist_ok=True)
    runner = log_writer(store.root / "writer.log", rate=1)
    events = training_events(30, eval_every=100)
    first = [event for event in events if event.get("step", 0) <= 20]
    write_job(tui_project, "long_run_1", JobStatus.RUNNING, runner=runner, events=first)
    app = make_app(tui_project, tab="jobs", backend="local")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        chart = app.query_one(LossChart)
        await wait_for(pilot, lambda: len(chart.loss) == 20)
        with store.path("long_run_1", EVENTS).open("a", encoding="utf-8") as handle:
            for event in events[len(first) :]:
                handle.write(json.dumps(event) + "\n")
        await wait_for(pilot, lambda: chart.loss and chart.loss[-1][0] == 30.0)
        assert [step for step, _ in chart.loss] == [float(n) for n in range(1, 31)]


async def test_a_progress_read_that_fails_says_why(tui_project: Path) -> None:
    """A worker's unexpected error reaches the tab's one failure handler and is shown, not
    swallowed: here the job's events file cannot be read (a folder stands in its place)."""
    from core.local.jobstore import EVENTS

    write_job(tui_project, "odd_run_1", JobStatus.COMPLETED, log=["done"])
    events = job_store(tui_project).path("odd_run_1", EVENTS)
    events.unlink()
    events.mkdir()
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: "Reading the progress failed" in screen_text(app))
        assert "IsADirectoryError" in str(app.query_one("#jobs-progress").render())


async def test_a_resumed_job_follows_its_new_log_and_progress(
    tui_project: Path, log_writer
) -> None:
    """After R the job is the same job, running again: its log and chart must move on. They
    froze (the chart's reader had marked the canceled job as finished, the log stream had
    ended) until another job was selected."""
    import json

    from core.local.jobstore import EVENTS

    store = job_store(tui_project)
    store.root.mkdir(parents=True, exist_ok=True)
    events = training_events(20, eval_every=100)
    first = [event for event in events if event.get("step", 0) <= 10]
    write_job(tui_project, "paused_run_1", JobStatus.CANCELED, log=["step 10"], events=first)
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab: JobsTab = app.tabs["jobs"]
        chart, log = app.query_one(LossChart), app.query_one("#jobs-log")
        await wait_for(pilot, lambda: len(chart.loss) == 10 and tab.progress_final)
        # resumed, as `resume_job` leaves it: the same job Running, the trainer appending
        record = store.read("paused_run_1")
        record.status, record.ended_at = JobStatus.RUNNING, None
        record.runner = log_writer(store.root / "writer.log", rate=1)
        store.write(record)
        with store.path("paused_run_1", STD_LOG).open("a", encoding="utf-8") as handle:
            handle.write("resumed from checkpoint-10\n")
        with store.path("paused_run_1", EVENTS).open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(event) + "\n" for event in events[len(first) :])
        await wait_for(pilot, lambda: "resumed from checkpoint-10" in "\n".join(log.lines))
        await wait_for(pilot, lambda: chart.loss and chart.loss[-1][0] == 20.0)
        await wait_for(pilot, lambda: "step 20/20" in screen_text(app))


async def test_the_log_badge_wrap_end_highlight_and_place(tui_project: Path) -> None:
    """At 80 columns the log's border says following or paused; w wraps, G goes back to the
    end, the filter's matches are highlighted, clearing the filter while paused keeps the
    view where it was, and another job starts scrolled fully left."""
    long_line = "x" * 60 + " wide " + "y" * 150
    lines = [f"line {n} loss {n / 100:.2f}" for n in range(300)] + [long_line]
    write_job(tui_project, "chatty_run_1", JobStatus.COMPLETED, log=lines)
    write_job(tui_project, "other_run_2", JobStatus.COMPLETED, created=T0 + 60, log=["hello"])
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab: JobsTab = app.tabs["jobs"]
        await pilot.press("down")
        await wait_for(pilot, lambda: tab.selected == "chatty_run_1")
        log = tab.log
        await wait_for(pilot, lambda: log.line_count == 301 and tab.log_ended)
        assert "● following" in screen_text(app)
        # wrap: the long line takes rows of the view's width; the view still at the end
        await pilot.press("w")
        await wait_for(pilot, lambda: log.line_count > 301)
        width = log.scrollable_content_region.width
        assert all(len(row) <= width for row in log.lines) and log.is_vertical_scroll_end
        await pilot.press("w")
        await wait_for(pilot, lambda: log.line_count == 301)
        # pause: the badge says so at 80 columns; G goes back to the end and follows
        log.focus()
        await pilot.press("f", "home")
        await wait_for(pilot, lambda: "⏸ paused" in screen_text(app))
        await pilot.press("G")
        await wait_for(pilot, lambda: "● following" in screen_text(app))
        assert log.is_vertical_scroll_end
        # paused on line 120, a filter, then none: the view stays where it was (at the
        # first match, line 250), neither at the end nor at the start
        await pilot.press("f")
        log.scroll_to(0, 120, animate=False, immediate=True)
        await pilot.pause()
        assert log.lines[int(log.scroll_y)] == "line 120 loss 1.20"
        await pilot.press("slash", *"loss 2.5")
        await wait_for(pilot, lambda: log.line_count == 10)  # loss 2.50 … 2.59
        strip = log.render_line(0)
        assert any(seg.style and seg.style.bgcolor for seg in strip if "loss 2.5" in seg.text)
        await pilot.press("escape")
        await wait_for(pilot, lambda: log.line_count == 301)
        assert log.lines[int(log.scroll_y)] == "line 250 loss 2.50"
        assert "⏸ paused" in screen_text(app)
        # scrolled right on the long line, then another job: back at the left edge
        await pilot.press("G", "end")
        log.scroll_to(100, None, animate=False, immediate=True)
        await pilot.pause()
        assert log.scroll_x > 0
        tab.focus_default()
        await pilot.press("up")
        await wait_for(pilot, lambda: tab.selected == "other_run_2" and log.line_count == 1)
        assert log.scroll_x == 0


def test_the_submit_form_from_a_jobs_settings_and_its_default_base_model(tmp_path: Path) -> None:
    from core.backend import JobInfo, JobSpec
    from tui.tabs.jobs_dialogs import build_spec, default_base_model, form_from_spec, local_models

    spec = JobSpec(
        "data/train.jsonl",
        "data/test.jsonl",
        "models/tiny",
        ["--epochs", "3", "--lora", "--learning-rate", "1e-4", "--seed", "7"],
        display_name="again",
        experiment_name="phi3-finetune",
    )
    form = form_from_spec(spec)
    assert (form.epochs, form.learning_rate, form.lora, form.extra) == (
        "3",
        "1e-4",
        True,
        "--seed 7",
    )
    again = build_spec(form, "phi3-finetune")
    assert sorted(again.trainer_args) == sorted(spec.trainer_args)
    assert (again.base_model, again.train_file, again.display_name) == (
        "models/tiny",
        "data/train.jsonl",
        "again",
    )

    older = JobInfo("a", JobStatus.COMPLETED, created_at=1.0, spec=JobSpec("t", "e", "old/model"))
    newer = JobInfo("b", JobStatus.FAILED, created_at=2.0, spec=JobSpec("t", "e", "new/model"))
    assert default_base_model("set/in/toml", [older, newer], ["models/x"]) == "set/in/toml"
    assert default_base_model(None, [older, newer], ["models/x"]) == "new/model"
    assert default_base_model(None, [], ["models/x"]) == "models/x"
    assert default_base_model(None, [], []) == ""

    for folder in (tmp_path / "models" / "tiny", tmp_path / ".phiops" / "models" / "base"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "tokenizer.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "config.json").write_text("{}")  # no tokenizer: not a model
    assert local_models(tmp_path, tmp_path / ".phiops") == [".phiops/models/base", "models/tiny"]


async def test_the_submit_form_offers_what_works_offline(tui_project: Path, log_writer) -> None:
    """No base model in phiops.toml: the form opens on the one the newest job used (not the
    hub id it cannot reach offline) and offers the project's model folders; S opens it with
    the selected job's settings; its checkboxes read [x] / [ ] in any colours; a queued job
    says what it waits for."""
    from textual.widgets import Input

    from tui.tabs.jobs_dialogs import SubmitScreen

    model = tui_project / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "tokenizer_config.json").write_text("{}")
    store = job_store(tui_project)
    (store.folder("running_one") / "user_logs").mkdir(parents=True)
    runner = log_writer(store.path("running_one", STD_LOG), rate=5)
    write_job(tui_project, "running_one", JobStatus.RUNNING, runner=runner, created=T0)
    record = store.read("running_one")
    record.base_model, record.train_file, record.eval_file = (
        str(model),
        "data/a.jsonl",
        "data/b.jsonl",
    )
    record.trainer_args = ["--epochs", "2", "--lora"]
    store.write(record)
    write_job(tui_project, "waiting_one", JobStatus.QUEUED, created=T0 + 60)
    app = make_app(tui_project, tab="jobs")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab: JobsTab = app.tabs["jobs"]
        await wait_for(pilot, lambda: tab.selected == "waiting_one")
        await wait_for(pilot, lambda: "waits for running_one to end" in screen_text(app))
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))
        field = app.screen.query_one
        assert field("#submit-base_model", Input).value == str(model)
        assert "models/tiny" in screen_text(app)  # offered in the hint
        assert "[ ] LoRA" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SubmitScreen))
        await pilot.press("down")
        await wait_for(pilot, lambda: tab.selected == "running_one")
        await pilot.press("S")
        await wait_for(pilot, lambda: isinstance(app.screen, SubmitScreen))
        field = app.screen.query_one
        assert field("#submit-train_file", Input).value == "data/a.jsonl"
        assert field("#submit-epochs", Input).value == "2"
        assert "[x] LoRA" in screen_text(app)


async def test_registering_a_jobs_model_twice_asks_first(azure_deploy) -> None:  # noqa: F811
    """m on a completed job registers its model; m again says the registry has it already
    and registers another version only after yes (the Azure stand-ins' real registry)."""
    from tui.app import PhiopsApp
    from tui.screens import ConfirmScreen
    from tui.services import Services

    backend = azure_deploy.backend
    services = Services(azure_deploy.config, backend_name="azure", _backend=backend)
    app = PhiopsApp(services, initial_tab="jobs", job_poll_seconds=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab: JobsTab = app.tabs["jobs"]
        await wait_for(pilot, lambda: tab.selected == "calm_river_1a2b3c")
        await pilot.press("m")
        await wait_for(pilot, lambda: any("Registered" in n for n in notifications(app)))
        assert [m.job_name for m in backend.models()] == ["calm_river_1a2b3c"]
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert ":1" in str(app.screen.query_one("#confirm-body").render())
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.5)
        assert len(backend.models()) == 1
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: len(backend.models()) == 2)


async def test_a_dialog_that_comes_after_the_user_left_the_tab_waits_there(
    azure_deploy,  # noqa: F811
) -> None:
    """m, then 4 before the registry answered: the Jobs tab's question must not cover the
    Deployments tab (whose keys would answer it); it waits and opens when Jobs is back."""
    from tui.app import PhiopsApp
    from tui.screens import ConfirmScreen
    from tui.services import Services

    backend = azure_deploy.backend
    backend.register_model("calm_river_1a2b3c")
    services = Services(azure_deploy.config, backend_name="azure", _backend=backend)
    app = PhiopsApp(services, initial_tab="jobs", job_poll_seconds=60)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        tab: JobsTab = app.tabs["jobs"]
        await wait_for(pilot, lambda: tab.selected == "calm_river_1a2b3c")
        app.action_show_tab("deployments")
        await wait_for(pilot, lambda: not tab.shown)
        tab.post_message(JobsTab.Registered("calm_river_1a2b3c", ["phi3-finetuned:1"]))
        await wait_for(pilot, lambda: any("waits in the Jobs tab" in n for n in notifications(app)))
        assert not isinstance(app.screen, ConfirmScreen)
        # Key 3's action (pilot.press("3") does not return here once the dialog opens: its
        # wait for the screen to idle never ends; the key itself is tested in test_tui_app).
        app.action_show_tab("jobs")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "again" in app.screen.title_text
