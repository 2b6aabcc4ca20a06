"""`jitkube request/status/revoke/approvals/approve/deny` end to end.

Real CLI subprocesses, logged in through the real device flow at the sandbox IdP, against
a real broker process (uvicorn on loopback) that assumes roles at the STS emulator.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import selectors
import socket
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from fixtures.sessions_harness import (
    CLUSTER_ENDPOINT,
    Result,
    User,
    assert_no_secrets,
    broker_config,
    session_id_of,
    start_broker,
)
from jitkube import session_cache
from jitkube.cli.sessions import REQUEST_KEYS
from jitkube.eks_token import decode_eks_token
from jitkube.errors import BrokerUnreachableError, SessionRequiredError
from jitkube.sandbox.tls import CertificateAuthority

pytestmark = [pytest.mark.integration]


def _secrets(*users: User) -> list[str]:
    found: list[str] = []
    for user in users:
        found += user.access_tokens()
        for entry in user.cached():
            found += [entry["session_token"], entry["eks_token"]]
    return found


def test_auto_approved_request_caches_the_session_and_a_working_eks_token(alice: User) -> None:
    r = alice.run("request", "--ttl", "15m", "--role", "viewer", "--cluster", "prod")

    assert r.returncode == 0, r.stderr
    assert "jitkube session active" in r.stdout
    assert "viewer" in r.stdout
    assert "prod" in r.stdout
    assert CLUSTER_ENDPOINT in r.stdout
    assert "remaining" in r.stdout
    assert "14m" in r.stdout
    [path] = alice.cache_files()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    entry = json.loads(path.read_text())
    assert entry["status"] == "active"
    assert entry["role"] == "viewer"
    assert entry["cluster"] == "prod"
    assert entry["session_token"].startswith("jks.")
    assert entry["cluster_endpoint"] == CLUSTER_ENDPOINT
    assert entry["policy"]["rules"], "the policy snapshot comes with the session"
    now = dt.datetime.now(dt.UTC)
    presigned = decode_eks_token(entry["eks_token"], "prod", now=now)
    assert presigned.headers["x-k8s-aws-id"] == "prod"
    assert entry["eks_token_expires_at"] > time.time() + 13 * 60
    assert entry["expires_at"] == pytest.approx(time.time() + 15 * 60, abs=30)
    assert_no_secrets(_secrets(alice), r)


def _wait_for_line(proc: Any, text: str, timeout: float = 30) -> str:
    """Read the process's stderr until a line contains `text`; returns what was read."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if not selector.select(timeout=0.2):
            continue
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        if text in seen.decode(errors="replace"):
            return seen.decode(errors="replace")
    raise AssertionError(f"{text!r} not seen; stderr so far: {seen.decode(errors='replace')}")


def _finish(proc: Any, before: str) -> Result:
    out, err = proc.communicate(timeout=60)
    return Result(proc.returncode, out.decode(), before + err.decode())


def test_pending_request_waits_until_a_second_user_approves_it(alice: User, bob: User) -> None:
    waiting = alice.start(
        "request", "--ttl", "1h30m", "--role", "admin", "--reason", "INC-123", "--timeout", "2m"
    )
    line = _wait_for_line(waiting, "Waiting for")
    sid = line.split(" to approve ")[1].split()[0]

    approved = bob.run("approve", sid, "--comment", "go ahead")
    done = _finish(waiting, line)

    assert "a reviewer in group reviewers" in line  # who was asked, from the broker
    assert "0/1 approvals" in line
    assert approved.returncode == 0, approved.stderr
    assert "alice@example.test" in approved.stdout
    assert "INC-123" in approved.stdout
    assert "active" in approved.stdout
    assert done.returncode == 0, done.stderr
    assert "jitkube session active" in done.stdout
    assert "1h 29m" in done.stdout or "1h 30m" in done.stdout
    [entry] = alice.cached()
    assert entry["status"] == "active"
    assert entry["session_id"] == sid
    decode_eks_token(entry["eks_token"], "prod", now=dt.datetime.now(dt.UTC))
    assert_no_secrets(_secrets(alice, bob), approved, done)


def test_a_reviewer_cannot_approve_their_own_request(bob: User) -> None:
    pending = bob.run("request", "--role", "admin", "--ttl", "30m", "--reason", "mine", "--no-wait")
    sid = session_id_of(pending)

    text = bob.run("approve", sid)
    as_json = bob.run("--output", "json", "approve", sid)

    assert text.returncode == 65
    assert "cannot review your own request" in text.stderr
    doc = as_json.envelope
    assert doc["status"] == "denied"
    assert doc["exit_code"] == 65
    assert doc["errors"][0]["code"] == "self_approval"


