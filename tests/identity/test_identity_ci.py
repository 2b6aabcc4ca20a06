"""CI identities through the real CLI: CI=true, no TTY, stdin at EOF, nothing prompts."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from identity_harness import Result, envelope, json_stub, run, state_dir

from fixtures.env import IsolatedEnv
from fixtures.idp import API_SCOPE, CI_GROUPS, OIDCProvider, SandboxIdPInfo

pytestmark = pytest.mark.integration


def _ci_env(provider: OIDCProvider) -> dict[str, str]:
    return {
        "CI": "true",
        "JITKUBE_ISSUER": provider.issuer,
        "JITKUBE_CLIENT_ID": provider.ci_client_id,
        "JITKUBE_SCOPES": API_SCOPE,
        "JITKUBE_CA_BUNDLE": str(provider.ca_bundle),
    }


def _mint(info: SandboxIdPInfo) -> str:
    """A token signed by the sandbox IdP, standing in for the CI system's id-token."""
    result = info.idp.core.token(
        {"grant_type": "client_credentials", "scope": API_SCOPE},
        ("jitkube-ci", info.ci_client_secret),
    )
    token: str = result["access_token"]
    return token


def _assert_quiet(secret: str, *results: Result) -> None:
    for r in results:
        assert secret not in r.stdout
        assert secret not in r.stderr
        assert "eyJ" not in r.stdout + r.stderr  # no JWT of any kind


@pytest.mark.parametrize("secret_from", ["env", "file"])
def test_client_credentials_log_in_without_prompting(
    isolated_env: IsolatedEnv, oidc_provider: OIDCProvider, tmp_path: Path, secret_from: str
) -> None:
    env = _ci_env(oidc_provider)
    if secret_from == "env":
        env["JITKUBE_CLIENT_SECRET"] = oidc_provider.ci_client_secret
    else:
        secret_file = tmp_path / "client-secret"
        secret_file.write_text(oidc_provider.ci_client_secret + "\n")
        env["JITKUBE_CLIENT_SECRET_FILE"] = str(secret_file)

    login = run(isolated_env, "login", "--output", "json", extra_env=env)
    who = run(isolated_env, "--debug", "whoami", "--output", "json", extra_env=env)

    assert login.returncode == 0, login.stderr
    assert login.stderr == ""  # no device code, no spinner
    data = envelope(who)["data"]
    assert data["sub"] == oidc_provider.ci_client_id
    assert data["groups"] == list(CI_GROUPS)
    assert data["source"] == "client_credentials"
    assert data["token_store"] == "none"
    _assert_quiet(oidc_provider.ci_client_secret, login, who)
    assert not state_dir(isolated_env).exists()  # nothing stored


def test_a_wrong_client_secret_is_refused_with_exit_68(
    isolated_env: IsolatedEnv, sandbox_idp: SandboxIdPInfo
) -> None:
    env = {**_ci_env(sandbox_idp.as_provider()), "JITKUBE_CLIENT_SECRET": "not-the-secret"}
    r = run(isolated_env, "whoami", extra_env=env)
    assert r.returncode == 68
    assert r.stderr == "jitkube: client credentials for jitkube-ci were refused (invalid_client)\n"


def test_github_actions_id_token_is_requested_for_the_audience(
    isolated_env: IsolatedEnv, sandbox_idp: SandboxIdPInfo
) -> None:
    token = _mint(sandbox_idp)
    requests_seen: list[dict[str, Any]] = []

    def issue(handler: BaseHTTPRequestHandler) -> tuple[int, object]:
        query = parse_qs(urlsplit(handler.path).query)
        requests_seen.append({"query": query, "auth": handler.headers.get("Authorization")})
        if handler.headers.get("Authorization") != "bearer runner-request-token":
            return 401, {"message": "bad request token"}
        return 200, {"count": 1, "value": token}

    with json_stub({"/_apis/token": issue}) as base:
        env = {
            "CI": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{base}/_apis/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-request-token",
            "JITKUBE_ID_TOKEN_AUDIENCE": "jitkube",
        }
        login = run(isolated_env, "login", extra_env=env)
        who = run(isolated_env, "whoami", "--output", "json", extra_env=env)

    assert login.returncode == 0, login.stderr
    assert who.returncode == 0, who.stderr
    data = envelope(who)["data"]
    assert data["source"] == "github_actions"
    assert data["sub"] == "jitkube-ci"
    assert data["issuer"] == sandbox_idp.idp.issuer
    assert requests_seen[0]["query"] == {"api-version": ["2.0"], "audience": ["jitkube"]}
    _assert_quiet(token, login, who)
    _assert_quiet("runner-request-token", login, who)


def test_id_token_from_a_file_or_the_environment(
    isolated_env: IsolatedEnv, sandbox_idp: SandboxIdPInfo, tmp_path: Path
) -> None:
    token = _mint(sandbox_idp)
    token_file = tmp_path / "id-token"
    token_file.write_text(token)

    from_file = run(
        isolated_env,
        "whoami",
        "--output",
        "json",
        extra_env={"CI": "true", "JITKUBE_ID_TOKEN_FILE": str(token_file)},
    )
    from_env = run(
        isolated_env,
        "whoami",
        "--output",
        "json",
        extra_env={"CI": "true", "JITKUBE_ID_TOKEN": token},
    )

    assert envelope(from_file)["data"]["source"] == "id_token_file"
    assert envelope(from_env)["data"]["source"] == "id_token_env"
    assert envelope(from_env)["data"]["groups"] == list(CI_GROUPS)
    _assert_quiet(token, from_file, from_env)


def test_an_expired_id_token_needs_a_new_one(isolated_env: IsolatedEnv) -> None:
    expired = jwt.encode({"sub": "ci", "exp": int(time.time()) - 60}, "k" * 32, algorithm="HS256")
    r = run(isolated_env, "whoami", extra_env={"CI": "true", "JITKUBE_ID_TOKEN": expired})
    assert r.returncode == 68
    assert (
        r.stderr
        == "jitkube: the id-token from JITKUBE_ID_TOKEN has expired; the CI must renew it\n"
    )
