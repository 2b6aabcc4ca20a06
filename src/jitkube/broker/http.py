"""HTTP plumbing of the broker: problem answers, body limit, metrics, rate limit, cursors."""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from jitkube.broker.errors import BrokerError
from jitkube.broker.metrics import BrokerMetrics

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]
PROBLEM_JSON = "application/problem+json"


class RateLimiter:
    """Token bucket per key (identity), per replica. Thread-safe."""

    def __init__(self, per_minute: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(max(1, per_minute))
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float:
        """0 when allowed, else seconds until the next request would be."""
        now = self._monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # bound memory under a flood of identities
                self._buckets.clear()
            return 0.0


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if not cursor:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise BrokerError("validation", "invalid cursor", extra={"field": "cursor"}) from None


def decode_time_cursor(cursor: str | None) -> tuple[float, str] | None:
    """The `(created_at, id)` a newest-first page continues before."""
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], int | float)):
        raise BrokerError("validation", "invalid cursor", extra={"field": "cursor"})
    return float(raw[0]), str(raw[1])


def time_cursor(rows: list[dict[str, Any]], limit: int) -> str | None:
    """The next page's cursor of a newest-first page; None when this page is the last."""
    return encode_cursor([rows[-1]["created_at"], rows[-1]["id"]]) if len(rows) == limit else None


def problem_response(err: BrokerError) -> JSONResponse:
    headers = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="jitkube"'
    if err.status == 429 and "retry_after" in err.extra:
        headers["Retry-After"] = str(err.extra["retry_after"])
    return JSONResponse(
        err.problem(), status_code=err.status, headers=headers, media_type=PROBLEM_JSON
    )


def body_limit(app: ASGIApp, max_bytes: int) -> ASGIApp:
    """Refuse request bodies over `max_bytes` (413) before the app parses anything."""

    async def middleware(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = False
        if declared is not None:
            try:
                too_big = int(declared) > max_bytes
            except ValueError:
                too_big = True
        chunks: list[bytes] = []
        if not too_big:
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    too_big = True
                    break
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if too_big:
            err = BrokerError("payload_too_large", f"request body over {max_bytes} bytes")
            response = problem_response(err)
            await response(scope, receive, send)
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return middleware


def request_metrics(app: ASGIApp, metrics: BrokerMetrics) -> ASGIApp:
    """Count requests by route template (never by raw path: ids would explode labels)."""

    async def middleware(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            metrics.requests.labels(template, scope.get("method", ""), str(status)).inc()
            metrics.latency.labels(template).observe(time.perf_counter() - start)

    return middleware


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = body_limit(app, max_bytes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: BrokerMetrics) -> None:
        self._app = request_metrics(app, metrics)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)
