"""Session operations of the CLI: request, wait, status, revoke, review.

Each function takes the merged `Config` and the `Environment`, talks to the broker
through `BrokerClient`, keeps the session cache (`jitkube.session_cache`) in step, and
returns plain data for jitkube.cli.sessions to render. Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jitkube import session_cache
from jitkube.client.broker import BrokerClient, Created
from jitkube.client.durations import format_duration
from jitkube.config import Config
from jitkube.environment import Environment
from jitkube.errors import (
    ApprovalRefusedError,
    JitkubeError,
    LoginRequiredError,
    SessionRequiredError,
    UsageError,
)
from jitkube.session_cache import CachedSession

MIN_TTL = 15 * 60  # the broker's floor (STS refuses DurationSeconds < 900)
LONG_POLL = 25  # seconds per `?wait=`; the broker caps it (30 by default)
ENDED = ("denied", "expired", "revoked")


# -- plumbing -----------------------------------------------------------------------------


def broker_address(config: Config, env: Environment) -> str:
    from jitkube.identity import broker_url

    return broker_url(config, env)


def oidc_client(config: Config, env: Environment) -> BrokerClient:
    """A client for the configured broker, authenticated as the current identity."""
    from jitkube.identity import access_token

    url = broker_address(config, env)
    return BrokerClient(url, access_token(config, env), config.ca_bundle)


def session_client(cached: CachedSession) -> BrokerClient:
    """A client authenticated with one cached session's token."""
    return BrokerClient(
        cached.broker_url, cached.session_token, cached.ca_bundle, session_auth=True
    )


def epoch(value: Any) -> float | None:
    """An ISO time from the broker as epoch seconds (None when absent or malformed)."""
    try:
        return session_cache._epoch(value)
    except ValueError:
        return None


# -- request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestOptions:
    role: str
    cluster: str | None
    ttl_seconds: int
    reason: str = ""
    agent_name: str | None = None
    wait: bool = True
    timeout_seconds: int = 600
    break_glass: bool = False


@dataclass
class RequestOutcome:
    """Where a request ended: active (cached), pending (cached), or denied/expired."""

    status: str
    session: dict[str, Any]
    cached: CachedSession | None = None
    comment: str = ""
    reviewer: str = ""
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)


def check_request(options: RequestOptions, client_config: Mapping[str, Any]) -> tuple[str, str]:
    """(role, cluster) after checking the request against the broker's published limits."""
    roles = {r.get("name"): r for r in client_config.get("roles") or () if isinstance(r, Mapping)}
    role = roles.get(options.role)
    if roles and role is None:
        raise UsageError(
            f"the broker has no role {options.role!r}",
            hint="roles: " + ", ".join(sorted(str(n) for n in roles)),
        )
    clusters = [str(c) for c in (role or {}).get("clusters") or ()]
    cluster = options.cluster
    if cluster is None:
        if len(clusters) != 1:
            raise UsageError(
                f"say which cluster for role {options.role} (--cluster)",
                hint=("clusters: " + ", ".join(clusters)) if clusters else None,
            )
        cluster = clusters[0]
    elif clusters and cluster not in clusters:
        raise UsageError(
            f"role {options.role} is not available on cluster {cluster!r}",
            hint="clusters: " + ", ".join(clusters),
        )
    max_ttl = (role or {}).get("max_ttl")
    if options.ttl_seconds < MIN_TTL:
        raise UsageError(
            f"--ttl {format_duration(options.ttl_seconds)} is too short; the minimum is 15m"
        )
    if isinstance(max_ttl, int) and options.ttl_seconds > max_ttl:
        raise UsageError(
            f"--ttl {format_duration(options.ttl_seconds)} is longer than role "
            f"{options.role} allows ({format_duration(max_ttl)})"
        )
    needs_reason = bool((role or {}).get("reason_required")) or options.break_glass
    if needs_reason and not options.reason.strip():
        raise UsageError(f"role {options.role} needs a reason (--reason)")
    return options.role, cluster


