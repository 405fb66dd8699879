"""The command palette: every action of the app, declared once, found by fuzzy search.

`COMMANDS` is the list: a title, a line of help, the tab whose action it runs (or the
app's), the action, the binding whose key is shown beside it, and when it is available.
The palette, the help screen and the tests read this one definition; `keys_of` says the key
a binding has now (after the `[tui] keymap` of phiops.toml). An empty query lists every
command (discovery), each with its key.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from tui.tabs import TABS

if TYPE_CHECKING:
    from tui.app import PhiopsApp


def _on(backend: str) -> Callable[[PhiopsApp], bool]:
    return lambda app: app.services.current == backend


def _not_on(backend: str) -> Callable[[PhiopsApp], bool]:
    return lambda app: app.services.current != backend


@dataclass(frozen=True)
class Command:
    """One palette entry."""

    title: str
    help: str
    action: str  # an action of `tab`, or of the app when `tab` is ""
    tab: str = ""
    key: str = ""  # the id of the binding whose key is shown beside the title
    when: Callable[[PhiopsApp], bool] | None = None  # offered only while this holds


COMMANDS: list[Command] = [
    # Resources
    Command(
        "Check resources again",
        "Run the resources check",
        "recheck",
        "resources",
        "resources.recheck",
    ),
    Command(
        "Copy the selected fix",
        "The fix's command, to the clipboard (OSC 52)",
        "copy_fix",
        "resources",
        "resources.copy_fix",
    ),
    # Dataset
    Command(
        "Prepare data…",
        "Write the train/test files from the sample, a file or the hub",
        "prepare",
        "dataset",
        "dataset.prepare",
    ),
    Command("Open a dataset file…", "Preview any JSONL file", "open", "dataset", "dataset.open"),
    Command(
        "Open the train file",
        "The project's training data",
        "open_train",
        "dataset",
        "dataset.train",
    ),
    Command(
        "Open the test file",
        "The project's evaluation data",
        "open_test",
        "dataset",
        "dataset.test",
    ),
    Command(
        "Validate the dataset",
        "Statistics, length histogram and every problem",
        "validate",
        "dataset",
        "dataset.validate",
    ),
    Command("Go to a row…", "Jump to a row by number", "go_to_row", "dataset", "dataset.goto"),
    Command(
        "Show the conversation",
        "The selected row by role",
        "side('conversation')",
        "dataset",
        "dataset.conv",
    ),
    Command(
        "Show the statistics",
        "Lengths and the histogram (after validating)",
        "side('stats')",
        "dataset",
        "dataset.stats",
    ),
    Command(
        "Show the problems",
        "Every invalid row; Enter jumps to it",
        "side('findings')",
        "dataset",
        "dataset.findings",
    ),
    # Jobs
    Command(
        "Submit a fine-tuning job…",
        "The trainer's main options in a form",
        "submit",
        "jobs",
        "jobs.submit",
    ),
    Command(
        "Cancel the selected job",
        "Asks first; the trainer saves a checkpoint",
        "cancel",
        "jobs",
        "jobs.cancel",
    ),
    Command(
        "Resume the selected job",
        "Continue a canceled or failed job from its checkpoint",
        "resume",
        "jobs",
        "jobs.resume",
    ),
    Command(
        "Submit the selected job again…",
        "The form filled with that job's settings",
        "resubmit",
        "jobs",
        "jobs.resubmit",
    ),
    Command(
        "Register the selected job's model",
        "Put a completed job's model in the registry, ready to deploy",
        "register",
        "jobs",
        "jobs.register",
    ),
    Command(
        "Pause or follow the job log",
        "Stop at the current place, or follow the end again",
        "toggle_follow",
        "jobs",
        "jobs.follow",
    ),
    Command("Filter the job log…", "Show only lines with a text", "filter", "jobs", "jobs.filter"),
    Command(
        "Follow the end of the job log",
        "Go to the end and follow it",
        "follow_end",
        "jobs",
        "jobs.end",
    ),
    Command("Wrap the job log", "Wrap long lines, or cut them again", "wrap", "jobs", "jobs.wrap"),
    Command("Refresh the jobs", "Read the job list now", "refresh", "jobs", "jobs.refresh"),
    # Deployments
    Command(
        "Deploy a model…",
        "Deploy a registered model version, blue/green",
        "deploy",
        "deployments",
        "deployments.deploy",
    ),
    Command(
        "Shift traffic…",
        "Change the endpoint's traffic split",
        "shift_traffic",
        "deployments",
        "deployments.traffic",
    ),
    Command(
        "Roll back",
        "Restore the split from before the last shift",
        "rollback",
        "deployments",
        "deployments.rollback",
    ),
    Command(
        "Delete the selected deployment…",
        "Asks first; refused while it takes traffic",
        "delete_selected",
        "deployments",
        "deployments.delete",
    ),
    Command(
        "Delete the endpoint…",
        "The endpoint and all its deployments; asks first",
        "delete_endpoint",
        "deployments",
        "deployments.delete_endpoint",
    ),
    Command(
        "Start or stop the local endpoint",
        "Start it after `phiops down` or a reboot; stopping asks first",
        "start_stop",
        "deployments",
        "deployments.start_stop",
        _on("local"),
    ),
    Command(
        "Copy the endpoint key",
        "To the clipboard; it is never shown",
        "copy_key",
        "deployments",
        "deployments.copy_key",
    ),
    Command(
        "Copy the scoring URI",
        "To the clipboard",
        "copy_uri",
        "deployments",
        "deployments.copy_uri",
    ),
    Command(
        "Follow the deployment logs",
        "Read them every 2 s, health probes folded; again stops",
        "show_logs",
        "deployments",
        "deployments.logs",
    ),
    Command(
        "Refresh the endpoints",
        "Read the endpoints now",
        "refresh",
        "deployments",
        "deployments.refresh",
    ),
    # Chat
    Command("Send the question", "Ask the model", "send", "chat", "chat.send"),
    Command("Stop the answer", "Keep what came so far", "stop", "chat", "chat.stop"),
    Command("New chat", "Start a new chat session", "new_chat", "chat", "chat.new"),
    Command("Load a chat…", "Open a saved session", "load_session", "chat", "chat.load"),
    Command(
        "Export the chat…",
        "To Markdown (.md) or JSON lines (.jsonl)",
        "export_session",
        "chat",
        "chat.export",
    ),
    Command(
        "Copy the last answer",
        "Its Markdown, to the clipboard",
        "copy_answer",
        "chat",
        "chat.copy",
    ),
    Command(
        "Trim the chat history",
        "Go on in a new chat that keeps only the last exchange",
        "trim_history",
        "chat",
        "chat.trim",
    ),
    Command(
        "Focus the question box",
        "Put the keyboard in the box",
        "focus_input",
        "chat",
        "chat.input",
    ),
    Command(
        "Ask two targets side by side…",
        "One question to two targets (base and fine-tuned, blue and green)",
        "compare",
        "chat",
        "chat.compare",
    ),
    Command("Serve the flow", "Start `pf flow serve` for the chat flow", "serve_flow", "chat"),
    Command(
        "Stop the flow server", "Stop the flow servers this project started", "stop_flow", "chat"
    ),
    # Evaluate
    Command(
        "Evaluate a model…",
        "Score a target on the test split, against another one",
        "evaluate",
        "evaluate",
        "evaluate.run",
    ),
    Command(
        "Stop the evaluation",
        "Keep the answers so far (`phiops eval --resume` continues)",
        "stop",
        "evaluate",
        "evaluate.stop",
    ),
    Command(
        "Set the highlighted evaluation as A",
        "The baseline the highlighted one (B) is compared with; again clears it",
        "set_baseline",
        "evaluate",
        "evaluate.baseline",
    ),
    Command(
        "Refresh the evaluations",
        "Read the evaluations now",
        "refresh",
        "evaluate",
        "evaluate.refresh",
    ),
    # The app
    Command(
        "Switch backend to azure",
        "Work on the azure backend from now on",
        "switch_backend('azure')",
        when=_not_on("azure"),
    ),
    Command(
        "Switch backend to local",
        "Work on the local backend from now on",
        "switch_backend('local')",
        when=_not_on("local"),
    ),
    *[
        Command(
            f"Show {title}",
            f"Go to the {title} tab",
            f"show_tab('{tab_id}')",
            key=f"app.tab{number}",
        )
        for number, (tab_id, title, _) in enumerate(TABS, start=1)
    ],
    Command("Help", "The keys of the focused place", "help", key="app.help"),
    Command("Quit", "Leave phiops", "quit", key="app.quit"),
]


def bindings_of(tab: str) -> list[Binding]:
    """The bindings a tab (or the app, for "") declares, importing the tab's module."""
    if not tab:
        from tui.app import PhiopsApp

        owner: object = PhiopsApp
    else:
        target = next(entry[2] for entry in TABS if entry[0] == tab)
        module, name = target.split(":")
        owner = getattr(importlib.import_module(module), name)
    return [b for b in getattr(owner, "BINDINGS", []) if isinstance(b, Binding)]


