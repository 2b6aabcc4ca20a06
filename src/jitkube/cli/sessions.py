"""`jitkube request/status/revoke/approvals/approve/deny`: thin adapters over jitkube.client.

Each command turns its options into one call of jitkube.client.sessions and renders the
result: Rich on a console honouring NO_COLOR (built lazily), or one JSON envelope with
`--output json`. Live progress (waiting for reviewers) goes to stderr, so stdout stays
the command's result. Tokens never reach any renderer: only public views are passed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from jitkube import envelope
from jitkube.cli.login import make_console
from jitkube.client.durations import format_duration, parse_duration
from jitkube.config import Config, load
from jitkube.environment import Environment
from jitkube.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from jitkube.client.sessions import RequestOutcome, StatusReport

# The `data` of `jitkube request --output json`, in this order (pinned by a contract test).
REQUEST_KEYS = (
    "id",
    "status",
    "role",
    "cluster",
    "ttl_seconds",
    "expires_at",
    "remaining_seconds",
    "request_expires_at",
    "reason",
    "agent",
    "agent_name",
    "break_glass",
    "approvals_required",
    "approvals",
    "cluster_endpoint",
    "cached",
)


def _epoch(value: Any) -> float | None:
    from jitkube.client.sessions import epoch

    return epoch(value)


def _clean(text: Any, limit: int = 200) -> str:
    """Untrusted text (reasons, comments, argv) as one printable line."""
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text or ""))
    return " ".join(flat.split())[:limit]


def _add_row(table: Any, *cells: Any) -> None:
    """Add a row whose strings are literal text: broker data is never Rich markup."""
    from rich.text import Text

    table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells))


def _approvals_list(
    sessions: Sequence[Mapping[str, Any]], commands: Sequence[Mapping[str, Any]], now: float
) -> list[Any]:
    """The pending requests one block each, for terminals too narrow for the table."""
    from rich.text import Text

    out: list[Any] = [Text("Pending approvals", style="bold")]
    for s in sessions:
        owner = s.get("owner") or {}
        what = _session_what(s) + (" [break-glass]" if s.get("break_glass") else "")
        out += [
            "",
            f"{s.get('id')}{_ago(s.get('created_at'), now)}",
            f"  who:     {_clean(owner.get('email') or owner.get('sub'))}",
            f"  what:    {what}",
            f"  reason:  {_clean(s.get('reason')) or '-'}",
        ]
    for c in commands:
        reasons = "; ".join(_clean(r, 120) for r in c.get("reasons") or ()) or "-"
        out += [
            "",
            f"{c.get('id')}{_ago(c.get('created_at'), now)}",
            f"  who:     {_clean(c.get('requester_email') or c.get('requester'))}",
            f"  what:    {command_text(c)}",
            f"  class:   {_clean(c.get('risk'))}",
            f"  reasons: {reasons}",
        ]
    return out


def _session_what(s: Mapping[str, Any]) -> str:
    ttl = format_duration(s.get("ttl") or 0)
    what = f"session {s.get('role')}@{s.get('cluster')} for {ttl}"
    if s.get("agent"):
        what += f" (agent {_clean(s.get('agent_name')) or 'yes'})"
    return what


def _ago(value: Any, now: float) -> str:
    age = _age(value, now)
    return f"  ({age} ago)" if age != "-" else ""


def _stamp(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _age(value: Any, now: float) -> str:
    epoch = _epoch(value)
    return format_duration(now - epoch) if epoch is not None else "-"


def request_data(outcome: RequestOutcome, now: float) -> dict[str, Any]:
    """The JSON form of a request's outcome (keys REQUEST_KEYS; never a token)."""
    s = outcome.session
    expires = _epoch(s.get("expires_at"))
    data = {
        "id": s.get("id"),
        "status": outcome.status,
        "role": s.get("role"),
        "cluster": s.get("cluster"),
        "ttl_seconds": s.get("ttl"),
        "expires_at": s.get("expires_at"),
        "remaining_seconds": int(max(0.0, expires - now)) if expires is not None else None,
        "request_expires_at": s.get("request_expires_at"),
        "reason": s.get("reason") or "",
        "agent": bool(s.get("agent")),
        "agent_name": s.get("agent_name") or "",
        "break_glass": bool(s.get("break_glass")),
        "approvals_required": s.get("approvals_required"),
        "approvals": list(s.get("approvals") or []),
        "cluster_endpoint": s.get("cluster_endpoint"),
        "cached": outcome.cached is not None,
    }
    return {k: data[k] for k in REQUEST_KEYS}


