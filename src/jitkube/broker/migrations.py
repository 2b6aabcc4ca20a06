"""Versioned schema of the broker's database, and the migrations that build it.

Each migration is a function applied once, in order, inside one transaction that also
bumps `jitkube_schema.version`. A broker refuses to start on a database whose version is
newer than the newest migration it knows (an older broker would misread newer data);
replicas racing to migrate serialise on a PostgreSQL advisory lock or SQLite's write lock.
Plain SQLAlchemy Core instead of Alembic: one linear history, no autogenerate, no extra
dependency, and the same code runs on both dialects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from jitkube.errors import ConfigError

metadata = sa.MetaData()

schema_version = sa.Table(
    "jitkube_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

# Times are UTC epoch seconds (float): identical on both dialects, no timezone surprises.
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner_sub", sa.String(255), nullable=False, index=True),
    sa.Column("owner_email", sa.String(320), nullable=False, default=""),
    sa.Column("owner_groups", sa.JSON, nullable=False),
    sa.Column("agent", sa.Boolean, nullable=False, default=False),
    sa.Column("agent_name", sa.String(128), nullable=False, default=""),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("cluster", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(1024), nullable=False, default=""),
    sa.Column("ttl_seconds", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("break_glass", sa.Boolean, nullable=False, default=False),
    sa.Column("min_approvals", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("request_expires_at", sa.Float, nullable=False),
    sa.Column("activated_at", sa.Float, nullable=True),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("ended_by", sa.String(255), nullable=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("role_session_name", sa.String(64), nullable=False),
    sa.Column("assumed_role_arn", sa.String(2048), nullable=True),
    sa.Column("credentials", sa.Text, nullable=True),  # Fernet token, never plaintext
    sa.Column("credentials_expire_at", sa.Float, nullable=True),
)

session_approvals = sa.Table(
    "session_approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("reviewer_sub", sa.String(255), nullable=False),
    sa.Column("reviewer_email", sa.String(320), nullable=False, default=""),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("comment", sa.String(1024), nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("session_id", "reviewer_sub", name="uq_session_reviewer"),
)

command_approvals = sa.Table(
    "command_approvals",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("session_id", sa.String(40), sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("requester_sub", sa.String(255), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("argv", sa.JSON, nullable=False),
    sa.Column("cluster", sa.String(64), nullable=False),
    sa.Column("namespace", sa.String(253), nullable=False, default=""),
    sa.Column("manifest_digest", sa.String(80), nullable=False, default=""),
    sa.Column("risk", sa.String(32), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(128), nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("min_approvals", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("consumed_at", sa.Float, nullable=True),
    # v2: approved for output without masking (`--unmask`); also part of the fingerprint.
    sa.Column("unmask", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    # v4: the AI agent the client says runs the command ("" for a person), for reviewers.
    sa.Column("agent", sa.String(128), nullable=False, default="", server_default=""),
)

command_votes = sa.Table(
    "command_votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("command_id", sa.String(40), sa.ForeignKey("command_approvals.id"), nullable=False),
    sa.Column("reviewer_sub", sa.String(255), nullable=False),
    sa.Column("reviewer_email", sa.String(320), nullable=False, default=""),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("comment", sa.String(1024), nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("command_id", "reviewer_sub", name="uq_command_reviewer"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("pk", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("sub", sa.String(255), nullable=False, default=""),
    sa.Column("session_id", sa.String(40), nullable=True, index=True),
    sa.Column("event", sa.JSON, nullable=False),
    sa.UniqueConstraint("client_id", "seq", name="uq_client_seq"),
)

audit_clients = sa.Table(
    "audit_clients",
    metadata,
    sa.Column("client_id", sa.String(128), primary_key=True),
    sa.Column("owner_sub", sa.String(255), nullable=False),
    sa.Column("high_water", sa.BigInteger, nullable=False, default=0),  # contiguous from 1
    sa.Column("max_seq", sa.BigInteger, nullable=False, default=0),
    sa.Column("received", sa.BigInteger, nullable=False, default=0),
    sa.Column("last_seen", sa.Float, nullable=False),
)

# v3: the webhook outbox, one row per (event, subscribed webhook). `hook` is a digest of
# the webhook's URL, never the URL (a Slack incoming-webhook URL is a credential); `body`
# is the rendered payload, which carries no tokens or credentials (notify.py).
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("hook", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("claimed_until", sa.Float, nullable=False, default=0.0),  # a sender's lease
    sa.Column("delivered_at", sa.Float, nullable=True),
    sa.Column("failed_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.String(200), nullable=True),  # "HTTP 503", an error class
    sa.Column("created_at", sa.Float, nullable=False),
    # Due rows (both NULL, by next_attempt_at) and the retention sweep (delivered_at <).
    sa.Index("ix_notifications_due", "delivered_at", "failed_at", "next_attempt_at"),
)

V1_TABLES = (
    sessions,
    session_approvals,
    command_approvals,
    command_votes,
    audit_events,
    audit_clients,
)


def _v1(conn: sa.Connection) -> None:
    metadata.create_all(conn, tables=list(V1_TABLES))


def _add_column(conn: sa.Connection, column: sa.Column[Any], default_sql: str) -> None:
    """ALTER TABLE … ADD COLUMN, unless it is there.

    `_v1` builds tables from the current metadata, so on a new database the column is
    already there; a database made by an older broker gets it added here.
    """
    table = column.table.name
    if any(c["name"] == column.name for c in sa.inspect(conn).get_columns(table)):
        return
    type_sql = column.type.compile(dialect=conn.dialect)
    conn.execute(
        sa.text(
            f"ALTER TABLE {table} ADD COLUMN {column.name} {type_sql} "
            f"NOT NULL DEFAULT {default_sql}"
        )
    )


def _v2_command_unmask(conn: sa.Connection) -> None:
    """command_approvals.unmask (bool, default false): requests for unmasked output."""
    _add_column(conn, command_approvals.c.unmask, str(sa.false().compile(dialect=conn.dialect)))


def _v3_notifications(conn: sa.Connection) -> None:
    """The `notifications` outbox table (and its index), unless it exists already."""
    notifications.create(conn, checkfirst=True)


Migration = Callable[[sa.Connection], None]


def _v4_command_agent(conn: sa.Connection) -> None:
    """command_approvals.agent (text, default ""): the agent that asks, for reviewers."""
    _add_column(conn, command_approvals.c.agent, "''")


MIGRATIONS: tuple[Migration, ...] = (
    _v1,
    _v2_command_unmask,
    _v3_notifications,
    _v4_command_agent,
)
LATEST_VERSION = len(MIGRATIONS)


class SchemaTooNewError(ConfigError):
    code = "schema_too_new"


def current_version(conn: sa.Connection) -> int:
    """The database's schema version; 0 for an empty database."""
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    row = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1)).first()
    return int(row[0]) if row else 0


def migrate(engine: sa.Engine, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the schema to the newest version; refuse a database newer than this code."""
    latest = len(migrations)
    with engine.connect() as conn:
        # SQLite: the engine's begin hook turns this into BEGIN IMMEDIATE (take the lock).
        conn.execution_options(jitkube_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # Serialise replicas migrating at once; released at commit.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7318090)"))
            version = current_version(conn)
            if version > latest:
                raise SchemaTooNewError(
                    f"database schema version {version} is newer than this broker supports "
                    f"({latest}); upgrade jitkube before starting it on this database"
                )
            if version == latest:
                return version
            schema_version.create(conn, checkfirst=True)
            for number in range(version, latest):
                migrations[number](conn)
            if version == 0:
                conn.execute(schema_version.insert().values(id=1, version=latest))
            else:
                conn.execute(
                    schema_version.update().where(schema_version.c.id == 1).values(version=latest)
                )
            return latest