def known_binding_ids() -> set[str]:
    """Every binding id of the app, its tabs and their dialogs: what a `[tui] keymap` may
    rebind. Imports every tab's module, so it runs only when there is a keymap to check."""
    import inspect
    import pkgutil

    import tui.tabs

    # A tab's module, and the modules beside it named after it (its dialogs, chat_compare…).
    tabs = [target.split(":")[0].rsplit(".", 1)[1] for _, _, target in TABS]
    modules = ["tui.app", "tui.screens"]
    for found in pkgutil.iter_modules(tui.tabs.__path__):
        if any(found.name == tab or found.name.startswith(tab + "_") for tab in tabs):
            modules.append(f"tui.tabs.{found.name}")
    ids = set()
    for name in modules:
        module = importlib.import_module(name)
        for _, owner in inspect.getmembers(module, inspect.isclass):
            for binding in getattr(owner, "BINDINGS", []):
                if isinstance(binding, Binding) and binding.id:
                    ids.add(binding.id)
    return ids


def keys_of(app: PhiopsApp, command: Command) -> str:
    """The key of the command's binding as the footer shows it ("" when it has none)."""
    if not command.key:
        return ""
    binding = next((b for b in bindings_of(command.tab) if b.id == command.key), None)
    if binding is None:
        return ""
    rebound = app._keymap.get(command.key)
    if rebound:
        binding = replace(binding, key=rebound.split(",")[0])
    return app.get_key_display(binding)