# -- renderers ---------------------------------------------------------------------------


def render_session_panel(session: Mapping[str, Any], now: float) -> RenderableType:
    """The panel `jitkube request` shows for an active session."""
    from rich.panel import Panel
    from rich.table import Table

    expires = _epoch(session.get("expires_at"))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("session", str(session.get("id"))),
        ("role", str(session.get("role"))),
        ("cluster", str(session.get("cluster"))),
        ("endpoint", str(session.get("cluster_endpoint") or "-")),
        ("expires", _stamp(expires)),
        ("remaining", format_duration(expires - now) if expires is not None else "-"),
    ]
    if session.get("reason"):
        rows.append(("reason", _clean(session.get("reason"))))
    if session.get("agent_name"):
        rows.append(("agent", _clean(session.get("agent_name"))))
    if session.get("break_glass"):
        rows.append(("break-glass", "yes (flagged and notified)"))
    for key, value in rows:
        _add_row(table, key, value)
    return Panel(table, title="jitkube session active", expand=False, border_style="green")


def waiting_line(session: Mapping[str, Any]) -> str:
    """One line saying what a pending request waits for, and who was asked."""
    needed = session.get("approvals_required") or 1
    votes = [v for v in session.get("approvals") or () if isinstance(v, Mapping)]
    approved = [str(v.get("reviewer")) for v in votes if v.get("decision") == "approve"]
    asked = session.get("approver_groups") or session.get("reviewers")
    who = (
        "a reviewer in group " + " or ".join(str(g) for g in asked)
        if asked
        else f"reviewers of role {session.get('role')}"
    )
    line = (
        f"Waiting for {who} to approve {session.get('id')} "
        f"({session.get('role')}@{session.get('cluster')}): {len(approved)}/{needed} approvals"
    )
    if approved:
        line += " (approved by " + ", ".join(approved) + ")"
    return line


def countdown_bar(remaining: float, total: float, width: int = 10) -> str:
    """`███████░░░`: the share of the granted time that is left."""
    share = 0.0 if total <= 0 else min(1.0, max(0.0, remaining / total))
    filled = round(share * width)
    return "█" * filled + "░" * (width - filled)


def render_status(report: StatusReport, now: float) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    if report.identity is not None:
        who = report.identity.email or report.identity.sub
        parts.append(Text(f"Logged in as {who}", style="bold"))
    else:
        parts.append(Text(f"Not logged in: {report.identity_error}", style="yellow"))
    if report.sessions:
        # Two lines per session rather than a table: ids must stay whole and copyable,
        # and six columns do not fit an 80-column terminal.
        parts.append(Text("Sessions", style="bold"))
        for s in report.sessions:
            state = s.status if s.status == "active" else "pending (request lapses)"
            head = Text(f"  {s.session_id}  ", style="bold")
            head.append(f"{s.role}@{s.cluster}  ")
            head.append(state, style="green" if s.status == "active" else "yellow")
            left = format_duration(s.remaining(now))
            granted = report.ttl.get(s.session_id)
            bar = f"{countdown_bar(s.remaining(now), granted)} " if granted else ""
            parts.append(head)
            parts.append(Text(f"    ends {_stamp(s.expires_at)}  {bar}{left} left"))
    else:
        parts.append(Text("No active or pending sessions."))
    for s, why in report.ended:
        parts.append(
            Text(f"Session {s.session_id} ({s.role}@{s.cluster}) {why}; removed from the cache.")
        )
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


