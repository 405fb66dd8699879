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
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Log, Static
from textual.widgets.data_table import RowDoesNotExist

from tui.tabs.base import AppTab
from tui.tabs.focus import SteadyFocus
from tui.tabs.sentences import error_sentence

if TYPE_CHECKING:
    from core.backend import Backend, DeploymentInfo, EndpointInfo, ModelVersion
    from tui.tabs.deployments_dialogs import DeployRequest

REFRESH_SECONDS = {"local": 5.0, "azure": 30.0}  # Azure reads are slow and metered
LOG_LINES = 200
WIDE = 110  # columns from which the logs sit beside the table instead of under it

STATE_STYLES = {
    "succeeded": "green",
    "running": "green",
    "creating": "yellow",
    "updating": "yellow",
    "provisioning": "yellow",
    "starting": "yellow",
    "deleting": "magenta",
    "failed": "red",
    "stopped": "red",
    "canceled": "red",
}


def state_text(state: str) -> Text:
    """A provisioning state in a colour the 16 ANSI colours have."""
    return Text(state or "?", style=STATE_STYLES.get(state.lower(), ""))


def traffic_bar(share: int, width: int = 10) -> str:
    filled = round(share * width / 100)
    return "█" * filled + "░" * (width - filled)


class EndpointTable(SteadyFocus, DataTable):
    """The endpoints table, keeping the focus through a refresh."""


class DeploymentLog(SteadyFocus, Log):
    """The selected deployment's recent logs."""


@dataclass
class Selection:
    endpoint: str
    deployment: str | None = None


