"""Sessions over HTTP: grant, approve, STS, EKS tokens, revoke — against the STS emulator."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from broker_harness import Broker, make_broker

from jitkube.broker import migrations as m
from jitkube.eks_token import decode_eks_token

ENGINEER = ("alice", ("engineers",))
REVIEWER = ("bob", ("reviewers",))
REVIEWER2 = ("dave", ("reviewers",))
ONCALL = ("erin", ("sre-oncall",))
AGENT = ("agent-claude", ("agents",))
CI = ("ci-pipeline", ("ci-deployers",))
ADMIN = ("root", ("platform-admins",))


def _request(broker: Broker, who: tuple[str, tuple[str, ...]] = ENGINEER, **body: Any) -> Any:
    payload = {"role": "viewer", "cluster": "prod", "ttl": "15m", "reason": "INC-1", **body}
    return broker.client.post("/v1/sessions", json=payload, headers=broker.auth(*who))


def _all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _all_keys(v)}
    return set()


def _parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _eks(broker: Broker, session_id: str, token: str) -> Any:
    return broker.client.post(
        f"/v1/sessions/{session_id}/eks-token", headers=broker.session_auth(token)
    )


def test_an_auto_approved_role_is_active_at_once_with_broker_controlled_sts_call(
    broker: Broker,
) -> None:
    calls_before = len(broker.sts.emulator.assume_role_calls)
    response = _request(broker, ttl="20m", agent_name="", reason="INC-7 look at pods")
    assert response.status_code == 201, response.text
    body = response.json()
    session = body["session"]
    assert session["status"] == "active"
    assert session["role"] == "viewer"
    assert _parse_time(session["expires_at"]) == broker.clock() + 1200
    assert body["session_token"].startswith(f"jks.{session['id']}.")
    assert session["policy"]["version"] == 1
    # No AWS credentials, ever: no temporary key id, no credential-shaped fields.
    assert not re.search(r"ASIA[A-Z0-9]{16}", response.text)
    assert not {"access_key_id", "secret_access_key", "credentials"} & _all_keys(body)
    call = broker.sts.emulator.assume_role_calls[calls_before]
    assert call.role_arn.endswith(":role/jitkube-viewer")
    assert call.role_session_name == f"jitkube-{session['id']}"
    assert call.source_identity == "alice@example.test"  # who, visible in CloudTrail
    assert call.duration_seconds == 1200
    assert call.tags["jitkube:session"] == session["id"]
    assert call.tags["jitkube:agent"] == "false"
    assert call.tags["jitkube:reason"] == "INC-7 look at pods"
    assert call.outcome == "ok"


def test_the_eks_token_is_valid_for_the_assumed_role_and_bound_to_the_cluster(
    broker: Broker,
) -> None:
    created = _request(broker, cluster="dev").json()
    sid, token = created["session"]["id"], created["session_token"]
    response = _eks(broker, sid, token)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    eks = response.json()
    assert eks["cluster_endpoint"] == "https://dev.eks.test"
    now = dt.datetime.fromtimestamp(broker.clock(), dt.UTC)
    presigned = decode_eks_token(eks["token"], "dev-eks", now=now)
    identity = broker.sts.emulator.validate_presigned(presigned.url, presigned.headers, now)
    assert getattr(identity, "arn", "").endswith(f"assumed-role/jitkube-viewer/jitkube-{sid}")
    # Bound to the EKS cluster name: presented to another cluster it fails at STS.
    wrong = decode_eks_token(eks["token"], "prod", now=now)
    refused = broker.sts.emulator.validate_presigned(wrong.url, wrong.headers, now)
    assert not hasattr(refused, "arn")


def test_eks_tokens_never_outlive_the_session(broker: Broker) -> None:
    created = _request(broker, ttl="15m").json()
    sid, token = created["session"]["id"], created["session_token"]
    session_end = _parse_time(created["session"]["expires_at"])
    first = _eks(broker, sid, token).json()
    assert _parse_time(first["expires_at"]) <= session_end
    broker.clock.advance(10 * 60)
    late = _eks(broker, sid, token).json()
    assert _parse_time(late["expires_at"]) == session_end
    broker.clock.advance(5 * 60)
    expired = _eks(broker, sid, token)
    assert expired.status_code == 409
    assert expired.json()["code"] == "session_not_active"
    assert expired.json()["session_status"] == "expired"


@pytest.mark.parametrize(
    ("token_of", "status", "code"),
    [
        ("garbage", 401, "unauthorized"),
        ("other_session", 403, "forbidden"),
        ("oidc", 403, "forbidden"),
        ("tampered", 401, "unauthorized"),
    ],
)
def test_only_the_sessions_own_token_fetches_its_eks_token(
    broker: Broker, token_of: str, status: int, code: str
) -> None:
    created = _request(broker).json()
    sid, own = created["session"]["id"], created["session_token"]
    other = _request(broker).json()["session_token"]
    headers = {
        "garbage": {"Authorization": "Bearer jks.nothing.here"},
        "other_session": broker.session_auth(other),
        "oidc": broker.auth(*ENGINEER),
        "tampered": broker.session_auth(own[:-2] + ("AA" if not own.endswith("AA") else "BB")),
    }[token_of]
    response = broker.client.post(f"/v1/sessions/{sid}/eks-token", headers=headers)
    assert response.status_code == status
    assert response.json()["code"] == code


def test_credentials_and_tokens_are_not_stored_in_clear(broker: Broker) -> None:
    created = _request(broker).json()
    sid, token = created["session"]["id"], created["session_token"]
    with broker.store.read() as conn:
        row = conn.execute(sa.select(m.sessions).where(m.sessions.c.id == sid)).one()
    assert token not in str(tuple(row))
    assert row.token_hash != token
    assert row.credentials
    assert "ASIA" not in row.credentials  # Fernet ciphertext
    call = broker.sts.emulator.assume_role_calls[-1]
    assert call.role_session_name == f"jitkube-{sid}"


def test_a_broker_that_cannot_decrypt_old_credentials_assumes_the_role_again(
    broker: Broker,
) -> None:
    created = _request(broker).json()
    sid, token = created["session"]["id"], created["session_token"]
    # Same database, new broker with another key (e.g. an ephemeral key after a restart).
    other = make_broker(broker.store, broker.clock, broker.sts)
    other.issuer = broker.issuer
    calls = len(broker.sts.emulator.assume_role_calls)
    response = other.client.post(f"/v1/sessions/{sid}/eks-token", headers=other.session_auth(token))
    assert response.status_code == 200, response.text
    assert len(broker.sts.emulator.assume_role_calls) == calls + 1


@pytest.mark.parametrize(
    ("who", "body", "status", "code"),
    [
        (ENGINEER, {"ttl": "10m"}, 422, "validation"),
        (ENGINEER, {"ttl": "2h"}, 422, "validation"),
        (ENGINEER, {"ttl": "soon"}, 422, "validation"),
        (ENGINEER, {"role": "nope"}, 422, "validation"),
        (ENGINEER, {"cluster": "staging"}, 422, "validation"),
        (ENGINEER, {"role": "admin", "reason": ""}, 422, "validation"),
        (REVIEWER, {}, 403, "not_requestable"),
        (AGENT, {"role": "admin"}, 403, "not_requestable"),
        (ENGINEER, {"role": "admin", "agent": True}, 403, "agent_not_allowed"),
        (ENGINEER, {"role": "admin", "break_glass": True}, 403, "forbidden"),
        (ONCALL, {"role": "admin", "break_glass": True, "reason": ""}, 422, "validation"),
        (ENGINEER, {"extra": 1}, 422, "validation"),
    ],
)
def test_requests_outside_the_role_rules_are_refused(
    broker: Broker, who: tuple[str, tuple[str, ...]], body: dict[str, Any], status: int, code: str
) -> None:
    response = _request(broker, who, **body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_an_approval_role_waits_for_a_reviewer_who_is_not_the_requester(broker: Broker) -> None:
    created = _request(broker, role="admin", ttl="30m", reason="INC-9")
    assert created.status_code == 202
    sid, token = created.json()["session"]["id"], created.json()["session_token"]
    assert created.json()["session"]["status"] == "pending"
    assert _eks(broker, sid, token).json()["code"] == "session_not_active"

    def review(who: tuple[str, tuple[str, ...]], decision: str = "approve") -> Any:
        return broker.client.post(
            f"/v1/sessions/{sid}/approvals",
            json={"decision": decision, "comment": "ok"},
            headers=broker.auth(*who),
        )

    assert review(ENGINEER).json()["code"] == "self_approval"
    assert review(ONCALL).json()["code"] == "not_a_reviewer"
    broker.clock.advance(60)
    approved = review(REVIEWER)
    assert approved.status_code == 200, approved.text
    session = approved.json()
    assert session["status"] == "active"
    assert session["approvals"][0]["reviewer"] == "bob@example.test"
    # The TTL starts at approval, not at the request.
    assert _parse_time(session["expires_at"]) == broker.clock() + 1800
    assert _eks(broker, sid, token).status_code == 200
    assert review(REVIEWER2).json()["code"] == "already_decided"
    events = [e for e, _ in broker.notifier.events]
    assert events[:3] == ["session.requested", "session.approved", "session.activated"]


def test_two_approvals_are_needed_when_the_role_says_so(broker: Broker) -> None:
    created = _request(broker, role="deployer").json()
    sid = created["session"]["id"]
    url = f"/v1/sessions/{sid}/approvals"
    first = broker.client.post(url, json={"decision": "approve"}, headers=broker.auth(*REVIEWER))
    assert first.json()["status"] == "pending"
    again = broker.client.post(url, json={"decision": "approve"}, headers=broker.auth(*REVIEWER))
    assert again.status_code == 409
    second = broker.client.post(url, json={"decision": "approve"}, headers=broker.auth(*REVIEWER2))
    assert second.json()["status"] == "active"


def test_a_reviewer_can_deny(broker: Broker) -> None:
    sid = _request(broker, role="admin").json()["session"]["id"]
    denied = broker.client.post(
        f"/v1/sessions/{sid}/approvals",
        json={"decision": "deny", "comment": "not now"},
        headers=broker.auth(*REVIEWER),
    )
    assert denied.json()["status"] == "denied"
    assert denied.json()["ended_by"] == "bob"


def test_a_pending_request_expires_after_an_hour(broker: Broker) -> None:
    sid = _request(broker, role="admin").json()["session"]["id"]
    broker.clock.advance(3601)
    session = broker.client.get(f"/v1/sessions/{sid}", headers=broker.auth(*ENGINEER)).json()
    assert session["status"] == "expired"
    late = broker.client.post(
        f"/v1/sessions/{sid}/approvals",
        json={"decision": "approve"},
        headers=broker.auth(*REVIEWER),
    )
    assert late.json()["code"] == "already_decided"


def test_long_poll_returns_as_soon_as_the_session_is_approved(broker: Broker) -> None:
    sid = _request(broker, role="admin").json()["session"]["id"]

    def approve_later() -> None:
        time.sleep(0.5)
        broker.client.post(
            f"/v1/sessions/{sid}/approvals",
            json={"decision": "approve"},
            headers=broker.auth(*REVIEWER),
        )

    thread = threading.Thread(target=approve_later)
    start = time.monotonic()
    thread.start()
    response = broker.client.get(f"/v1/sessions/{sid}?wait=10", headers=broker.auth(*ENGINEER))
    elapsed = time.monotonic() - start
    thread.join()
    assert response.json()["status"] == "active"
    assert 0.4 < elapsed < 5


def test_long_poll_gives_up_after_wait_seconds(broker: Broker) -> None:
    sid = _request(broker, role="admin").json()["session"]["id"]
    start = time.monotonic()
    response = broker.client.get(f"/v1/sessions/{sid}?wait=1", headers=broker.auth(*ENGINEER))
    assert response.json()["status"] == "pending"
    assert 0.9 < time.monotonic() - start < 3


def test_break_glass_is_active_at_once_and_loud(broker: Broker) -> None:
    response = _request(broker, ONCALL, role="admin", break_glass=True, reason="prod down")
    assert response.status_code == 201
    assert response.json()["session"]["break_glass"] is True
    assert response.json()["session"]["status"] == "active"
    assert ("session.break_glass") in [e for e, _ in broker.notifier.events]


def test_ci_is_auto_approved_and_a_credentials_role_may_hand_out_sts_credentials(
    broker: Broker,
) -> None:
    created = _request(broker, CI, role="deployer").json()
    assert created["session"]["status"] == "active"
    sid, token = created["session"]["id"], created["session_token"]
    creds = broker.client.post(
        f"/v1/sessions/{sid}/credentials", headers=broker.session_auth(token)
    )
    assert creds.status_code == 200
    assert creds.json()["access_key_id"].startswith("ASIA")
    tags = broker.sts.emulator.assume_role_calls[-1].tags
    assert tags["team"] == "platform"


def test_a_token_role_never_hands_out_sts_credentials(broker: Broker) -> None:
    created = _request(broker).json()
    sid, token = created["session"]["id"], created["session_token"]
    response = broker.client.post(
        f"/v1/sessions/{sid}/credentials", headers=broker.session_auth(token)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "credentials_not_delivered"


def test_the_owner_revokes_and_the_token_stops_working(broker: Broker) -> None:
    created = _request(broker).json()
    sid, token = created["session"]["id"], created["session_token"]
    stranger = broker.client.delete(f"/v1/sessions/{sid}", headers=broker.auth("mallory", ["x"]))
    assert stranger.status_code == 404
    revoked = broker.client.delete(f"/v1/sessions/{sid}", headers=broker.auth(*ENGINEER))
    assert revoked.json()["status"] == "revoked"
    assert _eks(broker, sid, token).json()["session_status"] == "revoked"


def test_an_admin_or_the_session_token_can_revoke(broker: Broker) -> None:
    one = _request(broker).json()
    two = _request(broker).json()
    by_admin = broker.client.delete(
        f"/v1/sessions/{one['session']['id']}", headers=broker.auth(*ADMIN)
    )
    assert by_admin.json()["status"] == "revoked"
    by_token = broker.client.delete(
        f"/v1/sessions/{two['session']['id']}", headers=broker.session_auth(two["session_token"])
    )
    assert by_token.json()["status"] == "revoked"


def test_sessions_list_pages_and_scopes(broker: Broker) -> None:
    ids = []
    for _ in range(3):
        ids.append(_request(broker).json()["session"]["id"])
        broker.clock.advance(1)
    pending = _request(broker, role="admin").json()["session"]["id"]
    page = broker.client.get("/v1/sessions?limit=2", headers=broker.auth(*ENGINEER)).json()
    assert [s["id"] for s in page["items"]] == [pending, ids[2]]
    rest = broker.client.get(
        f"/v1/sessions?limit=2&cursor={page['next_cursor']}", headers=broker.auth(*ENGINEER)
    ).json()
    assert [s["id"] for s in rest["items"]] == [ids[1], ids[0]]
    reviewable = broker.client.get(
        "/v1/sessions?scope=reviewable", headers=broker.auth(*REVIEWER)
    ).json()
    assert [s["id"] for s in reviewable["items"]] == [pending]
    assert (
        broker.client.get("/v1/sessions?scope=all", headers=broker.auth(*ENGINEER)).status_code
        == 403
    )
    bad = broker.client.get("/v1/sessions?cursor=%%%", headers=broker.auth(*ENGINEER))
    assert bad.json()["code"] == "validation"
    # Valid base64 JSON of the wrong shape is refused too, on every newest-first list.
    from jitkube.broker.http import encode_cursor

    for path in ("/v1/sessions", "/v1/commands"):
        for shape in ("x", ["x", "y"], [1.0]):
            wrong = broker.client.get(
                f"{path}?cursor={encode_cursor(shape)}", headers=broker.auth(*REVIEWER)
            )
            assert (wrong.status_code, wrong.json()["code"]) == (422, "validation"), path


def test_sessions_work_the_same_on_postgresql(pg_broker: Broker) -> None:
    created = _request(pg_broker, role="admin").json()
    sid, token = created["session"]["id"], created["session_token"]
    approved = pg_broker.client.post(
        f"/v1/sessions/{sid}/approvals",
        json={"decision": "approve"},
        headers=pg_broker.auth(*REVIEWER),
    )
    assert approved.json()["status"] == "active"
    assert _eks(pg_broker, sid, token).status_code == 200


def test_an_sts_refusal_is_a_502_and_grants_nothing(
    tmp_path: Any, real_clock: Any, broker_sts: Any
) -> None:
    from broker_harness import broker_config_dict

    from jitkube.broker.store import Store

    config = broker_config_dict(
        role_arns={"jitkube-viewer": "arn:aws:iam::123456789012:role/does-not-exist"}
    )
    store = Store.open(f"sqlite:///{tmp_path / 'sts.db'}")
    made = make_broker(store, real_clock, broker_sts, config)
    response = _request(made)
    assert response.status_code == 502
    assert response.json()["code"] == "sts_unavailable"
    # The operator's next step is in the answer: which role, what STS said.
    assert "arn:aws:iam::123456789012:role/does-not-exist" in response.json()["detail"]
    assert store.list_sessions() == []
    store.close()


def test_a_broker_without_aws_credentials_says_so(tmp_path: Any, broker_sts: Any) -> None:
    """Not "STS unreachable": the broker reached nothing, it had no identity to sign with."""
    script = (
        "from jitkube.broker.sts import AssumeRoleRequest, Boto3CredentialIssuer, StsError\n"
        f"issuer = Boto3CredentialIssuer('us-east-1', {broker_sts.emulator.url!r})\n"
        "request = AssumeRoleRequest('arn:aws:iam::123456789012:role/jitkube-viewer',"
        " 'jitkube-x', 'alice', {}, 900)\n"
        "try:\n"
        "    issuer.assume_role(request)\n"
        "except StsError as exc:\n"
        "    print(exc)\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "the broker has no AWS credentials" in done.stdout.decode()


def test_sessions_longer_than_an_hour_assume_for_an_hour_and_renew(broker: Broker) -> None:
    """Role chaining (a broker on Pod Identity/IRSA) caps STS sessions at 1 h."""
    calls_before = len(broker.sts.emulator.assume_role_calls)
    created = _request(
        broker, ONCALL, role="admin", ttl="2h", break_glass=True, reason="prod down"
    ).json()  # admin allows 2 h; break-glass makes it active at once
    session_id, token = created["session"]["id"], created["session_token"]
    assert broker.sts.emulator.assume_role_calls[calls_before].duration_seconds == 3600
    first = _eks(broker, session_id, token)
    assert first.status_code == 200, first.text
    broker.clock.advance(3600 - 60)  # the STS credentials are about to lapse
    renewed = _eks(broker, session_id, token)
    assert renewed.status_code == 200, renewed.text
    assert len(broker.sts.emulator.assume_role_calls) == calls_before + 2
    assert broker.sts.emulator.assume_role_calls[-1].duration_seconds == 3600
