"""The broker's only state: one SQL database (SQLite in WAL mode, or PostgreSQL).

Every operation the broker needs is one method here, one transaction each, written in
SQLAlchemy Core so the same code runs on both dialects. State changes are conditional
updates (`... WHERE status = 'pending'`) so two replicas, or two threads, can never both
win a transition; single-use command approvals rely on that.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

from jitkube.broker import migrations as m

Row = dict[str, Any]
Outbox = Sequence[Mapping[str, Any]]  # rows of the notifications table (notify.py renders them)

# The hot statements, built once: SQLAlchemy then reuses their cache key and compiled form
# instead of rebuilding both on every call (a per-request cost under load).
_GET_SESSION = sa.select(m.sessions).where(m.sessions.c.id == sa.bindparam("session_id"))
_INSERT_SESSION = m.sessions.insert()
_SET_CREDENTIALS = (
    m.sessions.update()
    .where(m.sessions.c.id == sa.bindparam("session_id"))
    .values(
        credentials=sa.bindparam("blob"),
        credentials_expire_at=sa.bindparam("expire_at"),
        assumed_role_arn=sa.bindparam("arn"),
    )
)
# Connections kept open per process. Beyond it SQLAlchemy opens (and closes again) an
# overflow connection per checkout, which for SQLite means re-running the PRAGMAs below;
# 40 is the default size of the thread pool that runs the broker's endpoints.
SQLITE_POOL_SIZE = 40


class StoreError(Exception):
    """A storage-level conflict the caller turns into an HTTP answer."""


class DuplicateVote(StoreError):
    """The reviewer already decided on this request."""


class ClientOwnershipError(StoreError):
    """An audit client id already belongs to another identity."""


@dataclass(frozen=True)
class IngestResult:
    accepted: tuple[str, ...]  # event ids stored by this call
    duplicates: tuple[str, ...]  # already stored earlier (idempotent retry)
    conflicts: tuple[str, ...]  # their (client, seq) is taken by a different event id
    high_water: int  # every seq 1..high_water is stored
    max_seq: int
    missing: int  # seqs below max_seq never received


@dataclass(frozen=True)
class ClientStatus:
    client_id: str
    owner_sub: str
    high_water: int
    max_seq: int
    received: int
    last_seen: float

    @property
    def missing(self) -> int:
        return max(0, self.max_seq - self.received)


class Store:
    """Database access for the broker. Create with `Store.open(url)`; it migrates."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite has one writer; taking it up front (BEGIN IMMEDIATE) under a process
        # lock avoids lock-upgrade deadlocks between threads of this process.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        # Between processes (`broker serve --workers`), a file lock beside the database:
        # a blocked writer wakes the moment it is free, where SQLite's own busy handler
        # sleeps and polls (up to 100 ms a round).
        # Opened on the first write (under the thread lock); correctness never depends on
        # it: without it SQLite's busy handler still serialises the writers.
        self._lock_fd: int | None = None
        self._lock_path: str | None = None
        self._checkpointer: tuple[threading.Event, threading.Thread] | None = None
        database = engine.url.database
        if self.dialect == "sqlite" and database and database != ":memory:":
            self._lock_path = f"{database}-jitkube-write-lock"

    @classmethod
    def open(cls, url: str, *, schema: str | None = None, migrate: bool = True) -> Store:
        """Connect, configure the dialect and bring the schema up to date.

        `schema` (PostgreSQL only) puts every table in that schema via search_path; tests
        use one per worker.
        """
        engine = create_engine(url, schema=schema)
        store = cls(engine)
        if migrate:
            m.migrate(engine)
        return store

    def start_checkpointer(self, interval: float = 0.5) -> None:
        """SQLite: copy the WAL back into the database on a thread of its own.

        SQLite checkpoints inside the commit that crosses 1,000 WAL pages, so now and then
        one request writes megabytes back and fsyncs them. A PASSIVE checkpoint every
        `interval` seconds (it never blocks readers or writers) keeps the WAL short, so
        the commit that crosses the threshold is rare and has little left to copy.
        """
        if self.dialect != "sqlite" or self._lock_path is None or self._checkpointer:
            return
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                try:
                    with self.engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                except sa.exc.SQLAlchemyError:
                    continue

        thread = threading.Thread(target=run, name="jitkube-sqlite-checkpoint", daemon=True)
        self._checkpointer = (stop, thread)
        thread.start()

    def close(self) -> None:
        if self._checkpointer:
            stop, thread = self._checkpointer
            stop.set()
            thread.join(timeout=5)
            self._checkpointer = None
        self.engine.dispose()
        if self._lock_fd is not None:
            self._lock_fd = None
            self._close_lock_fd()

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Exclusive between processes; call it holding `_write_lock`."""
        if self._lock_fd is None and self._lock_path is not None:
            try:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._lock_path = None  # e.g. a read-only directory: go without
            else:
                self._close_lock_fd = weakref.finalize(self, os.close, self._lock_fd)
        if self._lock_fd is None:
            yield
            return
        import fcntl

        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- transactions ---------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        if self._write_lock is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        # Connection first, then the lock: the lock is held only for the transaction.
        with self.engine.connect() as conn, self._write_lock, self._file_lock():
            conn.execution_options(jitkube_write=True)
            with conn.begin():
                yield conn

    def ping(self) -> None:
        """Raise if the database does not answer a trivial query."""
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def schema_version(self) -> int:
        with self.read() as conn:
            return m.current_version(conn)

    # -- sessions -------------------------------------------------------------------

    def create_session(self, values: Mapping[str, Any], *, notifications: Outbox = ()) -> None:
        with self.write() as conn:
            conn.execute(_INSERT_SESSION, dict(values))
            _store_outbox(conn, notifications)

    def get_session(self, session_id: str) -> Row | None:
        with self.read() as conn:
            row = conn.execute(_GET_SESSION, {"session_id": session_id}).first()
        return dict(row._mapping) if row else None

    def transition_session(
        self,
        session_id: str,
        from_statuses: Sequence[str],
        values: Mapping[str, Any],
        *,
        notifications: Outbox = (),
    ) -> bool:
        """Update a session only if its status is one of `from_statuses`; True if it was.
        The notifications are stored with the update, and only if it happened."""
        with self.write() as conn:
            result = conn.execute(
                m.sessions.update()
                .where(m.sessions.c.id == session_id, m.sessions.c.status.in_(from_statuses))
                .values(**values)
            )
            if result.rowcount == 1:
                _store_outbox(conn, notifications)
        return result.rowcount == 1

    def set_session_credentials(
        self, session_id: str, blob: str, expire_at: float, assumed_role_arn: str
    ) -> None:
        with self.write() as conn:
            conn.execute(
                _SET_CREDENTIALS,
                {
                    "session_id": session_id,
                    "blob": blob,
                    "expire_at": expire_at,
                    "arn": assumed_role_arn,
                },
            )

    def expire_sessions(self, now: float) -> int:
        """Mark active sessions past their end and pending requests past their expiry."""
        with self.write() as conn:
            ended = conn.execute(
                m.sessions.update()
                .where(m.sessions.c.status == "active", m.sessions.c.expires_at <= now)
                .values(status="expired", ended_at=now, credentials=None)
            ).rowcount
            stale = conn.execute(
                m.sessions.update()
                .where(m.sessions.c.status == "pending", m.sessions.c.request_expires_at <= now)
                .values(status="expired", ended_at=now)
            ).rowcount
        return int(ended + stale)

    def list_sessions(
        self,
        *,
        owner_sub: str | None = None,
        statuses: Sequence[str] = (),
        roles: Sequence[str] | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[Row]:
        """Newest first; `before` is the (created_at, id) of the last row of the previous page."""
        query = sa.select(m.sessions)
        if owner_sub is not None:
            query = query.where(m.sessions.c.owner_sub == owner_sub)
        if statuses:
            query = query.where(m.sessions.c.status.in_(statuses))
        if roles is not None:
            query = query.where(m.sessions.c.role.in_(roles))
        if before is not None:
            query = query.where(
                sa.tuple_(m.sessions.c.created_at, m.sessions.c.id) < sa.tuple_(*before)
            )
        query = query.order_by(m.sessions.c.created_at.desc(), m.sessions.c.id.desc()).limit(limit)
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def _add_vote(
        self,
        table: sa.Table,
        key: str,
        value: str,
        what: str,
        fields: Mapping[str, Any],
        notifications: Outbox,
    ) -> None:
        """One reviewer's decision; DuplicateVote when that reviewer already decided."""
        try:
            with self.write() as conn:
                conn.execute(table.insert().values(**{key: value}, **fields))
                _store_outbox(conn, notifications)
        except sa.exc.IntegrityError:
            raise DuplicateVote(f"this reviewer already decided on the {what}") from None

    def _votes(self, table: sa.Table, key: str, value: str) -> list[Row]:
        with self.read() as conn:
            rows = conn.execute(sa.select(table).where(table.c[key] == value).order_by(table.c.id))
            return [dict(r._mapping) for r in rows]

    @staticmethod
    def _vote(
        reviewer_sub: str, reviewer_email: str, decision: str, comment: str, now: float
    ) -> dict[str, Any]:
        return {
            "reviewer_sub": reviewer_sub,
            "reviewer_email": reviewer_email,
            "decision": decision,
            "comment": comment,
            "created_at": now,
        }

    def add_session_vote(
        self,
        session_id: str,
        reviewer_sub: str,
        reviewer_email: str,
        decision: str,
        comment: str,
        now: float,
        *,
        notifications: Outbox = (),
    ) -> list[Row]:
        """Record one reviewer's decision; return all votes. DuplicateVote if they voted."""
        vote = self._vote(reviewer_sub, reviewer_email, decision, comment, now)
        self._add_vote(
            m.session_approvals, "session_id", session_id, "request", vote, notifications
        )
        return self.session_votes(session_id)

    def session_votes(self, session_id: str) -> list[Row]:
        return self._votes(m.session_approvals, "session_id", session_id)

    # -- command approvals ----------------------------------------------------------

    def create_command(self, values: Mapping[str, Any], *, notifications: Outbox = ()) -> None:
        with self.write() as conn:
            conn.execute(m.command_approvals.insert().values(**values))
            _store_outbox(conn, notifications)

    def expire_commands(self, now: float) -> int:
        """Mark pending and unused approved command approvals past their expiry."""
        c = m.command_approvals.c
        with self.write() as conn:
            return int(
                conn.execute(
                    m.command_approvals.update()
                    .where(c.status.in_(("pending", "approved")), c.expires_at <= now)
                    .values(status="expired")
                ).rowcount
            )

    def get_command(self, command_id: str) -> Row | None:
        with self.read() as conn:
            row = conn.execute(
                sa.select(m.command_approvals).where(m.command_approvals.c.id == command_id)
            ).first()
        return dict(row._mapping) if row else None

    def list_commands(
        self,
        *,
        statuses: Sequence[str] = (),
        session_id: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> list[Row]:
        c = m.command_approvals.c
        query = sa.select(m.command_approvals)
        if statuses:
            query = query.where(c.status.in_(statuses))
        if session_id is not None:
            query = query.where(c.session_id == session_id)
        if before is not None:
            query = query.where(sa.tuple_(c.created_at, c.id) < sa.tuple_(*before))
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def transition_command(
        self,
        command_id: str,
        from_statuses: Sequence[str],
        values: Mapping[str, Any],
        *,
        not_expired_at: float | None = None,
        session_id: str | None = None,
        fingerprint: str | None = None,
        notifications: Outbox = (),
    ) -> bool:
        """Conditional update; with `not_expired_at`, only while `expires_at` is later.

        Consuming an approval is this call with from_statuses=("approved",), the session
        and fingerprint it is bound to: exactly one caller can ever get True.
        """
        c = m.command_approvals.c
        query = m.command_approvals.update().where(c.id == command_id, c.status.in_(from_statuses))
        if not_expired_at is not None:
            query = query.where(c.expires_at > not_expired_at)
        if session_id is not None:
            query = query.where(c.session_id == session_id)
        if fingerprint is not None:
            query = query.where(c.fingerprint == fingerprint)
        with self.write() as conn:
            result = conn.execute(query.values(**values))
            if result.rowcount == 1:
                _store_outbox(conn, notifications)
        return result.rowcount == 1

    def add_command_vote(
        self,
        command_id: str,
        reviewer_sub: str,
        reviewer_email: str,
        decision: str,
        comment: str,
        now: float,
        *,
        notifications: Outbox = (),
    ) -> list[Row]:
        vote = self._vote(reviewer_sub, reviewer_email, decision, comment, now)
        self._add_vote(m.command_votes, "command_id", command_id, "command", vote, notifications)
        return self.command_votes(command_id)

    def command_votes(self, command_id: str) -> list[Row]:
        return self._votes(m.command_votes, "command_id", command_id)

    # -- audit ----------------------------------------------------------------------

    def ingest_audit(
        self,
        client_id: str,
        owner_sub: str,
        events: Sequence[tuple[str, int, str | None, Mapping[str, Any]]],
        now: float,
    ) -> IngestResult:
        """Store a batch of (event_id, seq, session_id, event) atomically and idempotently.

        Committed before returning: an acknowledged event survives a crash of the broker.
        """
        ev = m.audit_events.c
        cl = m.audit_clients.c
        with self.write() as conn:
            conn.execute(
                self._insert(m.audit_clients)
                .values(
                    client_id=client_id,
                    owner_sub=owner_sub,
                    high_water=0,
                    max_seq=0,
                    received=0,
                    last_seen=now,
                )
                .on_conflict_do_nothing()
            )
            # FOR UPDATE serialises concurrent batches of one client on PostgreSQL.
            client = conn.execute(
                sa.select(m.audit_clients).where(cl.client_id == client_id).with_for_update()
            ).one()
            if client.owner_sub != owner_sub:
                raise ClientOwnershipError(
                    f"audit client id {client_id!r} belongs to another identity"
                )
            seen: set[str] = set()
            rows: list[dict[str, Any]] = []
            for event_id, seq, session_id, body in events:
                if event_id in seen:
                    continue
                seen.add(event_id)
                rows.append(
                    {
                        "event_id": event_id,
                        "client_id": client_id,
                        "seq": seq,
                        "received_at": now,
                        "sub": owner_sub,
                        "session_id": session_id,
                        "event": dict(body),
                    }
                )
            accepted: list[str] = []
            if rows:
                inserted = conn.execute(
                    self._insert(m.audit_events).on_conflict_do_nothing().returning(ev.event_id),
                    rows,
                )
                accepted = [r[0] for r in inserted]
            rejected: list[str] = [
                r["event_id"] for r in rows if r["event_id"] not in set(accepted)
            ]
            duplicates: set[str] = set()
            if rejected:
                duplicates = {
                    r[0]
                    for r in conn.execute(
                        sa.select(ev.event_id).where(
                            ev.event_id.in_(rejected), ev.client_id == client_id
                        )
                    )
                }
            conflicts = [e for e in rejected if e not in duplicates]
            accepted_set = set(accepted)
            seqs = [int(r["seq"]) for r in rows if r["event_id"] in accepted_set]
            max_seq = max([int(client.max_seq), *seqs])
            high_water = int(client.high_water)
            while True:  # advance over contiguous stored seqs
                nxt = conn.execute(
                    sa.select(ev.seq)
                    .where(ev.client_id == client_id, ev.seq > high_water)
                    .order_by(ev.seq)
                    .limit(1000)
                ).all()
                advanced = False
                for (seq,) in nxt:
                    if seq != high_water + 1:
                        break
                    high_water = seq
                    advanced = True
                if not advanced or len(nxt) < 1000:
                    break
            received = int(client.received) + len(accepted)
            conn.execute(
                m.audit_clients.update()
                .where(cl.client_id == client_id)
                .values(high_water=high_water, max_seq=max_seq, received=received, last_seen=now)
            )
        return IngestResult(
            accepted=tuple(accepted),
            duplicates=tuple(sorted(duplicates)),
            conflicts=tuple(conflicts),
            high_water=high_water,
            max_seq=max_seq,
            missing=max(0, max_seq - received),
        )

    def list_audit(
        self,
        *,
        client_id: str | None = None,
        session_id: str | None = None,
        sub: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_pk: int = 0,
        limit: int = 100,
    ) -> list[Row]:
        """Events in arrival order; page with `after_pk` = the last row's `pk`."""
        ev = m.audit_events.c
        query = sa.select(m.audit_events).where(ev.pk > after_pk)
        if client_id is not None:
            query = query.where(ev.client_id == client_id)
        if session_id is not None:
            query = query.where(ev.session_id == session_id)
        if sub is not None:
            query = query.where(ev.sub == sub)
        if since is not None:
            query = query.where(ev.received_at >= since)
        if until is not None:
            query = query.where(ev.received_at < until)
        query = query.order_by(ev.pk).limit(limit)
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def audit_clients(self, *, after: str = "", limit: int = 100) -> list[ClientStatus]:
        cl = m.audit_clients.c
        query = (
            sa.select(m.audit_clients)
            .where(cl.client_id > after)
            .order_by(cl.client_id)
            .limit(limit)
        )
        with self.read() as conn:
            return [ClientStatus(**dict(r._mapping)) for r in conn.execute(query)]

    def audit_gaps(self, client_id: str, *, limit: int = 100) -> list[tuple[int, int]]:
        """Missing seq ranges (first, last) of one client, lowest first."""
        ev = m.audit_events.c
        nxt = sa.func.lead(ev.seq).over(order_by=ev.seq).label("next_seq")
        inner = sa.select(ev.seq, nxt).where(ev.client_id == client_id).subquery()
        query = (
            sa.select(inner.c.seq, inner.c.next_seq)
            .where(inner.c.next_seq > inner.c.seq + 1)
            .order_by(inner.c.seq)
            .limit(limit)
        )
        gaps: list[tuple[int, int]] = []
        with self.read() as conn:
            first = conn.execute(
                sa.select(sa.func.min(ev.seq)).where(ev.client_id == client_id)
            ).scalar()
            if first is not None and first > 1:
                gaps.append((1, int(first) - 1))
            gaps.extend((int(a) + 1, int(b) - 1) for a, b in conn.execute(query))
        return gaps[:limit]

    # -- notifications (the webhook outbox, see notify.py) ------------------------------

    def enqueue_notifications(self, rows: Outbox) -> None:
        """Insert outbox rows (event, hook, body, created_at, next_attempt_at) at once."""
        if rows:
            with self.write() as conn:
                _store_outbox(conn, rows)

    def due_notifications(
        self, hooks: Sequence[str], now: float, limit: int = 50
    ) -> list[tuple[int, str]]:
        """(id, hook) of undelivered rows of these hooks that are due and not leased, oldest
        first. A hint only: `claim_notification` decides who sends."""
        n = m.notifications.c
        query = (
            sa.select(n.id, n.hook)
            .where(
                n.delivered_at.is_(None),
                n.failed_at.is_(None),
                n.next_attempt_at <= now,
                n.claimed_until < now,
                n.hook.in_(hooks),
            )
            .order_by(n.id)
            .limit(limit)
        )
        with self.read() as conn:
            return [(int(r.id), str(r.hook)) for r in conn.execute(query)]

    def claim_notification(self, notification_id: int, now: float, until: float) -> Row | None:
        """Lease one due row until `until` and count the attempt; None if it is not due,
        done, or leased by another sender (a conditional update: one claimant wins)."""
        n = m.notifications.c
        with self.write() as conn:
            claimed = conn.execute(
                m.notifications.update()
                .where(
                    n.id == notification_id,
                    n.delivered_at.is_(None),
                    n.failed_at.is_(None),
                    n.next_attempt_at <= now,
                    n.claimed_until < now,
                )
                .values(claimed_until=until, attempts=n.attempts + 1)
            ).rowcount
            if claimed != 1:
                return None
            row = conn.execute(sa.select(m.notifications).where(n.id == notification_id)).one()
        return dict(row._mapping)

    def settle_notification(self, notification_id: int, values: Mapping[str, Any]) -> None:
        """Record an attempt's outcome (delivered_at, or next_attempt_at / failed_at with
        last_error) and release the lease."""
        n = m.notifications.c
        with self.write() as conn:
            conn.execute(
                m.notifications.update()
                .where(n.id == notification_id, n.delivered_at.is_(None))
                .values(claimed_until=0.0, **values)
            )

    def pending_notifications(self, hooks: Sequence[str] | None = None) -> int:
        """Rows neither delivered nor given up (of these hooks; all hooks when None)."""
        n = m.notifications.c
        query = (
            sa.select(sa.func.count())
            .select_from(m.notifications)
            .where(n.delivered_at.is_(None), n.failed_at.is_(None))
        )
        if hooks is not None:
            query = query.where(n.hook.in_(hooks))
        with self.read() as conn:
            return int(conn.execute(query).scalar() or 0)

    def purge_notifications(self, before: float, known_hooks: Sequence[str]) -> int:
        """Delete rows delivered or given up before `before`, and rows created before it for
        webhooks no longer configured (nobody would ever send them)."""
        n = m.notifications.c
        with self.write() as conn:
            done = conn.execute(
                m.notifications.delete().where(
                    sa.or_(n.delivered_at < before, n.failed_at < before)
                )
            ).rowcount
            orphans = conn.execute(
                m.notifications.delete().where(
                    n.delivered_at.is_(None),
                    n.failed_at.is_(None),
                    n.created_at < before,
                    n.hook.not_in(known_hooks),
                )
            ).rowcount
        return int(done + orphans)

    def _insert(self, table: sa.Table) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)


def _store_outbox(conn: sa.Connection, rows: Outbox) -> None:
    """Insert webhook outbox rows in the caller's transaction."""
    if rows:
        conn.execute(m.notifications.insert(), [dict(r) for r in rows])


def create_engine(url: str, *, schema: str | None = None) -> sa.Engine:
    """An engine configured for the broker: SQLite WAL + full sync, PostgreSQL pool."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **(
                {"poolclass": StaticPool}
                if memory
                else {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE}
            ),
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cursor = dbapi_conn.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed (acknowledged) audit batch survives power loss too.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            write = conn.get_execution_options().get("jitkube_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True, pool_size=10)
