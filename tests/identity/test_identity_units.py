"""Pure parts of identity: claims, scopes, settings, token stores and the lock."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jitkube.config import Config
from jitkube.errors import ConfigError
from jitkube.identity.claims import identity_from_claims, jwt_claims
from jitkube.identity.settings import resolve, split_scopes
from jitkube.identity.token_store import FileStore, insecure_backend_reason, locked


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.sig"


@pytest.mark.parametrize("token", ["opaque", "a.b", "a.!!!.c", _jwt({"x": 1})[:-4] + ".x.y"])
def test_non_jwts_have_no_claims(token: str) -> None:
    assert jwt_claims(token) is None


def test_identity_reads_groups_and_email_from_access_token_claims() -> None:
    claims = jwt_claims(
        _jwt(
            {
                "sub": "u1",
                "preferred_username": "u1@example.test",
                "roles_groups": ["a", "b"],
                "iss": "https://idp/x",
                "exp": 100,
                "azp": "cli",
                "agent": True,
            }
        )
    )
    assert claims is not None
    identity = identity_from_claims(
        claims, source="device_code", token_store="file", groups_claim="roles_groups"
    )
    assert identity.sub == "u1"
    assert identity.email == "u1@example.test"
    assert identity.groups == ("a", "b")
    assert identity.client_id == "cli"
    assert identity.is_agent
    assert identity.as_dict()["expires_at"] == 100


@pytest.mark.parametrize(
    ("scopes", "audience", "request_scopes", "api"),
    [
        (("openid", "offline_access", "jitkube"), None, ("jitkube",), ("jitkube",)),
        (("openid", "profile", "email"), "jitkube", ("email", "jitkube"), ("jitkube",)),
        (("api://x/.default",), None, ("api://x/.default",), ("api://x/.default",)),
    ],
)
def test_reserved_scopes_are_left_to_msal_and_an_api_scope_is_always_asked_for(
    scopes: tuple[str, ...],
    audience: str | None,
    request_scopes: tuple[str, ...],
    api: tuple[str, ...],
) -> None:
    assert split_scopes(scopes, audience) == (request_scopes, api)


def test_scopes_without_an_api_scope_or_audience_are_refused() -> None:
    with pytest.raises(ConfigError, match="no API scope"):
        split_scopes(("openid", "email"), None)


def test_an_entra_authority_from_the_broker_selects_msal_authority() -> None:
    doc = {
        "issuer": "https://login.microsoftonline.com/t/v2.0",
        "authority": "https://login.microsoftonline.com/t",
        "client_id": "c",
        "scopes": ["api://c/.default"],
    }
    settings = resolve(Config(), doc)
    assert settings.kind == "entra"
    assert settings.authority == "https://login.microsoftonline.com/t"
    generic = resolve(Config(), {**doc, "authority": doc["issuer"]})
    assert generic.kind == "oidc"


def test_config_wins_over_the_broker_and_an_authority_needs_a_path() -> None:
    settings = resolve(
        Config(issuer="https://idp.example/realm", client_id="mine", scopes=("api",)),
        {"issuer": "https://other/x", "client_id": "theirs"},
    )
    assert (settings.authority, settings.client_id) == ("https://idp.example/realm", "mine")
    with pytest.raises(ConfigError, match="needs a path"):
        resolve(Config(issuer="https://idp.example", client_id="c", scopes=("api",)), {})


def test_without_broker_or_issuer_login_says_what_to_pass() -> None:
    with pytest.raises(ConfigError) as err:
        resolve(Config(), {})
    assert err.value.hint is not None
    assert "--broker" in err.value.hint


def test_file_store_writes_0600_and_refuses_a_readable_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    assert store.load() is None
    store.save("blob")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert store.load() == "blob"
    store.path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        store.load()
    store.clear()
    assert store.load() is None


def _backend(module: str, name: str = "Keyring") -> object:
    return type(name, (), {"__module__": module})()


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (_backend("keyring.backends.fail"), "no keyring backend"),
        (_backend("keyring.backends.null"), "discards secrets"),
        (_backend("keyrings.alt.file", "PlaintextKeyring"), "unencrypted"),
        (_backend("keyrings.alt.file", "EncryptedKeyring"), "unencrypted"),
        (_backend("keyring.backends.SecretService"), None),
        (_backend("file_keyring", "FileKeyring"), None),
    ],
)
def test_only_real_keyrings_may_hold_tokens(backend: object, reason: str | None) -> None:
    found = insecure_backend_reason(backend)
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert reason in found


def test_a_chain_with_a_plaintext_backend_is_refused() -> None:
    from keyring.backends.chainer import ChainerBackend

    class Chain(ChainerBackend):
        backends = (_backend("keyring.backends.SecretService"), _backend("keyrings.alt.file"))

    assert "unencrypted" in (insecure_backend_reason(Chain()) or "")


def test_the_lock_excludes_another_process(tmp_path: Path) -> None:
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n"
        "    sys.exit(3)\n"
    )
    with locked(tmp_path / "state"):
        held = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "state/token.lock")])
    free = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "state/token.lock")])
    assert held.returncode == 3
    assert free.returncode == 0
    assert os.path.exists(tmp_path / "state/token.lock")


def test_the_broker_comes_from_config_else_from_the_login_record(tmp_path: Path) -> None:
    from jitkube.environment import Environment
    from jitkube.identity import broker_url
    from jitkube.identity.login import LoginRecord, write_record

    env = Environment(environ={"HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="no broker configured"):
        broker_url(Config(), env)
    record = LoginRecord(
        "https://idp/x", "oidc", "cli", ("api",), ("api",), "file", None, broker_url="https://b"
    )
    write_record(tmp_path / ".local/state/jitkube", record)
    assert broker_url(Config(), env) == "https://b"
    assert broker_url(Config(broker_url="https://c"), env) == "https://c"