def available(app: PhiopsApp) -> Iterator[tuple[Command, str]]:
    """The commands offered now, each with its key."""
    for command in COMMANDS:
        if command.when is None or command.when(app):
            yield command, keys_of(app, command)


class PhiopsCommands(Provider):
    """Prepare data, submit and cancel jobs, deploy, shift traffic, chat, switch backend…"""

    def _entries(self) -> list[tuple[Command, str, Callable[[], object]]]:
        app = self.app
        run = getattr(app, "run_command", None)
        if not callable(run):
            return []
        return [
            (command, key, lambda command=command: run(command))
            for command, key in available(app)  # type: ignore[arg-type]
        ]

    @staticmethod
    def _display(title: Content | str, key: str) -> Content:
        content = Content(title) if isinstance(title, str) else title
        return content.append_text(f"  {key}", "bold $text-muted") if key else content

    async def discover(self) -> Hits:
        for command, key, callback in self._entries():
            yield DiscoveryHit(
                self._display(command.title, key), callback, text=command.title, help=command.help
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command, key, callback in self._entries():
            score = max(matcher.match(command.title), matcher.match(command.help) * 0.5)
            if score > 0:
                yield Hit(
                    score,
                    self._display(matcher.highlight(command.title), key),
                    callback,
                    text=command.title,
                    help=command.help,
                )
