"""The Deployments tab: endpoints and their deployments, and the blue/green operations.

Shows each endpoint's provisioning state, traffic split, scoring URI and masked key, and
the selected deployment's recent logs; deploys a registered model version, shifts traffic,
rolls back and deletes, with a confirmation for anything destructive.

Harlequin's rule holds here: every backend call runs in a thread worker that touches no
widget and only posts messages; the message handlers own the tab's state. The real key
reaches the UI thread only to be copied to the clipboard, never to be drawn.

The command palette can call the public actions: `action_refresh`, `action_deploy`,
`action_shift_traffic`, `action_rollback`, `action_delete_deployment`,
`action_delete_endpoint`, `action_delete_selected`, `action_start_stop`, `action_copy_key`,
`action_copy_uri`, `action_show_logs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from core.errors import PhiopsError
from tui.tabs.base import AppTab
from tui.tabs.deployments_widgets import (
    DeploymentLog,
    EndpointDetails,
    EndpointTable,
    Selection,
    fold_probes,
    split_text,
)
from tui.tabs.sentences import error_sentence

if TYPE_CHECKING:
    from textual.timer import Timer

    from core.backend import Backend, DeploymentInfo, EndpointControl, EndpointInfo, ModelVersion
    from tui.screens import Modal
    from tui.tabs.deployments_dialogs import DeployRequest

REFRESH_SECONDS = {"local": 5.0, "azure": 30.0}  # Azure reads are slow and metered
LOG_LINES = 200
LOG_FOLLOW_SECONDS = 2.0
WIDE = 110  # columns from which the logs sit beside the table instead of under it

ResultT = TypeVar("ResultT")


@dataclass
class Operation:
    """One change to the backend: what it does (the status line, and the worker's name, so
    a failure reads "Deleting ep/green failed: …"), and the call a worker makes; the call
    returns the sentence to show when it is done."""

    doing: str
    call: Callable[[Backend], str]


class DeploymentsTab(AppTab):
    """Endpoints and deployments of the current backend."""

    HELP = (
        "Endpoints and their deployments. Select a row with ↑/↓: an endpoint row shows its "
        "scoring URI, masked key and traffic split, a deployment row its model and serving "
        "settings; the logs follow the selection. d deploys a registered model version "
        "(blue/green: a new deployment takes its share after a smoke test), t sets the "
        "traffic split (one share per deployment), b rolls back the last change (the dialog "
        "shows the split it restores), x deletes the selected deployment (once it has no "
        "traffic), X the whole endpoint; s starts a stopped local endpoint (after `phiops "
        "down` or a reboot: the same URI, split and keys) or stops a running one; c copies "
        "the key (never shown), u the scoring URI, l follows the logs (health probes "
        "folded; l again stops), r refreshes. Every confirmation takes y, n, or Enter on "
        "the focused No."
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "deploy", "Deploy", id="deployments.deploy"),
        Binding("t", "shift_traffic", "Traffic", id="deployments.traffic"),
        Binding("b", "rollback", "Rollback", id="deployments.rollback"),
        Binding("x", "delete_selected", "Delete", id="deployments.delete"),
        Binding(
            "X", "delete_endpoint", "Delete endpoint", show=False, id="deployments.delete_endpoint"
        ),
        Binding("s", "start_stop", "Start/stop", show=False, id="deployments.start_stop"),
        Binding("c", "copy_key", "Copy key", id="deployments.copy_key"),
        Binding("u", "copy_uri", "Copy URI", show=False, id="deployments.copy_uri"),
        Binding("l", "show_logs", "Follow logs", show=False, id="deployments.logs"),
        Binding("r", "refresh", "Refresh", show=False, id="deployments.refresh"),
    ]

    # -- messages: posted by workers, handled on the UI thread ---------------------------

    class Loaded(Message, bubble=False):
        def __init__(
            self, endpoints: list[EndpointInfo], keys: dict[str, str], stoppable: bool
        ) -> None:
            super().__init__()
            self.endpoints = endpoints
            self.keys = keys  # endpoint -> masked key (or why there is none)
            self.stoppable = stoppable  # the backend's endpoints can be stopped and started

    class LoadFailed(Message, bubble=False):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class LogsLoaded(Message, bubble=False):
        def __init__(self, endpoint: str, deployment: str, text: str) -> None:
            super().__init__()
            self.endpoint = endpoint
            self.deployment = deployment
            self.text = text

    class ModelsLoaded(Message, bubble=False):
        def __init__(self, models: list[ModelVersion]) -> None:
            super().__init__()
            self.models = models

    class OperationProgress(Message, bubble=False):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class OperationDone(Message, bubble=False):
        def __init__(self, summary: str) -> None:
            super().__init__()
            self.summary = summary

    class OperationFailed(Message, bubble=False):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class KeyFetched(Message, bubble=False):
        def __init__(self, endpoint: str, key: str) -> None:
            super().__init__()
            self.endpoint = endpoint
            self.key = key

    # -- structure ----------------------------------------------------------------------

    def __init__(self) -> None:
        super().__init__(id="deployments-tab")
        self.endpoints: list[EndpointInfo] = []
        self.masked_keys: dict[str, str] = {}
        self.stoppable = False  # the backend's endpoints stop and start (known once loaded)
        self.states: dict[str, str] = {}  # "endpoint" or "endpoint/deployment" -> state
        self.selection: Selection | None = None
        self.busy: str = ""  # what the running operation does; "" when none runs
        self.loading = False  # an endpoints read is out
        self.log_source: tuple[str, str, str] | None = None  # (endpoint, deployment, text) shown
        self.loaded = False
        self.load_error = ""
        self._log_timer: Timer | None = None  # set while `l` follows the logs

    def compose(self) -> ComposeResult:
        with Horizontal(id="deploy-main"):
            with Vertical(id="deploy-left", classes="pane"):
                yield EndpointTable(id="deploy-table")
                yield EndpointDetails("Loading endpoints…", id="deploy-details")
            with Vertical(id="deploy-logs-pane", classes="pane"):
                yield Static("Logs", id="deploy-logs-title")
                yield DeploymentLog(id="deploy-logs", max_lines=2000, auto_scroll=True)
        yield Static("", id="deploy-status")

    def on_mount(self) -> None:
        self.action_refresh()
        self.focus_default()
        self.set_interval(REFRESH_SECONDS.get(self.backend_name, 10.0), self._tick)

    def focus_default(self) -> None:
        """Where the keyboard starts when the tab is shown: the endpoints table."""
        self.query_one("#deploy-table", DataTable).focus()

    def on_backend_changed(self) -> None:
        """`tui.messages.BackendChanged`: the app switched backend; show the new one's."""
        self.endpoints, self.masked_keys, self.states = [], {}, {}
        self.selection, self.loaded, self.log_source = None, False, None
        self.query_one("#deploy-table", DataTable).clear()
        self.query_one("#deploy-logs", DeploymentLog).clear()
        self.query_one("#deploy-details", Static).update("Loading endpoints…")
        self.action_refresh()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "-wide")

    def _tick(self) -> None:
        """The periodic refresh, also while an operation runs (its new deployment shows up
        as Creating); skipped while the last read is still out (a slow sign-in must not
        pile up threads)."""
        if not self.loading:
            self.action_refresh()

    # -- reading the backend (workers) --------------------------------------------------

    def _backend(self) -> Backend:
        return self.services.backend()

    def action_refresh(self) -> None:
        """Reload the endpoints (and the selected deployment's logs)."""
        self.loading = True
        self._load_endpoints(dict(self.masked_keys))

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="deployments-load",
        name="Listing endpoints",
    )
    def _load_endpoints(self, known_keys: dict[str, str]) -> None:
        from core.secrets import mask

        backend = self._backend()
        endpoints = backend.endpoints()
        keys: dict[str, str] = {}
        for info in endpoints:
            cached = known_keys.get(info.name)
            if cached:
                keys[info.name] = cached
                continue
            try:
                keys[info.name] = mask(backend.endpoint_keys(info.name).primary) or "(none)"
            except Exception as error:  # one endpoint's key: shown in its place, not fatal
                keys[info.name] = f"(unavailable: {error_sentence(error)})"
        stoppable = backend.endpoint_control() is not None
        self.post_message(self.Loaded(endpoints, keys, stoppable))

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="deployments-logs",
        name="Reading the logs",
    )
    def _load_logs(self, endpoint: str, deployment: str) -> None:
        from core.secrets import redact

        text = self._backend().deployment_logs(endpoint, deployment, LOG_LINES)
        self.post_message(self.LogsLoaded(endpoint, deployment, redact(text)))

    # -- showing it (handlers) ----------------------------------------------------------

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.loaded, self.loading = True, False
        self.load_error = ""
        self.masked_keys = message.keys
        self.stoppable = message.stoppable
        self._notify_changes(message.endpoints)
        self.endpoints = message.endpoints
        self._fill_table()
        self._show_logs_for_selection()

    def worker_failed(self, group: str, sentence: str) -> None:
        if group == "deployments-load":
            self.post_message(self.LoadFailed(sentence))
        elif group == "deployments-logs":
            self.log_source = None
            logs = self.query_one("#deploy-logs", DeploymentLog)
            logs.clear()
            logs.write_line(sentence)
        else:  # an operation, the model list, the key
            self.post_message(self.OperationFailed(sentence))

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        self.loading = False
        self.load_error = message.error
        self.query_one("#deploy-details", Static).update(Text(message.error, style="red"))

    def _notify_changes(self, endpoints: list[EndpointInfo]) -> None:
        """A toast when an endpoint or deployment changes state between two refreshes."""
        states: dict[str, str] = {}
        for info in endpoints:
            states[info.name] = info.state
            for dep in info.deployments:
                states[f"{info.name}/{dep.name}"] = dep.state
        if self.loaded and self.states:
            for name, state in states.items():
                before = self.states.get(name)
                if before is not None and before != state:
                    failed = state.lower() == "failed"
                    self.notify(
                        f"{name}: {before} → {state}",
                        title="Deployment",
                        severity="error" if failed else "information",
                        markup=False,
                    )
        self.states = states

    def _fill_table(self) -> None:
        self.selection = self.query_one(EndpointTable).show(self.endpoints, self.selection)
        self._show_details()

    @on(DataTable.RowHighlighted, "#deploy-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        selection = self.query_one(EndpointTable).selection_at(event.cursor_row)
        if selection is None:
            return
        changed = selection != self.selection
        self.selection = selection
        self._show_details()
        if changed:
            self._show_logs_for_selection()

    def _show_logs_for_selection(self) -> None:
        selection = self.selection
        logs = self.query_one("#deploy-logs", DeploymentLog)
        title = self.query_one("#deploy-logs-title", Static)
        if selection is None:
            return
        deployment = selection.deployment or self._main_deployment(selection.endpoint)
        if deployment is None:
            title.update("Logs")
            logs.clear()
            self.log_source = None
            return
        state = "following · l stops" if self.following_logs else "l follows"
        title.update(f"Logs · {selection.endpoint}/{deployment} ({state})")
        self._load_logs(selection.endpoint, deployment)

    def _main_deployment(self, endpoint: str) -> str | None:
        """The deployment that takes the most traffic, whose logs an endpoint row shows."""
        info = self._endpoint(endpoint)
        if info is None or not info.deployments:
            return None
        return max(info.deployments, key=lambda d: info.traffic.get(d.name, 0)).name

    @on(LogsLoaded)
    def _logs_loaded(self, message: LogsLoaded) -> None:
        selection = self.selection
        if selection is None or selection.endpoint != message.endpoint:
            return
        wanted = selection.deployment or self._main_deployment(selection.endpoint)
        if wanted != message.deployment:
            return
        shown = (message.endpoint, message.deployment, message.text)
        if shown == self.log_source:
            return  # unchanged: leave the view (and where the user scrolled) alone
        self.log_source = shown
        logs = self.query_one("#deploy-logs", DeploymentLog)
        logs.clear()
        logs.write_lines(fold_probes(message.text.splitlines()) or ["(no log lines yet)"])
        if self.following_logs:
            logs.scroll_end(animate=False)

    def _endpoint(self, name: str) -> EndpointInfo | None:
        return next((info for info in self.endpoints if info.name == name), None)

    def _deployment(self, endpoint: str, name: str) -> DeploymentInfo | None:
        info = self._endpoint(endpoint)
        if info is None:
            return None
        return next((dep for dep in info.deployments if dep.name == name), None)

    def _show_details(self) -> None:
        details = self.query_one(EndpointDetails)
        if not self.endpoints:
            details.update(
                f"No endpoints on the {self.backend_name} backend yet. Press d to deploy a "
                "registered model version (train one in the Jobs tab, then register it)."
            )
            return
        selection = self.selection
        info = self._endpoint(selection.endpoint) if selection else None
        dep = None
        if info is not None and selection is not None and selection.deployment:
            dep = self._deployment(info.name, selection.deployment)
        details.show(info, dep, self.masked_keys.get(info.name, "") if info else "")

    # -- operations -------------------------------------------------------------------
    #
    # Every change goes the same way: an action checks what it can, opens a dialog when it
    # asks something (`ask_then_run`), and the answer becomes an `Operation` that
    # `run_operation` runs in a worker, one at a time, its progress in the status line.

    def _still_busy(self) -> bool:
        """True (and a toast saying what runs) while an operation runs: one at a time, and
        no question asked that could not be acted on."""
        if self.busy:
            self.notify(f"Wait: {self.busy} is still running.", severity="warning", markup=False)
        return bool(self.busy)

    def run_operation(self, operation: Operation) -> None:
        """Run `operation` in a worker unless another one runs (then say which)."""
        if self._still_busy():
            return
        self.busy = operation.doing
        self._status(f"{operation.doing}…")

        def run() -> None:
            self.post_message(self.OperationDone(operation.call(self._backend())))

        self.run_worker(
            run,
            name=operation.doing,
            group="deployments-op",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def ask_then_run(
        self, screen: Modal[ResultT], operation: Callable[[ResultT], Operation | None]
    ) -> None:
        """Open `screen`; an answer (not None, not "no") becomes the operation to run. While
        another operation runs, nothing is asked."""
        if self._still_busy():
            return

        def answered(result: ResultT) -> None:
            if result is None or result is False:
                return
            chosen = operation(result)
            if chosen is not None:
                self.run_operation(chosen)

        self.open_dialog(screen, answered)

    def confirm_then_run(
        self, title: str, body: str, yes: str, operation: Callable[[], Operation]
    ) -> None:
        """Ask yes or no (`ConfirmScreen`: y, n, Enter on the focused "No"); yes runs it."""
        from tui.screens import ConfirmScreen

        self.ask_then_run(ConfirmScreen(title, body, yes=yes), lambda _yes: operation())

    def _progress_callback(self) -> Callable[[str], None]:
        """For a backend call's `progress=`: each phrase to the status line (any thread)."""
        post, message = self.post_message, self.OperationProgress
        return lambda text: post(message(text))

    def _status(self, text: str) -> None:
        self.query_one("#deploy-status", Static).update(Text(text, style="bold"))
        self.set_class(bool(text), "-busy")

    def _need_endpoint(self) -> EndpointInfo | None:
        info = self._endpoint(self.selection.endpoint) if self.selection else None
        if info is None:
            self.notify(
                "Select an endpoint first (there are none yet: press d to deploy).", markup=False
            )
        return info

    @on(OperationProgress)
    def _progress(self, message: OperationProgress) -> None:
        if self.busy:
            self._status(f"{self.busy}: {message.text}")

    @on(OperationDone)
    def _done(self, message: OperationDone) -> None:
        self.busy = ""
        self._status("")
        self.notify(message.summary, title="Deployments", markup=False)
        self.masked_keys.clear()
        self.action_refresh()

    @on(OperationFailed)
    def _failed(self, message: OperationFailed) -> None:
        self.busy = ""
        self._status("")
        self.notify(message.error, title="Deployments", severity="error", timeout=12, markup=False)
        self.action_refresh()

    # deploy

    def action_deploy(self) -> None:
        """Pick a registered model version and deploy it (blue/green on an existing endpoint)."""
        if self._still_busy():
            return
        self._status("Listing model versions…")
        self._load_models()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="deployments-models",
        name="Listing model versions",
    )
    def _load_models(self) -> None:
        models = self._backend().models()
        self.post_message(self.ModelsLoaded(models))

    @on(ModelsLoaded)
    def _models_loaded(self, message: ModelsLoaded) -> None:
        from tui.tabs.deployments_dialogs import DeployScreen

        self._status("")
        if not message.models:
            self.notify(
                "No registered model yet: finish a training job, then register its model "
                "(phiops model register).",
                severity="warning",
                markup=False,
            )
            return
        models = sorted(message.models, key=lambda m: m.created_at or 0, reverse=True)
        endpoint = self.selection.endpoint if self.selection else self.services.config.endpoint_name
        screen = DeployScreen(
            models,
            self.endpoints,
            endpoint,
            self._charges_warning(),
            self.services.config.deployment_name,
        )
        self.ask_then_run(screen, self._deploy)

    def _charges_warning(self) -> str:
        if self.backend_name != "azure":
            return ""
        config = self.services.config
        return (
            f"Azure charges for this deployment's {config.deployment_instance_count} × "
            f"{config.deployment_instance_type} every hour it exists, used or not, until you "
            "delete it."
        )

    def _deploy(self, request: DeployRequest) -> Operation:
        progress = self._progress_callback()

        def deploy(backend: Backend) -> str:
            info = backend.deploy(
                request.model,
                request.endpoint,
                request.deployment,
                request.traffic,
                progress=progress,
            )
            return f"Deployed {request.model.ref} to {info.name} ({split_text(info.traffic)})."

        return Operation(f"Deploying {request.model.ref} to {request.endpoint}", deploy)

    # traffic and rollback

    def action_shift_traffic(self) -> None:
        """Set the selected endpoint's traffic split, one share per deployment."""
        from tui.tabs.deployments_dialogs import TrafficScreen

        info = self._need_endpoint()
        if info is None:
            return
        if len(info.deployments) < 2:
            self.notify(
                f"{info.name} has one deployment, so it takes all the traffic; deploy another "
                "version first (d).",
                markup=False,
            )
            return
        endpoint = info.name

        def shift(plan: dict[str, int]) -> Operation:
            def call(backend: Backend) -> str:
                return (
                    f"{endpoint} traffic: {split_text(backend.set_traffic(endpoint, plan).traffic)}"
                )

            return Operation(f"Shifting traffic on {endpoint}", call)

        self.ask_then_run(TrafficScreen(info), shift)

    def action_rollback(self) -> None:
        """Restore the selected endpoint's split from before its last shift; the dialog
        says which split that is."""
        from core.bluegreen import rollback_plan
        from core.errors import PhiopsError

        info = self._need_endpoint()
        if info is None:
            return
        endpoint = info.name
        try:
            restored = rollback_plan(_serving(info.traffic), _serving(info.previous_traffic))
        except PhiopsError as error:
            self.notify(str(error), severity="warning", markup=False)
            return

        def rollback() -> Operation:
            def call(backend: Backend) -> str:
                return f"Rolled back {endpoint}: {split_text(backend.rollback(endpoint).traffic)}"

            return Operation(f"Rolling back {endpoint}", call)

        body = (
            f"Restore the split {endpoint} had before its last change?\n"
            f"Now:      {split_text(info.traffic) or 'no traffic'}\n"
            f"Restores: {split_text(restored)}"
        )
        self.confirm_then_run(f"Roll back {endpoint}", body, "Roll back", rollback)

    # deleting

    def action_delete_selected(self) -> None:
        """x: delete the selected deployment. Never the endpoint (that takes X): on an
        endpoint row it says so."""
        self.action_delete_deployment()

    def action_delete_deployment(self) -> None:
        """Delete the selected deployment, once it takes no traffic."""
        from core.bluegreen import without
        from core.errors import PhiopsError

        selection = self.selection
        if selection is None or selection.deployment is None:
            self.notify(
                "x deletes a deployment: select its row (└ name). X deletes the whole endpoint.",
                markup=False,
            )
            return
        info = self._endpoint(selection.endpoint)
        if info is None:
            return
        endpoint, name = info.name, selection.deployment
        try:
            without(info.traffic, name)
        except PhiopsError as error:
            self.notify(str(error), severity="warning", markup=False)
            return

        def delete() -> Operation:
            def call(backend: Backend) -> str:
                backend.delete_deployment(endpoint, name)
                return f"Deleted deployment {endpoint}/{name}."

            self.selection = Selection(endpoint)
            return Operation(f"Deleting {endpoint}/{name}", call)

        body = (
            f"Delete deployment {name} of {endpoint}? Its model server stops; "
            "this cannot be undone."
        )
        self.confirm_then_run(f"Delete {endpoint}/{name}", body, "Delete", delete)

    def action_delete_endpoint(self) -> None:
        """Delete the selected endpoint with all its deployments."""
        info = self._need_endpoint()
        if info is None:
            return
        endpoint = info.name

        def delete() -> Operation:
            def call(backend: Backend) -> str:
                backend.delete_endpoint(endpoint)
                return f"Deleted endpoint {endpoint}."

            self.selection = None
            return Operation(f"Deleting {endpoint}", call)

        names = ", ".join(d.name for d in info.deployments) or "no deployments"
        body = (
            f"Delete endpoint {endpoint} and its deployments ({names})? Its scoring URI and "
            "keys stop working; this cannot be undone."
        )
        self.confirm_then_run(f"Delete endpoint {endpoint}", body, "Delete endpoint", delete)

    # starting and stopping (local)

    def action_start_stop(self) -> None:
        """Start the selected local endpoint if it is stopped, else stop it (asks first)."""
        info = self._need_endpoint()
        if info is None:
            return
        if not self.stoppable:
            self.notify(
                "Azure endpoints cannot be stopped: they run, and are billed, until deleted.",
                markup=False,
            )
            return
        endpoint = info.name
        if info.state.lower() == "stopped":
            progress = self._progress_callback()

            def start(backend: Backend) -> str:
                started = _control(backend).start(endpoint, progress=progress)
                return f"Started {endpoint} at {started.scoring_uri}."

            self.run_operation(Operation(f"Starting {endpoint}", start))
            return

        def stop() -> Operation:
            def call(backend: Backend) -> str:
                _control(backend).stop(endpoint)
                return f"Stopped {endpoint}."

            return Operation(f"Stopping {endpoint}", call)

        body = (
            f"Stop endpoint {endpoint}? Its processes stop; its deployments, traffic split, "
            "keys and URI are kept, and s starts it again."
        )
        self.confirm_then_run(f"Stop endpoint {endpoint}", body, "Stop", stop)

    # copying and logs

    def action_copy_key(self) -> None:
        """Copy the selected endpoint's primary key to the clipboard (it is never shown)."""
        info = self._need_endpoint()
        if info is not None:
            self._fetch_key(info.name)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="deployments-key",
        name="Reading the key",
    )
    def _fetch_key(self, endpoint: str) -> None:
        key = self._backend().endpoint_keys(endpoint).primary
        self.post_message(self.KeyFetched(endpoint, key))

    @on(KeyFetched)
    def _key_fetched(self, message: KeyFetched) -> None:
        from core.secrets import mask

        if not message.key:
            self.notify(f"{message.endpoint} has no key.", severity="warning", markup=False)
            return
        self.app.copy_to_clipboard(message.key)
        self.notify(
            f"Copied the key of {message.endpoint} ({mask(message.key)}) to the clipboard.",
            markup=False,
        )

    def action_copy_uri(self) -> None:
        """Copy the selected endpoint's scoring URI to the clipboard."""
        info = self._need_endpoint()
        if info is None:
            return
        if not info.scoring_uri:
            self.notify(f"{info.name} has no scoring URI yet.", markup=False)
            return
        self.app.copy_to_clipboard(info.scoring_uri)
        self.notify(f"Copied {info.scoring_uri}", markup=False)

    def action_show_logs(self) -> None:
        """l: follow the selected deployment's logs (read every LOG_FOLLOW_SECONDS, the view
        at the end), or stop following. Health-probe lines are folded."""
        logs = self.query_one("#deploy-logs", DeploymentLog)
        if self._log_timer is None:
            self._log_timer = self.set_interval(LOG_FOLLOW_SECONDS, self._show_logs_for_selection)
            logs.auto_scroll = True
            logs.focus()
            logs.scroll_end(animate=False)
        else:
            self._log_timer.stop()
            self._log_timer = None
        self._show_logs_for_selection()

    @property
    def following_logs(self) -> bool:
        return self._log_timer is not None


def _serving(split: dict[str, int] | None) -> dict[str, int]:
    """The deployments of a split that take traffic (a 0% share changes nothing)."""
    return {name: share for name, share in (split or {}).items() if share}


def _control(backend: Backend) -> EndpointControl:
    """The backend's start/stop; the tab offers them only where the backend has them."""
    control = backend.endpoint_control()
    if control is None:
        raise PhiopsError(
            "Azure endpoints cannot be stopped: they run, and are billed, until deleted."
        )
    return control
