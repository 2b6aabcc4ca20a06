"""Reading the local trail for `jitkube audit`: `--since` parsing and record selection."""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from typing import Any

from jitkube.audit.chain import AuditLog
from jitkube.errors import UsageError

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(value: str, now: float) -> float:
    """`90s`, `15m`, `1h`, `2d`, `1w`, or an ISO date/time (naive = UTC) → epoch seconds."""
    text = value.strip()
    match = _RELATIVE.match(text.lower())
    if match:
        return now - int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {value!r} is neither a duration nor a date",
            hint="use e.g. 30m, 1h, 2d, 2026-11-29 or 2026-11-29T10:00:00Z",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def record_time(record: dict[str, Any]) -> float | None:
    """The record's `time` as epoch seconds (None when missing or malformed)."""
    value = record.get("time")
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def select_records(log: AuditLog, since: float | None, limit: int) -> list[dict[str, Any]]:
    """Records at or after `since` in chain order; only the newest `limit` (0 = all)."""
    kept: deque[dict[str, Any]] = deque(maxlen=limit if limit > 0 else None)
    for record in log.records():
        if since is not None:
            when = record_time(record)
            if when is None or when < since:
                continue
        kept.append(record)
    return list(kept)
