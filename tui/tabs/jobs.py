"""The Jobs tab: every job with its status, the selected one's live log and loss chart.

The list comes from the app's job poller (`JobsUpdated`), which also raises the
notifications. The selected job's log is followed by a thread worker running the
backend's `stream_logs` iterator on its own event loop and handing lines over through a
`LogFeed`: batched, at most ~10 drains a second, never more than one queued, so a job
writing 10,000 lines a second leaves the keyboard responsive. The log keeps its last
`MAX_LINES` lines; scrolling up (or f) pauses following, `/` filters. The loss chart is
fed from the trainer's progress events (locally) or the run's metrics (Azure).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from tui.logfeed import LogFeed
from tui.messages import BackendChanged, JobsUnavailable, JobsUpdated
from tui.streaming import run_stream
from tui.tabs.base import AppTab
from tui.tabs.sentences import error_sentence
from tui.widgets.chart import LossChart
from tui.widgets.joblog import JobLog

if TYPE_CHECKING:
    from core.backend import JobInfo, JobSpec, LogLine
    from core.jobevents import ProgressSnapshot
    from tui.tabs.jobs_dialogs import SubmitForm

MAX_LINES = 5000
STATUS_STYLE = {
    "NotStarted": "yellow",
    "Queued": "yellow",
    "Running": "bold cyan",
    "Completed": "green",
    "Failed": "bold red",
    "Canceled": "magenta",
}
COLUMNS = (
    ("status", "Status", 10),
    ("name", "Job", 42),
    ("started", "Started", 11),
    ("took", "Took", 8),
)


def _clock(stamp: float | None) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def _took(job: JobInfo, now: float | None = None) -> str:
    if not job.started_at:
        return "-"
    seconds = int((job.ended_at or now or time.time()) - job.started_at)
    minutes, seconds = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def job_cells(job: JobInfo) -> tuple[Text, str, str, str]:
    status = str(job.status)
    label = (
        job.name
        if not job.display_name or job.display_name == job.name
        else (f"{job.display_name} · {job.name}")
    )
    return (
        Text(status, style=STATUS_STYLE.get(status, "")),
        label,
        _clock(job.started_at or job.created_at),
        _took(job),
    )


def loss_points(events: list[dict[str, Any]]) -> tuple[list, list]:
    """(step, loss) and (step, eval_loss) pairs from the trainer's progress events."""
    loss, eval_loss = [], []
    for event in events:
        step = event.get("step")
        if step is None:
            continue
        if isinstance(event.get("loss"), int | float):
            loss.append((float(step), float(event["loss"])))
        if isinstance(event.get("eval_loss"), int | float):
            eval_loss.append((float(step), float(event["eval_loss"])))
    return loss, eval_loss


