"""`AppTab`: what every tab of the app is built on.

A tab is a widget built with no arguments, mounted in its `TabPane` the first time it is
shown. The base gives each the same footing:

- `services` (typed) and `backend_name`, the one notion of the current backend
  (`Services.current`);
- `focus_default()`: where the keyboard goes when the tab is shown, and where it comes back
  to when it went nowhere (`tui.tabs.focus.keep_focus`, on show and on a descendant's blur);
  the pane holding the focus (a container with the class `pane`) gets the class `-focused`;
- `open_dialog(screen, then)`: push a `tui.screens.Modal` and put the keyboard back where
  it was once it closes;
- `worker_failed(group, sentence)`: the one handler for a worker that raised. Workers
  (`@work(thread=True, exclusive=True, exit_on_error=False)`) let an unexpected error go;
  `Worker.StateChanged` brings it here as one sentence (`error_sentence`, keys redacted,
  the worker's `name` saying what failed). A tab overrides it to undo what waited for that
  group's result; by default the sentence is a red notification — never silence;
- `HELP`: what the help screen (F1) says about the tab.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual.containers import Vertical
from textual.worker import Worker, WorkerState

from tui.tabs.focus import keep_focus, open_dialog
from tui.tabs.sentences import error_sentence

if TYPE_CHECKING:
    from tui.screens import Modal
    from tui.services import BackendName, HasServices, Services

ResultT = TypeVar("ResultT")


class AppTab(Vertical):
    """A tab of the app: services, the current backend, focus and dialogs. (Not named
    `Tab`: CSS type selectors match base classes, and Textual's own `Tab` rules would.)"""

    HELP: ClassVar[str] = ""

    @property
    def services(self) -> Services:
        return cast("HasServices", self.app).services

    @property
    def backend_name(self) -> BackendName:
        return self.services.current

    def focus_default(self) -> None:
        """Focus the tab's main widget (the first focusable one unless a tab says)."""
        for child in self.query("*"):
            if child.focusable:
                child.focus()
                return

    def open_dialog(self, screen: Modal[ResultT], then: Callable[[ResultT], Any]) -> None:
        """Show `screen`; run `then(result)` once it closes, the keyboard back where it was."""
        open_dialog(self, screen, then)

    def on_show(self) -> None:
        keep_focus(self)  # hidden for a moment (around a dialog), the focus went nowhere

    def on_descendant_blur(self) -> None:
        keep_focus(self)
        self.call_after_refresh(self._mark_panes)

    def on_descendant_focus(self) -> None:
        self._mark_panes()

    def _mark_panes(self) -> None:
        """The pane (a container with the class `pane`) holding the focus gets `-focused`,
        so the tab's CSS can mark it: the keys go to what is marked."""
        focused = self.app.focused
        for pane in self.query(".pane"):
            pane.set_class(focused is not None and pane in focused.ancestors, "-focused")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR or event.worker.error is None:
            return
        worker = event.worker
        doing = "" if worker.name.startswith("_") else worker.name  # a method's own name
        self.worker_failed(worker.group, error_sentence(worker.error, doing))

    def worker_failed(self, group: str, sentence: str) -> None:
        """A worker of `group` raised; `sentence` says what failed and why."""
        self.notify(sentence, severity="error", timeout=10, markup=False)
