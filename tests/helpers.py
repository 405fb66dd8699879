"""Small helpers tests share: run the real `phiops` console script in a subprocess, and
list what a folder's modules import."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent

HANG = float(os.environ.get("PHIOPS_TEST_HANG_SECONDS", "1200"))
"""How long a test waits for something that should happen before calling it a hang.

Not a budget: a loaded 2-core CI machine may take many times longer than an idle one, and
budgets are measured by benchmarks/, never asserted by tests. A wait that ends early for the
right reason (an event, a process exiting) costs nothing; this only stops a real hang."""


def run_phiops(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = HANG
) -> subprocess.CompletedProcess[str]:
    """Run `phiops ARGS` as a user would, with the test's environment plus `env`."""
    return subprocess.run(
        [str(BIN / "phiops"), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def top_level_imports(folder: Path) -> list[tuple[Path, str]]:
    """(file, top-level package) for every import in the folder's Python files."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [(path, name.split(".")[0]) for name in names]
    return found
