"""The notifications outbox: its migration, and delivery across a real broker's SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from broker_harness import (
    Hook,
    StsHandle,
    broker_aws_env,
    free_port,
    loopback_broker_config,
    sqlite_url,
    start_broker,
    stop_supervisor,
)
from cryptography.fernet import Fernet

from jitkube.broker import migrations
from jitkube.broker.store import Store

# -- the migration ----------------------------------------------------------------------


def _old_session(conn: sa.Connection) -> None:
    conn.execute(
        migrations.sessions.insert().values(
            id="ses_old",
            owner_sub="alice",
            owner_groups=[],
            role="viewer",
            cluster="prod",
            ttl_seconds=900,
            status="active",
            created_at=1.0,
            request_expires_at=2.0,
            token_hash="0" * 64,
            role_session_name="jitkube-ses_old",
        )
    )


def test_a_v2_database_gains_the_notifications_table(
    db_url_and_schema: tuple[str, str | None],
) -> None:
    url, schema = db_url_and_schema
    store = Store.open(url, schema=schema, migrate=False)
    try:
        engine = store.engine
        assert migrations.migrate(engine, migrations.MIGRATIONS[:2]) == 2
        with store.write() as conn:
            _old_session(conn)
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("notifications")
        assert migrations.migrate(engine) == migrations.LATEST_VERSION == 4
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            columns = {c["name"] for c in inspector.get_columns("notifications")}
            indexes = {i["name"] for i in inspector.get_indexes("notifications")}
        assert columns == {
            "id",
            "event",
            "hook",
            "body",
            "attempts",
            "next_attempt_at",
            "claimed_until",
            "delivered_at",
            "failed_at",
            "last_error",
            "created_at",
        }
        assert "ix_notifications_due" in indexes
        assert store.get_session("ses_old") is not None  # the old data is untouched
        store.enqueue_notifications(
            [{"event": "e", "hook": "h", "body": "{}", "next_attempt_at": 5.0, "created_at": 5.0}]
        )
        [(row_id, _)] = store.due_notifications(["h"], 6.0)
        claimed = store.claim_notification(row_id, 6.0, 10.0)
        assert claimed is not None
        assert claimed["attempts"] == 1
        assert migrations.migrate(engine) == migrations.LATEST_VERSION  # idempotent
    finally:
        store.close()


def test_the_step_keeps_a_notifications_table_that_exists_already(
    db_url_and_schema: tuple[str, str | None],
) -> None:
    url, schema = db_url_and_schema
    store = Store.open(url, schema=schema, migrate=False)
    try:
        assert migrations.migrate(store.engine, migrations.MIGRATIONS[:2]) == 2
        with store.write() as conn:
            migrations.notifications.create(conn)
        store.enqueue_notifications(
            [{"event": "e", "hook": "h", "body": "{}", "next_attempt_at": 1.0, "created_at": 1.0}]
        )
        assert migrations.migrate(store.engine) == migrations.LATEST_VERSION
        assert store.pending_notifications() == 1
    finally:
        store.close()


# -- a real broker process, killed with undelivered notifications ------------------------


def _start(config: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    started = start_broker(config, env, args=args)
    return started.proc, started.url


@pytest.fixture
def killable_broker(
    tmp_path: Path, sandbox_idp: Any, broker_sts: StsHandle
) -> Iterator[dict[str, Any]]:
    port = free_port()  # the receiver's, down for now
    webhook = {
        "url": f"http://127.0.0.1:{port}/hook",
        "format": "json",
        "max_attempts": 20,
        "timeout_seconds": 2,
    }
    config = loopback_broker_config(
        tmp_path, sandbox_idp, broker_sts, notifications={"webhooks": [webhook]}
    )
    env = {
        **os.environ,
        **broker_aws_env(tmp_path, broker_sts),
        "JITKUBE_BROKER_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    procs: list[subprocess.Popen[bytes]] = []
    receivers: list[Hook] = []
    yield {
        "config": config,
        "env": env,
        "port": port,
        "db": sqlite_url(tmp_path),
        "procs": procs,
        "receivers": receivers,
    }
    for proc in procs:
        stop_supervisor(proc)
    for receiver in receivers:
        receiver.close()


def _outbox(db: str) -> list[dict[str, Any]]:
    store = Store.open(db, migrate=False)
    try:
        with store.read() as conn:
            rows = conn.execute(sa.select(migrations.notifications).order_by("id"))
            return [dict(r._mapping) for r in rows]
    finally:
        store.close()


def _session(url: str, token: str) -> str:
    created = requests.post(
        url + "/v1/sessions",
        json={"role": "deployer", "cluster": "prod", "ttl": "15m", "reason": "deploy"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text  # CI is auto-approved: session.activated
    return str(created.json()["session"]["id"])


@pytest.mark.integration
@pytest.mark.slow
def test_notifications_survive_a_sigkill_and_two_workers_send_each_once(
    killable_broker: dict[str, Any], sandbox_idp: Any
) -> None:
    setup = killable_broker
    config, env, db = setup["config"], setup["env"], setup["db"]
    token = sandbox_idp.ci_token()

    proc, url = _start(config, env)
    setup["procs"].append(proc)
    first = _session(url, token)

    # The receiver is down: the broker tries, fails (connection refused), reschedules.
    # Kill it between attempts (not while it holds the row's lease: then the next process
    # would wait for the lease to run out, as it should, but longer than this test does).
    def between_attempts() -> bool:
        rows = _outbox(db)
        return bool(
            rows
            and rows[0]["last_error"]
            and rows[0]["claimed_until"] == 0
            and rows[0]["next_attempt_at"] > time.time() + 0.3
        )

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not between_attempts():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    [row] = _outbox(db)
    assert row["attempts"] >= 1, row
    assert row["delivered_at"] is None, row
    assert row["last_error"] == "ConnectionRefusedError", row
    assert row["claimed_until"] == 0, row

    receiver = Hook([], port=setup["port"])
    setup["receivers"].append(receiver)
    time.sleep(1.0)
    assert receiver.bodies == []  # nobody left to send it

    # Start again on the same database, now with two worker processes.
    proc, url = _start(config, env, "--workers", "2")
    setup["procs"].append(proc)
    more = [_session(url, token) for _ in range(6)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(receiver.bodies) < 7:
        time.sleep(0.1)
    time.sleep(1.5)  # room for a duplicate to show up, if there were one
    ids = [b["id"] for b in receiver.bodies]
    assert sorted(ids) == sorted([first, *more])  # each once: no loss, no duplicate
    assert {b["event"] for b in receiver.bodies} == {"session.activated"}
    rows = _outbox(db)
    assert all(r["delivered_at"] is not None for r in rows)
    assert [r["attempts"] for r in rows[1:]] == [1] * 6
    metrics = requests.get(url + "/metrics", timeout=5).text
    assert 'jitkube_broker_notifications_total{result="delivered"} 7.0' in metrics
