"""What the TUI's tabs share: the project's config and one backend, built off the UI thread.

Tabs reach it as `self.services` (`tui.tabs.base.AppTab`). `current` is the one answer to
"which backend is the app on" (`phiops tui --backend`, a switch, else the config's);
`backend()` may touch the disk (and, on Azure, sign in), so call it only from a worker; the
config is loaded once at start-up and is cheap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, cast

if TYPE_CHECKING:
    from core.backend import Backend
    from core.config import Config

BackendName = Literal["local", "azure"]


@dataclass
class Services:
    config: Config
    backend_name: BackendName | None = None  # `--backend` or a switch; None: the config's
    _backend: Backend | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def current(self) -> BackendName:
        """The backend the app works on now."""
        return self.backend_name or cast(BackendName, self.config.backend)

    def backend(self) -> Backend:
        """The backend the app works on; built once, from a worker thread."""
        with self._lock:
            if self._backend is None:
                from core.backends import get_backend

                self._backend = get_backend(self.config, self.current)
            return self._backend

    def switch_backend(self, name: BackendName) -> None:
        """Use another backend from now on (the next `backend()` call builds it)."""
        with self._lock:
            self.backend_name = name
            self._backend = None


class HasServices(Protocol):
    """An app the tabs can live in: `PhiopsApp`, or a test harness mounting one tab."""

    services: Services
