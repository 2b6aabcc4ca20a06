"""The warm server (jitkube.warm): a call it serves behaves exactly like an in-process call
(bytes, exit code, working directory, stdin, environment), the front end imports almost
nothing, and the server stops being used when its code changes, when it idles, or when
the user turns it off. `jitkube check` needs no login, so these run without a broker;
tests/guarded runs the whole kubectl suite through the server too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.warm import WarmCaller as Caller

MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: prod
data:
  mode: fast
"""


@pytest.fixture
def caller(tmp_path: Path) -> Iterator[Caller]:
    with Caller(tmp_path) as who:
        yield who


def test_the_first_call_starts_a_server_and_later_calls_match_in_process_ones(
    caller: Caller, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "cm.yaml").write_text(MANIFEST)
    argv = ("--output", "json", "check", "--", "kubectl", "apply", "-f", "cm.yaml")
    cold = caller.run(*argv, cwd=work, extra_env={"JITKUBE_WARM": "0"})
    assert caller.status()["running"] is False  # JITKUBE_WARM=0 starts nothing

    first = caller.run(*argv, cwd=work)  # no server yet: in-process, then one starts
    started = caller.wait_for_server()
    assert started["served"] == 0
    warm = caller.run(*argv, cwd=work)  # a relative path: the worker is in our cwd
    assert caller.status()["served"] == 1

    for done in (first, warm):
        assert (done.returncode, done.stdout, done.stderr) == (
            cold.returncode,
            cold.stdout,
            cold.stderr,
        )
    assert cold.returncode == 66
    data = json.loads(cold.stdout)["data"]
    assert data["class"] == "write"
    assert data["invocation"]["files"] == ["cm.yaml"]
    assert data["invocation"]["namespaces"] == ["prod"]  # the manifest was read


def test_stdin_the_environment_and_usage_errors_reach_the_worker(caller: Caller) -> None:
    caller.run("warm", "start")
    before = caller.status()["served"]
    assert isinstance(before, int)
    # A manifest on stdin, the agent marker from the environment.
    piped = ("--output", "json", "check", "--", "kubectl", "apply", "-f", "-")
    env = {"JITKUBE_AGENT": "claude-test"}
    warm = caller.run(*piped, stdin=MANIFEST.encode(), extra_env=env)
    cold = caller.run(*piped, stdin=MANIFEST.encode(), extra_env={**env, "JITKUBE_WARM": "0"})
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout)
    data = json.loads(warm.stdout)["data"]
    assert data["rule"] == "agents-changes"  # JITKUBE_AGENT reached the worker
    assert data["invocation"]["manifest_digest"]  # and so did stdin
    # A refusal (an unknown flag: fail closed) and a usage error pass through unchanged.
    for argv in (("check", "--", "kubectl", "get", "pods", "--no-such-flag"), ("check",)):
        bad = caller.run(*argv)
        bad_cold = caller.run(*argv, extra_env={"JITKUBE_WARM": "0"})
        assert (bad.returncode, bad.stdout, bad.stderr) == (
            bad_cold.returncode,
            bad_cold.stdout,
            bad_cold.stderr,
        )
        assert bad.returncode in (64, 65), bad
    assert caller.status()["served"] == before + 3


def _imported(stderr: bytes) -> set[str]:
    """Module names from `python -X importtime` lines ("import time: self | cum | name")."""
    names = set()
    for line in stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the header line
                names.add(name)
    return names


def test_the_front_end_imports_almost_nothing(caller: Caller, tmp_path: Path) -> None:
    caller.run("warm", "start")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        "sys.argv = ['jitkube', 'check', '--', 'kubectl', 'get', 'pods']\n"
        "from jitkube.entry import main\n"
        "sys.exit(main())\n"
    )
    empty = tmp_path / "empty.py"
    empty.write_text("")
    python = [sys.executable, "-X", "importtime"]
    done = subprocess.run(
        [*python, str(probe)], capture_output=True, env=caller.env, timeout=60, check=False
    )
    floor = subprocess.run(
        [*python, str(empty)], capture_output=True, env=caller.env, timeout=60, check=False
    )
    assert done.returncode == 0, done
    assert b"decision:   allow" in done.stdout  # the worker wrote to our stdout
    assert caller.status()["served"] == 1  # and it was the warm server's worker
    extra = _imported(done.stderr) - _imported(floor.stderr)
    assert extra == {"__future__", "_socket", "jitkube", "jitkube.entry", "jitkube.warm"}


