"""Sessions: request, approve, activate (STS AssumeRole), mint EKS tokens, revoke.

A session belongs to one identity, one role and one cluster. Its owner gets a session
token once, at creation: random, stored only as a sha256, valid only for this session and
only while it is active. With it the client fetches EKS tokens (minted here from the STS
credentials that never leave the broker), files command approvals and ships audit events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jitkube.broker.auth import Identity
from jitkube.broker.clusters import ClusterDirectory
from jitkube.broker.config import MIN_SESSION_TTL, BrokerConfig, RoleSettings
from jitkube.broker.errors import BrokerError
from jitkube.broker.metrics import BrokerMetrics
from jitkube.broker.notify import Notifier
from jitkube.broker.store import DuplicateVote, Row, Store
from jitkube.broker.sts import (
    AssumeRoleRequest,
    AwsCredentials,
    CredentialIssuer,
    CredentialVault,
    StsError,
    role_session_name,
    session_tag,
    source_identity,
)
from jitkube.eks_token import EksTokenError, mint_eks_token

log = logging.getLogger("jitkube.broker")

Clock = Callable[[], float]
# jks.<session id>.<secret>: names its session; the prefix alone proves nothing.
TOKEN_PREFIX = "jks."  # noqa: S105
LIVE = ("pending", "active")
# Re-assume the role when the STS credentials would end within this margin of a token.
_CREDENTIAL_MARGIN = 300.0
# One hour: a broker running on role credentials (EKS Pod Identity, IRSA, an instance
# role) is chaining roles, and AWS caps chained sessions at one hour. Longer jitkube
# sessions are renewed (see _credentials_for: a fresh AssumeRole before these expire).
_STS_MAX_DURATION = 3600


@dataclass(frozen=True)
class SessionRequest:
    role: str
    cluster: str
    ttl_seconds: int
    reason: str = ""
    agent: bool = False
    agent_name: str = ""
    break_glass: bool = False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


class SessionService:
    """The session life cycle; one instance per app, stateless apart from the store."""

    def __init__(
        self,
        config: BrokerConfig,
        store: Store,
        clock: Clock,
        issuer: CredentialIssuer,
        vault: CredentialVault,
        notifier: Notifier,
        metrics: BrokerMetrics,
        policy_snapshot: Callable[[], Mapping[str, Any]],
        clusters: ClusterDirectory,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.issuer = issuer
        self.vault = vault
        self.notifier = notifier
        self.metrics = metrics
        self.policy_snapshot = policy_snapshot
        self.clusters = clusters

    # -- request ----------------------------------------------------------------------

    def create(self, identity: Identity, request: SessionRequest) -> tuple[Row, str]:
        """Grant or queue a session; returns the row and the (only) copy of its token."""
        role = self._role(request.role)
        rule = role.approval
        if not identity.in_any(role.requestable_by):
            raise BrokerError("not_requestable", f"your groups may not request role {role.name}")
        if request.cluster not in role.clusters:
            raise BrokerError(
                "validation",
                f"role {role.name} is not available on cluster {request.cluster!r}",
                extra={"field": "cluster"},
            )
        agent = request.agent or identity.is_agent
        if agent and not rule.agent_allowed:
            raise BrokerError("agent_not_allowed", f"agents may not request role {role.name}")
        if not MIN_SESSION_TTL <= request.ttl_seconds <= role.max_ttl_seconds:
            raise BrokerError(
                "validation",
                f"ttl must be between {MIN_SESSION_TTL}s and {role.max_ttl_seconds}s "
                f"for role {role.name}",
                extra={"field": "ttl"},
            )
        reason = request.reason.strip()
        if (rule.reason_required or request.break_glass) and not reason:
            raise BrokerError("validation", "a reason is required", extra={"field": "reason"})
        if request.break_glass:
            allowed = rule.break_glass and (
                not rule.break_glass_groups or identity.in_any(rule.break_glass_groups)
            )
            if not allowed:
                raise BrokerError("forbidden", f"break-glass is not allowed for role {role.name}")
        auto = (
            request.break_glass
            or rule.min_approvals == 0
            or identity.in_any(rule.auto_approve_groups)
        )
        now = self.clock()
        session_id = "ses_" + secrets.token_hex(10)
        token = f"{TOKEN_PREFIX}{session_id}.{secrets.token_urlsafe(32)}"
        row: dict[str, Any] = {
            "id": session_id,
            "owner_sub": identity.sub,
            "owner_email": identity.email,
            "owner_groups": sorted(identity.groups),
            "agent": agent,
            "agent_name": request.agent_name[:128],
            "role": role.name,
            "cluster": request.cluster,
            "reason": reason[:1024],
            "ttl_seconds": request.ttl_seconds,
            "status": "pending",
            "break_glass": request.break_glass,
            "min_approvals": 0 if auto else rule.min_approvals,
            "created_at": now,
            "request_expires_at": now + rule.request_expiry_seconds,
            "token_hash": hash_token(token),
            "role_session_name": role_session_name(session_id),
        }
        if auto:
            # Assume first: a session that is reported active always has credentials.
            credentials = self._assume(row, role, now + request.ttl_seconds)
            row.update(
                status="active",
                activated_at=now,
                expires_at=now + request.ttl_seconds,
                credentials=self.vault.seal(credentials),
                credentials_expire_at=credentials.expiration,
                assumed_role_arn=credentials.assumed_role_arn,
            )
        outcome = "break_glass" if request.break_glass else row["status"]
        event = {
            "break_glass": "session.break_glass",
            "active": "session.activated",
            "pending": "session.requested",
        }[outcome]
        outbox = self.notifier.outbox(event, self._event_payload(row))
        self.store.create_session(row, notifications=outbox)
        self.metrics.sessions.labels(outcome).inc()
        self.notifier.stored(outbox)
        return row, token

    # -- read -------------------------------------------------------------------------

    def get(self, session_id: str) -> Row:
        """The session, with lazy expiry applied; not_found when it does not exist."""
        row = self.store.get_session(session_id)
        if row is None:
            raise BrokerError("not_found", "no such session")
        return self._expire_if_due(row)

    def _expire_if_due(self, row: Row) -> Row:
        now = self.clock()
        due = (row["status"] == "active" and row["expires_at"] <= now) or (
            row["status"] == "pending" and row["request_expires_at"] <= now
        )
        if due:
            self.store.transition_session(
                row["id"],
                [row["status"]],
                {"status": "expired", "ended_at": now, "credentials": None},
            )
            fresh = self.store.get_session(row["id"])
            assert fresh is not None
            return fresh
        return row

    def can_view(self, identity: Identity, row: Row) -> bool:
        if identity.sub == row["owner_sub"] or identity.in_any(self.config.admin_groups):
            return True
        role = self.config.roles.get(row["role"])
        return role is not None and identity.in_any(role.approval.approver_groups)

    def view(
        self, row: Row, *, with_policy: bool = False, votes: Sequence[Row] | None = None
    ) -> dict[str, Any]:
        """The public JSON form of a session: never credentials, never the token hash.

        `approver_groups` and `approvals_required` say who can decide a pending request
        and how many approvals it needs (the CLI shows them while it waits). `votes` spares
        the query when the caller knows them (a session created a moment ago has none).
        """
        role = self.config.roles.get(row["role"])
        if votes is None:
            votes = self.store.session_votes(row["id"])
        out: dict[str, Any] = {
            "id": row["id"],
            "status": row["status"],
            "role": row["role"],
            "cluster": row["cluster"],
            "owner": {"sub": row["owner_sub"], "email": row["owner_email"]},
            "agent": bool(row["agent"]),
            "agent_name": row["agent_name"],
            "reason": row["reason"],
            "ttl": row["ttl_seconds"],
            "break_glass": bool(row["break_glass"]),
            "created_at": iso(row["created_at"]),
            "request_expires_at": iso(row["request_expires_at"]),
            "activated_at": iso(row.get("activated_at")),
            "expires_at": iso(row.get("expires_at")),
            "ended_at": iso(row.get("ended_at")),
            "ended_by": row.get("ended_by"),
            "approvals_required": row["min_approvals"],
            "approver_groups": list(role.approval.approver_groups) if role else [],
            "approvals": [
                {
                    "reviewer": v["reviewer_email"] or v["reviewer_sub"],
                    "decision": v["decision"],
                    "comment": v["comment"],
                    "at": iso(v["created_at"]),
                }
                for v in votes
            ],
        }
        # Without the cluster's address (EKS unreachable), the view is still useful; the
        # eks-token answer carries the address too, or says why it cannot.
        access = self.clusters.access_or_none(row["cluster"])
        if access is not None:
            out["cluster_endpoint"] = access.endpoint
            out["cluster_certificate_authority"] = access.certificate_authority
        if role is not None:
            out["delivery"] = role.delivery
        if with_policy:
            out["policy"] = dict(self.policy_snapshot())
        return out

    def list(
        self,
        identity: Identity,
        *,
        scope: str,
        statuses: tuple[str, ...],
        before: tuple[float, str] | None,
        limit: int,
    ) -> list[Row]:
        self.store.expire_sessions(self.clock())
        if scope == "mine":
            return self.store.list_sessions(
                owner_sub=identity.sub, statuses=statuses, before=before, limit=limit
            )
        if scope == "reviewable":
            roles = [
                r.name
                for r in self.config.roles.values()
                if identity.in_any(r.approval.approver_groups)
            ]
            rows = self.store.list_sessions(
                statuses=statuses or ("pending",), roles=roles, before=before, limit=limit
            )
            return [r for r in rows if r["owner_sub"] != identity.sub]
        if not identity.in_any(self.config.admin_groups):
            raise BrokerError("forbidden", "scope=all needs an admin group")
        return self.store.list_sessions(statuses=statuses, before=before, limit=limit)

    # -- session token ------------------------------------------------------------------

    def authenticate_token(self, token: str, *, need_active: bool = True) -> Row:
        """The session this token belongs to; unauthorized unless it matches exactly."""
        _, _, rest = token.partition(TOKEN_PREFIX)
        session_id = rest.split(".", 1)[0] if token.startswith(TOKEN_PREFIX) else ""
        row = self.store.get_session(session_id) if session_id else None
        # Compare even when the row is missing: no timing signal about which ids exist.
        expected = row["token_hash"] if row else "0" * 64
        if not hmac.compare_digest(expected, hash_token(token)) or row is None:
            raise BrokerError("unauthorized", "invalid session token")
        row = self._expire_if_due(row)
        if need_active and row["status"] != "active":
            raise BrokerError(
                "session_not_active",
                f"session is {row['status']}",
                extra={"session_status": row["status"]},
            )
        return row

    # -- review -----------------------------------------------------------------------

    def review(self, session_id: str, reviewer: Identity, decision: str, comment: str) -> Row:
        row = self.get(session_id)
        role = self._role(row["role"])
        if reviewer.sub == row["owner_sub"]:
            raise BrokerError("self_approval", "you cannot review your own request")
        if not reviewer.in_any(role.approval.approver_groups):
            raise BrokerError("not_a_reviewer", f"you may not review requests for role {role.name}")
        if row["status"] != "pending":
            raise BrokerError("already_decided", f"session is {row['status']}")
        now = self.clock()
        payload = {**self._event_payload(row), "reviewer": reviewer.display}
        # An approval is announced with the vote that makes it; a denial with the change
        # of status (in the same transaction each: a crash cannot lose the message).
        approved = self.notifier.outbox("session.approved", payload) if decision != "deny" else []
        try:
            votes = self.store.add_session_vote(
                session_id,
                reviewer.sub,
                reviewer.email,
                decision,
                comment[:1024],
                now,
                notifications=approved,
            )
        except DuplicateVote as exc:
            raise BrokerError("already_decided", str(exc)) from None
        self.notifier.stored(approved)
        if decision == "deny":
            denied = self.notifier.outbox("session.denied", payload)
            if self.store.transition_session(
                session_id,
                ["pending"],
                {"status": "denied", "ended_at": now, "ended_by": reviewer.sub},
                notifications=denied,
            ):
                self.metrics.sessions.labels("denied").inc()
                self.notifier.stored(denied)
            return self.get(session_id)
        approvals = sum(1 for v in votes if v["decision"] == "approve")
        if approvals >= row["min_approvals"]:
            self._activate(row, role)
        return self.get(session_id)

    def _activate(self, row: Row, role: RoleSettings) -> None:
        now = self.clock()
        expires_at = now + row["ttl_seconds"]
        outbox = self.notifier.outbox("session.activated", self._event_payload(row))
        if not self.store.transition_session(
            row["id"],
            ["pending"],
            {"status": "active", "activated_at": now, "expires_at": expires_at},
            notifications=outbox,
        ):
            return  # another reviewer's vote activated it
        self.metrics.sessions.labels("active").inc()
        self.notifier.stored(outbox)
        try:
            self._store_credentials(row, role, expires_at)
        except BrokerError:
            # Credentials are fetched again on the first EKS-token call.
            log.warning("AssumeRole failed at activation of %s; will retry", row["id"])

    # -- credentials and tokens ---------------------------------------------------------

    def _assume(
        self, row: Mapping[str, Any], role: RoleSettings, session_end: float
    ) -> AwsCredentials:
        duration = int(min(_STS_MAX_DURATION, max(MIN_SESSION_TTL, session_end - self.clock())))
        tags = {
            "jitkube:session": row["id"],
            "jitkube:requester": session_tag(row["owner_email"] or row["owner_sub"]),
            "jitkube:agent": "true" if row["agent"] else "false",
            "jitkube:cluster": session_tag(row["cluster"]),
            **{k: session_tag(v) for k, v in role.session_tags.items()},
        }
        if row["reason"]:
            tags["jitkube:reason"] = session_tag(row["reason"])
        request = AssumeRoleRequest(
            role_arn=role.role_arn,
            role_session_name=row["role_session_name"],
            source_identity=source_identity(row["owner_email"] or row["owner_sub"]),
            tags=tags,
            duration_seconds=duration,
        )
        try:
            credentials = self.issuer.assume_role(request)
        except StsError as exc:
            self.metrics.assume_role.labels("error").inc()
            raise BrokerError("sts_unavailable", str(exc)) from None
        self.metrics.assume_role.labels("ok").inc()
        return credentials

    def _store_credentials(
        self, row: Row, role: RoleSettings, session_end: float
    ) -> AwsCredentials:
        credentials = self._assume(row, role, session_end)
        self.store.set_session_credentials(
            row["id"],
            self.vault.seal(credentials),
            credentials.expiration,
            credentials.assumed_role_arn,
        )
        return credentials

    def _credentials(self, row: Row) -> AwsCredentials:
        role = self._role(row["role"])
        now = self.clock()
        credentials = self.vault.open(row["credentials"]) if row.get("credentials") else None
        session_end = float(row["expires_at"])
        if credentials is None or (
            credentials.expiration - now < _CREDENTIAL_MARGIN
            and credentials.expiration < session_end
        ):
            credentials = self._store_credentials(row, role, session_end)
        return credentials

    def eks_token(self, row: Row) -> dict[str, Any]:
        """A fresh EKS token for an active session, never valid beyond the session's end."""
        cluster = self.config.clusters.get(row["cluster"])
        if cluster is None:
            raise BrokerError("conflict", f"cluster {row['cluster']!r} is no longer configured")
        access = self.clusters.access(cluster.name)  # before STS: fail without side effects
        credentials = self._credentials(row)
        now = self.clock()
        not_after = min(float(row["expires_at"]), credentials.expiration)
        try:
            token = mint_eks_token(
                credentials.access_key_id,
                credentials.secret_access_key,
                credentials.session_token,
                cluster.eks_cluster_name,
                cluster.region,
                now=dt.datetime.fromtimestamp(now, dt.UTC),
                not_after=dt.datetime.fromtimestamp(not_after, dt.UTC),
            )
        except EksTokenError as exc:
            raise BrokerError("internal", f"cannot mint an EKS token: {exc}") from None
        self.metrics.eks_tokens.inc()
        return {
            "token": token.token,
            "expires_at": iso(token.expires_at.timestamp()),
            "session_expires_at": iso(row["expires_at"]),
            "cluster": cluster.name,
            "cluster_endpoint": access.endpoint,
            "cluster_certificate_authority": access.certificate_authority,
        }

    def deliver_credentials(self, row: Row) -> dict[str, Any]:
        """The STS credentials themselves, only for roles configured `delivery: credentials`."""
        role = self._role(row["role"])
        if role.delivery != "credentials":
            raise BrokerError(
                "credentials_not_delivered",
                f"role {role.name} keeps its AWS credentials on the broker; use eks-token",
            )
        credentials = self._credentials(row)
        return {
            "access_key_id": credentials.access_key_id,
            "secret_access_key": credentials.secret_access_key,
            "session_token": credentials.session_token,
            "expiration": iso(credentials.expiration),
            "session_expires_at": iso(row["expires_at"]),
        }

    # -- revoke -------------------------------------------------------------------------

    def revoke(self, row: Row, by: str) -> Row:
        now = self.clock()
        outbox = self.notifier.outbox("session.revoked", {**self._event_payload(row), "by": by})
        changed = self.store.transition_session(
            row["id"],
            list(LIVE),
            {"status": "revoked", "ended_at": now, "ended_by": by, "credentials": None},
            notifications=outbox,
        )
        if changed:
            self.metrics.sessions.labels("revoked").inc()
            self.notifier.stored(outbox)
        return self.get(row["id"])

    # -- helpers ------------------------------------------------------------------------

    def _role(self, name: str) -> RoleSettings:
        role = self.config.roles.get(name)
        if role is None:
            raise BrokerError("validation", f"unknown role {name!r}", extra={"field": "role"})
        return role

    @staticmethod
    def _event_payload(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "requester": row["owner_email"] or row["owner_sub"],
            "role": row["role"],
            "cluster": row["cluster"],
            "ttl": row["ttl_seconds"],
            "reason": row["reason"],
            "agent": bool(row["agent"]),
            "break_glass": bool(row["break_glass"]),
        }
