"""PhiopsApp: the header, the tabs of `tui.tabs.TABS`, the footer, help and notifications.

The app owns what every tab shares: the services (config + one backend), the command
palette (`tui.palette`), and one job poller whose results feed both the notifications and
the Jobs tab. A tab's module is imported, and the tab built, the first time it is shown,
so the first frame paints before any tab has done work and before anything heavy loads.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import Footer, Static, TabbedContent, TabPane
from textual.widgets._tabbed_content import ContentTabs

from tui.messages import BackendChanged, JobsUnavailable, JobsUpdated
from tui.palette import PhiopsCommands
from tui.services import Services
from tui.tabs import TABS
from tui.tabs.sentences import error_sentence

if TYPE_CHECKING:
    from textual.widget import Widget

    from core.backend import JobInfo, JobStatus
    from tui.palette import Command
    from tui.services import BackendName
    from tui.tabs.base import AppTab

# One CSS convention: every module's styles live in a .tcss file beside it (a tab's file
# also holds its dialogs'), and the app loads them all. No DEFAULT_CSS in phiops' widgets.
STYLESHEETS = sorted(str(path) for path in Path(__file__).parent.rglob("*.tcss"))

ANSI_THEME = "ansi-dark"
DEFAULT_THEME = "textual-dark"
# Under this many columns the footer drops its padding, so every key of the busiest tab
# (Deployments) and "q Quit" still fit in 80 columns.
COMPACT_FOOTER_BELOW = 100


def pick_theme(chosen: str = "", environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The theme the user chose (`[tui] theme`, or `PHIOPS_THEME`); without one, the ANSI
    theme where the terminal has only 16 colours, so the terminal's own palette is used
    instead of colours it would approximate badly."""
    chosen = chosen.strip().lower()
    if chosen in ("ansi", ANSI_THEME):
        return ANSI_THEME
    if chosen:
        return chosen
    if environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return DEFAULT_THEME
    term = environ.get("TERM", "")
    return DEFAULT_THEME if "256color" in term or "direct" in term else ANSI_THEME


def header_text(services: Services) -> str:
    """Backend, where it works (workspace or project folder) and the endpoint, on one line."""
    config = services.config
    backend = services.current
    if backend == "azure":
        where = f"workspace {config.workspace or '(not set)'}"
        if config.resource_group:
            where += f" ({config.resource_group})"
    else:
        where = f"project {config.project_dir.name or config.project_dir}"
    return f"phiops │ {backend} │ {where} │ endpoint {config.endpoint_name}"


class AppHeader(Static):
    """One line at the top: backend, workspace and endpoint, and how many jobs are active."""

    def set_parts(self, main: str, jobs: str = "") -> None:
        self.update(f"{main}{' │ ' + jobs if jobs else ''}")


class Tabs(TabbedContent):
    """TabbedContent whose strip never holds the keyboard, and that a stale focus cannot
    switch back.

    The strip is not focusable: tabs switch with 1–6 (or a click, or the palette). A focused
    strip took none of the tab's keys, so wherever Textual parked the focus there — the
    first focusable widget when a dialog closes with nothing focused, shift+tab — the footer
    fell to "f1 Help q Quit" and the tab's keys were dead until Tab.

    When the terminal reports that it got the focus back (tmux and most terminals send
    focus events), Textual refocuses the widget that had the focus before, even if its tab
    has been hidden since; TabbedContent would then show that tab again, under the user's
    key press. A focus arriving from a hidden pane is ignored and the shown tab keeps it.
    """

    def on_mount(self) -> None:
        self.query_one(ContentTabs).can_focus = False

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        if event.tab_pane.id != self.active and not event.tab_pane.display:
            event.stop()
            event.prevent_default()
            focus = getattr(self.app, "_focus_tab", None)
            if callable(focus):
                self.call_after_refresh(focus, self.active)


