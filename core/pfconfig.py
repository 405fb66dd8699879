"""Prompt flow's settings for a phiops project: telemetry off, and no trace service.

`pf` reads `pf.yaml` from the working directory upward (and from `PF_HOME_DIRECTORY`, which
wins key by key). Without `trace.destination: none`, a `pf flow test` run in a project
folder starts a background trace service (waitress on 127.0.0.1:23333) that outlives it;
without `telemetry.enabled: false` it retries a Microsoft host for ever on a machine with no
network. phiops writes this file beside phiops.toml (`config init`, and on first use in a
project that lacks it), so the README's hand-run `pf` commands leave nothing behind. A
pf.yaml the user already has is kept: only the two settings it lacks are added.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from core.atomic import write_text_atomic

FILENAME = "pf.yaml"
SETTINGS = {"telemetry": {"enabled": False}, "trace": {"destination": "none"}}
TEXT = (
    "# Prompt flow's settings for this phiops project (pf reads this file from the working\n"
    "# directory upward): no telemetry, and no background trace service left by `pf flow test`.\n"
    "telemetry:\n  enabled: false\ntrace:\n  destination: none\n"
)


def ensure_project_pf_config(project_dir: Path) -> Path | None:
    """Write or complete `<project_dir>/pf.yaml`; the path when it was changed, else None.
    Never fails: a file that does not parse, or a folder that is read-only, is left alone."""
    path = Path(project_dir) / FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            write_text_atomic(path, TEXT, perms=0o644)
            return path
        return None
    except OSError:
        return None
    if "destination:" in text and "enabled:" in text:
        return None  # both set, one way or another: the user's choice (and no YAML import)
    import yaml

    with contextlib.suppress(OSError, yaml.YAMLError, TypeError, AttributeError):
        current: Any = yaml.safe_load(text) or {}
        if not isinstance(current, dict):
            return None
        changed = False
        for section, values in SETTINGS.items():
            table = current.setdefault(section, {})
            if not isinstance(table, dict):
                continue
            for key, value in values.items():
                if key not in table:
                    table[key], changed = value, True
        if changed:
            mode = path.stat().st_mode & 0o777
            write_text_atomic(path, yaml.safe_dump(current, sort_keys=False), perms=mode)
            return path
    return None
