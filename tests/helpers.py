"""Small helpers tests share: run the real `phiops` console script in a subprocess, and
list what a folder's modules import."""

from __future__ import annotations

import ast
import os
import re
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


ESCAPES = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][0-9A-Za-z]"
)


def run_phiops_in_terminal(
    *args: str, cwd: Path | None = None, columns: int = 80, timeout: float = HANG
) -> tuple[int, str]:
    """Run `phiops ARGS` with stdout and stderr on a terminal `columns` wide, as at a prompt.

    Returns the exit code and everything drawn, escape sequences removed (a live display's
    redraws stay in, one after another)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "24"}
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    process = subprocess.Popen(
        [str(BIN / "phiops"), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
        start_new_session=True,
    )
    os.close(child)
    drawn, deadline = bytearray(), time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"phiops {' '.join(args)} hung; drew: {bytes(drawn[-2000:])}")
            ready, _, _ = select.select([main], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    text = ESCAPES.sub("", drawn.decode("utf-8", errors="replace"))
    return code, text.replace("\r\n", "\n")
