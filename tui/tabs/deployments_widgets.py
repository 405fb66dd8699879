"""The Deployments tab's widgets: the endpoints table, the selection's details, the logs.

They only show what the tab hands them (`EndpointInfo` records, masked keys); the tab owns
the state and the workers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable, Log, Static
from textual.widgets.data_table import RowDoesNotExist

from tui.tabs.focus import SteadyFocus

if TYPE_CHECKING:
    from core.backend import DeploymentInfo, EndpointInfo

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


# A health probe's access-log line: uvicorn's `"GET /readiness HTTP/1.1" 200`, Azure's
# inference server's `GET /liveness 200`; Azure ML and the local supervisor poll these.
PROBE = re.compile(r'"?(GET|HEAD) /(readiness|liveness|health|)/? (HTTP/[\d.]+"? ?)?\d{3}\b')


def fold_probes(lines: list[str]) -> list[str]:
    """The log with each run of health-probe lines folded into one line that counts them."""
    folded: list[str] = []
    run = 0
    for line in [*lines, None]:
        if line is not None and PROBE.search(line):
            run += 1
            continue
        if run:
            folded.append(f"· {run} health probe{'s' if run > 1 else ''} (readiness/liveness)")
            run = 0
        if line is not None:
            folded.append(line)
    return folded


def state_text(state: str) -> Text:
    """A provisioning state in a colour the 16 ANSI colours have."""
    return Text(state or "?", style=STATE_STYLES.get(state.lower(), ""))


def traffic_bar(share: int, width: int = 10) -> str:
    filled = round(share * width / 100)
    return "█" * filled + "░" * (width - filled)


def split_text(traffic: dict[str, int] | None) -> str:
    """`blue 80% / green 20%`: the deployments that take traffic."""
    return " / ".join(f"{name} {pct}%" for name, pct in (traffic or {}).items() if pct)


@dataclass
class Selection:
    """The row under the cursor: an endpoint, or one of its deployments."""

    endpoint: str
    deployment: str | None = None

    @property
    def row_key(self) -> str:
        if self.deployment:
            return f"dep:{self.endpoint}/{self.deployment}"
        return f"ep:{self.endpoint}"

    @classmethod
    def of_row_key(cls, key: str) -> Selection:
        _kind, _, name = key.partition(":")
        endpoint, _, deployment = name.partition("/")
        return cls(endpoint, deployment or None)


class EndpointTable(SteadyFocus, DataTable):
    """Endpoints and, under each, its deployments; keeps the focus through a refresh."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.add_column("Endpoint / deployment", key="name")
        self.add_column("State", key="state")
        self.add_column("Traffic", key="traffic")
        self.add_column("Model", key="model")

    def show(self, endpoints: list[EndpointInfo], keep: Selection | None) -> Selection | None:
        """Fill the rows, the cursor back on `keep` if it is still there (else the first
        row); the selection the cursor is on, None when there are no endpoints."""
        self.clear()
        for info in endpoints:
            self.add_row(
                Text(info.name, style="bold"),
                state_text(info.state),
                split_text(info.traffic),
                "",
                key=Selection(info.name).row_key,
            )
            for dep in info.deployments:
                share = info.traffic.get(dep.name, 0)
                self.add_row(
                    f"  └ {dep.name}",
                    state_text(dep.state),
                    f"{share:>3}% {traffic_bar(share, 6)}",
                    dep.model,
                    key=Selection(info.name, dep.name).row_key,
                )
        if not endpoints:
            return None
        row = 0
        if keep is not None:
            try:
                row = self.get_row_index(keep.row_key)
            except RowDoesNotExist:  # gone since the last refresh
                row = 0
        self.move_cursor(row=row, animate=False)
        return self.selection_at(row)

    def selection_at(self, row: int) -> Selection | None:
        if not 0 <= row < self.row_count:
            return None
        return Selection.of_row_key(self.coordinate_to_cell_key((row, 0)).row_key.value or "")


class EndpointDetails(Static):
    """The selected endpoint (URI, masked key, split) or deployment (model, serving)."""

    def show(
        self,
        info: EndpointInfo | None,
        dep: DeploymentInfo | None,
        masked_key: str,
    ) -> None:
        self.update(details_text(info, dep, masked_key) if info is not None else "")


def details_text(info: EndpointInfo, dep: DeploymentInfo | None, masked_key: str) -> Text:
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
        row("Key", Text.assemble(masked_key or "…", ("  c copies it", "dim")))
        row("Traffic", split_text(info.traffic) or "(no deployments)")
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


class DeploymentLog(SteadyFocus, Log):
    """The selected deployment's recent logs."""
