"""Keeping the keyboard in a tab: every key of a tab is dead once the focus leaves it.

Textual blurs a widget it lays out, for one frame, with no room: the screen under a dialog
when a layout refresh happens there, or a tab while its content changes height. The blur
sends the focus to the previous focusable widget (the tab strip) or nowhere, and when a
dialog closes the screen focuses its first focusable widget. Found driving `phiops tui` in
tmux: after a deploy or a traffic shift, `c` or `d` did nothing until Tab was pressed.

- `SteadyFocus`: a mixin for a tab's focusable widgets that keeps the focus through such a
  frame (it still lets go when the widget is really hidden: its tab switched away);
- `open_dialog`: push a dialog and put the focus back where it was once it closes;
- `keep_focus`: for a tab's `on_descendant_blur` / `on_show`: a focus that went nowhere
  comes back to the tab's `focus_default()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from textual import events
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widget import Widget

# After a dialog closes: try at once (after the next refresh), then at these delays. No
# zero-second timer: Textual's timer divides by its interval when the loop runs late.
RESTORE_AFTER_S = (0.1, 0.3, 0.6, 1.0)


class SteadyFocus:
    """Mix into a focusable widget (before the widget class) to keep its focus when it is
    hidden while it and every ancestor are still displayed."""

    def on_hide(self, event: events.Hide) -> None:
        widget: Widget = self  # type: ignore[assignment]
        if all(node.display for node in widget.ancestors_with_self if isinstance(node, Widget)):
            event.prevent_default()  # a layout glitch, not a hidden tab: skip Widget's blur


def open_dialog(owner: Widget, screen: ModalScreen, then: Callable[[Any], object]) -> None:
    """Push `screen`; once it closes run `then(result)` and put the keyboard back where it
    was, trying a few times in the first second until it holds."""
    before = owner.app.focused

    def closed(result: Any) -> None:
        then(result)
        owner.call_after_refresh(_restore_focus, owner, before)
        for delay in RESTORE_AFTER_S:
            owner.set_timer(delay, lambda: _restore_focus(owner, before))

    owner.app.push_screen(screen, closed)


def _restore_focus(owner: Widget, before: Widget | None) -> None:
    if not owner.is_attached or owner.screen is not owner.app.screen:
        return  # gone, or another dialog is open
    focused = owner.app.focused
    if focused is not None and owner in focused.ancestors_with_self:
        return  # still (or again) in the tab
    if not owner.is_on_screen:
        return  # hidden for now (another tab, or a frame with no room)
    if before is not None and before.is_attached and before.focusable:
        before.focus()
    else:
        _refocus(owner, force=True)


def keep_focus(owner: Widget) -> None:
    """When the focus went nowhere, take it back (after the layout settles)."""
    owner.call_after_refresh(_refocus, owner)


def _refocus(owner: Widget, force: bool = False) -> None:
    focus = getattr(owner, "focus_default", None)
    if not (owner.is_attached and callable(focus)):
        return
    if owner.screen is not owner.app.screen or not owner.is_on_screen:
        return
    if force or owner.app.focused is None:
        with contextlib.suppress(NoMatches):  # a tab being torn down has no children left
            focus()
