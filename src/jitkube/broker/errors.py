"""Errors the broker answers with: RFC 9457 problem documents with a stable `code`.

Clients branch on `code` (never on `title`/`detail`, which are for humans). The list of
codes is documented in docs/broker-config.md and pinned by a test.
"""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_BASE = "https://jitkube.dev/problems/"

# code -> HTTP status. Stable: clients (the jitkube CLI first) depend on these.
CODES: dict[str, int] = {
    "unauthorized": 401,
    "forbidden": 403,
    "not_requestable": 403,
    "agent_not_allowed": 403,
    "self_approval": 403,
    "not_a_reviewer": 403,
    "denied_by_policy": 403,
    "credentials_not_delivered": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "already_decided": 409,
    "session_not_active": 409,
    "approval_not_usable": 409,
    "audit_client_conflict": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation": 422,
    "rate_limited": 429,
    "internal": 500,
    "sts_unavailable": 502,
    "eks_unavailable": 502,
    "unavailable": 503,
}


class BrokerError(Exception):
    """An answer other than success; `detail` must never contain a secret."""

    def __init__(self, code: str, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"undocumented problem code {code!r}")
        super().__init__(detail)
        self.code = code
        self.status = CODES[code]
        self.detail = detail
        self.extra = extra or {}

    def problem(self) -> dict[str, Any]:
        return problem(self.code, self.detail, **self.extra)


def problem(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of a problem answer."""
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": code.replace("_", " "),
        "status": CODES[code],
        "code": code,
        "detail": detail,
        **extra,
    }
