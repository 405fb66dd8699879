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
from textual.widget import Widget
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
    _waiting_dialog: tuple[Modal[Any], Callable[[Any], Any]] | None = None

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
        """Show `screen`; run `then(result)` once it closes, the keyboard back where it was.

        A dialog that a worker's answer opens may come after the user moved to another tab
        (the registry read behind `m` can take seconds): it then waits for this tab to be
        shown again instead of covering the other tab, whose keys would answer it."""
        if not self.shown:
            self._waiting_dialog = (screen, then)
            tab = self.__class__.__name__.removesuffix("Tab")
            self.notify(
                f"“{screen.title_text or 'A question'}” waits in the {tab} tab.",
                title=tab,
                markup=False,
            )
            return
        open_dialog(self, screen, then)

    @property
    def shown(self) -> bool:
        """The tab is the one on screen (its pane is not switched away)."""
        return all(node.display for node in self.ancestors_with_self if isinstance(node, Widget))

    def on_show(self) -> None:
        keep_focus(self)  # hidden for a moment (around a dialog), the focus went nowhere
        self.open_waiting_dialog()

    def open_waiting_dialog(self) -> None:
        """Open the dialog that waited for this tab, now that it is shown (the app calls
        this when the tab is activated too: a Show event does not come on every switch)."""
        if self._waiting_dialog is not None and self.shown:
            waiting, self._waiting_dialog = self._waiting_dialog, None
            self.open_dialog(*waiting)

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
