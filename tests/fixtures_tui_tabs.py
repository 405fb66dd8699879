"""A small app that mounts one tab, for testing a tab on its own against a real backend.

The tab reaches `app.services` exactly as it does in the full app; `wait_for` polls a
condition while letting the app's workers and messages run, so tests never sleep blindly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer

from tests.helpers import HANG
from tui.app import STYLESHEETS
from tui.services import Services


class TabHarness(App):
    """One tab and a footer, styled as in the app; records every message the tab handles."""

    CSS_PATH: ClassVar = STYLESHEETS

    def __init__(self, tab: type[Widget], services: Services) -> None:
        super().__init__()
        self.tab_class = tab
        self.services = services
        self.handled: list[Message] = []

    def compose(self) -> ComposeResult:
        yield self.tab_class()
        yield Footer()

    @property
    def tab(self) -> Widget:
        return self.query_one(self.tab_class)


def services_for(project: Path) -> Services:
    """The services the app would build in `project` (its phiops.toml, if any)."""
    from core.config import load_config

    return Services(load_config(project / "phiops.toml"))


async def wait_for(pilot, condition: Callable[[], object], timeout: float = HANG) -> None:
    """Pause the pilot until `condition()` is truthy; fail with the condition's source."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            import inspect

            raise AssertionError(f"timed out waiting for: {inspect.getsource(condition).strip()}")
        await pilot.pause(0.05)
        await asyncio.sleep(0)


def screen_text(app: App) -> str:
    """What the screen shows, as plain text lines (to assert nothing is cut off)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
