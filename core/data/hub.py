"""Decide quickly whether the Hugging Face hub can be reached, and if not, stay offline.

Unreachable, the hub libraries retry for ~25 s before giving up. One TCP connect with a
short timeout tells the same in a moment; then the libraries are switched to their local
cache only, so a dataset or tokenizer downloaded earlier still loads, and anything else
fails at once with a message the caller turns into one sentence.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from urllib.parse import urlparse

TIMEOUT = 3.0  # seconds to decide that the hub cannot be reached
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def _true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_reachable(timeout: float = TIMEOUT) -> bool:
    """Whether the hub answers a TCP connect; False at once when offline mode is on."""
    if any(_true(name) for name in OFFLINE_VARIABLES):
        return False
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return True  # a proxy decides; let the library try through it
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout):
            return True
    except OSError:
        return False


def looks_like_hub_id(value: str) -> bool:
    """`owner/name` (or a bare name) rather than a path: what the trainer would download."""
    return bool(value) and not value.startswith((".", "/", "~")) and value.count("/") <= 1


def model_cached(repo_id: str) -> bool:
    """Whether a hub model's config is in the local Hugging Face cache (so it loads offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the library rejects is not in the cache either
        return False
    return isinstance(found, str)


@contextlib.contextmanager
def hub_offline(offline: bool) -> Iterator[None]:
    """While inside, the hub libraries use only their local cache (if `offline`).

    They read their offline flag when imported; setting the module attributes works even
    after that, and is undone on the way out.
    """
    import huggingface_hub.constants

    modules = [huggingface_hub.constants]
    if "datasets.config" in sys.modules:
        modules.append(sys.modules["datasets.config"])
    saved = [module.HF_HUB_OFFLINE for module in modules]
    if offline:
        for module in modules:
            module.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, value in zip(modules, saved, strict=True):
            module.HF_HUB_OFFLINE = value