NARROW = 100  # below this many columns the table folds words; list the requests instead


def render_approvals(
    sessions: Sequence[Mapping[str, Any]],
    commands: Sequence[Mapping[str, Any]],
    now: float,
    width: int = NARROW,
) -> RenderableType | list[Any]:
    from rich.table import Table
    from rich.text import Text

    if not sessions and not commands:
        return Text("Nothing waits for your review.")
    if width < NARROW:
        return _approvals_list(sessions, commands, now)
    table = Table(title="Pending approvals", title_justify="left", show_lines=True, expand=True)
    table.add_column("id", no_wrap=True)
    table.add_column("who", ratio=2, overflow="fold")
    table.add_column("what", ratio=3, overflow="fold")
    table.add_column("class", no_wrap=True)
    table.add_column("reasons", ratio=3, overflow="fold")
    table.add_column("age", no_wrap=True)
    for s in sessions:
        owner = s.get("owner") or {}
        what = _session_what(s)
        _add_row(
            table,
            str(s.get("id")),
            _clean(owner.get("email") or owner.get("sub")),
            what,
            "break-glass" if s.get("break_glass") else "session",
            _clean(s.get("reason")) or "-",
            _age(s.get("created_at"), now),
        )
    for c in commands:
        _add_row(
            table,
            str(c.get("id")),
            _clean(c.get("requester_email") or c.get("requester")),
            command_text(c),
            _clean(c.get("risk")),
            "; ".join(_clean(r, 120) for r in c.get("reasons") or ()) or "-",
            _age(c.get("created_at"), now),
        )
    if not commands:
        return table
    # The table may fold a long command; reviewers also get each one whole, on one line
    # (plain strings are printed soft-wrapped by _emit, so a terminal can copy them intact).
    return [
        table,
        Text("Commands in full:", style="bold"),
        *(f"{c.get('id')}: {command_text(c)}" for c in commands),
    ]


def command_text(command: Mapping[str, Any]) -> str:
    """The exact command as the reviewer must see it (shell-quoted, one line).

    A request to see the output unmasked (`jitkube kubectl --unmask`) says so: approving
    it lets the requester see secret values, and it is a different approval from the
    masked command's.
    """
    import shlex

    argv = [str(a) for a in command.get("argv") or ()]
    text = shlex.join(["kubectl", *argv])
    where = f" [cluster {command.get('cluster')}"
    if command.get("role"):
        where += f", role {_clean(command.get('role'))}"
    if command.get("namespace"):
        where += f", namespace {command.get('namespace')}"
    if command.get("agent"):
        where += f", run by agent {_clean(command.get('agent'), 128)}"
    if command.get("unmask") is True:
        where += ", UNMASKED: output shown without masking secret values"
    return _clean(text, 2000) + where + "]"