def test_no_wait_returns_the_request_id_with_exit_66(alice: User) -> None:
    text = alice.run("request", "--role", "admin", "--ttl", "15m", "--reason", "x", "--no-wait")
    as_json = alice.run(
        "request", "--role", "admin", "--ttl", "15m", "--reason", "y", "--no-wait", "-o", "json"
    )

    assert text.returncode == 66
    sid = session_id_of(text)
    assert "pending" in text.stderr
    assert as_json.returncode == 66
    doc = as_json.envelope
    assert (doc["command"], doc["status"], doc["exit_code"]) == ("request", "pending", 66)
    assert doc["data"]["status"] == "pending"
    assert doc["data"]["id"].startswith("ses_")
    assert doc["data"]["id"] != sid
    assert doc["errors"][0]["code"] == "approval_pending"
    # The session token is returned once: the pending request is cached with it.
    [entry] = alice.cached()  # one file per broker + cluster + role: the newer request
    assert entry["status"] == "pending"
    assert entry["session_id"] == doc["data"]["id"]


def test_a_denied_request_exits_67_with_the_reviewers_comment(alice: User, bob: User) -> None:
    waiting = alice.start("request", "--role", "admin", "--ttl", "15m", "--reason", "INC-9")
    line = _wait_for_line(waiting, "Waiting for")
    sid = line.split(" to approve ")[1].split()[0]

    no_comment = bob.run("deny", sid)
    denied = bob.run("deny", sid, "--comment", "not during the freeze")
    done = _finish(waiting, line)

    assert no_comment.returncode == 64
    assert denied.returncode == 0, denied.stderr
    assert "denied" in denied.stdout
    assert done.returncode == 67
    assert "denied by bob@example.test: not during the freeze" in done.stderr
    assert alice.cache_files() == []


def test_a_reviewer_is_told_why_there_is_nothing_left_to_decide(alice: User, bob: User) -> None:
    approved = session_id_of(
        alice.run("request", "--role", "admin", "--ttl", "15m", "--reason", "r", "--no-wait")
    )
    assert bob.run("approve", approved).returncode == 0
    lapsing = session_id_of(alice.run("request", "--role", "oncall", "--ttl", "15m", "--no-wait"))
    time.sleep(2.5)  # the oncall role's request_expiry is 2 s

    again = bob.run("approve", approved)
    late = bob.run("approve", lapsing)
    late_json = bob.run("--output", "json", "deny", lapsing, "--comment", "too late")

    assert again.returncode == 64
    assert f"session request {approved} is already active: nothing to decide" in again.stderr
    assert late.returncode == 67
    assert f"session request {lapsing} expired before anyone decided" in late.stderr
    assert "runs `jitkube request` again" in late.stderr
    assert late_json.returncode == 67
    assert late_json.envelope["status"] == "refused"


def test_status_picks_up_an_approval_given_after_no_wait(alice: User, bob: User) -> None:
    sid = session_id_of(
        alice.run("request", "--role", "admin", "--ttl", "20m", "--reason", "r", "--no-wait")
    )
    before = alice.run("status")
    assert bob.run("approve", sid).returncode == 0
    after = alice.run("--output", "json", "status")

    assert "pending" in before.stdout
    [session] = after.envelope["data"]["sessions"]
    assert session["id"] == sid
    assert session["status"] == "active"
    assert 19 * 60 < session["remaining_seconds"] <= 20 * 60
    [entry] = alice.cached()
    assert entry["eks_token"].startswith("k8s-aws-v1.")


def test_revoke_removes_the_cache_and_the_broker_refuses_the_session_token(alice: User) -> None:
    assert alice.run("request", "--role", "viewer", "--cluster", "prod").returncode == 0
    [entry] = alice.cached()
    cached = session_cache.load(alice.env, "prod", "viewer")
    assert cached is not None

    r = alice.run("revoke")

    assert r.returncode == 0, r.stderr
    assert entry["session_id"] in r.stdout
    assert alice.cache_files() == []
    answer = requests.post(
        f"{entry['broker_url']}/v1/sessions/{entry['session_id']}/eks-token",
        headers={"Authorization": f"Bearer {entry['session_token']}"},
        timeout=10,
    )
    assert answer.status_code == 409
    assert answer.json()["session_status"] == "revoked"
    with pytest.raises(SessionRequiredError, match="revoked"):
        session_cache.fresh_eks_token(cached, now=cached.eks_token_expires_at)
    assert_no_secrets([*_secrets(alice), entry["session_token"], entry["eks_token"]], r)


