"""Words for counts, the same everywhere phiops speaks: "1 row", "2 rows", "1,204 rows"."""

from __future__ import annotations

IRREGULAR = {"entry": "entries", "was": "were", "is": "are", "this": "these"}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural unless the count is one; thousands separated.

    Only the last word of `noun` changes ("1 usable row", "3 usable rows")."""
    head, _, last = noun.rpartition(" ")
    if count != 1:
        last = (
            plural_form
            or IRREGULAR.get(last)
            or (last + ("es" if last.endswith(("s", "sh", "ch", "x")) else "s"))
        )
    return f"{count:,} {head + ' ' if head else ''}{last}"
