"""Faults on the guarded path: signals mid-command, concurrent processes, broker outage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.sessions_harness import User

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("mode")]


def _request_admin(user: User) -> dict[str, Any]:
    result = user.run("request", "--role", "admin", "--ttl", "15m")
    assert result.returncode == 0, result
    return user.cached()[0]


def _run_dir(user: User) -> Path:
    return Path(user.env["XDG_RUNTIME_DIR"]) / "jitkube" / "run"


def _processes_using(run_dir: Path) -> list[int]:
    """PIDs whose environment points KUBECONFIG into `run_dir` (kubectl gets its
    kubeconfig through the environment, not its command line)."""
    needle = b"KUBECONFIG=" + os.fsencode(run_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(needle) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_watch_stops_kubectl_and_removes_the_kubeconfig(
    alice: User, sig: signal.Signals
) -> None:
    _request_admin(alice)
    proc = alice.start("kubectl", "get", "pods", "-n", "prod", "-w")
    deadline = time.monotonic() + 30
    kubeconfigs: list[Path] = []
    while not kubeconfigs and time.monotonic() < deadline:
        if _run_dir(alice).exists():
            kubeconfigs = list(_run_dir(alice).glob("*/kubeconfig"))
        time.sleep(0.05)
    assert kubeconfigs, "kubectl never started"
    time.sleep(1.0)  # let kubectl print the list and settle into the watch
    kubectl_pids = _processes_using(kubeconfigs[0].parent)
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert not kubeconfigs[0].exists()
    assert not kubeconfigs[0].parent.exists()
    # kubectl itself is gone too: no process still holds the watch.
    assert kubectl_pids, "kubectl was never seen running"
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in kubectl_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in kubectl_pids)
    record = json.loads(alice.run("--output", "json", "audit").stdout)["data"]["records"][-1]
    assert record["command"] == "get"


def test_two_processes_at_once_keep_the_audit_chain_intact(alice: User) -> None:
    _request_admin(alice)
    procs = [alice.start("kubectl", "get", "pods", "-n", "prod") for _ in range(6)]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    verify = alice.run("audit", "--verify")
    assert verify.returncode == 0, verify
    records = json.loads(alice.run("--output", "json", "audit").stdout)["data"]["records"]
    assert len(records) == 6
    assert sorted(r["seq"] for r in records) == list(range(1, 7))


def test_a_broker_outage_loses_no_audit_record(alice: User) -> None:
    _request_admin(alice)
    # The broker goes away: the cached session now points at a port nobody listens on.
    cache = alice.cache_files()[0]
    session = json.loads(cache.read_text())
    session["broker_url"] = "http://127.0.0.1:9"
    cache.write_text(json.dumps(session))
    for _ in range(3):
        result = alice.run("kubectl", "get", "pods", "-n", "prod")
        assert result.returncode == 0, result  # the cached EKS token needs no broker
    time.sleep(1)
    # The broker is back (the configured one answers): a flush delivers everything.
    flushed = alice.run("--output", "json", "audit", "--flush")
    assert flushed.returncode == 0, flushed
    assert json.loads(flushed.stdout)["data"]["delivered"] == 3
    listed = json.loads(alice.run("--output", "json", "audit").stdout)["data"]["records"]
    assert len(listed) == 3
    again = alice.run("--output", "json", "audit", "--flush")
    assert again.returncode == 0, again
    status = json.loads(again.stdout)["data"]
    assert status.get("pending", 0) == 0, status


def _alive(pid: int) -> bool:
    try:
        return _state(pid) != "Z"
    except OSError:
        return False


def _state(pid: int) -> str:
    # /proc/PID/stat: "pid (comm) STATE ..."; comm may hold spaces, the state follows ")".
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_ctrl_z_suspends_kubectl_with_jitkube_and_fg_resumes_it(alice: User) -> None:
    """Ctrl-Z on a terminal signals the foreground process group: kubectl must stop with
    jitkube (it would keep printing otherwise) and continue when the shell resumes it."""
    _request_admin(alice)
    proc = subprocess.Popen(
        [*alice.command, "kubectl", "get", "pods", "-n", "prod", "-w"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=alice.env,
        process_group=0,  # a job of its own, as a shell would start it
    )
    try:
        deadline = time.monotonic() + 30
        pids: list[int] = []
        while not pids and time.monotonic() < deadline:
            if _run_dir(alice).exists():
                for kubeconfig in _run_dir(alice).glob("*/kubeconfig"):
                    pids = _processes_using(kubeconfig.parent)
            time.sleep(0.05)
        assert pids, "kubectl never started"
        (kubectl,) = pids
        os.killpg(proc.pid, signal.SIGTSTP)
        deadline = time.monotonic() + 10
        while _state(kubectl) != "T" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(kubectl) == "T"
        os.killpg(proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while _state(kubectl) == "T" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(kubectl) != "T"
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(kubectl) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(kubectl)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
