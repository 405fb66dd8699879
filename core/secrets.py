"""Endpoint keys: a per-user file only its owner can read, or an environment variable.

Keys never go into phiops.toml. Every display goes through `mask`, and error text through
`redact`, so a key cannot reach a log, the terminal or a traceback by accident.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets as random_secrets
import stat
from pathlib import Path

from core.atomic import write_text_atomic
from core.errors import ConfigError
from core.paths import user_data_dir

SECRETS_FILENAME = "secrets.json"
KEY_ENV_VAR = "PHIOPS_ENDPOINT_KEY"
OWNER_ONLY = 0o600


def mask(secret: str | None) -> str:
    """`abcd…wxyz`: enough to tell two keys apart, not enough to use one."""
    if not secret:
        return ""
    if len(secret) < 16:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"


def endpoint_key_name(backend: str, endpoint: str) -> str:
    return f"endpoint/{backend}/{endpoint}"


class SecretStore:
    """A JSON object of name → secret in `secrets.json`, mode 0600, in a 0700 folder."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or user_data_dir() / SECRETS_FILENAME

    def _read(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        self._tighten()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{self.path}: the secrets file is not valid JSON (line {error.lineno}); "
                "fix or remove it, phiops will not overwrite it"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: the secrets file must hold a JSON object")
        return {str(key): str(value) for key, value in data.items()}

    def _tighten(self) -> None:
        """Repair a file someone made readable by others."""
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode != OWNER_ONLY:
            os.chmod(self.path, OWNER_ONLY)

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_text_atomic(self.path, json.dumps(data, indent=2, sort_keys=True), perms=OWNER_ONLY)

    def get(self, name: str) -> str | None:
        return self._read().get(name)

    def set(self, name: str, value: str) -> None:
        data = self._read()
        data[name] = value
        self._write(data)

    def delete(self, name: str) -> bool:
        data = self._read()
        if name not in data:
            return False
        del data[name]
        self._write(data)
        return True

    def values(self) -> list[str]:
        return list(self._read().values())


def store_scope(store_path: Path) -> str:
    """A short name for one project's local store, so two projects never share a key."""
    return hashlib.sha256(str(Path(store_path).resolve()).encode()).hexdigest()[:12]


def key_pair_names(base: str) -> tuple[str, str]:
    return f"{base}/primary", f"{base}/secondary"


def stored_key_pair(store: SecretStore, base: str) -> tuple[str, str] | None:
    primary_name, secondary_name = key_pair_names(base)
    primary, secondary = store.get(primary_name), store.get(secondary_name)
    return (primary, secondary) if primary and secondary else None


def ensure_key_pair(store: SecretStore, base: str) -> tuple[str, str, bool]:
    """(primary, secondary, made): the pair kept under `base`, made now if it is missing."""
    found = stored_key_pair(store, base)
    if found is not None:
        return (*found, False)
    primary, secondary = random_secrets.token_urlsafe(32), random_secrets.token_urlsafe(32)
    primary_name, secondary_name = key_pair_names(base)
    store.set(primary_name, primary)
    store.set(secondary_name, secondary)
    return primary, secondary, True


def endpoint_key(backend: str, endpoint: str, store: SecretStore | None = None) -> str | None:
    """The key for an endpoint: `PHIOPS_ENDPOINT_KEY` wins over the secrets file."""
    from_env = os.environ.get(KEY_ENV_VAR)
    if from_env:
        return from_env
    return (store or SecretStore()).get(endpoint_key_name(backend, endpoint))


def known_secrets(store: SecretStore | None = None) -> list[str]:
    """Every secret phiops knows of, for `redact`. Never raises: redaction must not fail."""
    found = [os.environ[KEY_ENV_VAR]] if os.environ.get(KEY_ENV_VAR) else []
    with contextlib.suppress(OSError, ConfigError):
        found += (store or SecretStore()).values()
    return [secret for secret in found if secret]


def redact(text: str, secrets: list[str] | None = None) -> str:
    """Replace every known secret in `text` with its masked form."""
    for secret in secrets if secrets is not None else known_secrets():
        if len(secret) >= 8:
            text = text.replace(secret, mask(secret))
    return text