def test_an_expired_cache_entry_is_reported_by_status_and_dropped_by_load(alice: User) -> None:
    assert alice.run("request", "--role", "viewer", "--cluster", "dev").returncode == 0
    [path] = alice.cache_files()
    original = path.read_text()

    def expire() -> None:
        entry = json.loads(original)
        entry["expires_at"] = time.time() - 5
        path.write_text(json.dumps(entry))
        path.chmod(0o600)

    expire()
    r = alice.run("status")
    assert r.returncode == 0, r.stderr
    assert "expired; removed from the cache" in r.stdout
    assert "No active or pending sessions." in r.stdout
    assert not path.exists()

    expire()
    assert session_cache.load(alice.env, "dev", "viewer") is None
    assert not path.exists()

    path.write_text(original)
    path.chmod(0o600)
    assert session_cache.load(alice.env, "dev", "viewer") is not None


def test_fresh_eks_token_fetches_the_next_token_near_expiry(alice: User) -> None:
    assert alice.run("request", "--role", "viewer", "--cluster", "prod").returncode == 0
    cached = session_cache.load(alice.env)
    assert cached is not None
    far = cached.eks_token_expires_at - 600
    near = cached.eks_token_expires_at - 30

    assert session_cache.fresh_eks_token(cached, now=far) is cached  # no network needed
    time.sleep(1.1)  # X-Amz-Date has one-second resolution: a new token differs
    fresh = session_cache.fresh_eks_token(cached, now=near)

    assert fresh.eks_token != cached.eks_token
    assert fresh.eks_token_expires_at > cached.eks_token_expires_at
    decode_eks_token(fresh.eks_token, "prod", now=dt.datetime.now(dt.UTC))
    [path] = alice.cache_files()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["eks_token"] == fresh.eks_token
    reloaded = session_cache.load(alice.env)
    assert reloaded is not None
    assert reloaded.eks_token == fresh.eks_token


def test_fresh_eks_token_reports_an_unreachable_broker(alice: User) -> None:
    assert alice.run("request", "--role", "viewer", "--cluster", "prod").returncode == 0
    cached = session_cache.load(alice.env)
    assert cached is not None
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = replace(cached, broker_url=f"http://127.0.0.1:{s.getsockname()[1]}")

    # Still valid for 30 s: the current token is used, the refresh is retried next time.
    assert session_cache.fresh_eks_token(dead, now=cached.eks_token_expires_at - 30) is dead
    with pytest.raises(BrokerUnreachableError) as caught:
        session_cache.fresh_eks_token(dead, now=cached.eks_token_expires_at - 5)
    assert caught.value.exit_code == 70
    assert cached.session_token not in str(caught.value)


def test_non_interactive_request_never_prompts(alice: User, tmp_path: Path) -> None:
    ci = {"CI": "true"}
    waited = alice.run(
        "request", "--role", "admin", "--reason", "deploy", "--timeout", "2s", extra_env=ci
    )
    nobody = alice.run(
        "request",
        "--role",
        "viewer",
        "--cluster",
        "prod",
        extra_env={**ci, "XDG_STATE_HOME": str(tmp_path / "empty-state")},
    )

    assert waited.returncode == 66
    assert "still waiting after --timeout" in waited.stderr
    assert nobody.returncode == 68
    assert "jitkube login" in nobody.stderr
    for r in (waited, nobody):
        assert "Open the sign-in page" not in r.stderr
        assert "[y/N]" not in r.stderr + r.stdout


def test_requests_are_checked_against_the_brokers_limits_before_sending(alice: User) -> None:
    cases = [
        (("--role", "viewer", "--cluster", "prod", "--ttl", "10m"), "minimum is 15m"),
        (("--role", "viewer", "--cluster", "prod", "--ttl", "3h"), "longer than role viewer"),
        (("--role", "viewer", "--cluster", "prod", "--ttl", "15"), "not a duration"),
        (("--role", "viewer", "--ttl", "15m"), "say which cluster"),
        (("--role", "admin", "--ttl", "15m"), "needs a reason"),
        (("--role", "admin", "--cluster", "dev", "--ttl", "15m"), "not available on cluster"),
        (("--role", "root", "--ttl", "15m"), "has no role 'root'"),
    ]
    for args, message in cases:
        r = alice.run("request", *args)
        assert r.returncode == 64, (args, r)
        assert message in r.stderr, (args, r)
    assert alice.cache_files() == []


