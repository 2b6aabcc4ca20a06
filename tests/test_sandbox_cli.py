"""`jitkube sandbox up|down|status|env|approve-device` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fixtures.env import IsolatedEnv, isolated_environment


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it holds no port and no lock.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _envelope(result: subprocess.CompletedProcess[bytes]) -> dict:
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


@pytest.fixture
def sandbox_dir(isolated_env: IsolatedEnv, tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "sbx"
    yield directory
    isolated_env.run("sandbox", "down", "--dir", str(directory))


def test_up_status_env_down_leaves_nothing_behind(
    isolated_env: IsolatedEnv, sandbox_dir: Path
) -> None:
    first = _envelope(
        isolated_env.run("--output", "json", "sandbox", "up", "--dir", str(sandbox_dir))
    )
    data = first["data"]
    assert data["started"] is True
    pid = data["pid"]
    assert _alive(pid)
    assert data["cluster_url"].startswith("https://127.0.0.1:")
    assert data["issuer"].startswith("https://127.0.0.1:")
    health = requests.get(data["broker_url"] + "/healthz", verify=data["ca_bundle"], timeout=10)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    client_config = requests.get(
        data["broker_url"] + "/v1/client-config", verify=data["ca_bundle"], timeout=10
    ).json()
    assert client_config["issuer"] == data["issuer"]

    second = _envelope(
        isolated_env.run("--output", "json", "sandbox", "up", "--dir", str(sandbox_dir))
    )
    assert second["data"]["started"] is False
    assert second["data"]["pid"] == pid, "a second `up` must not start a duplicate"

    status = _envelope(
        isolated_env.run("--output", "json", "sandbox", "status", "--dir", str(sandbox_dir))
    )
    assert status["data"]["running"] is True

    env = isolated_env.run("sandbox", "env", "--dir", str(sandbox_dir))
    assert env.returncode == 0
    config = sandbox_dir / "config.toml"
    assert f"export JITKUBE_CONFIG={config}" in env.stdout.decode()
    assert config.stat().st_mode & 0o077 == 0
    assert (sandbox_dir / "secrets.json").stat().st_mode & 0o077 == 0

    down = _envelope(
        isolated_env.run("--output", "json", "sandbox", "down", "--dir", str(sandbox_dir))
    )
    assert down["data"]["stopped"] is True
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the sandbox process must be gone after `down`"
    after = _envelope(
        isolated_env.run("--output", "json", "sandbox", "status", "--dir", str(sandbox_dir))
    )
    assert after["data"]["running"] is False
    again = _envelope(
        isolated_env.run("--output", "json", "sandbox", "down", "--dir", str(sandbox_dir))
    )
    assert again["data"]["stopped"] is False


def test_env_when_not_running_says_how_to_start(isolated_env: IsolatedEnv, tmp_path: Path) -> None:
    r = isolated_env.run("sandbox", "env", "--dir", str(tmp_path / "nothing"))
    assert r.returncode != 0
    assert "jitkube sandbox up" in r.stderr.decode()


def test_second_daemon_on_the_same_directory_is_refused(
    isolated_env: IsolatedEnv, sandbox_dir: Path
) -> None:
    _envelope(isolated_env.run("--output", "json", "sandbox", "up", "--dir", str(sandbox_dir)))
    rival = subprocess.run(
        [sys.executable, "-m", "jitkube.sandbox.daemon", "--dir", str(sandbox_dir)],
        capture_output=True,
        env=isolated_env.env,
        timeout=30,
        check=False,
    )
    assert rival.returncode == 3
    assert b"in use" in rival.stderr


def test_device_login_is_approved_through_the_sandbox(
    isolated_env: IsolatedEnv, sandbox_dir: Path
) -> None:
    _envelope(isolated_env.run("--output", "json", "sandbox", "up", "--dir", str(sandbox_dir)))
    env = dict(isolated_env.env, JITKUBE_CONFIG=str(sandbox_dir / "config.toml"))
    login = subprocess.Popen(
        [sys.executable, "-m", "jitkube", "login"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert login.stdout is not None
    code = None
    deadline = time.monotonic() + 20
    seen = b""
    while code is None and time.monotonic() < deadline:
        line = login.stdout.readline()
        seen += line
        if b"user_code=" in line:
            code = line.decode().rsplit("user_code=", 1)[1].strip()
    assert code, seen.decode()
    approve = isolated_env.run(
        "sandbox", "approve-device", code, "--user", "bob", "--dir", str(sandbox_dir)
    )
    assert approve.returncode == 0, approve.stderr.decode()
    assert login.wait(timeout=30) == 0
    whoami = subprocess.run(
        [sys.executable, "-m", "jitkube", "--output", "json", "whoami"],
        capture_output=True,
        env=env,
        check=False,
    )
    identity = _envelope(whoami)["data"]
    assert identity["sub"] == "bob"
    assert "reviewers" in identity["groups"]


def test_approving_an_unknown_code_is_refused(isolated_env: IsolatedEnv, sandbox_dir: Path) -> None:
    _envelope(isolated_env.run("--output", "json", "sandbox", "up", "--dir", str(sandbox_dir)))
    r = isolated_env.run(
        "sandbox", "approve-device", "NOPE-NOPE", "--user", "alice", "--dir", str(sandbox_dir)
    )
    assert r.returncode == 64
    assert "refused" in r.stderr.decode()


def test_no_sandbox_in_the_directory_is_a_usage_error_naming_it(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    nothing = tmp_path / "nothing"
    for args in (("env",), ("approve-device", "ABCD-EFGH", "--user", "alice")):
        r = isolated_env.run("sandbox", *args, "--dir", str(nothing))
        assert r.returncode == 64, r.stderr.decode()  # not 71: nothing is broken in jitkube
        stderr = r.stderr.decode()
        assert f"no sandbox is running in {nothing}" in stderr
        assert "--dir" in stderr
        assert "JITKUBE_SANDBOX_DIR" in stderr
    down = isolated_env.run("sandbox", "down", "--dir", str(nothing))
    assert down.returncode == 0
    assert f"no sandbox was running in {nothing}" in down.stdout.decode()


def test_another_users_shell_finds_the_sandbox_through_the_exported_dir(
    isolated_env: IsolatedEnv, sandbox_dir: Path, tmp_path: Path
) -> None:
    """`eval "$(jitkube sandbox env)"` exports JITKUBE_SANDBOX_DIR; a shell with another
    HOME (a second user) reaches the same sandbox with it, no --dir needed."""
    _envelope(isolated_env.run("--output", "json", "sandbox", "up", "--dir", str(sandbox_dir)))
    exports = isolated_env.run("sandbox", "env", "--dir", str(sandbox_dir)).stdout.decode()
    assert f"export JITKUBE_SANDBOX_DIR={sandbox_dir.resolve()}" in exports
    other = IsolatedEnv(
        home=tmp_path / "other" / "home", env=isolated_environment(tmp_path / "other")
    )
    named = {"JITKUBE_SANDBOX_DIR": str(sandbox_dir)}
    assert "not running" in other.run("sandbox", "status").stdout.decode()

    status = other.run("sandbox", "status", extra_env=named)
    assert status.returncode == 0, status.stderr.decode()
    text = status.stdout.decode()
    state = json.loads((sandbox_dir / "state.json").read_text())
    # Everything an operator copies into a broker.yaml of their own (docs/getting-started.md).
    assert f"sandbox: running ({sandbox_dir.resolve()})" in text
    for value in (
        state["issuer"], state["ca_bundle"], state["sts_url"], state["region"],
        state["cluster_name"], state["broker_config"], *state["roles"].values(),
    ):  # fmt: skip
        assert str(value) in text, value

    down = other.run("sandbox", "down", extra_env=named)
    assert down.returncode == 0, down.stderr.decode()
    assert f"sandbox stopped ({sandbox_dir.resolve()})" in down.stdout.decode()
    assert not _envelope(
        isolated_env.run("--output", "json", "sandbox", "status", "--dir", str(sandbox_dir))
    )["data"]["running"]
