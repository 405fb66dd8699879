"""Checkpoints that make every job resumable: every N steps, at each epoch, and on a signal.

SIGINT/SIGTERM (a cancel, or Azure ML pre-empting a low-priority node) must not lose the
run. While the training loop runs, a signal only raises a flag; the callback below turns
it into "save a checkpoint and stop" at the next optimizer-step boundary, where the model,
optimizer, scheduler and RNG states are consistent. Outside the loop (loading, saving the
final model) a signal interrupts at once: there is nothing new to save, and resuming
continues from the last checkpoint.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

INTERRUPTED_EXIT = 75  # EX_TEMPFAIL: stopped on a signal after saving; run again with --resume


class Interrupted(Exception):
    """The job was stopped by a signal; its latest checkpoint is safe to resume from."""


class GracefulStop:
    """SIGINT/SIGTERM handlers: a flag during training steps, an exception elsewhere.

    A repeat within `DUPLICATE_WINDOW` seconds is the same stop delivered twice (to our
    process group and again by torchrun, which passes signals on to its workers), not a
    user insisting, so it is ignored.
    """

    DUPLICATE_WINDOW = 2.0

    def __init__(self) -> None:
        self.requested = False
        self.deferred = False
        self.signal_name = ""
        self._first_signal_at = 0.0

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def ignore(self) -> None:
        """From now on signals are ignored: the job is already stopping and reporting why."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame) -> None:
        self.signal_name = signal.Signals(signum).name
        now = time.monotonic()
        if self.requested and now - self._first_signal_at < self.DUPLICATE_WINDOW:
            return
        if self.deferred and not self.requested:
            self.requested = True
            self._first_signal_at = now
            print(
                f"{self.signal_name} received: saving a checkpoint at the end of this step "
                "(send it again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            return
        self.requested = True
        raise Interrupted(f"stopped by {self.signal_name}")


def latest_checkpoint(folder: Path) -> Path | None:
    """The `checkpoint-N` sub-folder with the highest N that holds a complete trainer state."""
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None