def _to_cache(
    session: Mapping[str, Any],
    token: str,
    broker_url: str,
    config: Config,
    agent_name: str,
    groups: Sequence[str] = (),
) -> CachedSession:
    pending = session.get("status") != "active"
    ends = session.get("request_expires_at") if pending else session.get("expires_at")
    return CachedSession(
        session_id=str(session["id"]),
        broker_url=broker_url,
        cluster=str(session.get("cluster", "")),
        role=str(session.get("role", "")),
        status="pending" if pending else "active",
        session_token=token,
        expires_at=epoch(ends) or time.time(),
        cluster_endpoint=str(session.get("cluster_endpoint") or ""),
        cluster_ca=str(session.get("cluster_certificate_authority") or ""),
        policy=session.get("policy") if isinstance(session.get("policy"), dict) else None,
        ca_bundle=config.ca_bundle,
        owner=str((session.get("owner") or {}).get("email") or ""),
        owner_sub=str((session.get("owner") or {}).get("sub") or ""),
        owner_groups=tuple(str(g) for g in groups),
        agent_name=agent_name,
        agent=session.get("agent") is True,
        reason=str(session.get("reason") or ""),
        delivery=str(session.get("delivery") or "token"),
    )


def activate(env: Environment, cached: CachedSession, session: Mapping[str, Any]) -> CachedSession:
    """Cache an active session with its first EKS token (and the policy it came with)."""
    import dataclasses

    updated = dataclasses.replace(
        cached,
        status="active",
        expires_at=epoch(session.get("expires_at")) or cached.expires_at,
        policy=session.get("policy") if isinstance(session.get("policy"), dict) else cached.policy,
    )
    with session_client(updated) as client:
        answer = client.eks_token(updated.session_id)
    return session_cache.save(env.environ, session_cache.apply_eks_answer(updated, answer))


def denial(session: Mapping[str, Any]) -> tuple[str, str]:
    """(reviewer, comment) of the vote that denied `session`, if any."""
    for vote in session.get("approvals") or ():
        if isinstance(vote, Mapping) and vote.get("decision") == "deny":
            return str(vote.get("reviewer") or ""), str(vote.get("comment") or "")
    return "", ""


Progress = Callable[[Mapping[str, Any]], None]


def wait_for_decision(
    cached: CachedSession,
    session: dict[str, Any],
    timeout_seconds: int,
    progress: Progress,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, Any], bool]:
    """Long-poll the session until it is decided or `timeout_seconds` pass.

    Returns (last session view, timed_out). Uses the session token, so a wait longer
    than the access token's life needs no refresh.
    """
    deadline = clock() + timeout_seconds
    with session_client(cached) as client:
        while session.get("status") == "pending":
            left = int(deadline - clock())
            if left <= 0:
                return session, True
            session = client.get_session(cached.session_id, wait=min(LONG_POLL, left))
            progress(session)
    return session, False


def request_session(
    config: Config, env: Environment, options: RequestOptions, progress: Progress
) -> RequestOutcome:
    """`jitkube request`: ask, cache at once (the token is returned only once), maybe wait."""
    from jitkube.identity import current_credential

    url = broker_address(config, env)
    credential = current_credential(config, env)
    agent_name = options.agent_name or config.agent or ""
    with BrokerClient(url, credential.token, config.ca_bundle) as client:
        role, cluster = check_request(options, client.client_config())
        created: Created = client.create_session(
            role=role,
            cluster=cluster,
            ttl_seconds=options.ttl_seconds,
            reason=options.reason,
            agent=bool(agent_name) or credential.identity.is_agent,
            agent_name=agent_name,
            break_glass=options.break_glass,
        )
    session = created.session
    cached = session_cache.save(
        env.environ,
        _to_cache(
            session,
            created.session_token,
            url,
            config,
            agent_name,
            credential.identity.groups,
        ),
    )
    timed_out = False
    if session.get("status") == "pending" and options.wait:
        progress(session)
        session, timed_out = wait_for_decision(cached, session, options.timeout_seconds, progress)
    return _settle(env, cached, session, timed_out)