class DeploymentsTab(AppTab):
    """Endpoints and deployments of the current backend."""

    DEFAULT_CSS = (Path(__file__).with_suffix(".tcss")).read_text(encoding="utf-8")
    HELP = (
        "Endpoints and their deployments. Select a row with ↑/↓: an endpoint row shows its "
        "scoring URI, masked key and traffic split, a deployment row its model and serving "
        "settings; the logs below follow the selection. d deploys a registered model version "
        "(blue/green: a new deployment takes its share after a smoke test), t shifts traffic, "
        "b rolls back the last shift, x deletes the selected deployment (once it has no "
        "traffic) or endpoint, X the endpoint; "
        "s starts a stopped local endpoint (after `phiops down` or a reboot: the same URI, "
        "split and keys) or stops a running one; "
        "c copies the key (never shown), u the scoring URI, l reloads the logs, r refreshes."
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
        Binding("l", "show_logs", "Logs", show=False, id="deployments.logs"),
        Binding("r", "refresh", "Refresh", show=False, id="deployments.refresh"),
    ]

    # -- messages: posted by workers, handled on the UI thread ---------------------------

    class Loaded(Message, bubble=False):
        def __init__(self, endpoints: list[EndpointInfo], keys: dict[str, str]) -> None:
            super().__init__()
            self.endpoints = endpoints
            self.keys = keys  # endpoint -> masked key (or why there is none)

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
        self.states: dict[str, str] = {}  # "endpoint" or "endpoint/deployment" -> state
        self.selection: Selection | None = None
        self.busy: str = ""  # what the running operation does; "" when none runs
        self.loading = False  # an endpoints read is out
        self.log_source: tuple[str, str, str] | None = None  # (endpoint, deployment, text) shown
        self.loaded = False
        self.load_error = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="deploy-main"):
            with Vertical(id="deploy-left"):
                table = EndpointTable(id="deploy-table", cursor_type="row")
                table.add_column("Endpoint / deployment", key="name")
                table.add_column("State", key="state")
                table.add_column("Traffic", key="traffic")
                table.add_column("Model", key="model")
                yield table
                yield Static("Loading endpoints…", id="deploy-details")
            with Vertical(id="deploy-logs-pane"):
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
        self.query_one("#deploy-logs", Log).clear()
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
        self.post_message(self.Loaded(endpoints, keys))

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
        self._notify_changes(message.endpoints)
        self.endpoints = message.endpoints
        self._fill_table()
        self._show_details()
        self._show_logs_for_selection()

    def worker_failed(self, group: str, sentence: str) -> None:
        if group == "deployments-load":
            self.post_message(self.LoadFailed(sentence))
        elif group == "deployments-logs":
            self.log_source = None
            logs = self.query_one("#deploy-logs", Log)
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
        table = self.query_one("#deploy-table", DataTable)
        keep = self.selection
        table.clear()
        for info in self.endpoints:
            table.add_row(
                Text(info.name, style="bold"),
                state_text(info.state),
                _split_text(info),
                "",
                key=f"ep:{info.name}",
            )
            for dep in info.deployments:
                share = info.traffic.get(dep.name, 0)
                table.add_row(
                    f"  └ {dep.name}",
                    state_text(dep.state),
                    f"{share:>3}% {traffic_bar(share, 6)}",
                    dep.model,
                    key=f"dep:{info.name}/{dep.name}",
                )
        if not self.endpoints:
            self.selection = None
            return
        row = 0
        if keep is not None:
            key = (
                f"dep:{keep.endpoint}/{keep.deployment}"
                if keep.deployment
                else f"ep:{keep.endpoint}"
            )
            try:
                row = table.get_row_index(key)
            except RowDoesNotExist:  # gone since the last refresh
                row = 0
        table.move_cursor(row=row, animate=False)
        self._select_row(row)

    @on(DataTable.RowHighlighted, "#deploy-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._select_row(event.cursor_row)

    def _select_row(self, row: int) -> None:
        table = self.query_one("#deploy-table", DataTable)
        if not 0 <= row < table.row_count:
            return
        key = table.coordinate_to_cell_key((row, 0)).row_key.value or ""
        _kind, _, name = key.partition(":")
        endpoint, _, deployment = name.partition("/")
        selection = Selection(endpoint, deployment or None)
        changed = selection != self.selection
        self.selection = selection
        self._show_details()
        if changed:
            self._show_logs_for_selection()

    def _show_logs_for_selection(self) -> None:
        selection = self.selection
        logs = self.query_one("#deploy-logs", Log)
        title = self.query_one("#deploy-logs-title", Static)
        if selection is None:
            return
        deployment = selection.deployment or self._main_deployment(selection.endpoint)
        if deployment is None:
            title.update("Logs")
            logs.clear()
            self.log_source = None
            return
        title.update(f"Logs · {selection.endpoint}/{deployment} (l reloads)")
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
        logs = self.query_one("#deploy-logs", Log)
        logs.clear()
        logs.write_lines(message.text.splitlines() or ["(no log lines yet)"])

    def _endpoint(self, name: str) -> EndpointInfo | None:
        return next((info for info in self.endpoints if info.name == name), None)

    def _deployment(self, endpoint: str, name: str) -> DeploymentInfo | None:
        info = self._endpoint(endpoint)
        if info is None:
            return None
        return next((dep for dep in info.deployments if dep.name == name), None)

    def _show_details(self) -> None:
        details = self.query_one("#deploy-details", Static)
        if not self.endpoints:
            details.update(
                f"No endpoints on the {self.backend_name} backend yet. Press d to deploy a "
                "registered model version (train one in the Jobs tab, then register it)."
            )
            return
        selection = self.selection
        info = self._endpoint(selection.endpoint) if selection else None
        if info is None:
            details.update("")
            return
        dep = self._deployment(info.name, selection.deployment) if selection.deployment else None
        details.update(self._details_text(info, dep))

    def _details_text(self, info: EndpointInfo, dep: DeploymentInfo | None) -> Text:
        text = Text()

        def row(label: str, value: str | Text) -> None:
            text.append(f"{label:<9}", style="bold")
            text.append(value)
            text.append("\n")

        if dep is None:
            row(
                "Endpoint",
                Text.assemble(
                    f"{info.name}  ",
                    state_text(info.state),
                    f"  ({info.backend}, {info.auth_mode} auth)",
                ),
            )
            if info.backend == "local" and info.state.lower() == "stopped":
                row("", Text("stopped (phiops down or a reboot): s starts it", style="yellow"))
            row("URI", info.scoring_uri or "(not ready)")
            row(
                "Key", Text.assemble(self.masked_keys.get(info.name, "…"), ("  c copies it", "dim"))
            )
            row("Traffic", _split_text(info) or "(no deployments)")
        else:
            share = info.traffic.get(dep.name, 0)
            row("Deploy.", Text.assemble(f"{dep.name} on {info.name}  ", state_text(dep.state)))
            row("Model", dep.model or "?")
            settings = dep.request_settings
            row(
                "Serving",
                f"{dep.instance_type or 'local process'} × {dep.instance_count} · "
                f"{settings.max_concurrent_requests_per_instance} at once · "
                f"timeout {settings.request_timeout_ms // 1000} s",
            )
            others = [f"{n} {p}%" for n, p in info.traffic.items() if p and n != dep.name]
            rest = f"  (the rest: {', '.join(others)})" if others else ""
            row("Traffic", f"{share}% {traffic_bar(share)}{rest}")
        text.rstrip()
        return text

    # -- operations -------------------------------------------------------------------

    def _start(self, what: str) -> bool:
        """Claim the tab for one operation at a time; False (and a toast) if one runs."""
        if self.busy:
            self.notify(f"Wait: {self.busy} is still running.", severity="warning", markup=False)
            return False
        self.busy = what
        self._status(f"{what}…")
        return True

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

    def _run_operation(self, what: str, call: Callable[[Backend], str]) -> None:
        """Run `call(backend)` in a worker named `what`; it returns the summary to show."""

        def run() -> None:
            self.post_message(self.OperationDone(call(self._backend())))

        self.run_worker(
            run, name=what, group="deployments-op", thread=True, exclusive=True, exit_on_error=False
        )

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
        if self.busy:
            self._start("deploy")  # says what is running
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
        self.open_dialog(screen, self._deploy_chosen)

    def _charges_warning(self) -> str:
        if self.backend_name != "azure":
            return ""
        config = self.services.config
        return (
            f"Azure charges for this deployment's {config.deployment_instance_count} × "
            f"{config.deployment_instance_type} every hour it exists, used or not, until you "
            "delete it."
        )

    def _deploy_chosen(self, request: DeployRequest | None) -> None:
        if request is None or not self._start(
            f"Deploying {request.model.ref} to {request.endpoint}"
        ):
            return
        post = self.post_message
        progress_message = self.OperationProgress

        def deploy(backend: Backend) -> str:
            info = backend.deploy(
                request.model,
                request.endpoint,
                request.deployment,
                request.traffic,
                progress=lambda text: post(progress_message(text)),
            )
            split = ", ".join(f"{name} {pct}%" for name, pct in info.traffic.items())
            return f"Deployed {request.model.ref} to {info.name} ({split})."

        self._run_operation("Deploying", deploy)

    # traffic and rollback

    def action_shift_traffic(self) -> None:
        """Give one deployment of the selected endpoint a share of the traffic."""
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
        self.open_dialog(TrafficScreen(info), lambda plan: self._traffic_chosen(info.name, plan))

    def _traffic_chosen(self, endpoint: str, plan: dict[str, int] | None) -> None:
        if plan is None or not self._start(f"Shifting traffic on {endpoint}"):
            return

        def shift(backend: Backend) -> str:
            info = backend.set_traffic(endpoint, plan)
            return f"{endpoint} traffic: " + ", ".join(f"{n} {p}%" for n, p in info.traffic.items())

        self._run_operation("Shifting traffic", shift)

    def action_rollback(self) -> None:
        """Restore the selected endpoint's split from before its last shift."""
        from tui.screens import ConfirmScreen

        info = self._need_endpoint()
        if info is None:
            return
        body = (
            f"Restore the traffic split {info.name} had before its last change?\n"
            f"Now: {_split_text(info) or 'no traffic'}."
        )
        screen = ConfirmScreen(f"Roll back {info.name}", body, yes="Roll back")
        self.open_dialog(screen, lambda yes: self._rollback_confirmed(info.name, yes))

    def _rollback_confirmed(self, endpoint: str, yes: bool | None) -> None:
        if not yes or not self._start(f"Rolling back {endpoint}"):
            return

        def rollback(backend: Backend) -> str:
            info = backend.rollback(endpoint)
            return f"Rolled back {endpoint}: " + ", ".join(
                f"{n} {p}%" for n, p in info.traffic.items()
            )

        self._run_operation("Rolling back", rollback)

    # deleting

    def action_delete_selected(self) -> None:
        """Delete what the cursor is on: a deployment row or an endpoint row."""
        if self.selection is not None and self.selection.deployment is None:
            self.action_delete_endpoint()
        else:
            self.action_delete_deployment()

    def action_delete_deployment(self) -> None:
        """Delete the selected deployment, once it takes no traffic."""
        from core.bluegreen import without
        from core.errors import PhiopsError
        from tui.screens import ConfirmScreen

        selection = self.selection
        if selection is None or selection.deployment is None:
            self.notify("Select a deployment row (└ name) to delete it.", markup=False)
            return
        info = self._endpoint(selection.endpoint)
        if info is None:
            return
        name = selection.deployment
        try:
            without(info.traffic, name)
        except PhiopsError as error:
            self.notify(str(error), severity="warning", markup=False)
            return
        body = (
            f"Delete deployment {name} of {info.name}? Its model server stops; "
            "this cannot be undone."
        )
        screen = ConfirmScreen(f"Delete {info.name}/{name}", body, yes="Delete")
        self.open_dialog(
            screen, lambda yes: self._delete_deployment_confirmed(info.name, name, yes)
        )

    def _delete_deployment_confirmed(
        self, endpoint: str, deployment: str, yes: bool | None
    ) -> None:
        if not yes or not self._start(f"Deleting {endpoint}/{deployment}"):
            return

        def delete(backend: Backend) -> str:
            backend.delete_deployment(endpoint, deployment)
            return f"Deleted deployment {endpoint}/{deployment}."

        self.selection = Selection(endpoint)
        self._run_operation("Deleting the deployment", delete)

    def action_delete_endpoint(self) -> None:
        """Delete the selected endpoint with all its deployments."""
        from tui.screens import ConfirmScreen

        info = self._need_endpoint()
        if info is None:
            return
        names = ", ".join(d.name for d in info.deployments) or "no deployments"
        body = (
            f"Delete endpoint {info.name} and its deployments ({names})? Its scoring URI and "
            "keys stop working; this cannot be undone."
        )
        screen = ConfirmScreen(f"Delete endpoint {info.name}", body, yes="Delete endpoint")
        self.open_dialog(screen, lambda yes: self._delete_endpoint_confirmed(info.name, yes))

    def _delete_endpoint_confirmed(self, endpoint: str, yes: bool | None) -> None:
        if not yes or not self._start(f"Deleting {endpoint}"):
            return

        def delete(backend: Backend) -> str:
            backend.delete_endpoint(endpoint)
            return f"Deleted endpoint {endpoint}."

        self.selection = None
        self._run_operation("Deleting the endpoint", delete)

    # starting and stopping (local)

    def action_start_stop(self) -> None:
        """Start the selected local endpoint if it is stopped, else stop it (asks first)."""
        from tui.screens import ConfirmScreen

        info = self._need_endpoint()
        if info is None:
            return
        if info.backend != "local":
            self.notify(
                "Azure endpoints cannot be stopped: they run, and are billed, until deleted.",
                markup=False,
            )
            return
        if info.state.lower() == "stopped":
            self._start_stop_confirmed(info.name, "start", True)
            return
        body = (
            f"Stop endpoint {info.name}? Its processes stop; its deployments, traffic split, "
            "keys and URI are kept, and s starts it again."
        )
        screen = ConfirmScreen(f"Stop endpoint {info.name}", body, yes="Stop")
        self.open_dialog(screen, lambda yes: self._start_stop_confirmed(info.name, "stop", yes))

    def _start_stop_confirmed(self, endpoint: str, verb: str, yes: bool | None) -> None:
        doing = {"start": "Starting", "stop": "Stopping"}[verb]
        if not yes or not self._start(f"{doing} {endpoint}"):
            return
        post = self.post_message
        progress_message = self.OperationProgress

        def start_or_stop(backend: Backend) -> str:
            if verb == "start":
                info = backend.start_endpoint(  # type: ignore[attr-defined]  # local only
                    endpoint, progress=lambda text: post(progress_message(text))
                )
                return f"Started {endpoint} at {info.scoring_uri}."
            backend.stop_endpoint(endpoint)  # type: ignore[attr-defined]
            return f"Stopped {endpoint}."

        self._run_operation(f"{doing} the endpoint", start_or_stop)

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
        """Reload the selected deployment's recent logs and focus them."""
        self._show_logs_for_selection()
        self.query_one("#deploy-logs", Log).focus()


def _split_text(info: EndpointInfo) -> str:
    return " / ".join(f"{name} {pct}%" for name, pct in info.traffic.items() if pct) or ""