class PhiopsApp(App[None]):
    """The phiops operations and chat app."""

    CSS_PATH: ClassVar = STYLESHEETS  # absolute paths: subclasses live elsewhere
    TITLE = "phiops"
    COMMANDS = App.COMMANDS | {PhiopsCommands}
    HORIZONTAL_BREAKPOINTS: ClassVar = [(0, "-narrow"), (110, "-wide")]
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar = [
        Binding("f1", "help", "Help", id="app.help"),
        Binding("question_mark", "help", "Help", show=False, id="app.help2"),
        Binding("q", "quit", "Quit", id="app.quit"),
        *[
            Binding(str(number), f"show_tab('{tab_id}')", title, show=False, id=f"app.tab{number}")
            for number, (tab_id, title, _) in enumerate(TABS, start=1)
        ],
    ]

    def __init__(
        self,
        services: Services,
        *,
        initial_tab: str = "resources",
        job_poll_seconds: float | None = None,
    ) -> None:
        super().__init__()
        self.services = services
        self.initial_tab = initial_tab
        self.job_poll_seconds = job_poll_seconds
        self._config_problems: list[str] = []
        self._apply_theme(services.config.theme)
        self.set_keymap(services.config.keymap)
        self.tabs: dict[str, AppTab] = {}
        self.jobs: list[JobInfo] = []
        self.jobs_reason = ""  # why the job list could not be read, if it could not
        self._job_states: dict[str, JobStatus] | None = None
        self.submitted_here: set[str] = set()  # announced by the Jobs tab already
        self._polling = False
        self._poll_timer = None

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes: `query_one` searches the active screen, which may be a dialog.
        self.header = AppHeader(header_text(self.services), id="app-header", markup=False)
        self.tabbed = Tabs(initial=self.initial_tab, id="tabs")
        yield self.header
        with self.tabbed:
            for tab_id, title, _ in TABS:
                yield TabPane(title, id=tab_id)
        self.footer = Footer(compact=self.size.width < COMPACT_FOOTER_BELOW)
        yield self.footer

    def on_resize(self, event: events.Resize) -> None:
        self.footer.compact = event.size.width < COMPACT_FOOTER_BELOW

    def _apply_theme(self, chosen: str) -> None:
        theme = pick_theme(chosen)
        if theme not in self.available_themes:
            known = ", ".join(sorted(self.available_themes))
            self._config_problems.append(f"phiops.toml: no theme {theme!r} (known: {known}).")
            theme = pick_theme()
        self.theme = theme

    def on_mount(self) -> None:
        # The first frame (header, tab bar, footer) paints before any tab is built or any
        # worker starts: workers' threads would compete with it for the interpreter.
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        self.build_tab(self.initial_tab)
        self.call_after_refresh(self._focus_tab, self.initial_tab)
        self._start_polling()
        if self.services.config.keymap:
            self.call_after_refresh(self._check_keymap)
        for problem in self._config_problems:
            self.notify(problem, title="Settings", severity="warning", timeout=10, markup=False)

    def _check_keymap(self) -> None:
        """Say which ids of `[tui] keymap` name no binding (the rest apply)."""
        from tui.palette import known_binding_ids

        unknown = sorted(set(self.services.config.keymap) - known_binding_ids())
        if unknown:
            self.notify(
                f"phiops.toml [tui] keymap: no key binding has the id {', '.join(unknown)} "
                "(F1 lists the keys; ids are in the README).",
                title="Settings",
                severity="warning",
                timeout=10,
                markup=False,
            )

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            self.build_tab(event.pane.id)
            self.call_after_refresh(self._focus_tab, event.pane.id)

    def build_tab(self, tab_id: str) -> AppTab:
        """The tab's widget, imported and mounted the first time it is needed."""
        if tab_id in self.tabs:
            return self.tabs[tab_id]
        target = next(entry[2] for entry in TABS if entry[0] == tab_id)
        module_name, class_name = target.split(":")
        widget = getattr(importlib.import_module(module_name), class_name)()
        self.tabs[tab_id] = widget
        self.tabbed.get_pane(tab_id).mount(widget)
        return widget

    def action_show_tab(self, tab_id: str) -> None:
        tabs = self.tabbed
        self.build_tab(tab_id)
        if tabs.active == tab_id:
            self._focus_tab(tab_id)
        else:
            tabs.active = tab_id  # TabActivated focuses it

    def _focus_tab(self, tab_id: str) -> None:
        """Focus the tab's main widget, unless another tab was shown meanwhile; a dialog
        that waited for the tab opens now."""
        widget = self.tabs.get(tab_id)
        if widget is None or self.tabbed.active != tab_id:
            return
        with contextlib.suppress(NoMatches):  # torn down meanwhile (the app is closing)
            widget.focus_default()
        widget.open_waiting_dialog()

    async def run_tab_action(self, tab_id: str, action: str) -> None:
        """Show a tab and run one of its actions: how the palette reaches every tab's work."""
        self.action_show_tab(tab_id)
        widget = self.tabs[tab_id]
        if not callable(getattr(widget, f"action_{action.split('(')[0]}", None)):
            self.notify(f"The {tab_id} tab has no '{action}' action.", severity="error")
            return
        await widget.run_action(action)

    # -- help -----------------------------------------------------------------------------

    def action_help(self) -> None:
        from tui.screens import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        tab = self.tabs.get(self.tabbed.active)
        lines: dict[tuple[str, str], tuple[bool, tuple[str, str, str]]] = {}
        for active in self.screen.active_bindings.values():
            binding, node = active.binding, active.node
            mine = node is tab or node is self
            if not binding.description or not (binding.show or mine):
                continue  # a widget's own hidden keys (cursor movement) are no news
            same = (binding.action, binding.description)
            if same in lines and (lines[same][1][2] or not binding.id):
                continue  # one line per action: the binding with an id (q, not Textual's ^q)
            entry = (self.get_key_display(binding), binding.description, binding.id or "")
            lines[same] = (node is self, entry)
        ordered = sorted(lines.values(), key=lambda line: line[0])  # the app's keys last
        keys = [entry for _, entry in ordered]
        about = getattr(tab, "HELP", "") or ""
        before = self.focused
        self.push_screen(HelpScreen(keys, about), lambda _: self._refocus(before))

    def _refocus(self, before: Widget | None) -> None:
        """Back from help: the keyboard where it was (the box, the conversation, a table),
        once the screen under it is shown again."""

        def restore() -> None:
            if before is not None and before.is_attached and before.focusable:
                before.focus()
            elif self.tabbed.active:
                self._focus_tab(self.tabbed.active)

        self.call_after_refresh(restore)

    # -- backend --------------------------------------------------------------------------

    def action_switch_backend(self, name: BackendName) -> None:
        """Work on another backend from now on; every tab reloads what it shows."""
        if name == self.services.current:
            self.notify(f"Already on the {name} backend.")
            return
        self.services.switch_backend(name)
        self._job_states = None
        self.jobs, self.jobs_reason = [], ""
        self.header.set_parts(header_text(self.services))
        for widget in self.tabs.values():
            widget.post_message(BackendChanged(name))
        self._start_polling()
        self.notify(f"Switched to the {name} backend.")

    # -- jobs: one poller for notifications and the Jobs tab ------------------------------

    def _start_polling(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
        seconds = self.job_poll_seconds
        if seconds is None:
            seconds = 2.0 if self.services.current == "local" else 15.0
        self._poll_timer = self.set_interval(seconds, self.poll_jobs)
        self.poll_jobs()

    def poll_jobs(self) -> None:
        """Read the job list in a worker (skipped while the last read is still running)."""
        if not self._polling:
            self._polling = True
            self._read_jobs(self.services.current)

    @work(thread=True, group="jobs-poll", exit_on_error=False)
    def _read_jobs(self, backend: str) -> None:
        try:
            jobs = self.services.backend().jobs()
        except Exception as error:  # any failure is shown, the poller keeps going
            self.post_message(JobsUnavailable(error_sentence(error, "Reading the jobs"), backend))
        else:
            self.post_message(JobsUpdated(jobs, backend))

    def on_jobs_updated(self, message: JobsUpdated) -> None:
        self._polling = False
        if message.backend != self.services.current:
            return  # read before a backend switch
        self.jobs, self.jobs_reason = message.jobs, ""
        self._notify_changes(message.jobs)
        active = sum(1 for job in message.jobs if not job.status.is_final)
        self.header.set_parts(
            header_text(self.services),
            f"{active} job{'s' if active > 1 else ''} active" if active else "",
        )
        if "jobs" in self.tabs:
            self.tabs["jobs"].post_message(JobsUpdated(message.jobs, message.backend))

    def on_jobs_unavailable(self, message: JobsUnavailable) -> None:
        self._polling = False
        if message.backend != self.services.current:
            return
        if message.reason != self.jobs_reason:
            self.notify(message.reason, title="Jobs", severity="error", timeout=8)
        self.jobs_reason = message.reason
        if "jobs" in self.tabs:
            self.tabs["jobs"].post_message(JobsUnavailable(message.reason, message.backend))

    def _notify_changes(self, jobs: list[JobInfo]) -> None:
        states = {job.name: job.status for job in jobs}
        before, self._job_states = self._job_states, states
        if before is None:
            return  # the first read: what is there is not news
        for job in jobs:
            old = before.get(job.name)
            if old is None or old == job.status:
                if old is None and job.name not in self.submitted_here:
                    self.notify(f"{_label(job)} was submitted ({job.status}).", title="Job")
                continue
            severity = {"Failed": "error", "Canceled": "warning"}.get(str(job.status))
            text = f"{_label(job)}: {old} → {job.status}."
            if job.error and str(job.status) == "Failed":
                text += f" {job.error.splitlines()[-1][:160]}"
            self.notify(text, title="Job", severity=severity or "information", timeout=6)

    # -- the palette's commands --------------------------------------------------------------

    def run_command(self, command: Command) -> None:
        """Run a palette command: a tab's action (showing the tab), or one of the app's."""
        if command.tab:
            self.run_worker(self.run_tab_action(command.tab, command.action))
        else:
            self.run_worker(self.run_action(command.action))


def _label(job: JobInfo) -> str:
    if job.display_name and job.display_name != job.name:
        return f"{job.display_name} ({job.name})"
    return job.name
