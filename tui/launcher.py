"""The `phiops` console script: the headless CLI, plus `phiops tui` (and bare `phiops`).

It lives here rather than in core because only the TUI layer may know the TUI exists;
nothing from Textual is imported until the app is actually opened.
"""

from __future__ import annotations

from core.cli.main import COMMANDS
from core.cli.main import main as cli_main


def main(argv: list[str] | None = None) -> int:
    COMMANDS.setdefault("tui", ("tui.command:tui", "Open the terminal app (also: `phiops` alone)."))
    return cli_main(argv)
