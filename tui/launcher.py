"""The `phiops` console script: the headless CLI, plus `phiops tui` (and bare `phiops`).

It lives here rather than in core because only the TUI layer may know the TUI exists;
nothing from Textual is imported until the app is actually opened.
"""

from __future__ import annotations

import gc

from core.cli.main import COMMANDS
from core.cli.main import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """The console script's entry; the process ends when it returns.

    The objects left are frozen out of the garbage collector first: the interpreter's
    shutdown would otherwise traverse all of them (with MLflow, SQLAlchemy and nltk
    loaded, ~0.5 s after an evaluation has printed its result). Nothing is skipped: exit
    handlers run and files are closed as before."""
    COMMANDS.setdefault("tui", ("tui.command:tui", "Open the terminal app (also: `phiops` alone)."))
    try:
        return cli_main(argv)
    finally:
        gc.freeze()
