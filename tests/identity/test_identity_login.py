"""`jitkube login / whoami / logout` end to end: real CLI subprocesses, real providers."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from identity_harness import (
    assert_no_secret,
    cached_secrets,
    device_login,
    envelope,
    json_stub,
    keyring_env,
    provider_env,
    run,
    start_cli,
    state_dir,
)

from fixtures.env import IsolatedEnv
from fixtures.idp import OIDCProvider, SandboxIdPInfo, start_sandbox_idp
from jitkube.sandbox.idp import Lifetimes

pytestmark = pytest.mark.integration


@pytest.fixture
def auto_idp(tmp_path: Path) -> Iterator[SandboxIdPInfo]:
    """A private sandbox IdP that approves every device code as bob."""
    info = start_sandbox_idp(tmp_path, auto_approve="bob")
    try:
        yield info
    finally:
        info.idp.stop()


def test_device_login_then_whoami_shows_the_access_token_identity(
    isolated_env: IsolatedEnv, oidc_provider: OIDCProvider
) -> None:
    env = provider_env(oidc_provider)

    login = device_login(isolated_env, oidc_provider, "alice", extra_env=env)
    who = run(isolated_env, "whoami", "--output", "json", extra_env=env)
    debug = run(isolated_env, "--debug", "whoami", extra_env=env)

    assert login.returncode == 0, login.stderr
    assert "Logged in." in login.stdout
    assert "alice@example.test" in login.stdout
    assert "jitkube login" in login.stderr  # the panel title, on stderr
    assert who.returncode == 0, who.stderr
    doc = envelope(who)
    assert doc["command"] == "whoami"
    assert doc["status"] == "ok"
    data = doc["data"]
    assert data["sub"] == "alice"
    assert data["email"] == "alice@example.test"
    assert data["groups"] == ["engineers"]
    assert data["issuer"] == oidc_provider.issuer
    assert data["token_store"] == "file"
    assert data["source"] == "device_code"
    assert data["expires_at"] > 0
    assert debug.returncode == 0
    assert "token store" in debug.stdout
    cache = state_dir(isolated_env) / "token-cache.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir(isolated_env).stat().st_mode) == 0o700
    assert_no_secret(cached_secrets(cache.read_text()), login, who, debug)


def test_login_discovers_the_provider_from_the_broker(
    isolated_env: IsolatedEnv, auto_idp: SandboxIdPInfo
) -> None:
    seen: list[str] = []
    client_config = {
        "api_version": 1,
        "issuer": auto_idp.idp.issuer,
        "authority": auto_idp.idp.issuer,
        "client_id": "jitkube-cli",
        # The broker's default scopes name no API: jitkube adds the audience.
        "scopes": ["openid", "profile", "email", "offline_access"],
        "audience": ["jitkube"],
        "groups_claim": "groups",
    }

    def serve(handler: object) -> tuple[int, object]:
        seen.append("client-config")
        return 200, client_config

    extra = {"JITKUBE_CA_BUNDLE": str(auto_idp.ca_bundle), "JITKUBE_TOKEN_STORE": "file"}
    with json_stub({"/v1/client-config": serve}) as broker:
        login = run(isolated_env, "login", "--broker", broker, "--output", "json", extra_env=extra)
    who = run(isolated_env, "whoami", "--output", "json", extra_env=extra)

    assert login.returncode == 0, login.stderr
    assert seen == ["client-config"]
    assert envelope(login)["data"]["sub"] == "bob"
    assert envelope(who)["data"]["groups"] == ["reviewers", "sre"]
    record = json.loads((state_dir(isolated_env) / "login.json").read_text())
    assert record["broker_url"] == broker
    assert record["api_scopes"] == ["jitkube"]


def test_a_plain_http_broker_off_loopback_is_refused(isolated_env: IsolatedEnv) -> None:
    r = run(isolated_env, "login", "--broker", "http://broker.example.test")
    assert r.returncode == 64
    assert "plain http" in r.stderr


def test_keyring_backend_holds_the_tokens_and_logout_clears_it(
    isolated_env: IsolatedEnv, auto_idp: SandboxIdPInfo
) -> None:
    env = {**provider_env(auto_idp.as_provider(), store=None), **keyring_env(isolated_env)}
    keyring_file = Path(env["JITKUBE_TEST_KEYRING_FILE"])

    login = run(isolated_env, "login", extra_env=env)
    who = run(isolated_env, "whoami", "--output", "json", extra_env=env)
    entries = json.loads(keyring_file.read_text())
    logout = run(isolated_env, "logout", "--output", "json", extra_env=env)
    after = run(isolated_env, "whoami", extra_env=env)

    assert login.returncode == 0, login.stderr
    assert envelope(who)["data"]["token_store"] == "keyring"
    assert "jitkube/msal-token-cache" in entries
    blob = "".join(
        entries[f"jitkube/msal-token-cache.{i}"]
        for i in range(int(entries["jitkube/msal-token-cache"].split(":")[1]))
    )
    secrets = cached_secrets(blob)
    assert_no_secret(secrets, login, who, logout, after)
    # Nothing secret on disk outside the keyring.
    for path in state_dir(isolated_env).iterdir():
        assert all(s not in path.read_text() for s in secrets), path
    assert envelope(logout)["data"]["removed"] == ["keyring", "login record"]
    assert json.loads(keyring_file.read_text()) == {}
    assert after.returncode == 68


def test_no_keyring_backend_is_refused_before_a_code_is_shown(
    isolated_env: IsolatedEnv, auto_idp: SandboxIdPInfo
) -> None:
    # isolated_env selects keyring's fail backend, as on a headless Linux box.
    env = provider_env(auto_idp.as_provider(), store=None)

    r = run(isolated_env, "login", extra_env=env)

    assert r.returncode == 64
    assert "no keyring backend is available" in r.stderr
    assert 'token_store = "file"' in r.stderr
    assert "user_code" not in r.stderr
    assert not (state_dir(isolated_env) / "login.json").exists()


def test_memory_store_login_ends_with_its_process(
    isolated_env: IsolatedEnv, auto_idp: SandboxIdPInfo
) -> None:
    env = provider_env(auto_idp.as_provider(), store=None)

    login = run(isolated_env, "login", "--token-store", "memory", extra_env=env)
    who = run(isolated_env, "whoami", extra_env=env)

    assert login.returncode == 0, login.stderr
    assert "memory" in login.stdout
    assert who.returncode == 68
    assert "token_store is memory" in who.stderr


def test_logout_removes_the_token_file_and_the_record(
    isolated_env: IsolatedEnv, auto_idp: SandboxIdPInfo
) -> None:
    env = provider_env(auto_idp.as_provider())
    assert run(isolated_env, "login", extra_env=env).returncode == 0

    out = run(isolated_env, "logout", extra_env=env)
    again = run(isolated_env, "logout", extra_env=env)

    assert out.returncode == 0
    assert "file" in out.stdout
    assert sorted(p.name for p in state_dir(isolated_env).iterdir()) == ["token.lock"]
    assert again.returncode == 0
    assert "already logged out" in again.stdout


def test_ctrl_c_while_waiting_stops_cleanly(
    isolated_env: IsolatedEnv, sandbox_idp: SandboxIdPInfo
) -> None:
    running = start_cli(isolated_env, "login", extra_env=provider_env(sandbox_idp.as_provider()))
    running.wait_for(lambda text: "Waiting" if "Waiting" in text else None)

    running.interrupt()
    result = running.finish()

    assert result.returncode == 130
    assert result.stderr.rstrip().endswith("jitkube: login cancelled; nothing was stored")
    assert "Traceback" not in result.stderr
    assert not (state_dir(isolated_env) / "login.json").exists()


def test_a_refused_sign_in_says_so(isolated_env: IsolatedEnv, oidc_provider: OIDCProvider) -> None:
    running = start_cli(isolated_env, "login", extra_env=provider_env(oidc_provider))
    oidc_provider.deny(running.wait_for_prompt())
    result = running.finish()

    assert result.returncode == 68
    assert "jitkube: the sign-in was refused" in result.stderr


def test_a_code_nobody_approves_expires(isolated_env: IsolatedEnv, tmp_path: Path) -> None:
    info = start_sandbox_idp(tmp_path, lifetimes=Lifetimes(device_code=2, interval=1))
    try:
        result = run(isolated_env, "login", extra_env=provider_env(info.as_provider()))
    finally:
        info.idp.stop()

    assert result.returncode == 68
    assert "the code expired before it was approved" in result.stderr


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("--non-interactive",), {}),
        ((), {"JITKUBE_NON_INTERACTIVE": "1"}),
        ((), {"CI": "true"}),
    ],
    ids=["flag", "env", "ci"],
)
def test_login_in_non_interactive_mode_exits_68_with_one_line(
    isolated_env: IsolatedEnv,
    sandbox_idp: SandboxIdPInfo,
    args: tuple[str, ...],
    extra: dict[str, str],
) -> None:
    env = {**provider_env(sandbox_idp.as_provider()), **extra}

    r = run(isolated_env, *args, "login", extra_env=env)

    assert r.returncode == 68
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("jitkube: login needs a person")


def test_whoami_without_a_login_exits_68_and_names_the_command(
    isolated_env: IsolatedEnv,
) -> None:
    r = run(isolated_env, "whoami")
    assert r.returncode == 68
    assert r.stderr == "jitkube: not logged in; run `jitkube login`\n"
