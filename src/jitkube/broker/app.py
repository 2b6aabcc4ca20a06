"""The broker's HTTP API: `create_app(settings, store, clock)` builds one FastAPI app.

No module-level state: everything an app needs (validator, STS issuer, vault, notifier,
metrics, rate limiter) is built here or injected, so tests run many apps side by side.
Errors are RFC 9457 problem documents with a stable `code` (see errors.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from jitkube import __version__
from jitkube.broker.approvals import CommandApprovalService, CommandRequest, load_broker_policy
from jitkube.broker.audit import AuditService
from jitkube.broker.auth import AuthError, Identity, JwksCache, TokenValidator, https_fetcher
from jitkube.broker.clusters import Boto3ClusterDescriber, ClusterDescriber, ClusterDirectory
from jitkube.broker.config import BrokerConfig, parse_duration
from jitkube.broker.errors import BrokerError
from jitkube.broker.http import (
    BodyLimit,
    RateLimiter,
    RequestMetrics,
    decode_cursor,
    decode_time_cursor,
    encode_cursor,
    problem_response,
    time_cursor,
)
from jitkube.broker.logs import RequestLog, note_caller
from jitkube.broker.metrics import BrokerMetrics
from jitkube.broker.notify import Notifier, NullNotifier, WebhookNotifier
from jitkube.broker.schemas import (
    AuditBatch,
    CommandConsume,
    CommandCreate,
    Review,
    SessionCreate,
)
from jitkube.broker.sessions import TOKEN_PREFIX, SessionRequest, SessionService
from jitkube.broker.store import Row, Store
from jitkube.broker.sts import Boto3CredentialIssuer, CredentialIssuer, CredentialVault
from jitkube.policy import Policy

log = logging.getLogger("jitkube.broker")

Clock = Callable[[], float]
_POLL_INTERVAL = 0.2

# Stateless: only describes the security scheme in /openapi.json and reads the header.
_BEARER = HTTPBearer(auto_error=False, description="OIDC access token, or a session token")
Token = Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]


@dataclass(frozen=True)
class Principal:
    """Who calls: an OIDC identity, or the holder of one session's token."""

    identity: Identity | None = None
    session: Row | None = None

    @property
    def sub(self) -> str:
        if self.identity is not None:
            return self.identity.sub
        assert self.session is not None
        return str(self.session["owner_sub"])

    @property
    def key(self) -> str:
        return f"sub:{self.identity.sub}" if self.identity else f"ses:{self.session_id}"

    @property
    def session_id(self) -> str | None:
        return str(self.session["id"]) if self.session is not None else None


# -- the app --------------------------------------------------------------------------