def test_broker_errors_map_to_documented_exit_codes(alice: User) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    unreachable = alice.run("request", "--role", "viewer", "--cluster", "prod", "--broker", dead)
    unknown = alice.run("revoke", "ses_doesnotexist0000")
    not_mine = alice.run("approvals", "status", "cmd_doesnotexist0000")

    assert unreachable.returncode == 70
    assert "cannot reach the broker" in unreachable.stderr
    assert unknown.returncode == 64
    assert "no such session" in unknown.stderr
    assert not_mine.returncode == 64


def test_command_approvals_show_the_exact_command_to_the_reviewer(alice: User, bob: User) -> None:
    assert alice.run("request", "--role", "viewer", "--cluster", "prod").returncode == 0
    [entry] = alice.cached()
    # The guarded kubectl path files this; here the test does, with the session token.
    filed = requests.post(
        f"{entry['broker_url']}/v1/commands",
        json={"argv": ["delete", "pod", "web-1", "-n", "prod"], "namespace": "prod"},
        headers={"Authorization": f"Bearer {entry['session_token']}"},
        timeout=10,
    )
    assert filed.status_code == 202, filed.text
    cid = filed.json()["id"]

    listed = bob.run("approvals")
    listed_json = bob.run("approvals", "--output", "json")
    before = alice.run("approvals", "status", cid)
    # An agent that holds only the session (no login of its own) can poll too.
    no_login = {"XDG_STATE_HOME": str(alice.home / "no-login")}
    as_agent = alice.run("approvals", "status", cid, "--wait", "1s", extra_env=no_login)
    self_approve = alice.run("approve", cid)
    approved = bob.run("approve", cid, "--comment", "ok for web-1")
    after = alice.run("--output", "json", "approvals", "status", cid)
    after_text = alice.run("approvals", "status", cid)

    assert "(approved by bob@example.test: ok for web-1)" in after_text.stdout
    assert listed.returncode == 0, listed.stderr
    assert cid in listed.stdout
    assert "kubectl delete pod web-1 -n prod" in listed.stdout
    assert "destructive" in listed.stdout
    assert cid in {c["id"] for c in listed_json.envelope["data"]["commands"]}
    assert before.returncode == 66
    assert as_agent.returncode == 66, as_agent.stderr
    assert f"command request {cid}: pending" in as_agent.stdout
    assert self_approve.returncode == 65
    assert approved.returncode == 0, approved.stderr
    assert "kubectl delete pod web-1 -n prod" in approved.stdout
    assert "destructive" in approved.stdout
    assert "approved" in approved.stdout
    assert after.returncode == 0
    assert after.envelope["data"]["request"]["status"] == "approved"


def test_logout_revoke_ends_the_sessions_at_the_broker(alice: User) -> None:
    assert alice.run("request", "--role", "viewer", "--cluster", "prod").returncode == 0
    [entry] = alice.cached()

    r = alice.run("--output", "json", "logout", "--revoke")

    assert r.returncode == 0, r.stderr
    data = r.envelope["data"]
    assert entry["session_id"] in data["revoked"]
    assert "session cache" in data["removed"]
    assert alice.cache_files() == []
    answer = requests.post(
        f"{entry['broker_url']}/v1/sessions/{entry['session_id']}/eks-token",
        headers={"Authorization": f"Bearer {entry['session_token']}"},
        timeout=10,
    )
    assert answer.status_code == 409
    assert alice.run("status").stdout.startswith("Not logged in")


def test_no_token_appears_in_any_output_even_with_debug(alice: User, bob: User) -> None:
    results = [
        alice.run("--debug", "request", "--role", "viewer", "--cluster", "prod"),
        alice.run("--debug", "--output", "json", "request", "--role", "viewer", "--cluster", "dev"),
    ]
    sid = session_id_of(
        alice.run("request", "--role", "admin", "--reason", "x", "--no-wait", "--debug")
    )
    results += [
        alice.run("--debug", "status"),
        alice.run("--debug", "--output", "json", "status"),
        bob.run("--debug", "approvals"),
        bob.run("--debug", "approve", sid),
        alice.run("--debug", "status"),
        alice.run("--debug", "revoke", "ses_doesnotexist0000"),
        alice.run("--debug", "approve", sid),
        alice.run("--debug", "approvals", "status", sid),
    ]
    secrets = _secrets(alice, bob)
    results.append(alice.run("--debug", "--output", "json", "logout", "--revoke"))
    assert len(secrets) >= 8
    assert_no_secrets(secrets, *results)


