"""Audit ingest and export: idempotent by event id, ordered per client by sequence number.

Clients (the CLI's on-disk spool) send batches `{client_id, events: [{id, seq, ...}]}`.
A batch is committed before the broker answers, so an acknowledged event is never lost;
a retried batch is harmless (duplicates are reported, not stored twice); a missing seq
stays visible as a gap until it arrives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from jitkube.broker.errors import BrokerError
from jitkube.broker.metrics import BrokerMetrics
from jitkube.broker.sessions import iso
from jitkube.broker.store import ClientOwnershipError, Row, Store

Clock = Callable[[], float]
EXPORT_PAGE = 1000


class AuditService:
    def __init__(self, store: Store, clock: Clock, metrics: BrokerMetrics) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics

    def ingest(
        self,
        owner_sub: str,
        client_id: str,
        events: Sequence[Mapping[str, Any]],
        session_id: str | None,
    ) -> dict[str, Any]:
        """Store one batch. `session_id` (from a session token) overrides what events claim."""
        batch = [
            (
                str(e["id"]),
                int(e["seq"]),
                session_id
                or (e.get("session_id") if isinstance(e.get("session_id"), str) else None),
                {k: v for k, v in e.items() if k not in ("id", "seq")},
            )
            for e in events
        ]
        try:
            result = self.store.ingest_audit(client_id, owner_sub, batch, self.clock())
        except ClientOwnershipError as exc:
            raise BrokerError("audit_client_conflict", str(exc)) from None
        self.metrics.audit_events.labels("accepted").inc(len(result.accepted))
        self.metrics.audit_events.labels("duplicate").inc(len(result.duplicates))
        self.metrics.audit_events.labels("conflict").inc(len(result.conflicts))
        return {
            "client_id": client_id,
            "accepted": len(result.accepted),
            "duplicates": list(result.duplicates),
            "conflicts": list(result.conflicts),
            "high_water": result.high_water,
            "max_seq": result.max_seq,
            "missing": result.missing,
        }

    @staticmethod
    def view(row: Row) -> dict[str, Any]:
        event = row["event"]
        if isinstance(event, str):  # some drivers hand JSON back as text
            event = json.loads(event)
        return {
            **event,
            "id": row["event_id"],
            "seq": row["seq"],
            "client_id": row["client_id"],
            "sub": row["sub"],
            "session_id": row["session_id"],
            "received_at": iso(row["received_at"]),
        }

    def export(self, **filters: Any) -> Iterator[bytes]:
        """Every matching event as one JSON line, streamed page by page."""
        after = 0
        while True:
            rows = self.store.list_audit(after_pk=after, limit=EXPORT_PAGE, **filters)
            for row in rows:
                yield json.dumps(self.view(row), sort_keys=True, default=str).encode() + b"\n"
            if len(rows) < EXPORT_PAGE:
                return
            after = rows[-1]["pk"]

    def clients(self, after: str, limit: int) -> list[dict[str, Any]]:
        out = []
        for status in self.store.audit_clients(after=after, limit=limit):
            gaps = self.store.audit_gaps(status.client_id, limit=20) if status.missing else []
            out.append(
                {
                    "client_id": status.client_id,
                    "owner": status.owner_sub,
                    "high_water": status.high_water,
                    "max_seq": status.max_seq,
                    "received": status.received,
                    "missing": status.missing,
                    "gaps": [{"first": a, "last": b} for a, b in gaps],
                    "last_seen": iso(status.last_seen),
                }
            )
        return out