def create_app(
    settings: BrokerConfig,
    store: Store,
    clock: Clock = time.time,
    *,
    validator: TokenValidator | None = None,
    issuer: CredentialIssuer | None = None,
    vault: CredentialVault | None = None,
    notifier: Notifier | None = None,
    policy: Policy | None = None,
    cluster_describer: ClusterDescriber | None = None,
    metrics: BrokerMetrics | None = None,
) -> FastAPI:
    """Build the broker app. Anything not injected is built from `settings`."""
    if metrics is None:
        metrics = BrokerMetrics()
    if validator is None:
        jwks = JwksCache(settings.oidc, https_fetcher(settings.oidc.ca_bundle))
        validator = TokenValidator(settings.oidc, jwks, clock)
    if issuer is None:
        issuer = Boto3CredentialIssuer(settings.aws.region, settings.aws.sts_endpoint_url)
    if vault is None:
        vault = CredentialVault.from_settings(settings.storage)
    if notifier is None:
        notifier = (
            WebhookNotifier(
                settings.webhooks,
                store,
                clock=clock,
                metrics=metrics,
                retention_seconds=settings.notification_retention_seconds,
            )
            if settings.webhooks
            else NullNotifier()
        )
    # A webhook notifier's delivery thread runs while the app does (one per process).
    delivery = notifier if isinstance(notifier, WebhookNotifier) else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if delivery is not None:
            delivery.start()
        try:
            yield
        finally:
            if delivery is not None:
                await run_in_threadpool(delivery.stop)

    broker_policy = policy if policy is not None else load_broker_policy(settings)
    policy_snapshot = broker_policy.to_dict()
    clusters = ClusterDirectory(
        settings.clusters,
        (lambda: cluster_describer)
        if cluster_describer is not None
        else (lambda: Boto3ClusterDescriber(settings.aws.eks_endpoint_url)),
    )
    sessions = SessionService(
        settings,
        store,
        clock,
        issuer,
        vault,
        notifier,
        metrics,
        lambda: policy_snapshot,
        clusters,
    )
    commands = CommandApprovalService(settings, store, clock, broker_policy, notifier, metrics)
    audit = AuditService(store, clock, metrics)
    limiter = RateLimiter(settings.limits.requests_per_minute)

    app = FastAPI(
        title="jitkube broker",
        version=__version__,
        description="Just-in-time EKS sessions, approvals and audit for jitkube.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = metrics
    app.state.notifier = notifier
    app.state.sessions = sessions
    app.state.clusters = clusters

    # -- errors --------------------------------------------------------------------

    @app.exception_handler(BrokerError)
    async def _broker_error(request: Request, exc: BrokerError) -> JSONResponse:
        response = problem_response(exc)
        # Why a request was refused, for the operator: the request line alone ("POST
        # /v1/sessions 401") says nothing of a wrong audience or missing AWS credentials.
        # Details are written for the caller and carry no token (logs.py redacts anyway).
        if response.status_code >= 500 or response.status_code in (401, 403):
            log.warning(
                "%s %s refused: %s: %s",
                request.method,
                request.url.path,
                exc.code,
                exc.detail,
            )
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # loc and msg only: `input` could echo a token or a manifest back.
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        err = BrokerError(
            "validation", "request does not match the schema", extra={"errors": errors}
        )
        return problem_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}
        err = BrokerError(code.get(exc.status_code, "validation"), str(exc.detail))
        return problem_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # The class only at error level: messages may hold request data. Tracebacks on debug.
        log.error("unhandled error: %s", exc.__class__.__name__)
        log.debug("unhandled error", exc_info=exc)
        return problem_response(BrokerError("internal", "internal error; see the broker log"))

    # -- authentication ----------------------------------------------------------------

    def _limit(key: str) -> None:
        wait = limiter.check(key)
        if wait > 0:
            raise BrokerError(
                "rate_limited", "too many requests", extra={"retry_after": max(1, round(wait))}
            )

    def principal(
        request: Request, token: HTTPAuthorizationCredentials | None, *, need_active: bool = False
    ) -> Principal:
        if token is None or token.scheme.lower() != "bearer":
            _limit(f"ip:{request.client.host if request.client else '?'}")
            raise BrokerError("unauthorized", "bearer token required")
        value = token.credentials
        try:
            if value.startswith(TOKEN_PREFIX):
                found = Principal(
                    session=sessions.authenticate_token(value, need_active=need_active)
                )
            else:
                found = Principal(identity=validator.validate(value))
        except AuthError as exc:
            metrics.auth_failures.inc()
            _limit(f"ip:{request.client.host if request.client else '?'}")
            raise BrokerError("unauthorized", str(exc), extra={"reason": exc.reason}) from None
        except BrokerError as exc:
            if exc.code == "unauthorized":
                metrics.auth_failures.inc()
                _limit(f"ip:{request.client.host if request.client else '?'}")
            raise
        _limit(found.key)
        note_caller(found.sub, found.session_id)
        return found

    def person(request: Request, token: HTTPAuthorizationCredentials | None) -> Identity:
        found = principal(request, token)
        if found.identity is None:
            raise BrokerError(
                "forbidden", "this call needs an OIDC access token, not a session token"
            )
        return found.identity

    def session_holder(
        request: Request, token: HTTPAuthorizationCredentials | None, session_id: str | None = None
    ) -> Row:
        found = principal(request, token, need_active=True)
        if found.session is None:
            raise BrokerError("forbidden", "this call needs the session token")
        if session_id is not None and found.session["id"] != session_id:
            raise BrokerError("forbidden", "the session token belongs to another session")
        return found.session

    # -- service -----------------------------------------------------------------------

    @app.get("/healthz", tags=["service"])
    def healthz() -> JSONResponse:
        try:
            version = store.schema_version()
        except Exception as exc:  # any driver error means "not healthy"
            err = BrokerError("unavailable", f"database unavailable ({exc.__class__.__name__})")
            return problem_response(err)
        return JSONResponse({"status": "ok", "schema_version": version, "version": __version__})

    @app.get("/metrics", tags=["service"])
    def metrics_endpoint() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/client-config", tags=["service"])
    def client_config() -> dict[str, Any]:
        """What `jitkube login` needs to know; no authentication."""
        oidc = settings.oidc
        return {
            "api_version": 1,
            "issuer": oidc.issuer,
            "authority": oidc.authority or oidc.issuer,
            "client_id": oidc.client_id,
            "scopes": list(oidc.scopes),
            "audience": list(oidc.audience),
            "groups_claim": oidc.groups_claim,
            "roles": [
                {
                    "name": r.name,
                    "clusters": list(r.clusters),
                    "max_ttl": r.max_ttl_seconds,
                    "reason_required": r.approval.reason_required,
                    "delivery": r.delivery,
                }
                for r in settings.roles.values()
            ],
        }

    # -- sessions ------------------------------------------------------------------------

    @app.post("/v1/sessions", tags=["sessions"], status_code=201)
    def create_session(body: SessionCreate, request: Request, token: Token) -> JSONResponse:
        identity = person(request, token)
        try:
            ttl = parse_duration(body.ttl)
        except ValueError as exc:
            raise BrokerError("validation", f"ttl: {exc}", extra={"field": "ttl"}) from None
        row, session_token = sessions.create(
            identity,
            SessionRequest(
                role=body.role,
                cluster=body.cluster,
                ttl_seconds=ttl,
                reason=body.reason,
                agent=body.agent,
                agent_name=body.agent_name,
                break_glass=body.break_glass,
            ),
        )
        payload = {
            # Created a moment ago: no reviewer has voted on it yet.
            "session": sessions.view(row, with_policy=True, votes=()),
            "session_token": session_token,
        }
        status = 201 if row["status"] == "active" else 202
        return JSONResponse(payload, status_code=status, headers={"Cache-Control": "no-store"})

    @app.get("/v1/sessions", tags=["sessions"])
    def list_sessions(
        request: Request,
        token: Token,
        scope: Literal["mine", "reviewable", "all"] = "mine",
        status: Annotated[list[str] | None, Query(max_length=8)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> dict[str, Any]:
        identity = person(request, token)
        before = decode_time_cursor(cursor)
        rows = sessions.list(
            identity, scope=scope, statuses=tuple(status or ()), before=before, limit=limit
        )
        next_cursor = time_cursor(rows, limit)
        return {"items": [sessions.view(r) for r in rows], "next_cursor": next_cursor}

    def _visible_session(
        request: Request, token: HTTPAuthorizationCredentials | None, session_id: str
    ) -> Row:
        found = principal(request, token)
        if found.session is not None:
            if found.session["id"] != session_id:
                raise BrokerError("forbidden", "the session token belongs to another session")
            return sessions.get(session_id)
        row = sessions.get(session_id)
        assert found.identity is not None
        if not sessions.can_view(found.identity, row):
            raise BrokerError("not_found", "no such session")  # do not reveal others' ids
        return row

    async def _while_pending(
        row: dict[str, Any], fetch: Callable[[], dict[str, Any]], wait: int
    ) -> dict[str, Any]:
        """Long-poll: re-read `row` until it is no longer pending or `wait` s have passed."""
        deadline = time.monotonic() + min(wait, settings.limits.long_poll_max_seconds)
        while row["status"] == "pending" and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_INTERVAL)
            row = await run_in_threadpool(fetch)
        return row

    @app.get("/v1/sessions/{session_id}", tags=["sessions"])
    async def get_session(
        session_id: str,
        request: Request,
        token: Token,
        wait: Annotated[int, Query(ge=0, le=300)] = 0,
    ) -> dict[str, Any]:
        """With `wait=N`, hold the answer up to N seconds while the session is pending."""
        row = await run_in_threadpool(_visible_session, request, token, session_id)
        row = await _while_pending(row, lambda: sessions.get(session_id), wait)
        return await run_in_threadpool(sessions.view, row, with_policy=True)

    @app.delete("/v1/sessions/{session_id}", tags=["sessions"])
    def revoke_session(session_id: str, request: Request, token: Token) -> dict[str, Any]:
        found = principal(request, token)
        if found.session is not None:
            if found.session["id"] != session_id:
                raise BrokerError("forbidden", "the session token belongs to another session")
            row = sessions.get(session_id)
            by = row["owner_sub"]
        else:
            assert found.identity is not None
            row = sessions.get(session_id)
            owner = found.identity.sub == row["owner_sub"]
            if not owner and not found.identity.in_any(settings.admin_groups):
                if sessions.can_view(found.identity, row):
                    raise BrokerError("forbidden", "only the owner or an admin may revoke")
                raise BrokerError("not_found", "no such session")
            by = found.identity.sub
        return sessions.view(sessions.revoke(row, by))

    @app.post("/v1/sessions/{session_id}/approvals", tags=["sessions"])
    def review_session(
        session_id: str, body: Review, request: Request, token: Token
    ) -> dict[str, Any]:
        reviewer = person(request, token)
        return sessions.view(sessions.review(session_id, reviewer, body.decision, body.comment))

    @app.post("/v1/sessions/{session_id}/eks-token", tags=["sessions"])
    def eks_token(session_id: str, request: Request, token: Token) -> JSONResponse:
        row = session_holder(request, token, session_id)
        return JSONResponse(sessions.eks_token(row), headers={"Cache-Control": "no-store"})

    @app.post("/v1/sessions/{session_id}/credentials", tags=["sessions"])
    def session_credentials(session_id: str, request: Request, token: Token) -> JSONResponse:
        row = session_holder(request, token, session_id)
        return JSONResponse(
            sessions.deliver_credentials(row), headers={"Cache-Control": "no-store"}
        )

    # -- per-command approvals ----------------------------------------------------------

    @app.post("/v1/commands", tags=["commands"], status_code=201)
    def request_command(body: CommandCreate, request: Request, token: Token) -> JSONResponse:
        session = session_holder(request, token)
        row = commands.request(
            session,
            CommandRequest(
                argv=tuple(body.argv),
                namespace=body.namespace,
                manifests=tuple(body.manifests),
                reason=body.reason,
                unmask=body.unmask,
                agent=body.agent,
            ),
        )
        return JSONResponse(
            commands.view(row), status_code=201 if row["status"] == "approved" else 202
        )

    @app.get("/v1/commands", tags=["commands"])
    def list_commands(
        request: Request,
        token: Token,
        status: Annotated[list[str] | None, Query(max_length=8)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> dict[str, Any]:
        """Command approvals this reviewer may decide (default: pending)."""
        identity = person(request, token)
        before = decode_time_cursor(cursor)
        commands.expire_due()
        rows = store.list_commands(
            statuses=tuple(status or ("pending",)), before=before, limit=limit
        )
        next_cursor = time_cursor(rows, limit)
        visible = [
            r
            for r in rows
            if r["requester_sub"] == identity.sub or commands.can_review(identity, r)
        ]
        return {"items": [commands.view(r) for r in visible], "next_cursor": next_cursor}

    def _visible_command(
        request: Request, token: HTTPAuthorizationCredentials | None, command_id: str
    ) -> Row:
        found = principal(request, token)
        row = commands.get(command_id)
        if found.session is not None:
            if row["session_id"] != found.session["id"]:
                raise BrokerError("not_found", "no such command approval")
            return row
        assert found.identity is not None
        if found.identity.sub != row["requester_sub"] and not commands.can_review(
            found.identity, row
        ):
            raise BrokerError("not_found", "no such command approval")
        return row

    @app.get("/v1/commands/{command_id}", tags=["commands"])
    async def get_command(
        command_id: str,
        request: Request,
        token: Token,
        wait: Annotated[int, Query(ge=0, le=300)] = 0,
    ) -> dict[str, Any]:
        row = await run_in_threadpool(_visible_command, request, token, command_id)
        row = await _while_pending(row, lambda: commands.get(command_id), wait)
        return await run_in_threadpool(commands.view, row)

    @app.post("/v1/commands/{command_id}/approvals", tags=["commands"])
    def review_command(
        command_id: str, body: Review, request: Request, token: Token
    ) -> dict[str, Any]:
        reviewer = person(request, token)
        return commands.view(commands.review(command_id, reviewer, body.decision, body.comment))

    @app.post("/v1/commands/{command_id}/consume", tags=["commands"])
    def consume_command(
        command_id: str, body: CommandConsume, request: Request, token: Token
    ) -> dict[str, Any]:
        session = session_holder(request, token)
        return commands.view(commands.consume(command_id, session, body.fingerprint))

    # -- audit ------------------------------------------------------------------------------

    def auditor(request: Request, token: HTTPAuthorizationCredentials | None) -> Identity:
        identity = person(request, token)
        if not identity.in_any(settings.auditor_groups):
            raise BrokerError("forbidden", "reading audit events needs an auditor group")
        return identity

    @app.post("/v1/audit", tags=["audit"])
    def ingest_audit(body: AuditBatch, request: Request, token: Token) -> dict[str, Any]:
        """Idempotent: resend a batch until it is acknowledged; duplicates are reported."""
        found = principal(request, token)
        if len(body.events) > settings.limits.audit_batch_max:
            raise BrokerError(
                "payload_too_large", f"at most {settings.limits.audit_batch_max} events per batch"
            )
        events = [e.model_dump() for e in body.events]
        return audit.ingest(found.sub, body.client_id, events, found.session_id)

    def _audit_filters(
        client_id: str | None,
        session_id: str | None,
        sub: str | None,
        since: str | None,
        until: str | None,
    ) -> dict[str, Any]:
        def epoch(value: str | None, field: str) -> float | None:
            if value is None:
                return None
            try:
                import datetime as dt

                return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise BrokerError(
                    "validation", f"{field}: not an ISO 8601 time", extra={"field": field}
                ) from None

        return {
            "client_id": client_id,
            "session_id": session_id,
            "sub": sub,
            "since": epoch(since, "since"),
            "until": epoch(until, "until"),
        }

    @app.get("/v1/audit", tags=["audit"])
    def list_audit(
        request: Request,
        token: Token,
        client_id: Annotated[str | None, Query(max_length=128)] = None,
        session_id: Annotated[str | None, Query(max_length=40)] = None,
        sub: Annotated[str | None, Query(max_length=255)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> dict[str, Any]:
        auditor(request, token)
        raw = decode_cursor(cursor)
        if raw is not None and not isinstance(raw, int):
            raise BrokerError("validation", "invalid cursor", extra={"field": "cursor"})
        filters = _audit_filters(client_id, session_id, sub, since, until)
        rows = store.list_audit(after_pk=raw or 0, limit=limit, **filters)
        next_cursor = encode_cursor(rows[-1]["pk"]) if len(rows) == limit else None
        return {"items": [audit.view(r) for r in rows], "next_cursor": next_cursor}

    @app.get("/v1/audit/export", tags=["audit"])
    def export_audit(
        request: Request,
        token: Token,
        client_id: Annotated[str | None, Query(max_length=128)] = None,
        session_id: Annotated[str | None, Query(max_length=40)] = None,
        sub: Annotated[str | None, Query(max_length=255)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
    ) -> StreamingResponse:
        """Every matching event as JSON lines (application/x-ndjson), for a SIEM."""
        auditor(request, token)
        filters = _audit_filters(client_id, session_id, sub, since, until)
        return StreamingResponse(audit.export(**filters), media_type="application/x-ndjson")

    @app.get("/v1/audit/clients", tags=["audit"])
    def audit_clients(
        request: Request,
        token: Token,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> dict[str, Any]:
        """Per-client sequence high-water marks and gaps (events never received)."""
        auditor(request, token)
        raw = decode_cursor(cursor)
        if raw is not None and not isinstance(raw, str):
            raise BrokerError("validation", "invalid cursor", extra={"field": "cursor"})
        items = audit.clients(raw or "", limit)
        next_cursor = encode_cursor(items[-1]["client_id"]) if len(items) == limit else None
        return {"items": items, "next_cursor": next_cursor}

    # Added last = outermost: metrics and the request log see the 413s too.
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestLog)
    return app
