"""Per-command approvals: re-judged by the broker, reviewed, single-use, bound, short-lived."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from broker_harness import (
    Broker,
    FakeClock,
    ask_command,
    broker_config_dict,
    make_broker,
    open_session,
)

from jitkube.broker.fingerprint import command_fingerprint
from jitkube.broker.store import Store

REVIEWER = ("bob", ("reviewers",))
REVIEWER2 = ("dave", ("reviewers",))

CRB = b"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: me-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: User, name: me}]
"""


def _review(broker: Broker, cid: str, who: tuple[str, tuple[str, ...]], decision: str) -> Any:
    return broker.client.post(
        f"/v1/commands/{cid}/approvals", json={"decision": decision}, headers=broker.auth(*who)
    )


def _consume(broker: Broker, token: str, cid: str, fingerprint: str) -> Any:
    return broker.client.post(
        f"/v1/commands/{cid}/consume",
        json={"fingerprint": fingerprint},
        headers=broker.session_auth(token),
    )


def test_a_risky_agent_command_waits_for_a_reviewer_then_is_used_once(broker: Broker) -> None:
    _, token = open_session(broker, agent=True)
    argv = ["delete", "pod", "web-1", "-n", "prod"]
    asked = ask_command(broker, token, ["kubectl", *argv], reason="stuck pod")
    assert asked.status_code == 202, asked.text
    command = asked.json()
    assert command["status"] == "pending"
    assert command["risk"] == "destructive"
    assert command["broker_decision"] == "approve"
    assert command["argv"] == argv
    assert command["fingerprint"] == command_fingerprint(argv, "prod", "prod", "")
    cid = command["id"]
    assert (
        _consume(broker, token, cid, command["fingerprint"]).json()["approval_status"] == "pending"
    )
    assert _review(broker, cid, REVIEWER, "approve").json()["status"] == "approved"
    used = _consume(broker, token, cid, command["fingerprint"])
    assert used.status_code == 200
    assert used.json()["status"] == "consumed"
    again = _consume(broker, token, cid, command["fingerprint"])
    assert again.status_code == 409
    assert again.json()["approval_status"] == "consumed"
    assert ("command.requested") in [e for e, _ in broker.notifier.events]


def test_the_broker_refuses_what_its_policy_denies_whatever_the_client_thinks(
    broker: Broker,
) -> None:
    _, token = open_session(broker)
    for argv in (
        ["create", "token", "default"],
        ["frobnicate"],
        ["get", "pods", "--kubeconfig=/x"],
    ):
        refused = ask_command(broker, token, argv)
        assert refused.status_code == 403, argv
        body = refused.json()
        assert body["code"] == "denied_by_policy"
        assert body["reasons"]


def test_a_command_the_broker_policy_allows_needs_no_reviewer(broker: Broker) -> None:
    _, token = open_session(broker)
    asked = ask_command(broker, token, ["get", "pods"])
    assert asked.status_code == 201
    assert asked.json()["status"] == "approved"
    assert (
        _consume(broker, token, asked.json()["id"], asked.json()["fingerprint"]).status_code == 200
    )


def test_manifests_are_judged_by_the_broker_and_bound_by_digest(broker: Broker) -> None:
    _, token = open_session(broker)
    argv = ["apply", "-f", "crb.yaml"]
    without = ask_command(broker, token, argv)
    assert without.status_code == 403  # cannot judge what it cannot see: fail closed
    asked = ask_command(broker, token, argv, manifests=[base64.b64encode(CRB).decode()])
    assert asked.status_code == 202, asked.text
    command = asked.json()
    assert command["risk"] == "privilege_escalation"
    assert command["manifest_digest"] == hashlib.sha256(CRB).hexdigest()
    assert command["fingerprint"] == command_fingerprint(
        argv, "prod", "prod", hashlib.sha256(CRB).hexdigest()
    )
    bad = ask_command(broker, token, argv, manifests=["%%%"])
    assert bad.json()["code"] == "validation"


def test_an_approval_is_bound_to_its_session_and_fingerprint(broker: Broker) -> None:
    _, token = open_session(broker, agent=True)
    _, other_token = open_session(broker, agent=True)
    command = ask_command(broker, token, ["delete", "pod", "a", "-n", "prod"]).json()
    _review(broker, command["id"], REVIEWER, "approve")
    other_fp = command_fingerprint(["delete", "pod", "b", "-n", "prod"], "prod", "prod", "")
    assert _consume(broker, token, command["id"], other_fp).status_code == 409
    assert _consume(broker, other_token, command["id"], command["fingerprint"]).status_code == 409
    assert _consume(broker, token, command["id"], command["fingerprint"]).status_code == 200


def test_an_approval_expires_after_ten_minutes(broker: Broker) -> None:
    _, token = open_session(broker, agent=True)
    command = ask_command(broker, token, ["delete", "pod", "a", "-n", "prod"]).json()
    _review(broker, command["id"], REVIEWER, "approve")
    broker.clock.advance(601)
    late = _consume(broker, token, command["id"], command["fingerprint"])
    assert late.status_code == 409
    assert late.json()["approval_status"] == "expired"


