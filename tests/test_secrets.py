"""Endpoint keys: owner-only file, masked display, redacted errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.secrets import SecretStore, mask, redact

KEY = "k3yABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def test_secrets_file_is_owner_only(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "sub" / "secrets.json")
    store.set("endpoint/local/ep", KEY)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert store.get("endpoint/local/ep") == KEY


def test_loose_permissions_are_repaired(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets.json")
    store.set("a", KEY)
    store.path.chmod(0o644)
    assert store.get("a") == KEY
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_corrupt_secrets_file_is_reported_and_kept(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets.json")
    store.path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        store.set("a", KEY)
    assert store.path.read_text() == "{not json"


def test_mask_and_redact() -> None:
    assert mask(KEY) == "k3yA…6789"
    assert mask("short") == "…"
    assert mask(None) == ""
    message = f"POST failed with Authorization: Bearer {KEY}"
    assert KEY not in redact(message, [KEY])
    assert "k3yA…6789" in redact(message, [KEY])
