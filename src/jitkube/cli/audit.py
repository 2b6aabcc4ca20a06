"""`jitkube audit`: show, verify and deliver the local audit trail (thin adapter).

    jitkube audit [--since 1h|DATE] [--limit N] [--json]   list records (newest last)
    jitkube audit --verify                                  exit 72 when tampered
    jitkube audit --flush [--broker URL] [--ca-bundle PEM]  deliver pending records now

`--json` prints the stored records as JSON lines (chain fields included, for piping);
`--output json` prints the versioned envelope instead.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from jitkube import envelope
from jitkube.environment import Environment
from jitkube.errors import (
    BrokerUnreachableError,
    ConfigError,
    ExitCode,
    JitkubeError,
    LoginRequiredError,
)


class AuditDeliveryError(JitkubeError):
    """The broker refused the upload for a reason resending cannot fix (409, 413, 422)."""

    exit_code = ExitCode.USAGE
    code = "audit_rejected"


def _columns(seq: str, at: str, outcome: str, code: str, risk: str, who: str, agent: str,
             where: str, command: str) -> str:  # fmt: skip
    return (
        f"{seq:>6}  {at:<27} {outcome:<8} {code:>4}  {risk:<20} {who:<16} {agent:<12} "
        f"{where:<16} {command}"
    )


_HEADER = _columns("SEQ", "TIME", "OUTCOME", "EXIT", "CLASS", "WHO", "AGENT", "WHERE", "COMMAND")


def _text_line(record: dict[str, Any]) -> str:
    who = str(record.get("email") or record.get("sub") or "-")
    where = "/".join(str(x) for x in (record.get("cluster"), record.get("role")) if x) or "-"
    exit_code = record.get("exit_code")
    argv = " ".join(str(a) for a in record.get("argv") or [])
    return _columns(
        str(record.get("seq", "?")),
        str(record.get("time", "-")),
        str(record.get("outcome", "-")),
        "-" if exit_code is None else str(exit_code),
        str(record.get("class") or "-"),
        who,
        str(record.get("agent") or "-"),
        where,
        f"kubectl {argv}",
    )


def _emit(env: Environment, command: str, data: dict[str, Any], text: str, code: int = 0) -> int:
    if env.json_output:
        status = "ok" if code == 0 else "error"
        errors = [] if code == 0 else [{"code": "audit_invalid", "message": text.splitlines()[0]}]
        env.stdout.write(envelope.dumps(envelope.build(command, status, code, data, errors)) + "\n")
    else:
        env.stdout.write(text + "\n")
    return code


def _verify(env: Environment) -> int:
    from jitkube.audit import audit_dir, verify

    directory = audit_dir(env.environ)
    count, problems = verify(directory)
    data = {
        "directory": str(directory),
        "records": count,
        "intact": not problems,
        "problems": [p.as_dict() for p in problems],
    }
    if not problems:
        return _emit(env, "audit", data, f"audit trail intact: {count} records in {directory}")
    lines = [f"audit trail NOT intact: {len(problems)} problem(s) in {count} records ({directory})"]
    lines += [f"  {p.kind}: {p.message}" for p in problems]
    return _emit(env, "audit", data, "\n".join(lines), int(ExitCode.AUDIT_INVALID))


def _flush(env: Environment, broker: str | None, ca_bundle: str | None) -> int:
    from jitkube.audit import AuditSpool, audit_dir
    from jitkube.config import load

    spool = AuditSpool(audit_dir(env.environ))
    pending = spool.pending_count()
    if pending == 0:
        data = {"delivered": 0, "pending": 0, "delivered_seq": spool.delivery().seq}
        return _emit(env, "audit", data, "nothing to deliver: the broker has every record")
    from jitkube.identity import access_token, broker_url

    config = load(env.environ, {"broker_url": broker, "ca_bundle": ca_bundle})
    url = broker_url(config, env)
    token = access_token(config, env)
    result = spool.flush(url, "Bearer " + token, config.ca_bundle)
    if result.error_code in ("unreachable", "busy"):
        raise BrokerUnreachableError(
            f"{result.error}; {result.pending} record(s) stay spooled",
            hint="run `jitkube audit --flush` again when the broker is back",
        )
    if result.error_code == "unauthorized":
        raise LoginRequiredError(f"{result.error}; {result.pending} record(s) stay spooled")
    if result.error_code is not None:
        raise AuditDeliveryError(f"{result.error}; {result.pending} record(s) stay spooled")
    text = f"delivered {result.delivered} record(s) to {url}"
    if result.duplicates:
        text += f" ({result.duplicates} already there)"
    if result.conflicts:
        text += f"; {len(result.conflicts)} conflicting id(s) skipped"
    if result.missing:
        text += f"; the broker reports {result.missing} record(s) of this client missing"
    return _emit(env, "audit", result.as_dict(), text)


def _list(env: Environment, since: str | None, limit: int, as_json: bool) -> int:
    from jitkube.audit import AuditLog, audit_dir
    from jitkube.audit.query import parse_since, select_records

    directory = audit_dir(env.environ)
    cutoff = parse_since(since, time.time()) if since else None
    records = select_records(AuditLog(directory), cutoff, limit)
    if env.json_output:
        data = {"directory": str(directory), "count": len(records), "records": records}
        return _emit(env, "audit", data, "")
    if as_json:
        for record in records:
            env.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        return int(ExitCode.OK)
    if not records:
        env.stdout.write(f"no audit records{' since ' + since if since else ''} in {directory}\n")
        return int(ExitCode.OK)
    env.stdout.write(_HEADER + "\n")
    for record in records:
        env.stdout.write(_text_line(record) + "\n")
    return int(ExitCode.OK)


def register(app: typer.Typer, env: Environment) -> None:
    """Add `audit` to `app`."""

    @app.command()
    def audit(
        since: str | None = typer.Option(
            None, "--since", help="Only records since 30m, 1h, 2d… or an ISO date/time (UTC)."
        ),
        limit: int = typer.Option(50, "--limit", min=0, help="Newest N records (0: all)."),
        as_json: bool = typer.Option(False, "--json", help="Print records as JSON lines."),
        verify: bool = typer.Option(
            False, "--verify", help="Check the hash chain; exit 72 when edited/deleted/reordered."
        ),
        flush: bool = typer.Option(
            False, "--flush", help="Deliver pending records to the broker now."
        ),
        broker: str | None = typer.Option(None, "--broker", help="Broker URL (for --flush)."),
        ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM CA bundle."),
    ) -> int:
        """Show the local audit trail, verify it, or deliver it to the broker."""
        if verify and flush:
            raise ConfigError("--verify and --flush are separate steps; run one at a time")
        if verify:
            return _verify(env)
        if flush:
            return _flush(env, broker, ca_bundle)
        return _list(env, since, limit, as_json)