def test_a_server_whose_code_changed_refuses_and_the_call_runs_in_process(
    tmp_path: Path,
) -> None:
    # A private copy of the package, so that touching its files disturbs no other test.
    copy = tmp_path / "pkg"
    shutil.copytree(
        Path(__file__).resolve().parents[1] / "src" / "jitkube",
        copy / "jitkube",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    who = Caller(tmp_path / "user")
    who.env["PYTHONPATH"] = str(copy)
    try:
        assert who.run("warm", "start").returncode == 0
        first = who.status()
        assert first["running"]
        argv = ("check", "--", "kubectl", "get", "pods", "-n", "prod")
        assert who.run(*argv).returncode == 0
        assert who.status()["served"] == 1
        target = copy / "jitkube" / "risk.py"
        stat = target.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        after = who.run(*argv)
        assert after.returncode == 0, after
        assert b"allow" in after.stdout
        # The stale server exited; the in-process call started a fresh one.
        fresh = who.wait_for_server()
        assert fresh["pid"] != first["pid"]
        assert fresh["served"] == 0
    finally:
        who.run("warm", "stop")
        shutil.rmtree(who.runtime, ignore_errors=True)


def test_an_idle_server_exits_and_removes_its_socket(caller: Caller) -> None:
    env = {"JITKUBE_WARM_IDLE": "1"}
    assert caller.run("warm", "start", extra_env=env).returncode == 0
    sockets = list(Path(caller.runtime, "jitkube").glob("warm-*.sock"))
    assert len(sockets) == 1
    deadline = time.monotonic() + 15
    while sockets[0].exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sockets[0].exists()
    assert caller.status()["running"] is False


def test_a_server_whose_socket_was_removed_exits(caller: Caller) -> None:
    """Removing a user's HOME or runtime directory (a walkthrough's clean-up, a test's
    tmp_path) leaves no server behind for its 15 idle minutes."""
    assert caller.run("warm", "start").returncode == 0
    pid = int(str(caller.status()["pid"]))
    os.kill(pid, 0)
    shutil.rmtree(Path(caller.runtime, "jitkube"))
    deadline = time.monotonic() + 10  # the idle timeout is 60 s here
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError("the server outlived its socket")


def test_config_can_turn_the_server_off(caller: Caller) -> None:
    config = Path(caller.env["XDG_CONFIG_HOME"]) / "jitkube" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("warm = false\n")
    del caller.env["JITKUBE_WARM"]  # the variable would win over the file
    argv = ("check", "--", "kubectl", "get", "pods")
    assert caller.run(*argv).returncode == 0
    deadline = time.monotonic() + 3  # a server, had one been started, answers well within
    while time.monotonic() < deadline:
        assert caller.status()["running"] is False
        time.sleep(0.2)
    # The same call with the setting back on does start one: the check above could fail.
    config.write_text("warm = true\n")
    assert caller.run(*argv).returncode == 0
    assert caller.wait_for_server()["running"] is True


def test_turning_it_off_in_config_stops_a_running_server(caller: Caller) -> None:
    config = Path(caller.env["XDG_CONFIG_HOME"]) / "jitkube" / "config.toml"
    config.parent.mkdir(parents=True)
    del caller.env["JITKUBE_WARM"]  # the variable would win over the file
    argv = ("check", "--", "kubectl", "get", "pods")
    assert caller.run("warm", "start").returncode == 0
    assert caller.run(*argv).returncode == 0
    assert caller.status()["served"] == 1  # on: served
    config.write_text("warm = false\n")
    done = caller.run(*argv)
    assert done.returncode == 0, done
    assert b"decision:   allow" in done.stdout  # the call ran, in-process
    deadline = time.monotonic() + 10
    while caller.status()["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert caller.status()["running"] is False  # and the server went away for good
    assert caller.run(*argv).returncode == 0
    time.sleep(1)  # a server, had the call started one, would answer within this
    assert caller.status()["running"] is False


@pytest.mark.parametrize("closed", [0, 1, 2])
def test_a_closed_standard_stream_becomes_dev_null_and_the_call_is_served(
    caller: Caller, closed: int
) -> None:
    """Else the socket (or the kubeconfig) would take the closed stream's number."""
    assert caller.run("warm", "start").returncode == 0
    argv = [sys.executable, "-m", "jitkube", "check", "--", "kubectl", "apply", "-f", "-"]

    def run(**kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(  # type: ignore[call-overload,no-any-return]
            argv, env=caller.env, capture_output=True, timeout=60, check=False, **kwargs
        )

    done = run(stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(closed))
    with_null = run(stdin=subprocess.DEVNULL)
    assert done.returncode == with_null.returncode == 0, done
    assert done.stdout == (b"" if closed == 1 else with_null.stdout)
    assert done.stderr == (b"" if closed == 2 else with_null.stderr)
    assert caller.status()["served"] == 2  # both went through the server


def test_the_socket_and_its_directory_are_private(caller: Caller) -> None:
    assert caller.run("warm", "start").returncode == 0
    directory = Path(caller.runtime, "jitkube")
    assert directory.stat().st_mode & 0o777 == 0o700
    (sock,) = directory.glob("warm-*.sock")
    assert sock.stat().st_mode & 0o077 == 0


def test_the_server_keeps_none_of_the_callers_secrets_in_its_environment(
    caller: Caller,
) -> None:
    secret = "s3cr3t-value-for-the-warm-test"
    env = {"JITKUBE_CLIENT_SECRET": secret, "AWS_SECRET_ACCESS_KEY": secret}
    # In-process call with the secrets set: it starts the server.
    assert caller.run("check", "--", "kubectl", "get", "pods", extra_env=env).returncode == 0
    pid = caller.wait_for_server()["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert secret.encode() not in environ
    assert b"XDG_RUNTIME_DIR=" in environ
