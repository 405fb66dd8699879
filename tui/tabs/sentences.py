"""Turn an exception into the one sentence a tab shows, with any known key masked.

Workers catch everything (a worker that raises would take the app down or vanish silently)
and post this sentence; a `PhiopsError` already is one, anything else is a bug worth naming.
"""

from __future__ import annotations


def error_sentence(error: BaseException, doing: str = "") -> str:
    """`PhiopsError` → its message; anything else → what failed and why, redacted."""
    from core.errors import PhiopsError

    if isinstance(error, PhiopsError):
        return as_sentence(str(error))
    detail = str(error) or type(error).__name__
    prefix = f"{doing} failed" if doing else "Failed"
    return as_sentence(f"{prefix}: {type(error).__name__}: {detail}")


def as_sentence(text: str) -> str:
    """Capitalised, ending in a full stop, with every known key masked."""
    from core.secrets import redact

    text = redact(text.strip())
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
