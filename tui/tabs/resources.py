"""The Resources tab: is everything in place to train and deploy, and if not, how to fix it.

It shows the backend's own check (`backend.resources()`, the same findings as `phiops
resources check`): on Azure the sign-in, workspace and its linked resources, compute,
quota, the managed identity and its three roles; locally the store, the MLflow database,
disk, Python, torch, GPU and the data files. The check runs in a worker (on Azure it
signs in and makes a dozen calls); the list is keyboard-driven and the selected finding's
full detail and fix are shown below it, ready to copy.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.messages import BackendChanged
from tui.tabs.base import AppTab

if TYPE_CHECKING:
    from core.backend import Finding

MARKS = {"ok": ("✓", "green"), "missing": ("✗", "red"), "wrong": ("✗", "red"), "unknown": ("?", "")}


def mark(finding: Finding) -> tuple[str, str]:
    """The sign and colour of a finding; a problem with something optional is yellow."""
    sign, colour = MARKS.get(str(finding.state), ("?", ""))
    if sign == "✗" and not finding.required:
        colour = "yellow"
    return sign, colour


def summary(findings: list[Finding]) -> str:
    """E.g. `6 ok · 1 to fix · 1 optional missing`."""
    ok = sum(1 for finding in findings if str(finding.state) == "ok")
    required = sum(1 for f in findings if str(f.state) != "ok" and f.required)
    optional = len(findings) - ok - required
    parts = [f"{ok} ok"]
    if required:
        parts.append(f"{required} to fix")
    if optional:
        parts.append(f"{optional} optional not ok")
    return " · ".join(parts)


class ResourcesTab(AppTab):
    """Backend and credential status, and each resource ✓ or ✗ with how to fix it."""

    HELP = """
The backend's resources check: each line is ✓ (in place), ✗ (missing or wrong; yellow
when optional) or ? (not checked). Select a line to read its detail and its fix; `y`
copies the fix (an `az` or `phiops` command) to the clipboard, also over SSH.
The same check is `phiops resources check` in a shell.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "recheck", "Recheck", id="resources.recheck"),
        Binding("y", "copy_fix", "Copy fix", id="resources.copy_fix"),
    ]

    class Checked(Message, bubble=False):
        def __init__(self, findings: list[Finding], seconds: float) -> None:
            super().__init__()
            self.findings, self.seconds = findings, seconds

    class CheckFailed(Message, bubble=False):
        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(self) -> None:
        super().__init__(id="resources-tab")
        self.findings: list[Finding] = []
        self.checking = False

    def compose(self) -> ComposeResult:
        yield Static("Checking…", id="resources-summary", markup=False)
        yield OptionList(id="resources-list")
        with VerticalScroll(id="resources-detail-box"):
            yield Static("", id="resources-detail")

    def on_mount(self) -> None:
        self.action_recheck()

    def focus_default(self) -> None:
        self.query_one(OptionList).focus()

    # -- checking ---------------------------------------------------------------------------

    def action_recheck(self) -> None:
        if self.checking:
            return
        self.checking = True
        self.query_one("#resources-summary", Static).update(
            f"Checking the {self.backend_name} backend…"
        )
        self._check()

    @work(thread=True, exclusive=True, group="resources", exit_on_error=False, name="The check")
    def _check(self) -> None:
        started = time.monotonic()
        findings = self.services.backend().resources()
        self.post_message(self.Checked(findings, time.monotonic() - started))

    def worker_failed(self, group: str, sentence: str) -> None:
        self.post_message(self.CheckFailed(sentence))

    def on_resources_tab_checked(self, message: Checked) -> None:
        self.checking = False
        self.findings = message.findings
        backend = self.backend_name
        slow = f", {message.seconds:.0f} s" if message.seconds >= 2 else ""
        self.query_one("#resources-summary", Static).update(
            f"Backend {backend}: {summary(message.findings)}  (r rechecks{slow})"
        )
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options([Option(self._prompt(finding)) for finding in message.findings])
        if message.findings:
            options.highlighted = min(highlighted or 0, len(message.findings) - 1)
            self._show(options.highlighted)

    def on_resources_tab_check_failed(self, message: CheckFailed) -> None:
        self.checking = False
        self.findings = []
        self.query_one(OptionList).clear_options()
        self.query_one("#resources-summary", Static).update(
            Text("✗ ", style="bold red") + Text(message.reason)
        )
        self.query_one("#resources-detail", Static).update("Press r to check again.")

    def on_backend_changed(self, message: BackendChanged) -> None:
        self.action_recheck()

    # -- showing ----------------------------------------------------------------------------

    @staticmethod
    def _prompt(finding: Finding) -> Text:
        sign, colour = mark(finding)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{sign} ", style=f"bold {colour}".strip())
        text.append(f"{finding.name:<20} ", style="bold")
        text.append(finding.detail.splitlines()[0] if finding.detail else str(finding.state))
        return text

    @on(OptionList.OptionHighlighted, "#resources-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show(event.option_index)

    def _show(self, index: int | None) -> None:
        if index is None or not 0 <= index < len(self.findings):
            return
        finding = self.findings[index]
        sign, colour = mark(finding)
        text = Text()
        text.append(f"{sign} {finding.name}", style=f"bold {colour}".strip())
        text.append(f"  ({finding.state}{'' if finding.required else ', optional'})\n")
        if finding.detail:
            text.append(finding.detail + "\n")
        if finding.fix:
            text.append("Fix: ", style="bold")
            text.append(finding.fix + "  (y copies it)")
        self.query_one("#resources-detail", Static).update(text)

    def action_copy_fix(self) -> None:
        index = self.query_one(OptionList).highlighted
        if index is None or not 0 <= index < len(self.findings):
            return
        fix = self.findings[index].fix
        if not fix:
            self.notify("This line has no fix to copy.")
            return
        command = fix.split("`")[1] if fix.count("`") >= 2 else fix
        self.app.copy_to_clipboard(command)
        self.notify(f"Copied: {command}")
