"""Counts in sentences: "1 row", "2 rows", thousands separated."""

from __future__ import annotations

from core.text import plural


def test_plural() -> None:
    assert plural(1, "row") == "1 row"
    assert plural(0, "row") == "0 rows"
    assert plural(1204, "usable row") == "1,204 usable rows"
    assert plural(1, "usable row") == "1 usable row"
    assert plural(2, "process") == "2 processes"
    assert plural(3, "entry") == "3 entries"