def _settle(
    env: Environment, cached: CachedSession, session: dict[str, Any], timed_out: bool = False
) -> RequestOutcome:
    status = str(session.get("status"))
    if status == "active":
        return RequestOutcome("active", session, activate(env, cached, session))
    if status == "pending":
        return RequestOutcome("pending", session, cached, timed_out=timed_out)
    session_cache.remove(env.environ, cached.session_id)
    reviewer, comment = denial(session)
    return RequestOutcome(status, session, None, comment=comment, reviewer=reviewer)


# -- status -------------------------------------------------------------------------------


@dataclass
class StatusReport:
    identity: Any  # jitkube.identity.claims.Identity | None
    identity_error: str | None
    sessions: list[CachedSession]  # active and pending, after refreshing pending ones
    ended: list[tuple[CachedSession, str]]  # (entry, why) removed during this call
    notes: list[str] = field(default_factory=list)
    ttl: dict[str, int] = field(default_factory=dict)  # session id -> granted TTL (seconds)


def status(config: Config, env: Environment, now: float | None = None) -> StatusReport:
    """Cached sessions (pending ones asked about), what ended, and who jitkube acts as."""
    from jitkube.identity import current_identity

    moment = time.time() if now is None else now
    identity, identity_error = None, None
    try:
        identity = current_identity(config, env)
    except (LoginRequiredError, JitkubeError) as exc:
        identity_error = exc.message
    ended = [(s, "expired") for s in session_cache.prune(env.environ, moment)]
    live: list[CachedSession] = []
    notes: list[str] = []
    ttl: dict[str, int] = {}
    for cached in session_cache.list_sessions(env.environ):
        if cached.status != "pending":
            live.append(cached)
            try:  # the granted TTL, for the countdown bar; the broker may be away
                with session_client(cached) as client:
                    granted = client.get_session(cached.session_id).get("ttl")
                if isinstance(granted, int) and granted > 0:
                    ttl[cached.session_id] = granted
            except JitkubeError:
                pass
            continue
        try:
            with session_client(cached) as client:
                session = client.get_session(cached.session_id)
            outcome = _settle(env, cached, session)
        except SessionRequiredError:
            session_cache.remove(env.environ, cached.session_id)
            ended.append((cached, "refused by the broker"))
            continue
        except JitkubeError as exc:
            notes.append(f"{cached.session_id}: {exc.message}")
            live.append(cached)
            continue
        if outcome.cached is not None:
            live.append(outcome.cached)
        else:
            why = outcome.status
            if outcome.comment:
                why += f": {outcome.comment}"
            ended.append((cached, why))
    return StatusReport(identity, identity_error, live, ended, notes, ttl)


# -- revoke -------------------------------------------------------------------------------


def pick_cached(
    env: Environment, session_id: str | None, cluster: str | None, role: str | None
) -> CachedSession | None:
    """The cache entry `revoke` means: by id, else the one matching cluster/role."""
    if session_id:
        return next(
            (s for s in session_cache.list_sessions(env.environ) if s.session_id == session_id),
            None,
        )
    return session_cache.load(env.environ, cluster, role)


def revoke(
    config: Config, env: Environment, session_id: str | None, cluster: str | None = None
) -> dict[str, Any]:
    """`jitkube revoke [ID]`: end the session at the broker and drop it from the cache.

    With the cached session token when there is one (works without a login), else with
    the caller's identity (owner or admin).
    """
    cached = pick_cached(env, session_id, cluster or config.cluster, config.role)
    if cached is None and not session_id:
        raise SessionRequiredError(
            "no cached jitkube session to revoke", hint="pass the session id: jitkube revoke ID"
        )
    target = cached.session_id if cached is not None else str(session_id)
    try:
        if cached is not None:
            with session_client(cached) as client:
                result = client.revoke_session(target)
        else:
            with oidc_client(config, env) as client:
                result = client.revoke_session(target)
    finally:
        # Even when the broker refuses (already ended), the local copy is worthless now.
        session_cache.remove(env.environ, target)
    return result


