"""Secrets for a child process on an inherited pipe: never in argv, the environment or a file.

`ps` shows a process's argv to everyone, and `/proc/PID/environ` keeps its initial
environment for its whole life: removing a variable afterwards (`os.environ.pop`) does
not clear that block. A pipe is read once and is then empty. The parent writes one JSON
object into a pipe, closes its end and hands the read end to the child (`pass_fds`, and
`--secrets-fd N` on the child's command line); the child reads it to the end and closes it.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

SECRETS_FD_FLAG = "--secrets-fd"
_PIPE_ROOM = 60_000  # a pipe holds at least 64 KiB: written whole before the child starts


def secret_pipe(payload: dict[str, Any]) -> int:
    """A pipe holding `payload` as JSON; the read end (inheritable) for the child.

    The caller passes it in `pass_fds` and closes it once the child has started.
    """
    data = json.dumps(payload).encode("utf-8")
    if len(data) > _PIPE_ROOM:
        raise ValueError("too many secrets for one pipe")
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    os.set_inheritable(read_end, True)
    return read_end


def read_secret_pipe(fd: int) -> dict[str, Any]:
    """The JSON object the parent wrote to `fd`, which is then closed; {} if unreadable."""
    chunks = []
    try:
        with os.fdopen(fd, "rb", closefd=True) as handle:
            chunks.append(handle.read())
    except OSError:
        with contextlib.suppress(OSError):
            os.close(fd)
        return {}
    try:
        data = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
