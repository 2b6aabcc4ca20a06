"""Sessions and command approvals say who can decide them (`approver_groups`) and how many
approvals they need (`approvals_required`), so the CLI can tell the requester who was asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_harness import Broker, FakeClock, StsHandle, broker_config_dict, make_broker, sqlite_url

from jitkube.broker.store import Store

ENGINEER = ("alice", ("engineers",))
CI_AGENT = ("agent-ci", ("agents", "ci-deployers"))  # an agent the deployer role auto-approves


def _config() -> dict[str, Any]:
    data = broker_config_dict(command_approver_groups=["security", "reviewers"])
    admin, deployer = data["roles"][1], data["roles"][2]
    admin["approval"]["approver_groups"] = ["reviewers", "platform-leads"]
    deployer["approval"]["approver_groups"] = ["platform-leads", "reviewers"]
    return data


@pytest.fixture
def broker(tmp_path: Path, real_clock: FakeClock, broker_sts: StsHandle) -> Iterator[Broker]:
    store = Store.open(sqlite_url(tmp_path))
    made = make_broker(store, real_clock, broker_sts, _config())
    with made.client:
        yield made
    store.close()


def _create(broker: Broker, who: tuple[str, tuple[str, ...]], **body: Any) -> Any:
    payload = {"cluster": "prod", "ttl": "15m", "reason": "INC-7", **body}
    return broker.client.post("/v1/sessions", json=payload, headers=broker.auth(*who))


def test_a_pending_session_names_its_approver_groups_everywhere_it_is_shown(
    broker: Broker,
) -> None:
    created = _create(broker, ENGINEER, role="admin")
    assert created.status_code == 202
    session = created.json()["session"]
    sid = session["id"]
    expected = {"approver_groups": ["reviewers", "platform-leads"], "approvals_required": 1}
    reviewer = broker.auth("bob", ("platform-leads",))
    views = {
        "create": session,
        "get": broker.client.get(f"/v1/sessions/{sid}", headers=broker.auth(*ENGINEER)).json(),
        "get by reviewer": broker.client.get(f"/v1/sessions/{sid}", headers=reviewer).json(),
        "list mine": broker.client.get("/v1/sessions", headers=broker.auth(*ENGINEER)).json()[
            "items"
        ][0],
        "list reviewable": broker.client.get(
            "/v1/sessions?scope=reviewable", headers=reviewer
        ).json()["items"][0],
    }
    for where, view in views.items():
        assert view["id"] == sid, where
        assert {k: view[k] for k in expected} == expected, where


@pytest.mark.parametrize("group", ["reviewers", "platform-leads"])
def test_every_listed_session_approver_group_can_decide(broker: Broker, group: str) -> None:
    session = _create(broker, ENGINEER, role="admin").json()["session"]
    assert group in session["approver_groups"]
    approved = broker.client.post(
        f"/v1/sessions/{session['id']}/approvals",
        json={"decision": "approve"},
        headers=broker.auth("bob", (group,)),
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active"
    assert approved.json()["approver_groups"] == session["approver_groups"]


@pytest.mark.parametrize(
    ("who", "role", "required", "groups"),
    [
        (ENGINEER, "viewer", 0, []),  # granted at once, and nobody could approve anyway
        (CI_AGENT, "deployer", 0, ["platform-leads", "reviewers"]),  # auto-approved group
        (ENGINEER, "deployer", 2, ["platform-leads", "reviewers"]),
    ],
)
def test_approvals_required_follows_how_the_session_was_granted(
    broker: Broker, who: tuple[str, tuple[str, ...]], role: str, required: int, groups: list[str]
) -> None:
    session = _create(broker, who, role=role).json()["session"]
    assert session["approvals_required"] == required
    assert session["approver_groups"] == groups


def _command(broker: Broker, token: str) -> Any:
    return broker.client.post(
        "/v1/commands",
        json={"argv": ["delete", "pod", "web-1", "-n", "prod"], "namespace": "prod"},
        headers=broker.session_auth(token),
    )


@pytest.mark.parametrize(
    ("role", "required", "groups"),
    [
        # the role's approver groups first, then the broker-wide ones, each group once
        ("deployer", 2, ["platform-leads", "reviewers", "security"]),
        ("viewer", 1, ["security", "reviewers"]),  # no role approvers: broker-wide only
    ],
)
def test_a_pending_command_names_role_and_command_approver_groups(
    broker: Broker, role: str, required: int, groups: list[str]
) -> None:
    created = _create(broker, CI_AGENT, role=role, agent=True).json()
    asked = _command(broker, created["session_token"])
    assert asked.status_code == 202, asked.text
    command = asked.json()
    assert command["approver_groups"] == groups
    assert command["approvals_required"] == required
    cid = command["id"]
    by_session = broker.client.get(
        f"/v1/commands/{cid}", headers=broker.session_auth(created["session_token"])
    ).json()
    listed = broker.client.get("/v1/commands", headers=broker.auth("sec", ("security",))).json()
    for view in (by_session, *[c for c in listed["items"] if c["id"] == cid]):
        assert view["approver_groups"] == groups
        assert view["approvals_required"] == required
    assert [c["id"] for c in listed["items"]] == [cid]


@pytest.mark.parametrize("group", ["platform-leads", "reviewers", "security"])
def test_every_listed_command_approver_group_can_decide_and_no_other(
    broker: Broker, group: str
) -> None:
    created = _create(broker, CI_AGENT, role="deployer", agent=True).json()
    command = _command(broker, created["session_token"]).json()
    assert group in command["approver_groups"]
    url = f"/v1/commands/{command['id']}/approvals"
    outsider = broker.client.post(
        url, json={"decision": "approve"}, headers=broker.auth("eve", ("engineers",))
    )
    assert outsider.json()["code"] == "not_a_reviewer"
    voted = broker.client.post(url, json={"decision": "deny"}, headers=broker.auth("bob", (group,)))
    assert voted.status_code == 200, voted.text
    assert voted.json()["status"] == "denied"
