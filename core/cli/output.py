"""How commands speak: JSON for scripts, rich text for people, one sentence for errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import click

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text."
)


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, ensure_ascii=False)


def emit(data: Any, as_json: bool, human: Callable[[], None] | None = None) -> None:
    """Print `data` as JSON, or call `human` to render it for a person."""
    if as_json or human is None:
        click.echo(to_json(data))
    else:
        human()


def console():
    """A rich console on stdout, created on first use (rich costs ~40 ms to import)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def err_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def report_problems(problems: list[str]) -> None:
    """After a command did what it could: each problem as one sentence on stderr, exit 1."""
    if not problems:
        return
    from core.secrets import redact

    for problem in problems:
        sys.stderr.write(f"phiops: {redact(problem).rstrip()}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def fail(message: str, code: int = 1) -> None:
    """Print one sentence on stderr and exit; the secrets are masked on the way out."""
    from core.secrets import redact

    sys.stderr.write(f"phiops: {redact(message).rstrip()}\n")
    sys.stderr.flush()
    raise SystemExit(code)
