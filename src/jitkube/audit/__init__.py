"""The audit trail of every `jitkube kubectl` invocation: local hash chain + broker spool.

The runner calls `record_invocation(entry, environ)` once per invocation (allowed,
denied, refused, approved, pending or failed) and, after kubectl has exited, starts a
flush when one is due:

    from jitkube.audit import AuditEntry, record_invocation, flush_after_command
    record_invocation(AuditEntry(argv=args, outcome="allowed", ...), env.environ)
    flush_after_command(env.environ, broker_url, "Bearer " + session_token, ca_bundle)

Stdlib only; `urllib`/`subprocess` are imported only when a flush runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from jitkube.audit.agent import AgentInfo, detect_agent, resolve_agent
from jitkube.audit.chain import AuditLog, AuditWriteError, Head
from jitkube.audit.event import OUTCOMES, AuditEntry, build_event, judgement_fields
from jitkube.audit.redact import REDACTED, RedactedArgv, redact_argv
from jitkube.config import state_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

    from jitkube.audit.reading import Problem
    from jitkube.audit.spool import AuditSpool, FlushResult, spawn_background_flush

# Reading, verifying and delivering are not needed to record one invocation: they load on
# first use, so the hot path imports only what `record_invocation` needs.
_LAZY = {
    "AuditSpool": "jitkube.audit.spool",
    "FlushResult": "jitkube.audit.spool",
    "spawn_background_flush": "jitkube.audit.spool",
    "Problem": "jitkube.audit.reading",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jitkube.audit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "OUTCOMES",
    "REDACTED",
    "AgentInfo",
    "AuditEntry",
    "AuditLog",
    "AuditSpool",
    "AuditWriteError",
    "FlushResult",
    "Head",
    "Problem",
    "RedactedArgv",
    "audit_dir",
    "build_event",
    "detect_agent",
    "flush_after_command",
    "judgement_fields",
    "record_invocation",
    "redact_argv",
    "resolve_agent",
    "spawn_background_flush",
    "verify",
]


def audit_dir(environ: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/jitkube/audit` (created 0700 on the first append)."""
    return state_dir(environ) / "audit"


def record_invocation(
    entry: AuditEntry, environ: Mapping[str, str], *, directory: Path | None = None
) -> dict[str, Any]:
    """Append one invocation to the local chain; returns the stored record.

    Raises `AuditWriteError` when the trail cannot be written.
    """
    return AuditLog(directory or audit_dir(environ)).append(build_event(entry, environ))


def flush_after_command(
    environ: Mapping[str, str],
    broker_url: str | None,
    auth_header: str | None,
    ca_bundle: str | None = None,
    *,
    directory: Path | None = None,
) -> int | None:
    """Start a background flush when records are pending and no back-off runs; its pid.

    Never raises and never waits on the network: the command's own exit comes first.
    """
    if not broker_url or not auth_header:
        return None
    from jitkube.audit.spool import AuditSpool, flusher_running, spawn_background_flush

    spool = AuditSpool(directory or audit_dir(environ))
    try:
        if not spool.flush_due() or flusher_running(spool.directory):
            return None
        return spawn_background_flush(spool.directory, broker_url, auth_header, ca_bundle)
    except OSError:
        return None


def verify(directory: Path) -> tuple[int, list[Problem]]:
    """Verify the chain in `directory`, anchored also by the spool's delivered seq."""
    from jitkube.audit.spool import AuditSpool

    spool = AuditSpool(directory)
    return spool.log.verify(delivered_seq=spool.delivery().seq)
