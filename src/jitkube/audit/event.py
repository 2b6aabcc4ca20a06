"""One audit event per `jitkube kubectl` invocation: what the runner hands over.

Pure and stdlib only. `build_event(entry, environ)` redacts the argv, resolves the agent
name and returns a flat JSON-able dict (schema `EVENT_VERSION`); `AuditLog.append` then
adds `seq`, `prev` and `hash`. The values the redaction took out of the argv are also
scrubbed from every other field (a parser problem or a reason may quote an argument), so
the local chain, the spool (which *is* the chain) and the broker's copy hold one redacted
record. The broker stores every field as sent (its `AuditEventIn`
allows extra fields) and overrides `sub`/`session_id` with what the bearer token proves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

from jitkube.audit.agent import resolve_agent
from jitkube.audit.redact import REDACTED, redact_argv
from jitkube.dataclass_lite import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

    from jitkube.judge import Judgement

EVENT_VERSION = 1
# allowed: ran without approval; approved: ran after confirm/approval; denied: the policy
# refused it; pending: approval filed, not run (--no-wait); refused: not run because a
# precondition said no (no session, a reviewer or the person at the terminal declined, the
# approval expired); failed: jitkube could not run it (broker unreachable, bad manifest,
# internal error); interrupted: Ctrl-C. kubectl's own failures stay `allowed`/`approved`
# with their exit code.
OUTCOMES = ("allowed", "approved", "denied", "pending", "refused", "failed", "interrupted")
MAX_ARG_CHARS = 4096  # one argv element; keeps a batch well under the broker's body cap
MAX_ARGV_CHARS = 65_536
MAX_REASONS = 32


@dataclass(repr=False, eq=False)  # no repr: `argv` may still hold secrets here
class AuditEntry:
    """Everything the runner knows about one invocation. Only `argv` and `outcome` are required.

    `argv` is kubectl's raw argv (without `kubectl`); it is redacted here, never stored as
    given. `agent` is the explicit name from `--agent`/`JITKUBE_AGENT` (`agent_source`
    says which); `session_agent` the session's agent name; markers are checked last.
    """

    argv: Sequence[str]
    outcome: str
    started_at: float | None = None  # epoch seconds; default: now
    duration_ms: float | None = None
    sub: str | None = None
    email: str | None = None
    groups: Sequence[str] = ()
    agent: str | None = None
    agent_source: str = "flag"
    session_agent: str | None = None
    session_id: str | None = None
    cluster: str | None = None
    role: str | None = None
    command: str | None = None  # e.g. "rollout restart"
    invocation: Mapping[str, Any] = field(default_factory=dict)  # parsed summary
    risk: str | None = None  # class label
    reasons: Sequence[str] = ()
    decision: str | None = None  # allow | confirm | approve | deny
    rule: str | None = None
    approval_id: str | None = None
    approver: str | None = None
    exit_code: int | None = None
    stdout_bytes: int | None = None  # None: passed straight through, not counted
    stderr_bytes: int | None = None
    masked: int = 0  # values replaced by the output masker
    error: str | None = None  # jitkube error code when outcome is failed/denied/…


def judgement_fields(j: Judgement) -> dict[str, Any]:
    """`command`, `invocation`, `risk`, `reasons`, `decision`, `rule` of an AuditEntry."""
    from jitkube.judge import judgement_data

    data = judgement_data(j)
    invocation = dict(data["invocation"])
    return {
        "command": invocation.pop("command"),
        "invocation": invocation,
        "risk": data["class"],
        "reasons": data["reasons"],
        "decision": data["decision"],
        "rule": data["rule"],
    }


def iso_time(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds and `Z` (cheaper than datetime)."""
    millis = round(epoch * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def _bounded(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    total = 0
    for arg in argv:
        if len(arg) > MAX_ARG_CHARS:
            arg = arg[:MAX_ARG_CHARS] + f"…[+{len(arg) - MAX_ARG_CHARS} chars]"
        total += len(arg)
        if total > MAX_ARGV_CHARS:
            out.append(f"…[{len(argv) - len(out)} more arguments]")
            break
        out.append(arg)
    return out


MIN_SCRUB_CHARS = 4  # shorter hidden values are not searched for in the other fields


def _scrub(value: Any, hidden: Sequence[str]) -> Any:
    """`value` with every occurrence of a hidden argv value replaced by `<redacted>`."""
    if isinstance(value, str):
        for secret in hidden:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, hidden) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, hidden) for v in value]
    return value


def build_event(entry: AuditEntry, environ: Mapping[str, str]) -> dict[str, Any]:
    """The audit event for `entry`: redacted, bounded, flat, JSON-able."""
    if entry.outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {entry.outcome!r}")
    redacted = redact_argv(entry.argv)
    agent = resolve_agent(entry.agent, entry.agent_source, entry.session_agent, environ)
    started = time.time() if entry.started_at is None else entry.started_at
    event = {
        "v": EVENT_VERSION,
        "id": os.urandom(16).hex(),
        "time": iso_time(started),
        "kind": "kubectl",
        "outcome": entry.outcome,
        "sub": entry.sub,
        "email": entry.email,
        "groups": list(entry.groups),
        "agent": agent.name if agent else None,
        "agent_source": agent.source if agent else None,
        "session_id": entry.session_id,
        "cluster": entry.cluster,
        "role": entry.role,
        "argv": _bounded(redacted.argv),
        "argv_redacted": redacted.redactions,
        "command": entry.command,
        "invocation": dict(entry.invocation),
        "class": entry.risk,
        "reasons": [str(r)[:500] for r in list(entry.reasons)[:MAX_REASONS]],
        "decision": entry.decision,
        "rule": entry.rule,
        "approval_id": entry.approval_id,
        "approver": entry.approver,
        "exit_code": entry.exit_code,
        "duration_ms": None if entry.duration_ms is None else round(entry.duration_ms, 1),
        "stdout_bytes": entry.stdout_bytes,
        "stderr_bytes": entry.stderr_bytes,
        "output_bytes": (
            None
            if entry.stdout_bytes is None or entry.stderr_bytes is None
            else entry.stdout_bytes + entry.stderr_bytes
        ),
        "masked": entry.masked,
        "error": entry.error,
        "pid": os.getpid(),
    }
    hidden = sorted(
        (h for h in redacted.hidden if len(h) >= MIN_SCRUB_CHARS), key=len, reverse=True
    )
    if hidden:
        for key in event:
            if key != "argv":  # already redacted, element by element
                event[key] = _scrub(event[key], hidden)
    return event