def test_an_expired_approval_is_no_longer_listed_as_pending(broker: Broker) -> None:
    _, token = open_session(broker, agent=True)
    command = ask_command(broker, token, ["delete", "pod", "a", "-n", "prod"]).json()
    broker.clock.advance(601)
    pending = broker.client.get("/v1/commands", headers=broker.auth(*REVIEWER)).json()
    assert pending["items"] == []
    expired = broker.client.get(
        "/v1/commands", params={"status": "expired"}, headers=broker.auth(*REVIEWER)
    ).json()
    assert [(c["id"], c["status"]) for c in expired["items"]] == [(command["id"], "expired")]


@pytest.mark.parametrize(
    ("who", "code"),
    [
        (("alice", ("engineers",)), "not_a_reviewer"),
        (("agent-claude", ("reviewers",)), "self_approval"),
    ],
)
def test_reviewers_are_role_approvers_and_never_the_requester(
    broker: Broker, who: tuple[str, tuple[str, ...]], code: str
) -> None:
    _, token = open_session(broker, agent=True)
    command = ask_command(broker, token, ["delete", "pod", "a", "-n", "prod"]).json()
    assert _review(broker, command["id"], who, "approve").json()["code"] == code


def test_a_denied_command_cannot_be_used(broker: Broker) -> None:
    _, token = open_session(broker, agent=True)
    command = ask_command(broker, token, ["delete", "pod", "a", "-n", "prod"]).json()
    assert _review(broker, command["id"], REVIEWER, "deny").json()["status"] == "denied"
    assert _review(broker, command["id"], REVIEWER2, "approve").json()["code"] == "already_decided"
    assert _consume(broker, token, command["id"], command["fingerprint"]).status_code == 409


def test_concurrent_consumers_get_exactly_one_success(broker: Broker) -> None:
    _, token = open_session(broker, agent=True)
    command = ask_command(broker, token, ["delete", "pod", "a", "-n", "prod"]).json()
    _review(broker, command["id"], REVIEWER, "approve")
    codes: list[int] = []

    def consume() -> None:
        codes.append(_consume(broker, token, command["id"], command["fingerprint"]).status_code)

    threads = [threading.Thread(target=consume) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 409, 409, 409, 409, 409]


def test_reviewers_list_pending_commands_and_the_requester_long_polls(broker: Broker) -> None:
    _, token = open_session(broker, agent=True)
    command = ask_command(broker, token, ["delete", "pod", "a", "-n", "prod"]).json()
    listed = broker.client.get("/v1/commands", headers=broker.auth(*REVIEWER)).json()
    assert [c["id"] for c in listed["items"]] == [command["id"]]
    stranger = broker.client.get("/v1/commands", headers=broker.auth("eve", ["nobody"])).json()
    assert stranger["items"] == []
    timer = threading.Timer(0.3, _review, (broker, command["id"], REVIEWER, "approve"))
    timer.start()
    polled = broker.client.get(
        f"/v1/commands/{command['id']}?wait=5", headers=broker.session_auth(token)
    )
    timer.join()
    assert polled.json()["status"] == "approved"


def test_commands_need_an_active_session(broker: Broker) -> None:
    sid, token = open_session(broker)
    broker.client.delete(f"/v1/sessions/{sid}", headers=broker.session_auth(token))
    refused = ask_command(broker, token, ["get", "pods"])
    assert refused.status_code == 409
    assert refused.json()["code"] == "session_not_active"
    oidc = broker.client.post("/v1/commands", json={"argv": ["get", "pods"]}, headers=broker.auth())
    assert oidc.status_code == 403


def test_an_agent_in_a_persons_session_is_judged_as_one_and_named_to_reviewers(
    broker: Broker,
) -> None:
    _, token = open_session(broker)  # alice's own session, not an agent's
    argv = ["label", "pod", "web-1", "tier=x", "-n", "dev"]
    person = ask_command(broker, token, argv, namespace="dev")
    assert person.status_code == 201, person.text  # allowed for a person: no reviewer
    assert person.json()["agent"] == ""
    asked = ask_command(broker, token, argv, namespace="dev", agent="claude-code")
    assert asked.status_code == 202, asked.text
    command = asked.json()
    assert (command["broker_decision"], command["rule"]) == ("approve", "agents-changes")
    assert (command["agent"], command["role"]) == ("claude-code", "viewer")
    listed = broker.client.get("/v1/commands", headers=broker.auth(*REVIEWER)).json()
    [item] = [c for c in listed["items"] if c["id"] == command["id"]]
    assert (item["agent"], item["role"], item["requester"]) == ("claude-code", "viewer", "alice")
    [(_, payload)] = [(e, p) for e, p in broker.notifier.events if e == "command.requested"]
    assert payload["agent"] == "claude-code"


def test_claiming_an_agent_never_makes_the_broker_more_lenient(
    tmp_path: Path, real_clock: FakeClock, broker_sts: Any
) -> None:
    """A policy laxer for agents than for people: the person's judgement stands."""
    store = Store.open(f"sqlite:///{tmp_path / 'b.db'}")
    policy = {
        "version": 1,
        "default": "approve",
        "rules": [{"name": "agents-label", "match": {"agent": True}, "action": "allow"}],
    }
    made = make_broker(store, real_clock, broker_sts, broker_config_dict(policy=policy))
    try:
        with made.client:
            _, token = open_session(made)
            argv = ["label", "pod", "web-1", "tier=x", "-n", "dev"]
            asked = ask_command(made, token, argv, namespace="dev", agent="claude-code")
            assert asked.status_code == 202, asked.text
            assert asked.json()["broker_decision"] == "approve"
    finally:
        store.close()
