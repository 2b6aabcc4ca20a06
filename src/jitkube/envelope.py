"""The versioned JSON envelope every non-kubectl command (and every refusal) can print.

Contract (pinned by tests/test_envelope_contract.py): keys `jitkube_result_version`,
`command`, `status`, `exit_code`, `data`, `errors`, in that order. `status` is one of
STATUSES. Bump RESULT_VERSION on any incompatible change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from jitkube.errors import JitkubeError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

RESULT_VERSION = "1"
STATUSES = ("ok", "denied", "approval_required", "pending", "refused", "error")


def error_entry(error: JitkubeError) -> dict[str, str]:
    entry = {"code": error.code, "message": error.message}
    if error.hint:
        entry["hint"] = error.hint
    return entry


def build(
    command: str,
    status: str,
    exit_code: int,
    data: Mapping[str, Any] | None = None,
    errors: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    if status not in STATUSES:
        raise ValueError(f"unknown envelope status {status!r}")
    return {
        "jitkube_result_version": RESULT_VERSION,
        "command": command,
        "status": status,
        "exit_code": int(exit_code),
        "data": dict(data or {}),
        "errors": [dict(e) for e in errors],
    }


def dumps(envelope: Mapping[str, Any]) -> str:
    """One line of JSON (ASCII-safe, so no terminal tricks survive in it)."""
    return json.dumps(envelope, ensure_ascii=True, separators=(",", ":"))