def render_review(kind: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Any:
    """What was reviewed (the exact command and its reasons) and the outcome."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    if kind == "command":
        _add_row(table, "command", command_text(before))
        _add_row(
            table, "requester", _clean(before.get("requester_email") or before.get("requester"))
        )
        _add_row(table, "risk", _clean(before.get("risk")))
        for reason in before.get("reasons") or ():
            _add_row(table, "reason", _clean(reason, 300))
    else:
        owner = before.get("owner") or {}
        _add_row(table, "session", f"{before.get('role')}@{before.get('cluster')}")
        _add_row(table, "requester", _clean(owner.get("email") or owner.get("sub")))
        _add_row(table, "ttl", format_duration(before.get("ttl") or 0))
        _add_row(table, "reason", _clean(before.get("reason")) or "-")
        if before.get("agent"):
            _add_row(table, "agent", _clean(before.get("agent_name")) or "yes")
    _add_row(table, "status", str(after.get("status")))
    return Group(Text(f"{kind.capitalize()} request {after.get('id')}", style="bold"), table)


# -- output helpers ----------------------------------------------------------------------


def print_text(console: Any, text: Any) -> None:
    """Print a renderable or a list of them; strings as literal text (never Rich markup:
    argv and comments may contain brackets), soft-wrapped so they stay one logical line."""
    from rich.text import Text

    for item in text if isinstance(text, list) else [text]:
        if isinstance(item, str):
            console.print(Text(item), soft_wrap=True)
        else:
            console.print(item)


def _emit(
    env: Environment,
    command: str,
    data: Mapping[str, Any],
    text: Any,
    *,
    status: str = "ok",
    code: int = 0,
    errors: Sequence[Mapping[str, str]] = (),
    stderr_line: str | None = None,
) -> int:
    if env.json_output:
        env.stdout.write(envelope.dumps(envelope.build(command, status, code, data, errors)) + "\n")
    elif text is not None:
        print_text(make_console(env), text)
    if stderr_line:
        env.stderr.write(stderr_line + "\n")
    return code


@contextmanager
def _progress(env: Environment) -> Iterator[Any]:
    """A live status line on stderr (spinner on a terminal, plain lines otherwise)."""
    console = make_console(env, stderr=True)
    last: list[str] = []

    if console.is_terminal and not env.json_output:
        with console.status("Sending the request…") as live:

            def update(session: Mapping[str, Any]) -> None:
                live.update(waiting_line(session))

            yield update
        return

    def plain(session: Mapping[str, Any]) -> None:
        line = waiting_line(session)
        if not last or last[-1] != line:
            last.append(line)
            env.stderr.write(line + "\n")
            env.stderr.flush()

    yield plain


def _config(env: Environment, **flags: Any) -> Config:
    return load(env.environ, flags)


def _duration(text: str, option: str) -> int:
    return parse_duration(text, option=option)


# -- commands ----------------------------------------------------------------------------


def register(app: typer.Typer, env: Environment) -> None:
    """Add request, status, revoke, approvals, approve and deny to `app`."""

    @app.command()
    def request(
        ttl: str = typer.Option("15m", "--ttl", help="Session length: 15m, 1h30m, 2h…"),
        role: str | None = typer.Option(None, "--role", help="Role to assume (JITKUBE_ROLE)."),
        cluster: str | None = typer.Option(None, "--cluster", help="Cluster (JITKUBE_CLUSTER)."),
        reason: str = typer.Option("", "--reason", help="Why (ticket, incident)."),
        agent: str | None = typer.Option(None, "--agent", help="Request for this AI agent."),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for reviewers."),
        timeout: str = typer.Option("10m", "--timeout", help="How long to wait for reviewers."),
        break_glass: bool = typer.Option(
            False, "--break-glass", help="Emergency access: active at once, flagged, notified."
        ),
        broker: str | None = typer.Option(None, "--broker", help="Broker URL."),
        ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM CA bundle."),
    ) -> int:
        """Request a time-boxed session for a role on a cluster (and cache it)."""
        from jitkube.client.sessions import RequestOptions, request_session

        config = _config(
            env, broker_url=broker, ca_bundle=ca_bundle, cluster=cluster, role=role, agent=agent
        )
        if not config.role:
            raise UsageError("which role? pass --role (or set JITKUBE_ROLE)")
        options = RequestOptions(
            role=config.role,
            cluster=config.cluster,
            ttl_seconds=_duration(ttl, "--ttl"),
            reason=reason,
            agent_name=agent,
            wait=wait,
            timeout_seconds=_duration(timeout, "--timeout"),
            break_glass=break_glass,
        )
        try:
            with _progress(env) as progress:
                outcome = request_session(config, env, options, progress)
        except KeyboardInterrupt:
            env.stderr.write(
                "jitkube: stopped waiting; the request stays pending (see `jitkube status`)\n"
            )
            return int(ExitCode.INTERRUPTED)
        return _render_request(env, outcome)

    @app.command()
    def status(
        broker: str | None = typer.Option(None, "--broker", help="Broker URL."),
        ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM CA bundle."),
    ) -> int:
        """Show your sessions (countdown of the granted time), pending requests and identity."""
        from jitkube.client.sessions import status as get_status

        now = time.time()
        report = get_status(_config(env, broker_url=broker, ca_bundle=ca_bundle), env, now)
        data = {
            "identity": report.identity.as_dict() if report.identity is not None else None,
            "identity_error": report.identity_error,
            "sessions": [
                {**s.public(now), "ttl_seconds": report.ttl.get(s.session_id)}
                for s in report.sessions
            ],
            "ended": [{**s.public(now), "ended": why} for s, why in report.ended],
            "notes": report.notes,
        }
        return _emit(env, "status", data, render_status(report, now))

    @app.command()
    def revoke(
        session_id: str | None = typer.Argument(None, metavar="[ID]", help="Session id."),
        cluster: str | None = typer.Option(None, "--cluster", help="Cluster of the session."),
        broker: str | None = typer.Option(None, "--broker", help="Broker URL."),
        ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM CA bundle."),
    ) -> int:
        """End a session now (the cached one by default) and remove it from the cache."""
        from jitkube.client.sessions import revoke as do_revoke

        config = _config(env, broker_url=broker, ca_bundle=ca_bundle, cluster=cluster)
        session = do_revoke(config, env, session_id, cluster)
        text = (
            f"Revoked {session.get('id')} ({session.get('role')}@{session.get('cluster')}); "
            "its cache entry is removed."
        )
        keys = ("id", "status", "role", "cluster", "ended_at", "ended_by")
        return _emit(env, "revoke", {k: session.get(k) for k in keys}, text)

    approvals = typer.Typer(
        name="approvals",
        help="Requests waiting for review (sessions and commands).",
        add_completion=False,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        invoke_without_command=True,
    )

    @approvals.callback(invoke_without_command=True)
    def approvals_list(
        ctx: typer.Context,
        broker: str | None = typer.Option(None, "--broker", help="Broker URL."),
        ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM CA bundle."),
    ) -> int:
        """List pending session and command requests you may review."""
        ctx.obj = {"broker": broker, "ca_bundle": ca_bundle}
        if ctx.invoked_subcommand is not None:
            return 0
        from jitkube.client.sessions import pending_approvals

        pending = pending_approvals(_config(env, broker_url=broker, ca_bundle=ca_bundle), env)
        now = time.time()
        data = {"sessions": pending.sessions, "commands": pending.commands}
        width = make_console(env).width
        code = _emit(
            env,
            "approvals",
            data,
            render_approvals(pending.sessions, pending.commands, now, width),
        )
        raise typer.Exit(code)

    @approvals.command("status")
    def approvals_status(
        ctx: typer.Context,
        request_id: str = typer.Argument(..., metavar="ID", help="cmd_… or ses_… id."),
        wait: str | None = typer.Option(
            None, "--wait", help="Wait up to this long while pending (e.g. 30s)."
        ),
    ) -> int:
        """Where one request stands (exit 0 approved, 66 pending, 67 denied/expired)."""
        from jitkube.client.sessions import get_request

        flags = ctx.obj or {}
        config = _config(env, broker_url=flags.get("broker"), ca_bundle=flags.get("ca_bundle"))
        seconds = _duration(wait, "--wait") if wait else 0
        kind, view = get_request(config, env, request_id, seconds)
        raise typer.Exit(_render_request_status(env, kind, view))

    app.add_typer(approvals, name="approvals")

    def _review(request_id: str, decision: str, comment: str, flags: dict[str, Any]) -> int:
        from jitkube.client.sessions import review

        config = _config(env, **flags)
        kind, before, after = review(config, env, request_id, decision, comment)
        data = {"kind": kind, "request": before, "result": after}
        return _emit(env, decision, data, render_review(kind, before, after))

    @app.command()
    def approve(
        request_id: str = typer.Argument(..., metavar="ID", help="ses_… or cmd_… id."),
        comment: str = typer.Option("", "--comment", help="Note for the requester."),
        broker: str | None = typer.Option(None, "--broker", help="Broker URL."),
        ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM CA bundle."),
    ) -> int:
        """Approve a session or command request (never your own)."""
        return _review(
            request_id, "approve", comment, {"broker_url": broker, "ca_bundle": ca_bundle}
        )

    @app.command()
    def deny(
        request_id: str = typer.Argument(..., metavar="ID", help="ses_… or cmd_… id."),
        comment: str = typer.Option(..., "--comment", help="Why (shown to the requester)."),
        broker: str | None = typer.Option(None, "--broker", help="Broker URL."),
        ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM CA bundle."),
    ) -> int:
        """Deny a session or command request, saying why."""
        if not comment.strip():
            raise UsageError("deny needs --comment: the requester should know why")
        return _review(request_id, "deny", comment, {"broker_url": broker, "ca_bundle": ca_bundle})


def _render_request(env: Environment, outcome: RequestOutcome) -> int:
    now = time.time()
    data = request_data(outcome, now)
    sid = outcome.session.get("id")
    if outcome.status == "active":
        return _emit(env, "request", data, render_session_panel(outcome.session, now))
    if outcome.status == "pending":
        why = "still waiting after --timeout" if outcome.timed_out else "waiting for reviewers"
        message = f"session request {sid} is pending ({why})"
        hint = "`jitkube status` picks it up once approved; reviewers run `jitkube approve ID`"
        return _emit(
            env,
            "request",
            data,
            str(sid),  # the id alone on stdout: ID=$(jitkube request --no-wait …)
            status="pending",
            code=int(ExitCode.APPROVAL_REQUIRED),
            errors=[{"code": "approval_pending", "message": message, "hint": hint}],
            stderr_line=f"jitkube: {message}\n  hint: {hint}",
        )
    if outcome.status == "denied":
        who = f" by {_clean(outcome.reviewer)}" if outcome.reviewer else ""
        comment = f": {_clean(outcome.comment, 500)}" if outcome.comment else ""
        message = f"session request {sid} was denied{who}{comment}"
    else:
        message = f"session request {sid} is {outcome.status}"
    return _emit(
        env,
        "request",
        data,
        None,
        status="refused",
        code=int(ExitCode.APPROVAL_REFUSED),
        errors=[{"code": "approval_refused", "message": message}],
        stderr_line=f"jitkube: {message}",
    )


def _render_request_status(env: Environment, kind: str, view: Mapping[str, Any]) -> int:
    state = str(view.get("status"))
    good = {"approved", "consumed", "active"}
    waiting = {"pending"}
    if state in good:
        status, code = "ok", int(ExitCode.OK)
    elif state in waiting:
        status, code = "pending", int(ExitCode.APPROVAL_REQUIRED)
    else:
        status, code = "refused", int(ExitCode.APPROVAL_REFUSED)
    done = {"approve": "approved", "deny": "denied"}
    reviewer_notes = [
        f"{done.get(str(v.get('decision')), _clean(v.get('decision')))} by "
        f"{_clean(v.get('reviewer'))}"
        + (f": {_clean(v.get('comment'), 300)}" if v.get("comment") else "")
        for v in view.get("approvals") or ()
        if isinstance(v, Mapping)
    ]
    text = f"{kind} request {view.get('id')}: {state}"
    if kind == "command":
        text += f"\n  {command_text(view)}"
    if reviewer_notes:
        text += " (" + "; ".join(reviewer_notes) + ")"
    return _emit(
        env,
        "approvals status",
        {"kind": kind, "request": dict(view)},
        text,
        status=status,
        code=code,
    )
