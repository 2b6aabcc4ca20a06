"""The storage contract, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jitkube.broker import migrations
from jitkube.broker.store import ClientOwnershipError, DuplicateVote, Store


def _session(session_id: str, *, created_at: float = 100.0, owner: str = "alice") -> dict[str, Any]:
    return {
        "id": session_id,
        "owner_sub": owner,
        "owner_email": f"{owner}@example.com",
        "owner_groups": ["dev"],
        "agent": False,
        "agent_name": "",
        "role": "admin",
        "cluster": "prod",
        "reason": "INC-1",
        "ttl_seconds": 900,
        "status": "pending",
        "break_glass": False,
        "min_approvals": 1,
        "created_at": created_at,
        "request_expires_at": created_at + 3600,
        "token_hash": "0" * 64,
        "role_session_name": f"jitkube-{session_id}",
    }


def _event(n: int, client: str = "c1") -> tuple[str, int, str | None, dict[str, Any]]:
    return (f"{client}-ev-{n}", n, None, {"argv": ["get", "pods"], "n": n})


def test_schema_is_migrated_to_the_latest_version(store: Store) -> None:
    assert store.schema_version() == migrations.LATEST_VERSION
    store.ping()


def test_opening_twice_is_idempotent(db_url_and_schema: tuple[str, str | None]) -> None:
    url, schema = db_url_and_schema
    for _ in range(2):
        opened = Store.open(url, schema=schema)
        assert opened.schema_version() == migrations.LATEST_VERSION
        opened.close()


def test_broker_refuses_a_database_with_a_newer_schema(
    db_url_and_schema: tuple[str, str | None],
) -> None:
    url, schema = db_url_and_schema
    opened = Store.open(url, schema=schema)
    with opened.write() as conn:
        conn.execute(
            migrations.schema_version.update().values(version=migrations.LATEST_VERSION + 1)
        )
    opened.close()
    with pytest.raises(migrations.SchemaTooNewError, match="newer than this broker"):
        Store.open(url, schema=schema)


def test_migrations_apply_in_order_from_an_older_version(tmp_path: Path) -> None:
    applied: list[int] = []

    def second(conn: sa.Connection) -> None:
        applied.append(2)
        conn.execute(sa.text("CREATE TABLE extra (x INTEGER)"))

    engine = Store.open(f"sqlite:///{tmp_path / 'm.db'}").engine
    assert (
        migrations.migrate(engine, (*migrations.MIGRATIONS, second))
        == migrations.LATEST_VERSION + 1
    )
    assert applied == [2]
    assert (
        migrations.migrate(engine, (*migrations.MIGRATIONS, second))
        == migrations.LATEST_VERSION + 1
    )
    assert applied == [2]
    with engine.connect() as conn:
        assert sa.inspect(conn).has_table("extra")


def test_session_transition_happens_only_from_the_expected_status(store: Store) -> None:
    store.create_session(_session("s1"))
    assert store.transition_session("s1", ["pending"], {"status": "active", "expires_at": 1000.0})
    assert not store.transition_session("s1", ["pending"], {"status": "denied"})
    row = store.get_session("s1")
    assert row is not None
    assert row["status"] == "active"
    assert row["owner_groups"] == ["dev"]


def test_concurrent_transitions_have_exactly_one_winner(store: Store) -> None:
    store.create_session(_session("race"))
    wins: list[bool] = []

    def attempt() -> None:
        wins.append(store.transition_session("race", ["pending"], {"status": "active"}))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1


def test_a_reviewer_votes_once(store: Store) -> None:
    store.create_session(_session("s2"))
    votes = store.add_session_vote("s2", "bob", "bob@example.com", "approve", "", 1.0)
    assert [v["reviewer_sub"] for v in votes] == ["bob"]
    with pytest.raises(DuplicateVote):
        store.add_session_vote("s2", "bob", "bob@example.com", "approve", "", 2.0)


def test_sessions_page_newest_first(store: Store) -> None:
    for i in range(5):
        store.create_session(_session(f"p{i}", created_at=100.0 + i))
    first = store.list_sessions(limit=2)
    assert [r["id"] for r in first] == ["p4", "p3"]
    last = first[-1]
    second = store.list_sessions(limit=2, before=(last["created_at"], last["id"]))
    assert [r["id"] for r in second] == ["p2", "p1"]
    assert [r["id"] for r in store.list_sessions(owner_sub="nobody")] == []


def test_expiry_ends_active_sessions_and_stale_requests(store: Store) -> None:
    store.create_session(_session("a"))
    store.transition_session("a", ["pending"], {"status": "active", "expires_at": 500.0})
    store.create_session(_session("b", created_at=0.0))
    assert store.expire_sessions(now=3700.0) == 2
    assert {store.get_session(x)["status"] for x in ("a", "b")} == {"expired"}  # type: ignore[index]


def test_command_approval_is_consumed_once_and_only_with_its_binding(store: Store) -> None:
    store.create_session(_session("s3"))
    store.create_command(
        {
            "id": "cmd1",
            "session_id": "s3",
            "requester_sub": "alice",
            "fingerprint": "f" * 64,
            "argv": ["delete", "ns", "prod"],
            "cluster": "prod",
            "namespace": "",
            "manifest_digest": "",
            "risk": "destructive",
            "reasons": ["deletes a namespace"],
            "decision": "approve",
            "rule": "r",
            "status": "approved",
            "min_approvals": 1,
            "created_at": 0.0,
            "expires_at": 600.0,
        }
    )
    consume = {"status": "consumed", "consumed_at": 10.0}
    assert not store.transition_command(
        "cmd1", ["approved"], consume, not_expired_at=10.0, session_id="s3", fingerprint="x"
    )
    assert not store.transition_command(
        "cmd1", ["approved"], consume, not_expired_at=601.0, session_id="s3", fingerprint="f" * 64
    )
    assert store.transition_command(
        "cmd1", ["approved"], consume, not_expired_at=10.0, session_id="s3", fingerprint="f" * 64
    )
    assert not store.transition_command(
        "cmd1", ["approved"], consume, not_expired_at=10.0, session_id="s3", fingerprint="f" * 64
    )


def test_audit_ingest_is_idempotent_by_event_id(store: Store) -> None:
    first = store.ingest_audit("c1", "alice", [_event(1), _event(2)], 1.0)
    assert first.accepted == ("c1-ev-1", "c1-ev-2")
    again = store.ingest_audit("c1", "alice", [_event(2), _event(3)], 2.0)
    assert again.accepted == ("c1-ev-3",)
    assert again.duplicates == ("c1-ev-2",)
    assert again.high_water == 3
    assert len(store.list_audit(client_id="c1")) == 3


def test_audit_gaps_are_visible(store: Store) -> None:
    result = store.ingest_audit("c1", "alice", [_event(n) for n in (2, 3, 6, 9)], 1.0)
    assert result.high_water == 0
    assert result.max_seq == 9
    assert result.missing == 5
    assert store.audit_gaps("c1") == [(1, 1), (4, 5), (7, 8)]
    filled = store.ingest_audit("c1", "alice", [_event(1), _event(4), _event(5)], 2.0)
    assert filled.high_water == 6
    assert store.audit_gaps("c1") == [(7, 8)]


def test_a_seq_reused_by_another_event_is_a_conflict(store: Store) -> None:
    store.ingest_audit("c1", "alice", [_event(1)], 1.0)
    result = store.ingest_audit("c1", "alice", [("other-id", 1, None, {})], 2.0)
    assert result.conflicts == ("other-id",)
    assert result.accepted == ()


def test_an_audit_client_id_belongs_to_one_identity(store: Store) -> None:
    store.ingest_audit("c1", "alice", [_event(1)], 1.0)
    with pytest.raises(ClientOwnershipError):
        store.ingest_audit("c1", "mallory", [_event(2)], 2.0)
    assert store.audit_clients()[0].owner_sub == "alice"


def test_audit_pages_in_arrival_order(store: Store) -> None:
    store.ingest_audit("c1", "alice", [_event(n) for n in range(1, 6)], 1.0)
    page = store.list_audit(limit=2)
    assert [r["seq"] for r in page] == [1, 2]
    page = store.list_audit(limit=10, after_pk=page[-1]["pk"])
    assert [r["seq"] for r in page] == [3, 4, 5]


def test_replicas_starting_together_migrate_once(
    db_url_and_schema: tuple[str, str | None],
) -> None:
    url, schema = db_url_and_schema
    errors: list[BaseException] = []
    opened: list[Store] = []

    def start() -> None:
        try:
            opened.append(Store.open(url, schema=schema))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {s.schema_version() for s in opened} == {migrations.LATEST_VERSION}
    for s in opened:
        s.close()


@pytest.mark.parametrize("checkpointer", [False, True])
def test_the_checkpointer_copies_the_wal_back_off_the_request_path(
    tmp_path: Path, checkpointer: bool
) -> None:
    """Without it SQLite copies the WAL back only inside the commit that crosses 1,000
    pages (a stall for that one request); with it the database file catches up within
    moments of ordinary writes."""
    import time

    database = tmp_path / "broker.db"
    store = Store.open(f"sqlite:///{database}")
    try:
        if checkpointer:
            store.start_checkpointer(interval=0.05)
        before = database.stat().st_size
        for i in range(200):
            store.create_session(_session(f"wal{i}", created_at=100.0 + i))
        deadline = time.monotonic() + 5
        while database.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.05)
        grew = database.stat().st_size > before
        assert grew is checkpointer
        assert store.get_session("wal199") is not None
    finally:
        store.close()
    if checkpointer:
        names = [t.name for t in threading.enumerate()]
        assert "jitkube-sqlite-checkpoint" not in names  # close() stopped it