def test_request_prints_one_pinned_json_envelope(alice: User) -> None:
    r = alice.run("--output", "json", "request", "--role", "viewer", "--cluster", "prod")

    assert r.returncode == 0, r.stderr
    doc = r.envelope
    assert list(doc) == [
        "jitkube_result_version",
        "command",
        "status",
        "exit_code",
        "data",
        "errors",
    ]
    assert (doc["command"], doc["status"], doc["exit_code"], doc["errors"]) == (
        "request",
        "ok",
        0,
        [],
    )
    # The keys and their order are pinned by test_session_units' contract test.
    assert list(doc["data"]) == list(REQUEST_KEYS)
    data = doc["data"]
    assert data["status"] == "active"
    assert data["ttl_seconds"] == 900
    assert data["cached"] is True
    assert 880 <= data["remaining_seconds"] <= 900
    assert r.stderr == ""
    assert_no_secrets(_secrets(alice), r)


def test_an_https_broker_is_trusted_through_the_configured_ca_bundle_only(
    alice: User, tmp_path: Path, sessions_idp: Any, sessions_sts: Any
) -> None:
    # The broker's certificate comes from the IdP's CA: one bundle (JITKUBE_CA_BUNDLE) for both.
    cert, key = sessions_idp.idp.ca.issue_server().write(tmp_path, "broker")
    config = broker_config(tmp_path, sessions_idp, sessions_sts)
    bundle = str(sessions_idp.ca_bundle)
    broker = start_broker(
        config,
        sessions_sts,
        tmp_path,
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        verify=bundle,
    )
    try:
        assert broker.url.startswith("https://127.0.0.1:")
        other_ca = CertificateAuthority().write_bundle(tmp_path / "other-ca.pem")
        env = {"JITKUBE_BROKER_URL": broker.url, "REQUESTS_CA_BUNDLE": str(other_ca)}
        r = alice.run("request", "--role", "viewer", "--cluster", "prod", extra_env=env)
        assert r.returncode == 0, r.stderr
        cached = session_cache.load(alice.env)
        assert cached is not None
        assert cached.ca_bundle == bundle
        assert cached.broker_url == broker.url

        time.sleep(1.1)
        fresh = session_cache.fresh_eks_token(cached, now=cached.eks_token_expires_at - 30)
        assert fresh.eks_token != cached.eks_token

        untrusted = replace(fresh, ca_bundle=str(other_ca), path=None)
        with pytest.raises(BrokerUnreachableError):
            session_cache.fresh_eks_token(untrusted, now=fresh.eks_token_expires_at)
        wrong = alice.run(
            "status", extra_env={**env, "JITKUBE_CA_BUNDLE": str(other_ca)}
        )  # status needs no broker for active sessions; revoke does
        revoked = alice.run("revoke", extra_env={**env, "JITKUBE_CA_BUNDLE": str(other_ca)})
        assert wrong.returncode == 0
        assert revoked.returncode == 0  # the cached entry carries its own CA bundle
    finally:
        broker.kill()


def test_a_request_for_an_agent_is_marked_as_such(alice: User) -> None:
    r = alice.run(
        "-o", "json", "request", "--role", "viewer", "--cluster", "dev", "--agent", "claude"
    )
    text = alice.run("request", "--role", "viewer", "--cluster", "prod", "--agent", "claude")

    assert r.returncode == 0, r.stderr
    data = r.envelope["data"]
    assert data["agent"] is True
    assert data["agent_name"] == "claude"
    assert "agent      claude" in text.stdout
    assert {e["agent_name"] for e in alice.cached()} == {"claude"}


def test_status_shows_a_countdown_of_the_granted_time(alice: User) -> None:
    granted = alice.run("request", "--role", "viewer", "--cluster", "prod", "--ttl", "20m")
    assert granted.returncode == 0, granted
    shown = alice.run("--output", "json", "status")
    assert shown.returncode == 0, shown
    session = shown.envelope["data"]["sessions"][0]
    assert session["ttl_seconds"] == 1200
    assert 1100 < session["remaining_seconds"] <= 1200
    text = alice.run("status", extra_env={"COLUMNS": "120"})
    assert "█" in text.stdout
    assert "20m" in text.stdout or "19m" in text.stdout
