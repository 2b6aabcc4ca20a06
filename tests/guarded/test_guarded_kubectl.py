"""`jitkube kubectl` end to end: real kubectl, simulated EKS, STS emulator, IdP, broker.

What an agent and an engineer rely on: kubectl's bytes and exit codes, approvals that
really gate, refusals that never reach the cluster, no secret value in any output, and
an audit record for every invocation.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.cluster import run_kubectl
from fixtures.sessions_harness import Result, User
from jitkube.kubectl.resources import resolve_type

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("mode")]

PODS = resolve_type("pods")
assert PODS is not None


def _request_admin(user: User) -> dict[str, Any]:
    result = user.run("--output", "json", "request", "--role", "admin", "--ttl", "15m")
    assert result.returncode == 0, result
    cached = user.cached()
    assert len(cached) == 1
    return cached[0]


def _agent(user: User) -> dict[str, str]:
    return {"JITKUBE_AGENT": "claude-test"}


def _bare_kubectl(
    user: User, sandbox: Any, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    session = user.cached()[0]
    kubeconfig = sandbox.cluster.write_kubeconfig(
        tmp_path / "bare-kubeconfig", session["eks_token"]
    )
    env = {**user.env, "KUBECACHEDIR": str(tmp_path / "bare-cache")}
    return run_kubectl(Path(user.env["JITKUBE_KUBECTL"]), kubeconfig, env, *args)


def _read_until(proc: subprocess.Popen[bytes], needle: bytes, timeout: float = 60) -> bytes:
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen


def _approval_id(text: str) -> str:
    return next(
        word.strip("`();,.") for word in text.split() if word.strip("`();,.").startswith("cmd_")
    )


def test_allowed_read_matches_bare_kubectl_byte_for_byte(
    alice: User, sandbox: Any, tmp_path: Path
) -> None:
    session = _request_admin(alice)
    # Objects without secret-looking values (pods' env would be masked), and JSON rather
    # than a table whose AGE column may tick between the two runs.
    for argv in (("get", "namespaces", "-o", "json"), ("get", "pods", "-n", "prod", "-o", "name")):
        guarded = alice.run("kubectl", *argv)
        assert guarded.returncode == 0, guarded.stderr
        bare = _bare_kubectl(alice, sandbox, tmp_path, *argv)
        assert bare.returncode == 0, bare.stderr
        assert guarded.stdout == bare.stdout
    users = {r.user for r in sandbox.cluster.requests if r.path.endswith("/pods")}
    assert any(u and session["session_id"] in u for u in users), users


def test_kubectl_exit_codes_pass_through(alice: User) -> None:
    _request_admin(alice)
    missing = alice.run("kubectl", "get", "pod", "no-such-pod", "-n", "prod")
    assert missing.returncode == 1
    assert "NotFound" in missing.stderr or "not found" in missing.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_waiting_for_an_approval_ends_jitkube_as_in_process(
    alice: User, sandbox: Any, sig: signal.Signals
) -> None:
    """No handler of jitkube's runs while it waits for a reviewer: the signal's default
    action ends it. Through the warm server the caller must end the same way (killed by
    that signal), not with "the worker ended without an exit code"."""
    _request_admin(alice)
    proc = alice.start(
        "kubectl", "delete", "pod", "worker-0", "-n", "prod", extra_env=_agent(alice)
    )
    seen = _read_until(proc, b"waiting for a reviewer")
    assert b"waiting for a reviewer" in seen, seen
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -sig, (seen + err).decode()
    assert b"without an exit code" not in err
    assert sandbox.cluster.store.exists(PODS, "prod", "worker-0")  # nothing ran


def test_agent_delete_waits_for_a_second_users_approval_then_runs(
    alice: User, bob: User, sandbox: Any
) -> None:
    _request_admin(alice)
    assert sandbox.cluster.store.exists(PODS, "prod", "worker-0")
    proc = alice.start(
        "kubectl", "delete", "pod", "worker-0", "-n", "prod", extra_env=_agent(alice)
    )
    seen = _read_until(proc, b"cmd_")
    approval = _approval_id(seen.decode())
    # Nothing has reached the cluster yet.
    assert sandbox.cluster.store.exists(PODS, "prod", "worker-0")
    listed = bob.run("approvals")
    assert approval in listed.stdout
    assert "delete pod worker-0" in listed.stdout
    # The reviewer sees the role it would run with and the agent that asks.
    assert "role admin" in listed.stdout
    assert "run by agent claude-test" in listed.stdout
    [asked] = [
        c for c in bob.run("approvals", "--output", "json").envelope["data"]["commands"]
        if c["id"] == approval
    ]  # fmt: skip
    assert (asked["requester_email"], asked["role"], asked["agent"]) == (
        "alice@example.test",
        "admin",
        "claude-test",
    )
    own = alice.run("approve", approval)
    assert own.returncode == 65, own  # the requester can never approve their own command
    approved = bob.run("approve", approval, "--comment", "ok, on call")
    assert approved.returncode == 0, approved
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (seen + err).decode()
    assert b"deleted" in out
    assert not sandbox.cluster.store.exists(PODS, "prod", "worker-0")


def test_a_denied_command_ends_67_with_the_reviewer_and_comment_and_never_runs(
    alice: User, bob: User, sandbox: Any
) -> None:
    _request_admin(alice)
    proc = alice.start(
        "kubectl", "delete", "pod", "worker-0", "-n", "prod", extra_env=_agent(alice)
    )
    seen = _read_until(proc, b"cmd_")
    approval = _approval_id(seen.decode())
    denied = bob.run("deny", approval, "--comment", "not during the freeze")
    assert denied.returncode == 0, denied
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 67, (seen + err).decode()
    assert out == b""
    message = f"approval {approval} was denied by bob@example.test: not during the freeze"
    assert message in (seen + err).decode()
    assert sandbox.cluster.store.exists(PODS, "prod", "worker-0")


def test_no_wait_returns_pending_with_a_machine_readable_line(alice: User, sandbox: Any) -> None:
    _request_admin(alice)
    result = alice.run(
        "--no-wait", "kubectl", "delete", "pod", "worker-0", "-n", "prod", extra_env=_agent(alice)
    )
    assert result.returncode == 66, result
    line = json.loads(result.stderr.splitlines()[0])
    assert line["status"] == "pending"
    assert line["data"]["approval_id"].startswith("cmd_")
    assert line["data"]["class"] == "destructive"
    assert sandbox.cluster.store.exists(PODS, "prod", "worker-0")
    status = alice.run("approvals", "status", line["data"]["approval_id"])
    assert status.returncode == 66, status  # an agent polls until this turns 0
    assert "pending" in status.stdout


def test_denied_and_bypass_commands_never_reach_the_cluster(alice: User, sandbox: Any) -> None:
    _request_admin(alice)
    before = len(sandbox.cluster.requests)
    refused = [
        alice.run("kubectl", "--kubeconfig", "/tmp/other", "get", "pods"),
        alice.run("kubectl", "get", "pods", "--token", "stolen-token-value"),
        alice.run("kubectl", "krew", "install", "evil"),
        alice.run(
            "kubectl",
            "exec",
            "-n",
            "kube-system",
            "coredns-6b9f8d7c5-q1w2e",
            "--",
            "sh",
            extra_env=_agent(alice),
        ),
        alice.run("kubectl", "create", "token", "default", "-n", "prod"),
    ]
    for result in refused:
        assert result.returncode == 65, result
        assert "stolen-token-value" not in result.stderr
    agent_line = json.loads(refused[3].stderr.splitlines()[0])
    assert agent_line["status"] == "denied"
    assert agent_line["data"]["decision"] == "deny"
    assert agent_line["data"]["rule"]
    assert len(sandbox.cluster.requests) == before


def test_a_jitkube_option_after_kubectl_is_refused_with_where_it_goes(
    alice: User, sandbox: Any
) -> None:
    """What an agent behind the kubectl shim tries first: `kubectl --no-wait delete …`."""
    _request_admin(alice)
    before = len(sandbox.cluster.requests)
    misplaced = alice.run(
        "kubectl", "--no-wait", "delete", "pod", "worker-0", "-n", "prod", extra_env=_agent(alice)
    )
    assert misplaced.returncode == 65, misplaced
    line = json.loads(misplaced.stderr.splitlines()[0])
    hints = json.dumps(line)
    assert "jitkube --no-wait kubectl" in hints
    assert "JITKUBE_NO_WAIT=1" in hints
    unmask = alice.run("kubectl", "get", "secret", "db-credentials", "-n", "prod", "--unmask")
    assert unmask.returncode == 65, unmask
    assert "jitkube --unmask kubectl" in unmask.stderr
    assert len(sandbox.cluster.requests) == before


def test_no_session_says_what_to_run(alice: User, sandbox: Any) -> None:
    result = alice.run("kubectl", "get", "pods")
    assert result.returncode == 69
    assert "jitkube request" in result.stderr
    assert sandbox.cluster.requests == []


SECRET_VIEWS = [
    ("get", "secret", "-n", "prod", "-o", "yaml"),
    ("get", "secrets", "-A", "-o", "json"),
    ("get", "secret", "db-credentials", "-n", "prod", "-o", "jsonpath={.data}"),
    ("get", "secret", "api-token", "-n", "prod", "-o", "go-template={{.data}}"),
    ("get", "secret", "db-credentials", "-n", "prod", "-o", "jsonpath={.metadata.annotations}"),
    ("get", "pods", "-n", "prod", "-o", "yaml"),
    ("describe", "pod", "api-5c8d7f9b4-x2k9p", "-n", "prod"),
    ("logs", "api-5c8d7f9b4-x2k9p", "-n", "prod"),
    ("exec", "-n", "prod", "api-5c8d7f9b4-x2k9p", "--", "env"),
]


def _encodings(value: str) -> list[str]:
    return [value, base64.b64encode(value.encode()).decode()]


def test_no_secret_value_reaches_the_caller_or_the_audit(
    alice: User, bob: User, sandbox: Any
) -> None:
    session = _request_admin(alice)
    secrets = [e for v in sandbox.cluster.credentials.values() for e in _encodings(v)]
    secrets += [session["eks_token"], session["session_token"]]
    outputs: list[Result] = []
    for argv in SECRET_VIEWS:
        result = alice.start("kubectl", *argv)
        seen = _read_until(result, b"cmd_", timeout=20)
        if b"cmd_" in seen:  # the policy sends it to a reviewer first
            assert bob.run("approve", _approval_id(seen.decode())).returncode == 0
        out, err = result.communicate(timeout=60)
        assert result.returncode == 0, (argv, (seen + err).decode())
        outputs.append(Result(result.returncode, out.decode(), (seen + err).decode()))
    joined = "\n".join(r.stdout + r.stderr for r in outputs)
    assert "<masked:" in joined
    audit_dir = alice.state_home / "audit"
    audit_text = "\n".join(p.read_text() for p in audit_dir.iterdir() if p.is_file())
    leaks = [s[:12] for s in secrets if s and (s in joined or s in audit_text)]
    assert leaks == []
    # Names stay readable: masking hides values, not what the objects are.
    assert "db-credentials" in joined
    assert "api-5c8d7f9b4-x2k9p" in joined


def test_every_invocation_is_audited_and_the_chain_verifies(alice: User) -> None:
    _request_admin(alice)
    alice.run("kubectl", "get", "pods", "-n", "prod")
    alice.run("kubectl", "--kubeconfig", "/x", "get", "pods")
    alice.run("kubectl", "get", "pod", "nope", "-n", "prod")
    masked = alice.run("kubectl", "get", "pods", "-n", "prod", "-o", "yaml")
    assert masked.returncode == 0, masked
    listed = alice.run("--output", "json", "audit")
    assert listed.returncode == 0, listed
    records = listed.envelope["data"]["records"]
    outcomes = [r["outcome"] for r in records]
    assert outcomes[-4:] == ["allowed", "denied", "allowed", "allowed"]
    # Output read to be masked is counted; output passed straight through is not seen.
    assert records[-1]["stdout_bytes"] == len(masked.stdout.encode()) > 0
    assert records[-4]["stdout_bytes"] is None
    assert records[-4]["output_bytes"] is None
    records = records[:-1]
    assert records[-1]["exit_code"] == 1
    who = records[-1]
    assert (who["sub"], who["email"]) == ("alice", "alice@example.test")
    assert "engineers" in who["groups"]
    verify = alice.run("audit", "--verify")
    assert verify.returncode == 0, verify
    flushed = alice.run("--output", "json", "audit", "--flush")
    assert flushed.returncode == 0, flushed


def test_rerunning_after_no_wait_uses_the_approval_once_it_is_granted(
    alice: User, bob: User, sandbox: Any
) -> None:
    _request_admin(alice)
    argv = ("kubectl", "delete", "pod", "worker-0", "-n", "prod")
    first = alice.run("--no-wait", *argv, extra_env=_agent(alice))
    assert first.returncode == 66, first
    approval = json.loads(first.stderr.splitlines()[0])["data"]["approval_id"]
    again = alice.run("--no-wait", *argv, extra_env=_agent(alice))
    assert again.returncode == 66
    assert json.loads(again.stderr.splitlines()[0])["data"]["approval_id"] == approval
    assert bob.run("approve", approval).returncode == 0
    # Another command does not get to use that approval.
    other = alice.run(
        "--no-wait", "kubectl", "delete", "pod", "api-5c8d7f9b4-x2k9p", "-n", "prod",
        extra_env=_agent(alice),
    )  # fmt: skip
    assert other.returncode == 66
    assert json.loads(other.stderr.splitlines()[0])["data"]["approval_id"] != approval
    done = alice.run("--no-wait", *argv, extra_env=_agent(alice))
    assert done.returncode == 0, done
    assert not sandbox.cluster.store.exists(PODS, "prod", "worker-0")
    # Used once: the same command now needs a new approval.
    reused = alice.run("--no-wait", *argv, extra_env=_agent(alice))
    assert reused.returncode == 66
    assert json.loads(reused.stderr.splitlines()[0])["data"]["approval_id"] != approval


def test_a_session_requested_for_an_agent_is_judged_as_an_agents_without_markers(
    alice: User, sandbox: Any
) -> None:
    granted = alice.run("request", "--role", "admin", "--ttl", "15m", "--agent", "claude")
    assert granted.returncode == 0, granted
    assert alice.cached()[0]["agent"] is True
    # A write an engineer may run at once; an agent's waits for a reviewer.
    result = alice.run(
        "--no-wait", "kubectl", "label", "pod", "web-7d4b9c6f5-abcde", "-n", "default", "x=y"
    )
    assert result.returncode == 66, result
    assert json.loads(result.stderr.splitlines()[0])["status"] == "pending"


def test_unmask_needs_a_reviewer_and_then_shows_the_values(
    alice: User, bob: User, sandbox: Any
) -> None:
    _request_admin(alice)
    password = sandbox.cluster.credentials.db_password
    argv = ("kubectl", "get", "secret", "db-credentials", "-n", "prod", "-o", "jsonpath={.data}")
    first = alice.run("--output", "json", "--unmask", "--no-wait", *argv)
    assert first.returncode == 66, first  # even where the masked read would just run
    approval = json.loads(first.stderr.splitlines()[0])["data"]["approval_id"]
    listed = bob.run("--output", "json", "approvals")
    assert listed.returncode == 0, listed
    assert "UNMASK" in listed.stdout
    assert bob.run("approve", approval).returncode == 0
    shown = alice.run("--unmask", "--no-wait", *argv)
    assert shown.returncode == 0, shown
    assert base64.b64encode(password.encode()).decode() in shown.stdout
    records = json.loads(alice.run("--output", "json", "audit").stdout)["data"]["records"]
    assert records[-1]["invocation"]["unmasked"] is True
    assert password not in json.dumps(records)
