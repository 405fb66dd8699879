"""Where phiops keeps things: the project (beside phiops.toml) and the user's data dir."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILENAME = "phiops.toml"
STORE_DIRNAME = ".phiops"


def user_data_dir() -> Path:
    """Per-user data (secrets, chat sessions). `PHIOPS_HOME` overrides it, e.g. in tests."""
    override = os.environ.get("PHIOPS_HOME")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("phiops", appauthor=False))


def find_config_path(start: Path | None = None) -> Path:
    """The project's phiops.toml: `PHIOPS_CONFIG`, else the nearest one up from `start`.

    When none exists the answer is `start/phiops.toml`, where `config init` would write it.
    """
    override = os.environ.get("PHIOPS_CONFIG")
    if override:
        return Path(override).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return here / CONFIG_FILENAME
