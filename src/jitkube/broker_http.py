"""Minimal JSON-over-HTTPS calls to the broker for the hot path (stdlib urllib only).

The non-hot commands use `requests`; `jitkube kubectl` cannot afford its import, and
needs only a handful of calls (next EKS token, per-command approvals, audit upload).
Redirects are never followed: they would resend the bearer token elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

MAX_ANSWER = 1024 * 1024


def ssl_context(ca_bundle: str | None) -> Any:
    """A verifying TLS context trusting `ca_bundle` (or the system store)."""
    import ssl

    from jitkube.errors import BrokerUnreachableError

    try:
        context = ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError):
        raise BrokerUnreachableError(
            f"cannot use the broker CA bundle {ca_bundle}", hint="check ca_bundle in config.toml"
        ) from None
    # create_default_context honours SSLKEYLOGFILE: the session token must not be
    # decryptable by whoever set an environment variable.
    context.keylog_filename = None  # type: ignore[assignment]
    return context


def call(
    broker_url: str,
    method: str,
    path: str,
    *,
    authorization: str,
    body: Any = None,
    raw_body: bytes | None = None,
    ca_bundle: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One request; returns (HTTP status, parsed JSON or None). Raises OSError when offline.

    `body` is serialised as JSON; `raw_body` is sent as it is (already JSON).
    """
    if not broker_url.startswith(("https://", "http://")):
        raise OSError(f"broker URL must be http(s), not {broker_url.split(':', 1)[0]!r}")
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    # No proxies from the environment: HTTPS_PROXY would route the session token elsewhere.
    handlers: list[Any] = [_NoRedirect(), urllib.request.ProxyHandler({})]
    if broker_url.startswith("https://"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context(ca_bundle)))
    opener = urllib.request.build_opener(*handlers)
    data = raw_body if raw_body is not None else None if body is None else json.dumps(body).encode()
    headers = {
        "Authorization": authorization,
        "Accept": "application/json",
        "User-Agent": "jitkube",
    }
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310 - broker URLs are https or loopback http
        broker_url.rstrip("/") + path, data=data, method=method, headers=headers
    )
    try:
        with opener.open(request, timeout=timeout) as resp:
            status, raw = resp.status, resp.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(64 * 1024)
        exc.close()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None
