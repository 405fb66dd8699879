"""Credentials: the kind phiops.toml names, fast failure off Azure, one sentence when none works."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.azure.credentials import (
    AUTH_RECORD_FILENAME,
    MANAGEMENT_SCOPE,
    NotSignedInError,
    RememberedDeviceCode,
    ensure_signed_in,
    make_credential,
    sign_in_failure,
)
from core.errors import PhiopsError
from core.paths import user_data_dir

AZURE_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_USERNAME",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
)


@pytest.fixture
def no_azure_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as it is: no Azure variables, no Azure CLI login."""
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "azure-cli"))


def chain(credential) -> list[str]:
    return [type(item).__name__ for item in credential.credentials]


def test_default_skips_the_managed_identity_probe_off_azure(
    no_azure_login: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.identity import DefaultAzureCredential

    credential = make_credential("default")
    assert isinstance(credential, DefaultAzureCredential)
    assert "ManagedIdentityCredential" not in chain(credential)
    assert "AzureCliCredential" in chain(credential)
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token")
    assert "ManagedIdentityCredential" in chain(make_credential("default"))


def test_each_kind_builds_its_credential(no_azure_login: None) -> None:
    from azure.identity import AzureCliCredential, EnvironmentCredential, ManagedIdentityCredential

    assert isinstance(make_credential("cli"), AzureCliCredential)
    assert isinstance(make_credential("environment"), EnvironmentCredential)
    assert isinstance(make_credential("managed-identity"), ManagedIdentityCredential)
    assert isinstance(make_credential("device-code"), RememberedDeviceCode)
    with pytest.raises(PhiopsError, match="unknown credential 'browser'; use default, cli"):
        make_credential("browser")


def test_not_logged_in_fails_fast_in_one_sentence(no_azure_login: None) -> None:
    with pytest.raises(NotSignedInError) as raised:  # fast: no probe (the test above)
        ensure_signed_in(make_credential("default"), "default")
    assert str(raised.value) == (
        "cannot sign in to Azure: no Azure login was found; run `az login`, or sign in with a "
        'code from any browser with --device-code (or credential = "device-code" in phiops.toml)'
    )
    with pytest.raises(NotSignedInError, match="AZURE_TENANT_ID, AZURE_CLIENT_ID"):
        ensure_signed_in(make_credential("environment"), "environment")


def test_each_kind_has_its_reason() -> None:
    reasons = {kind: str(sign_in_failure(kind)) for kind in ("cli", "managed-identity")}
    assert "the Azure CLI has no login" in reasons["cli"]
    assert "no managed identity is reachable" in reasons["managed-identity"]
    assert all("az login" in text and "\n" not in text for text in reasons.values())


def test_device_code_remembers_the_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first sign-in stores the authentication record; the next run starts from it."""
    from azure.core.credentials import AccessToken
    from azure.identity import AuthenticationRecord

    record = AuthenticationRecord(
        "tenant", "client", "login.microsoftonline.com", "home.account", "someone@example.com"
    )
    calls: list[str] = []

    def authenticate(self, scopes=None, **kwargs):
        calls.append(f"authenticate {scopes}")
        return record

    def get_token(self, *scopes, **kwargs):
        calls.append("get_token")
        return AccessToken("token", int(time.time()) + 60)

    from azure.identity import DeviceCodeCredential

    monkeypatch.setattr(DeviceCodeCredential, "authenticate", authenticate)
    monkeypatch.setattr(DeviceCodeCredential, "get_token", get_token)
    path = user_data_dir() / AUTH_RECORD_FILENAME
    path.unlink(missing_ok=True)

    RememberedDeviceCode().get_token(MANAGEMENT_SCOPE)
    assert calls == [f"authenticate {[MANAGEMENT_SCOPE]}", "get_token"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert AuthenticationRecord.deserialize(path.read_text()).username == "someone@example.com"

    calls.clear()
    again = RememberedDeviceCode()
    again.get_token(MANAGEMENT_SCOPE)
    assert calls == ["get_token"]  # no second code
    assert again._inner._auth_record.username == "someone@example.com"
    path.unlink()