def end_all_sessions(config: Config, env: Environment) -> tuple[list[str], list[str]]:
    """For `jitkube logout --revoke`: (revoked ids, problems); the caller clears the cache."""
    revoked: list[str] = []
    problems: list[str] = []
    for cached in session_cache.list_sessions(env.environ):
        try:
            with session_client(cached) as client:
                client.revoke_session(cached.session_id)
            revoked.append(cached.session_id)
        except JitkubeError as exc:
            problems.append(f"{cached.session_id}: {exc.message}")
    try:
        with oidc_client(config, env) as client:
            for session in client.list_sessions(scope="mine", statuses=("active", "pending")):
                sid = str(session.get("id"))
                if sid in revoked:
                    continue
                try:
                    client.revoke_session(sid)
                    revoked.append(sid)
                except JitkubeError as exc:
                    problems.append(f"{sid}: {exc.message}")
    except JitkubeError as exc:
        problems.append(f"listing your sessions: {exc.message}")
    return revoked, problems


# -- approvals ----------------------------------------------------------------------------


@dataclass
class PendingApprovals:
    sessions: list[dict[str, Any]]
    commands: list[dict[str, Any]]


def pending_approvals(config: Config, env: Environment) -> PendingApprovals:
    """Session and command requests the caller may review (or asked for)."""
    with oidc_client(config, env) as client:
        sessions = client.list_sessions(scope="reviewable", statuses=("pending",))
        commands = client.list_commands(("pending",))
    return PendingApprovals(sessions, commands)


def kind_of(request_id: str) -> str:
    """ "session" or "command", from the id's prefix (ses_… / cmd_…)."""
    if request_id.startswith("ses_"):
        return "session"
    if request_id.startswith("cmd_"):
        return "command"
    raise UsageError(f"{request_id!r} is not a request id", hint="ids look like ses_… or cmd_…")


def _cached_clients(env: Environment) -> list[CachedSession]:
    return [s for s in session_cache.list_sessions(env.environ) if not s.expired()]


def get_request(
    config: Config, env: Environment, request_id: str, wait: int = 0
) -> tuple[str, dict[str, Any]]:
    """(kind, view) of a session or command request; waits up to `wait` s while pending.

    Uses the caller's identity; without a login (an agent holding only a session), tries
    the cached session tokens, which may see the commands filed with them.
    """
    kind = kind_of(request_id)
    try:
        client = oidc_client(config, env)
    except LoginRequiredError:
        for cached in _cached_clients(env):
            with session_client(cached) as client:
                try:
                    return kind, _get(client, kind, request_id, wait)
                except JitkubeError:
                    continue
        raise
    with client:
        return kind, _get(client, kind, request_id, wait)


def _get(client: BrokerClient, kind: str, request_id: str, wait: int) -> dict[str, Any]:
    if kind == "session":
        return client.get_session(request_id, wait=wait)
    return client.get_command(request_id, wait=wait)


def _still_open(kind: str, request_id: str, view: Mapping[str, Any]) -> None:
    """A reviewer learns why there is nothing to decide before voting (the broker would
    answer "already decided" to the vote itself)."""
    status = str(view.get("status", ""))
    if status == "pending":
        return
    if status == "expired":
        again = (
            "the requester runs the command again for a new approval"
            if kind == "command"
            else "the requester runs `jitkube request` again"
        )
        raise ApprovalRefusedError(
            f"{kind} request {request_id} expired before anyone decided", hint=again
        )
    raise UsageError(f"{kind} request {request_id} is already {status}: nothing to decide")


def review(
    config: Config, env: Environment, request_id: str, decision: str, comment: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Approve or deny; returns (kind, what was reviewed, the request after the vote)."""
    kind = kind_of(request_id)
    with oidc_client(config, env) as client:
        before = _get(client, kind, request_id, 0)
        _still_open(kind, request_id, before)
        if kind == "session":
            after = client.review_session(request_id, decision, comment)
        else:
            after = client.review_command(request_id, decision, comment)
    return kind, before, after
