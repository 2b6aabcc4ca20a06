"""Silent refresh across processes: the cache is locked read -> refresh -> write.

The sandbox IdP rotates refresh tokens and revokes the whole grant when an old one is
reused, as oidc-provider does. Its token endpoint is slowed down here (a clock that
sleeps) so that, without the lock, concurrent jitkube processes would present the same
refresh token and log the user out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from identity_harness import (
    assert_no_secret,
    cached_secrets,
    envelope,
    provider_env,
    run,
    state_dir,
)

from fixtures.env import IsolatedEnv
from fixtures.idp import refresh, start_sandbox_idp
from jitkube.sandbox.idp import Lifetimes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROCESSES = 4


def _slow_clock() -> float:
    time.sleep(0.4)  # widens the window between reading and rotating a refresh token
    return time.time()


def _refresh_tokens(state: Path) -> list[str]:
    cache = json.loads((state / "token-cache.json").read_text())
    return [e["secret"] for e in cache["RefreshToken"].values()]


def test_concurrent_silent_refreshes_keep_the_grant(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    # Access tokens live 30 s: under jitkube's 60 s minimum, so every call refreshes.
    info = start_sandbox_idp(
        tmp_path, lifetimes=Lifetimes(access_token=30), clock=_slow_clock, auto_approve="carol"
    )
    try:
        env = dict(isolated_env.env)
        env.update(provider_env(info.as_provider()))
        assert run(isolated_env, "login", extra_env=env).returncode == 0
        first_refresh_token = _refresh_tokens(state_dir(isolated_env))

        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "jitkube", "whoami", "--output", "json"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for _ in range(PROCESSES)
        ]
        results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
        after = run(isolated_env, "whoami", "--output", "json", extra_env=env)
        [latest] = _refresh_tokens(state_dir(isolated_env))
        revoked = info.idp.core.grant_revoked(latest)
    finally:
        info.idp.stop()

    for code, out, err in results:
        assert code == 0, err.decode()
        assert json.loads(out)["data"]["sub"] == "carol"
    assert after.returncode == 0, after.stderr
    assert envelope(after)["data"]["groups"] == ["auditors"]
    assert latest not in first_refresh_token  # it was rotated, PROCESSES + 1 times
    assert not revoked


def test_a_revoked_grant_asks_for_login_and_debug_output_shows_no_token(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    info = start_sandbox_idp(tmp_path, lifetimes=Lifetimes(access_token=30), auto_approve="alice")
    try:
        provider = info.as_provider()
        env = provider_env(provider)
        login = run(isolated_env, "login", extra_env=env)
        state = state_dir(isolated_env)
        blob = (state / "token-cache.json").read_text()
        [stolen] = _refresh_tokens(state)
        # Someone replays the refresh token twice: the provider revokes the grant.
        assert refresh(provider, stolen).status_code == 200
        assert refresh(provider, stolen).status_code == 400

        who = run(isolated_env, "--debug", "whoami", extra_env=env)
        as_json = run(isolated_env, "--debug", "--output", "json", "whoami", extra_env=env)
    finally:
        info.idp.stop()

    assert who.returncode == 68
    assert "jitkube: the login has expired or was revoked (invalid_grant)" in who.stderr
    assert "run `jitkube login`" in who.stderr
    assert envelope(as_json)["errors"][0]["code"] == "login_required"
    assert_no_secret(cached_secrets(blob), login, who, as_json)


def test_an_unreachable_provider_is_reported_as_such(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    info = start_sandbox_idp(tmp_path, lifetimes=Lifetimes(access_token=30), auto_approve="alice")
    try:
        env = provider_env(info.as_provider())
        assert run(isolated_env, "login", extra_env=env).returncode == 0
    finally:
        info.idp.stop()

    who = run(isolated_env, "whoami", extra_env=env)

    assert who.returncode == 70
    assert who.stderr.startswith(f"jitkube: identity provider {info.idp.issuer}")
    assert len(who.stderr.splitlines()) == 1
