"""`--unmask` is part of a per-command approval: fingerprint, request, policy, storage.

An approval to run a command with masked output must not let anyone see its values, and
an approval to see the values is not one for the masked command either: the fingerprint
(computed alike by client and broker, pinned by a shared test vector) includes `unmask`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from broker_harness import (
    Broker,
    FakeClock,
    ask_command,
    broker_config_dict,
    make_broker,
    open_session,
    sqlite_url,
)

from jitkube import command_approval
from jitkube.broker import migrations
from jitkube.broker.fingerprint import command_fingerprint
from jitkube.broker.store import Store

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "command_fingerprint_vectors.json").read_text()
)["vectors"]
REVIEWER = ("bob", ("reviewers",))


def _approve(broker: Broker, cid: str) -> None:
    answer = broker.client.post(
        f"/v1/commands/{cid}/approvals",
        json={"decision": "approve"},
        headers=broker.auth(*REVIEWER),
    )
    assert answer.json()["status"] == "approved", answer.text


def _consume(broker: Broker, token: str, cid: str, fingerprint: str) -> Any:
    return broker.client.post(
        f"/v1/commands/{cid}/consume",
        json={"fingerprint": fingerprint},
        headers=broker.session_auth(token),
    )


# -- the fingerprint ------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_client_and_broker_fingerprints_match_the_shared_vector(vector: dict[str, Any]) -> None:
    args = (vector["argv"], vector["cluster"], vector["namespace"], vector["manifest_digest"])
    expected = vector["sha256"]
    assert hashlib.sha256(vector["canonical"].encode("ascii")).hexdigest() == expected
    assert command_fingerprint(*args, unmask=vector["unmask"]) == expected  # broker
    assert command_approval.command_fingerprint(*args, unmask=vector["unmask"]) == expected


def test_unmask_changes_the_fingerprint_and_masked_ones_are_unchanged() -> None:
    argv = ["get", "secret", "db", "-o", "yaml"]
    masked = command_fingerprint(argv, "prod", "prod", "")
    assert masked != command_fingerprint(argv, "prod", "prod", "", unmask=True)
    # The masked form is the one brokers and clients from before `unmask` compute.
    legacy = json.dumps(
        {"v": 1, "argv": argv, "cluster": "prod", "namespace": "prod", "manifest_digest": ""},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert masked == hashlib.sha256(legacy.encode()).hexdigest()


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["cluster"] == "prod"])
def test_the_broker_binds_requests_to_the_vector_fingerprint(
    broker: Broker, vector: dict[str, Any]
) -> None:
    _, token = open_session(broker)
    asked = ask_command(broker, token, vector["argv"], unmask=vector["unmask"])
    assert asked.status_code in (201, 202), asked.text
    assert asked.json()["fingerprint"] == vector["sha256"]
    assert asked.json()["unmask"] is vector["unmask"]


# -- the request ------------------------------------------------------------------------


def test_unmask_raises_an_allowed_read_to_a_reviewers_approval(broker: Broker) -> None:
    _, token = open_session(broker)
    argv = ["get", "pods", "-n", "prod"]
    masked = ask_command(broker, token, argv)
    assert masked.status_code == 201, masked.text  # the read alone is allowed
    assert masked.json()["unmask"] is False
    unmasked = ask_command(broker, token, argv, unmask=True)
    assert unmasked.status_code == 202, unmasked.text
    body = unmasked.json()
    assert (body["status"], body["broker_decision"], body["rule"]) == (
        "pending",
        "approve",
        "unmask",
    )
    assert body["unmask"] is True
    assert any("unmasked" in r for r in body["reasons"])
    # Reviewers see the flag in the list too.
    listed = broker.client.get("/v1/commands", headers=broker.auth(*REVIEWER)).json()["items"]
    assert [c["unmask"] for c in listed if c["id"] == body["id"]] == [True]
    requested = [p for e, p in broker.notifier.events if e == "command.requested"]
    assert requested[-1]["unmask"] is True
    assert "--unmask" in requested[-1]["command"]


def test_an_approval_is_bound_to_masked_or_unmasked(broker: Broker) -> None:
    _, token = open_session(broker, agent=True)
    argv = ["delete", "pod", "web-1", "-n", "prod"]
    masked_fp = command_fingerprint(argv, "prod", "prod", "")
    unmasked_fp = command_fingerprint(argv, "prod", "prod", "", unmask=True)
    masked = ask_command(broker, token, argv).json()
    unmasked = ask_command(broker, token, argv, unmask=True).json()
    assert (masked["fingerprint"], unmasked["fingerprint"]) == (masked_fp, unmasked_fp)
    _approve(broker, masked["id"])
    _approve(broker, unmasked["id"])

    # Neither approval works for the other form of the command ...
    wrong = _consume(broker, token, masked["id"], unmasked_fp)
    assert wrong.status_code == 409, wrong.text
    assert wrong.json()["code"] == "approval_not_usable"
    wrong = _consume(broker, token, unmasked["id"], masked_fp)
    assert wrong.status_code == 409, wrong.text
    # ... and both still work, once, for their own.
    assert _consume(broker, token, masked["id"], masked_fp).status_code == 200
    assert _consume(broker, token, unmasked["id"], unmasked_fp).status_code == 200


def _policy_broker(
    tmp_path: Path, clock: FakeClock, sts: Any, unmask: str
) -> Iterator[tuple[Broker, Store]]:
    store = Store.open(sqlite_url(tmp_path))
    policy = {
        "version": 1,
        "default": "approve",
        "unmask": unmask,
        "rules": [{"name": "reads", "match": {"class": "read"}, "action": "allow"}],
    }
    made = make_broker(store, clock, sts, broker_config_dict(policy=policy))
    with made.client:
        yield made, store
    store.close()


@pytest.fixture
def deny_unmask_broker(
    tmp_path: Path, real_clock: FakeClock, broker_sts: Any
) -> Iterator[tuple[Broker, Store]]:
    yield from _policy_broker(tmp_path, real_clock, broker_sts, "deny")


@pytest.fixture
def allow_unmask_broker(
    tmp_path: Path, real_clock: FakeClock, broker_sts: Any
) -> Iterator[tuple[Broker, Store]]:
    yield from _policy_broker(tmp_path, real_clock, broker_sts, "allow")


def test_the_brokers_unmask_deny_refuses_unmasked_output(
    deny_unmask_broker: tuple[Broker, Store],
) -> None:
    broker, _ = deny_unmask_broker
    _, token = open_session(broker)
    argv = ["get", "pods", "-n", "prod"]
    assert ask_command(broker, token, argv).status_code == 201
    refused = ask_command(broker, token, argv, unmask=True)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "denied_by_policy"
    assert refused.json()["rule"] == "unmask"


def test_the_brokers_unmask_allow_keeps_the_commands_own_decision(
    allow_unmask_broker: tuple[Broker, Store],
) -> None:
    broker, _ = allow_unmask_broker
    _, token = open_session(broker)
    read = ask_command(broker, token, ["get", "pods", "-n", "prod"], unmask=True)
    assert read.status_code == 201, read.text
    assert (read.json()["status"], read.json()["unmask"]) == ("approved", True)
    write = ask_command(broker, token, ["label", "pod", "web-1", "-n", "prod", "a=b"], unmask=True)
    assert write.status_code == 202, write.text  # the policy's default, not lowered


def test_the_client_sends_unmask_only_when_true() -> None:
    """Masked requests read the same to brokers that predate the field (extra=forbid)."""
    from jitkube.broker.schemas import CommandCreate

    assert "unmask" in CommandCreate.model_fields
    assert CommandCreate.model_validate({"argv": ["get", "pods"]}).unmask is False


# -- the migration ----------------------------------------------------------------------


def test_a_v1_database_gains_the_unmask_and_agent_columns(
    db_url_and_schema: tuple[str, str | None],
) -> None:
    url, schema = db_url_and_schema
    store = Store.open(url, schema=schema, migrate=False)
    try:
        engine = store.engine
        assert migrations.migrate(engine, migrations.MIGRATIONS[:1]) == 1
        with store.write() as conn:
            # What a v1 broker created: the same table without the columns.
            conn.execute(sa.text("ALTER TABLE command_approvals DROP COLUMN unmask"))
            conn.execute(sa.text("ALTER TABLE command_approvals DROP COLUMN agent"))
            conn.execute(
                migrations.sessions.insert().values(
                    id="ses_1",
                    owner_sub="alice",
                    owner_email="",
                    owner_groups=[],
                    agent=False,
                    agent_name="",
                    role="viewer",
                    cluster="prod",
                    reason="",
                    ttl_seconds=60,
                    status="active",
                    break_glass=False,
                    min_approvals=0,
                    created_at=1.0,
                    request_expires_at=2.0,
                    token_hash="0" * 64,
                    role_session_name="jitkube-ses_1",
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO command_approvals (id, session_id, requester_sub, fingerprint,"
                    " argv, cluster, namespace, manifest_digest, risk, reasons, decision, rule,"
                    " status, min_approvals, created_at, expires_at) VALUES ('cmd_old', 'ses_1',"
                    " 'alice', :fp, '[\"get\"]', 'prod', '', '', 'read', '[]', 'approve', '',"
                    " 'approved', 1, 1.0, 9999999999.0)"
                ),
                {"fp": "a" * 64},
            )
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("command_approvals")}
        assert not {"unmask", "agent"} & columns
        assert migrations.migrate(engine) == migrations.LATEST_VERSION
        old = store.get_command("cmd_old")
        assert old is not None
        assert old["unmask"] is False  # requests from before were all masked
        assert old["agent"] == ""  # and named no agent
        assert migrations.migrate(engine) == migrations.LATEST_VERSION  # idempotent
    finally:
        store.close()


def test_a_new_database_has_the_unmask_column(store: Store) -> None:
    with store.read() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("command_approvals")}
    assert "unmask" in columns