class JobsTab(AppTab):
    """Jobs, the selected job's live log and loss chart; submit, cancel, resume."""

    HELP = """
The list shows every job of the backend, newest first, with its status (yellow queued,
cyan running, green completed, red failed, magenta canceled). The selected job's log
follows its end as it is written; scroll up or press f to pause (the badge on the log's
border says which), f or G goes back to the end and follows. w wraps long lines (without
it → scrolls). / filters the log, matches highlighted (Escape clears; paused, the view
keeps its place). The chart draws the training loss (cyan) and
evaluation loss (magenta) by step. s opens the submit form (ctrl+s submits; it opens on
the configured or last-used base model and offers the project's model folders), S opens it
filled with the selected job's settings, x cancels
the selected job after asking (the trainer saves a checkpoint), R resumes a canceled or
failed job from its checkpoint, m registers a completed job's model (to deploy it; a second
time it asks first). A queued job's line says what it waits for.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "submit", "Submit", id="jobs.submit"),
        Binding("x", "cancel", "Cancel job", id="jobs.cancel"),
        Binding("f", "toggle_follow", "Pause/follow", id="jobs.follow"),
        Binding("slash", "filter", "Filter", id="jobs.filter"),
        Binding("G", "follow_end", "End and follow", show=False, id="jobs.end"),
        Binding("w", "wrap", "Wrap", show=False, id="jobs.wrap"),
        Binding("R", "resume", "Resume", show=False, id="jobs.resume"),
        Binding("S", "resubmit", "Submit again", show=False, id="jobs.resubmit"),
        Binding("m", "register", "Register model", show=False, id="jobs.register"),
        Binding("r", "refresh", "Refresh", show=False, id="jobs.refresh"),
    ]

    class LogReady(Message, bubble=False):
        def __init__(self, generation: int) -> None:
            super().__init__()
            self.generation = generation

    class LogEnded(Message, bubble=False):
        def __init__(self, generation: int, error: str = "") -> None:
            super().__init__()
            self.generation, self.error = generation, error

    class ProgressRead(Message, bubble=False):
        """Progress of the selected job: new events and loss points; `whole` when the
        points are the whole series (Azure's metrics), not what came since the last read."""

        def __init__(
            self, generation: int, events: list, offset: int, points: tuple, whole: bool = False
        ) -> None:
            super().__init__()
            self.generation, self.events, self.offset = generation, events, offset
            self.points, self.whole = points, whole

    class FormReady(Message, bubble=False):
        """The project's model folders were listed: the submit form can open."""

        def __init__(self, form: SubmitForm | None, models: list[str], title: str) -> None:
            super().__init__()
            self.form, self.models, self.title = form, models, title

    class Registered(Message, bubble=False):
        """The registry's versions made from `job` (empty: none yet)."""

        def __init__(self, job: str, versions: list[str]) -> None:
            super().__init__()
            self.job, self.versions = job, versions

    class Done(Message, bubble=False):
        """An operation finished: a sentence, its severity, and a job to select, if any."""

        def __init__(
            self,
            text: str,
            severity: str = "information",
            select: str = "",
            submitted: bool = False,
        ) -> None:
            super().__init__()
            self.text, self.severity, self.select = text, severity, select
            self.submitted = submitted  # a job was made from the form: forget its draft

    def __init__(self) -> None:
        super().__init__(id="jobs-tab")
        self.jobs: list[JobInfo] = []
        self.selected: str | None = None
        self.draft: SubmitForm | None = None  # the form of a submit that failed, kept
        self.generation = 0
        self.feed: LogFeed | None = None
        self.log_ended = False
        self.snapshot: ProgressSnapshot | None = None
        self.events_offset = 0
        self.reading_progress = False
        self.progress_final = False
        self.progress_problem = ""  # why the last progress read failed, if it did
        self._want: str | None = None

    def compose(self) -> ComposeResult:
        table = DataTable(id="jobs-table", cursor_type="row", zebra_stripes=False)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static("Loading jobs…", id="jobs-progress", markup=False)
        with Container(id="jobs-body"):
            yield LossChart(id="jobs-chart")
            yield JobLog(id="jobs-log", keep=MAX_LINES)
        yield Input(
            placeholder="filter the log (Enter keeps it, Escape clears)",
            id="jobs-filter",
            compact=True,
        )

    def on_mount(self) -> None:
        self.query_one("#jobs-filter", Input).display = False
        app = self.app
        if getattr(app, "jobs", None):
            self.show_jobs(app.jobs)  # type: ignore[attr-defined]
        elif getattr(app, "jobs_reason", ""):
            self._say(app.jobs_reason)  # type: ignore[attr-defined]
        self.set_interval(1.0, self._poll_progress)
        self.action_refresh()

    def focus_default(self) -> None:
        self.query_one(DataTable).focus()

    @property
    def log(self) -> JobLog:
        return self.query_one(JobLog)

    @property
    def following(self) -> bool:
        return self.log.following

    @property
    def filter(self) -> str:
        return self.log.needle

    # -- the list -------------------------------------------------------------------------

    def on_jobs_updated(self, message: JobsUpdated) -> None:
        self.show_jobs(message.jobs)

    def on_jobs_unavailable(self, message: JobsUnavailable) -> None:
        self._say(message.reason)

    def show_jobs(self, jobs: list[JobInfo]) -> None:
        table = self.query_one(DataTable)
        before = [job.name for job in self.jobs]
        was = self.job(self.selected)
        self.jobs = list(jobs)
        if [job.name for job in jobs] == before:
            for job in jobs:  # same rows: update in place, the cursor stays put
                for (key, *_), value in zip(COLUMNS, job_cells(job), strict=True):
                    table.update_cell(job.name, key, value)
        else:
            table.clear()
            for job in jobs:
                table.add_row(*job_cells(job), key=job.name)
            if self.selected and any(job.name == self.selected for job in jobs):
                table.move_cursor(row=table.get_row_index(self.selected), animate=False)
        if not jobs:
            self._say("No jobs yet: press s to submit one (or `phiops train submit`).")
            return
        names = [job.name for job in jobs]
        if self._want in names:  # just submitted or resumed: show that one
            wanted, self._want = self._want, None
            table.move_cursor(row=names.index(wanted), animate=False)
            if wanted != self.selected:
                self.select(wanted)
        elif self.selected not in names:
            table.move_cursor(row=0, animate=False)
            self.select(jobs[0].name)
        else:
            now = self.job(self.selected)
            assert now is not None
            resumed = was is not None and was.status.is_final and not now.status.is_final
            if resumed:  # here (R) or elsewhere: follow the new run's log and progress
                self.select(now.name)
        self._show_progress()

    def job(self, name: str | None) -> JobInfo | None:
        return next((job for job in self.jobs if job.name == name), None)

    @on(DataTable.RowHighlighted, "#jobs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:
            return  # a stale event from rebuilding the table
        if event.row_key.value and event.row_key.value != self.selected:
            self.select(event.row_key.value)

    def select(self, name: str) -> None:
        """Follow `name`'s log and progress from its start."""
        from core.jobevents import ProgressSnapshot

        self.selected = name
        self.generation += 1
        self.log.reset()
        self.query_one(LossChart).clear("waiting for the first logged step")
        self.snapshot = ProgressSnapshot()
        self.events_offset = 0
        self.progress_final = False
        self.progress_problem = ""
        self.log_ended = False
        generation = self.generation
        self.feed = LogFeed(lambda: self.post_message(self.LogReady(generation)), keep=MAX_LINES)
        self._follow(name, generation, self.feed)
        self._show_progress()
        self._poll_progress()

    def _say(self, text: str) -> None:
        self.query_one("#jobs-progress", Static).update(
            Text(text, no_wrap=True, overflow="ellipsis")
        )

    def _show_progress(self) -> None:
        job = self.job(self.selected)
        if job is None:
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        status = str(job.status)
        text.append(f"{status} ", style=STATUS_STYLE.get(status, ""))
        snapshot = self.snapshot
        if job.status.is_final and job.error:
            text.append(job.error.splitlines()[-1])
        elif str(job.status) in ("Queued", "NotStarted"):
            text.append(self._waits_for(job))
        elif snapshot is not None and snapshot.phase in ("failed", "interrupted"):
            text.append(snapshot.message or snapshot.phase)
        elif snapshot is not None and (snapshot.phase or snapshot.step is not None):
            text.append(snapshot.describe())
        if self.progress_problem:
            text.append(f"  {self.progress_problem}", style="dim red")
        if self.feed is not None and self.feed.dropped:
            text.append(f" │ {self.feed.dropped:,} older lines skipped", style="dim")
        self.query_one("#jobs-progress", Static).update(text)

    def _waits_for(self, job: JobInfo) -> str:
        """What a queued job waits for, in a few words."""
        if job.backend == "azure":
            return f"waiting for a node of {self.services.config.compute_name} (it may scale up)"
        running = [other.name for other in self.jobs if str(other.status) == "Running"]
        if str(job.status) == "NotStarted":
            return "starting"
        if running:
            return f"waits for {running[0]} to end (local jobs run one at a time)"
        return "waits for its turn (local jobs run one at a time)"

    # -- the log --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="jobs-log", exit_on_error=False)
    def _follow(self, name: str, generation: int, feed: LogFeed) -> None:
        """Run the backend's async log stream (`tui.streaming`); stop when the job ends, or
        when another job is selected (this worker is then cancelled)."""
        pending: list[str] = []

        def flush() -> None:
            if pending:
                feed.add(pending[:])
                pending.clear()
            feed.flush()

        def take(line: LogLine) -> None:
            pending.append(line.text)
            if len(pending) >= 512:
                flush()

        try:
            ended = run_stream(
                lambda: self.services.backend().stream_logs(name, 0, follow=True),
                take,
                on_tick=flush,
            )
        except Exception as error:
            self.post_message(self.LogEnded(generation, error_sentence(error, "Following the log")))
            return
        flush()
        if ended:
            self.post_message(self.LogEnded(generation))

    def on_jobs_tab_log_ready(self, message: LogReady) -> None:
        if message.generation != self.generation or self.feed is None:
            return
        self.log.add(self.feed.drain())

    def on_jobs_tab_log_ended(self, message: LogEnded) -> None:
        if message.generation != self.generation:
            return
        self.log_ended = True
        if message.error:
            self.log.add([f"[phiops] {message.error}"])

    def action_toggle_follow(self) -> None:
        """Pause the log where it is, or go to its end and follow it again."""
        if self.log.following:
            self.log.pause()
        else:
            self.log.follow()

    def action_follow_end(self) -> None:
        """G: to the end of the log, following it."""
        self.log.follow()

    def action_wrap(self) -> None:
        """w: wrap long lines to the view's width, or cut them again (→ scrolls)."""
        self.log.toggle_wrap()

    def action_filter(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#jobs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.set_filter(event.value)

    @on(Input.Submitted, "#jobs-filter")
    def _filter_kept(self) -> None:
        self.log.focus()
        if not self.filter:
            self.query_one("#jobs-filter", Input).display = False

    def set_filter(self, text: str) -> None:
        """Show only the kept lines that contain `text` (any case, highlighted); '' shows
        them all. Paused, the view keeps its place."""
        self.log.set_filter(text)

    def key_escape(self) -> None:
        box = self.query_one("#jobs-filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.log.focus()

    # -- progress and loss ----------------------------------------------------------------

    def _poll_progress(self) -> None:
        job = self.job(self.selected)
        if job is None or self.reading_progress or self.progress_final:
            return
        self.reading_progress = True
        self._read_progress(job.name, self.generation, self.events_offset, job.status.is_final)

    @work(thread=True, group="jobs-progress", exit_on_error=False, name="Reading the progress")
    def _read_progress(self, name: str, generation: int, offset: int, final: bool) -> None:
        backend = self.services.backend()
        events: list = []
        points: tuple = ([], [])
        whole = backend.name == "azure"
        if whole:
            metrics = backend.metrics(name)  # progress events stay in Azure's outputs
            points = (
                [(float(p.step), p.value) for p in metrics if p.key == "loss"],
                [(float(p.step), p.value) for p in metrics if p.key == "eval_loss"],
            )
        else:
            events, offset = backend.job_events(name, offset)
            points = loss_points(events)
        self.post_message(self.ProgressRead(generation, events, offset, points, whole))
        if final:
            self.post_message(self.ProgressRead(generation, [], -1, ([], [])))

    def on_jobs_tab_progress_read(self, message: ProgressRead) -> None:
        self.reading_progress = False
        self.progress_problem = ""
        if message.generation != self.generation:
            return
        if message.offset == -1:
            self.progress_final = True  # the job had ended: nothing more will come
            return
        self.events_offset = message.offset
        if self.snapshot is not None:
            self.snapshot.update(message.events)
        chart = self.query_one(LossChart)
        loss, eval_loss = message.points
        if message.whole:
            chart.loss, chart.eval_loss = [], []  # metrics come whole each time
        chart.add(loss, eval_loss)
        self._show_progress()

    # -- operations -----------------------------------------------------------------------

    def action_refresh(self) -> None:
        poll = getattr(self.app, "poll_jobs", None)
        if callable(poll):
            poll()

    def action_submit(self) -> None:
        """The submit form: what was typed last if that job was refused, else the project's
        files and the base model that can work (`default_base_model`)."""
        self._open_form(self.draft, "Submit a fine-tuning job")

    def action_resubmit(self) -> None:
        """The submit form filled with the selected job's own settings, to run it again."""
        from tui.tabs.jobs_dialogs import form_from_spec

        job = self.job(self.selected)
        if job is None:
            self.notify("No job is selected.", severity="warning")
            return
        if job.spec is None or not job.spec.base_model:
            self.notify(f"The {job.backend} backend did not keep how {job.name} was submitted.")
            return
        self._open_form(form_from_spec(job.spec), f"Submit {job.name} again")

    def _open_form(self, form: SubmitForm | None, title: str) -> None:
        self._say("Looking for model folders…")
        self._find_models(form, title)

    @work(thread=True, group="jobs-form", exclusive=True, exit_on_error=False)
    def _find_models(self, form: SubmitForm | None, title: str) -> None:
        from tui.tabs.jobs_dialogs import local_models

        config = self.services.config
        models = local_models(config.project_dir, config.store_path)
        self.post_message(self.FormReady(form, models, title))

    def on_jobs_tab_form_ready(self, message: FormReady) -> None:
        from tui.tabs.jobs_dialogs import SubmitForm, SubmitScreen, default_base_model

        config = self.services.config
        configured = config.base_model if "base_model" in config.sources else None
        form = message.form or SubmitForm(
            train_file=config.train_data_path,
            eval_file=config.test_data_path,
            base_model=default_base_model(configured, self.jobs, message.models)
            or config.base_model,
        )
        self._show_progress()
        screen = SubmitScreen(
            form,
            config.experiment_name,
            self.backend_name,
            models=message.models,
            title=message.title,
        )
        self.open_dialog(screen, lambda spec: self._submit(spec, screen.form))

    def _submit(self, spec: JobSpec | None, form: SubmitForm) -> None:
        if spec is not None:
            self.draft = form  # until the backend takes the job: a refusal loses no typing
            self._say("Submitting…")
            self._run_submit(spec)

    @work(thread=True, group="jobs-ops", exit_on_error=False, name="Submitting the job")
    def _run_submit(self, spec: JobSpec) -> None:
        job = self.services.backend().submit_job(
            spec, progress=lambda text: self.app.call_from_thread(self._say, f"{text}…")
        )
        submitted = getattr(self.app, "submitted_here", None)
        if isinstance(submitted, set):
            submitted.add(job.name)  # the app's poller need not announce it a second time
        self.post_message(
            self.Done(f"Submitted {job.name} ({job.status}).", select=job.name, submitted=True)
        )

    def action_cancel(self) -> None:
        from tui.screens import ConfirmScreen

        job = self.job(self.selected)
        if job is None:
            self.notify("No job is selected.", severity="warning")
            return
        if job.status.is_final:
            self.notify(f"{job.name} has already ended ({job.status}).")
            return
        screen = ConfirmScreen(
            f"Cancel job {job.name}?",
            "A running trainer saves a checkpoint and stops (R resumes it later); "
            "a queued job is dropped from the queue.",
            yes="Cancel job",
            no="Keep it",
        )
        self.open_dialog(screen, lambda yes: yes and self._run_cancel(job.name))

    @work(thread=True, group="jobs-ops", exit_on_error=False, name="Canceling the job")
    def _run_cancel(self, name: str) -> None:
        self.app.call_from_thread(self.notify, f"Canceling {name}…")
        job = self.services.backend().cancel(name)
        self.post_message(self.Done(f"{name} is {job.status}.", "warning"))

    def action_resume(self) -> None:
        job = self.job(self.selected)
        if job is None:
            return
        self._run_resume(job.name)

    @work(thread=True, group="jobs-ops", exit_on_error=False, name="Resuming the job")
    def _run_resume(self, name: str) -> None:
        job = self.services.backend().resume_job(name)
        self.post_message(self.Done(f"{name} is {job.status} again.", select=name))

    def action_register(self) -> None:
        """Register the selected completed job's model, for the Deployments tab to deploy;
        if the registry already holds a version from this job, ask first."""
        job = self.job(self.selected)
        if job is None:
            return
        if str(job.status) != "Completed":
            self.notify(f"{job.name} is {job.status}; only a completed job has a model.")
            return
        self._say(f"Looking for a model of {job.name} in the registry…")
        self._check_registered(job.name)

    @work(thread=True, group="jobs-ops", exit_on_error=False, name="Reading the registry")
    def _check_registered(self, name: str) -> None:
        versions = [m.ref for m in self.services.backend().models() if m.job_name == name]
        self.post_message(self.Registered(name, versions))

    def on_jobs_tab_registered(self, message: Registered) -> None:
        from tui.screens import ConfirmScreen

        name = message.job
        self._show_progress()
        if not message.versions:
            self._register(name)
            return
        screen = ConfirmScreen(
            f"Register {name}'s model again?",
            f"The registry already has it as {', '.join(message.versions)}; another version "
            "would be the same weights under a new number.",
            yes="Register again",
            no="Keep one",
        )
        self.open_dialog(screen, lambda yes: yes and self._register(name))

    def _register(self, name: str) -> None:
        self.notify(f"Registering the model of {name}…")
        self._run_register(name)

    @work(thread=True, group="jobs-ops", exit_on_error=False, name="Registering the model")
    def _run_register(self, name: str) -> None:
        model = self.services.backend().register_model(name)
        self.post_message(
            self.Done(f"Registered {model.ref} from {name}; deploy it in the Deployments tab.")
        )

    def worker_failed(self, group: str, sentence: str) -> None:
        if group == "jobs-form":
            self._show_progress()
            super().worker_failed(group, sentence)
        elif group == "jobs-progress":
            self.reading_progress = False  # the next tick tries again; the line says why
            self.progress_problem = sentence
            self._show_progress()
        else:
            self.post_message(self.Done(sentence, "error"))

    def on_jobs_tab_done(self, message: Done) -> None:
        if message.submitted:
            self.draft = None
        self.notify(
            message.text,
            title="Jobs",
            severity=message.severity,  # type: ignore[arg-type]
            timeout=8 if message.severity == "error" else 4,
        )
        if message.select:
            self._want = message.select
            if message.select == self.selected:
                self._want = None
                self.select(message.select)  # resumed: follow it again from the start
        self.action_refresh()
        self._show_progress()

    def on_backend_changed(self, message: BackendChanged) -> None:
        self.selected = None
        self.generation += 1
        self.jobs = []
        self.query_one(DataTable).clear()
        self.log.reset()
        self.query_one(LossChart).clear()
        self._say(f"Loading the {message.name} backend's jobs…")
