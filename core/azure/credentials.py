"""Signing in to Azure: the credential phiops.toml names, and one sentence when none works.

`default` is `DefaultAzureCredential` without its managed-identity probe unless phiops runs
on an Azure host that advertises an identity endpoint: off Azure that probe sends requests
to the instance-metadata address and waits for them to time out, so "not logged in" would
take seconds instead of milliseconds. On a plain Azure VM, name `managed-identity`.
`device-code` is for SSH sessions without a browser: the code is shown on stderr (stdout
may be JSON), and the account is remembered so the code is asked for once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.errors import PhiopsError
from core.paths import user_data_dir

MANAGEMENT_SCOPE = "https://management.azure.com/.default"
AUTH_RECORD_FILENAME = "azure-auth-record.json"
DEVICE_CODE_TIMEOUT_SECONDS = 300
CLI_TIMEOUT_SECONDS = 10
# Set by Azure hosts that offer a managed identity (App Service, Functions, Azure ML compute).
IDENTITY_ENDPOINT_VARIABLES = ("IDENTITY_ENDPOINT", "MSI_ENDPOINT")

SIGN_IN_HELP = (
    "run `az login`, or sign in with a code from any browser with --device-code "
    '(or credential = "device-code" in phiops.toml)'
)


class NotSignedInError(PhiopsError):
    """No credential could get a token: the user must sign in first."""


def on_azure_host() -> bool:
    return any(os.environ.get(name) for name in IDENTITY_ENDPOINT_VARIABLES)


def quiet_identity_logging() -> None:
    """azure-identity logs a page of per-credential failures as a warning; phiops says one
    sentence instead. A logger the user configured is left as it is."""
    logger = logging.getLogger("azure.identity")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


def make_credential(kind: str = "default") -> Any:
    """The azure-identity credential for `kind` (see `core.config.CREDENTIALS`)."""
    import azure.identity as identity

    quiet_identity_logging()

    if kind == "default":
        options: dict[str, Any] = {"process_timeout": CLI_TIMEOUT_SECONDS}
        if not os.environ.get("AZURE_TOKEN_CREDENTIALS"):  # the user's own choice wins
            options["exclude_managed_identity_credential"] = not on_azure_host()
        return identity.DefaultAzureCredential(**options)
    if kind == "cli":
        return identity.AzureCliCredential(process_timeout=CLI_TIMEOUT_SECONDS)
    if kind == "device-code":
        return RememberedDeviceCode()
    if kind == "managed-identity":
        return identity.ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID"))
    if kind == "environment":
        return identity.EnvironmentCredential()
    raise PhiopsError(
        f"unknown credential '{kind}'; use default, cli, device-code, managed-identity "
        "or environment"
    )


def sign_in_failure(kind: str) -> NotSignedInError:
    """The sentence for a credential that could not get a token."""
    if kind == "environment":
        reason = (
            "the environment credential needs AZURE_TENANT_ID, AZURE_CLIENT_ID and "
            "AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)"
        )
    elif kind == "managed-identity":
        reason = "no managed identity is reachable from this machine"
    elif kind == "device-code":
        reason = "the device-code sign-in did not finish"
    elif kind == "cli":
        reason = "the Azure CLI has no login"
    else:
        reason = "no Azure login was found"
    return NotSignedInError(f"cannot sign in to Azure: {reason}; {SIGN_IN_HELP}")


@contextmanager
def sign_in_errors(kind: str) -> Iterator[None]:
    """Turn azure-identity's failures (a page of text each) into one sentence."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError

    try:
        yield
    except (CredentialUnavailableError, ClientAuthenticationError):
        raise sign_in_failure(kind) from None


def ensure_signed_in(credential: Any, kind: str) -> None:
    """Get one management token now, so "not signed in" is said before any other check."""
    with sign_in_errors(kind):
        credential.get_token(MANAGEMENT_SCOPE)


class RememberedDeviceCode:
    """`DeviceCodeCredential` that keeps its account and tokens between runs.

    The first run shows the code (on stderr) and stores the authentication record beside
    phiops' secrets; later runs refresh tokens silently from the persistent token cache.
    """

    def __init__(self) -> None:
        from azure.identity import (
            AuthenticationRecord,
            DeviceCodeCredential,
            TokenCachePersistenceOptions,
        )

        self._record_path = user_data_dir() / AUTH_RECORD_FILENAME
        record = None
        if self._record_path.is_file():
            try:
                record = AuthenticationRecord.deserialize(self._record_path.read_text())
            except (ValueError, KeyError, json.JSONDecodeError):
                record = None  # a damaged record only costs one more code
        self._remembered = record is not None
        self._inner = DeviceCodeCredential(
            timeout=DEVICE_CODE_TIMEOUT_SECONDS,
            prompt_callback=_show_code,
            authentication_record=record,
            cache_persistence_options=TokenCachePersistenceOptions(
                name="phiops", allow_unencrypted_storage=True
            ),
        )

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        if not self._remembered:
            from core.atomic import write_text_atomic

            record = self._inner.authenticate(scopes=list(scopes) or [MANAGEMENT_SCOPE])
            write_text_atomic(self._record_path, record.serialize(), perms=0o600)
            self._remembered = True
        return self._inner.get_token(*scopes, **kwargs)

    def close(self) -> None:
        self._inner.close()


def _show_code(verification_uri: str, user_code: str, expires_on: Any) -> None:
    sys.stderr.write(
        f"To sign in to Azure, open {verification_uri} and enter the code {user_code}\n"
    )
    sys.stderr.flush()
