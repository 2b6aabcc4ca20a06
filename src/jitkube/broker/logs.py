"""The broker's logs: one JSON object per line, one line per request, never a credential.

`JsonFormatter` writes `time`, `level`, `logger`, `message` and the record's structured
extras (`request_id`, `method`, `path`, `status`, `duration_ms`, `sub`, `session_id`, …).
`request_log` is the ASGI middleware that writes the per-request line after the response
has gone out; query strings are never logged (cursors and filters are not secrets today,
but a client could put anything there). As a second line of defence the formatter
redacts anything shaped like a bearer token, session token, EKS token, JWT or AWS secret
from every string it writes, tracebacks included.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

REQUEST_LOGGER = "jitkube.broker.request"
REQUEST_ID_HEADER = "x-request-id"
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# Attributes every LogRecord has; anything else on a record is a structured extra.
_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "color_message", "taskName"}
)

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+"), r"\1 [redacted]"),
    (re.compile(r"\bjks\.([A-Za-z0-9_]+)\.[A-Za-z0-9_-]+"), r"jks.\1.[redacted]"),
    (re.compile(r"\bk8s-aws-v1\.[A-Za-z0-9_-]+"), "k8s-aws-v1.[redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (
        re.compile(r"(?i)(X-Amz-(?:Signature|Security-Token|Credential)=)[^&\s\"']+"),
        r"\1[redacted]",
    ),
    (
        re.compile(
            r"(?i)((?:secret_?access_?key|session_?token|password|client_secret)"
            r"[\"']?\s*[:=>]\s*[\"']?)[^\s\"'<,&}]+"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "[redacted-aws-key-id]"),
)


def redact(text: str) -> str:
    """Replace anything shaped like a credential in `text`."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


@dataclass
class RequestContext:
    """What the per-request log line says about the caller; filled in by authentication."""

    request_id: str
    sub: str | None = None
    session_id: str | None = None


_CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "jitkube_broker_request", default=None
)


def note_caller(sub: str, session_id: str | None) -> None:
    """Record who is calling, for the request's log line (no-op outside a request)."""
    current = _CURRENT.get()
    if current is not None:
        current.sub = sub
        current.session_id = session_id


def _jsonable(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then structured extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in out:
                out[key] = _jsonable(value)
        current = _CURRENT.get()
        if current is not None and "request_id" not in out:
            out["request_id"] = current.request_id
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str)


def configure_logging(level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record of the process to `stream` (stderr) as JSON lines.

    jitkube's and uvicorn's loggers get `level`; everything else (botocore, urllib3,
    SQLAlchemy, …) stays at WARNING whatever `level` says, because their debug output
    includes signed requests and STS responses with credentials.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    for name in ("jitkube", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(numeric)
    return handler


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def request_log(app: ASGIApp, logger: logging.Logger | None = None) -> ASGIApp:
    """Log one line per HTTP request once the response is complete; add `X-Request-ID`."""
    target = logger or logging.getLogger(REQUEST_LOGGER)

    async def middleware(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        offered = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = (
            offered if offered and _CLIENT_REQUEST_ID.match(offered) else uuid.uuid4().hex[:16]
        )
        context = RequestContext(request_id)
        reset = _CURRENT.set(context)
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None)
            client = scope.get("client")
            method = str(scope.get("method", ""))
            path = str(scope.get("path", ""))  # never the query string
            level = logging.ERROR if status >= 500 else logging.INFO
            target.log(
                level,
                f"{method} {path} {status}",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 1),
                    "sub": context.sub,
                    "session_id": context.session_id,
                    "client": client[0] if client else None,
                },
            )
            _CURRENT.reset(reset)

    return middleware


class RequestLog:
    """`request_log` as a Starlette middleware class (for `app.add_middleware`)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = request_log(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)
