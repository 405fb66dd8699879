"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], mode: str = "w", *, perms: int | None = None
) -> Iterator[IO]:
    """Yield a temp file beside `path`; on success fsync and rename it over `path`.

    On any exception the temp file is removed and `path` is left exactly as it was.
    `perms` sets the mode before any byte is written, so a secret is never world-readable.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if perms is not None:
            os.fchmod(fd, perms)
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str, *, perms: int | None = None) -> None:
    with atomic_writer(path, "w", perms=perms) as handle:
        handle.write(text)


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, *, perms: int | None = None
) -> None:
    with atomic_writer(path, "wb", perms=perms) as handle:
        handle.write(data)
