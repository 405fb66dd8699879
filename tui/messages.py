"""Messages the app sends to its tabs (and tabs may send each other).

Workers never touch widgets (Harlequin's rule): they post messages, and the handlers of
those messages own every change of state. The ones here cross the app/tab boundary, so
every tab may rely on them; a tab's private messages live in its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from core.backend import JobInfo


class BackendChanged(Message, bubble=False):
    """Posted to every built tab after `switch backend`: drop what you show and load again."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class JobsUpdated(Message, bubble=False):
    """The app's job poller read the job list (posted to the app, then to the Jobs tab)."""

    def __init__(self, jobs: list[JobInfo], backend: str) -> None:
        super().__init__()
        self.jobs = jobs
        self.backend = backend


class JobsUnavailable(Message, bubble=False):
    """The job list could not be read; `reason` is one sentence for the user."""

    def __init__(self, reason: str, backend: str) -> None:
        super().__init__()
        self.reason = reason
        self.backend = backend


class DataPrepared(Message):
    """New train/test files were written (the Jobs tab's submit form may use them)."""

    def __init__(self, train: str, test: str) -> None:
        super().__init__()
        self.train = train
        self.test = test
