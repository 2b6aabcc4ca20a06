"""Per-command approvals from `jitkube kubectl`: submit, wait, consume (stdlib only).

The broker re-judges the command with its own policy (and its `unmask` rule for
`--unmask`), binds the approval to a fingerprint of argv + cluster + namespace + manifest
digest + unmask, and lets it be used once. The client and the broker compute that
fingerprint with the same function, `command_fingerprint` (re-exported here).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jitkube.broker.fingerprint import command_fingerprint as command_fingerprint
from jitkube.broker_http import call
from jitkube.dataclass_lite import dataclass
from jitkube.errors import (
    ApprovalRefusedError,
    BrokerUnreachableError,
    DeniedError,
    SessionRequiredError,
)
from jitkube.session_cache import CachedSession


@dataclass(frozen=True, slots=True)
class CommandApproval:
    id: str
    status: str  # pending | approved | denied | expired | consumed
    fingerprint: str
    approvals_required: int
    approvals: tuple[dict[str, Any], ...]
    rule: str
    expires_at: str
    unmask: bool = False  # approved for output without masking (`--unmask`)

    @property
    def refusal(self) -> tuple[str, str | None]:
        """Why this approval cannot be used, and what to do: (message, hint)."""
        if self.status == "denied":
            denials = [a for a in self.approvals if a.get("decision") == "deny"]
            who = ", ".join(str(a.get("reviewer")) for a in denials if a.get("reviewer"))
            said = "; ".join(str(a.get("comment")) for a in denials if a.get("comment"))
            return (
                f"approval {self.id} was denied"
                + (f" by {who}" if who else "")
                + (f": {said}" if said else " without a comment"),
                None,
            )
        again = "run the command again to ask for a new approval"
        if self.status == "expired":
            return f"approval {self.id} expired before a reviewer decided", again
        if self.status == "consumed":
            return f"approval {self.id} was already used (an approval runs its command once)", again
        return f"approval {self.id} is {self.status}", again

    @property
    def approver(self) -> str:
        return ", ".join(
            str(a.get("reviewer")) for a in self.approvals if a.get("decision") == "approve"
        )


def _approval(body: Any) -> CommandApproval:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise BrokerUnreachableError("the broker's answer is not a command approval")
    return CommandApproval(
        id=body["id"],
        status=str(body.get("status", "")),
        fingerprint=str(body.get("fingerprint", "")),
        approvals_required=int(body.get("approvals_required") or 0),
        approvals=tuple(a for a in body.get("approvals") or () if isinstance(a, dict)),
        rule=str(body.get("rule") or ""),
        expires_at=str(body.get("expires_at") or ""),
        unmask=body.get("unmask") is True,
    )


def _problem(status: int, body: Any, what: str) -> Exception:
    code = body.get("code") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 403 and code == "denied_by_policy":
        return DeniedError(f"the broker's policy denies this command: {detail or code}")
    if status in (401, 404) or code in ("session_not_active", "session_token_invalid"):
        return SessionRequiredError(
            f"the broker no longer accepts this session ({code or status})",
            hint="run `jitkube request` for a new session",
        )
    if code == "approval_not_usable":
        return ApprovalRefusedError(f"the approval cannot be used: {detail or code}")
    return BrokerUnreachableError(f"the broker could not {what} (HTTP {status}, {code})")


def _call(
    session: CachedSession, method: str, path: str, body: Any = None, timeout: float = 10.0
) -> tuple[int, Any]:
    try:
        return call(
            session.broker_url,
            method,
            path,
            authorization=f"Bearer {session.session_token}",
            body=body,
            ca_bundle=session.ca_bundle,
            timeout=timeout,
        )
    except OSError as exc:
        raise BrokerUnreachableError(
            f"cannot reach the broker at {session.broker_url} ({type(exc).__name__})"
        ) from None


def submit(
    session: CachedSession,
    argv: Sequence[str],
    namespace: str,
    manifests: Sequence[bytes] = (),
    reason: str = "",
    unmask: bool = False,
    agent: str = "",
) -> CommandApproval:
    """File the command for approval; returns it approved (broker policy allows) or pending.

    `unmask` asks to see the output unmasked: the broker applies its policy's `unmask`
    rule and binds the approval to the unmasked command's fingerprint. It is sent only
    when true, so a masked request reads the same to brokers that predate the field.
    """
    import base64

    body: dict[str, Any] = {
        "argv": list(argv),
        "namespace": namespace,
        "manifests": [base64.b64encode(m).decode() for m in manifests],
        "reason": reason,
    }
    if unmask:
        body["unmask"] = True
    if agent:  # reviewers see which agent asks; the broker judges it as an agent's
        body["agent"] = agent
    status, answer = _call(session, "POST", "/v1/commands", body)
    if status in (200, 201, 202):
        return _approval(answer)
    raise _problem(status, answer, "file the approval")


def wait(
    session: CachedSession,
    approval_id: str,
    timeout: float,
    on_update: Callable[[CommandApproval], None] | None = None,
) -> CommandApproval:
    """Long-poll until the approval is decided or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        poll = max(1, min(25, int(left)))
        status, answer = _call(
            session, "GET", f"/v1/commands/{approval_id}?wait={poll}", timeout=poll + 10
        )
        if status != 200:
            raise _problem(status, answer, "report the approval")
        approval = _approval(answer)
        if on_update is not None:
            on_update(approval)
        if approval.status != "pending" or time.monotonic() >= deadline:
            return approval


def consume(session: CachedSession, approval_id: str, fingerprint: str) -> CommandApproval:
    """Use the approval for this exact command, once."""
    status, answer = _call(
        session, "POST", f"/v1/commands/{approval_id}/consume", {"fingerprint": fingerprint}
    )
    if status == 200:
        return _approval(answer)
    raise _problem(status, answer, "accept the approval")


def find(session: CachedSession, approval_id: str) -> CommandApproval:
    status, answer = _call(session, "GET", f"/v1/commands/{approval_id}")
    if status == 200:
        return _approval(answer)
    raise _problem(status, answer, "report the approval")


# -- remembering a pending approval across `--no-wait` runs ---------------------------------
# An agent that got "pending" (exit 66) runs the same command again once a reviewer has
# approved it: that run must use the approval it already has, not file a new one. The
# id is kept per command fingerprint (argv + cluster + namespace + manifests + unmask) and
# session.


def _memory(environ: Mapping[str, str], fingerprint: str) -> Path:
    from jitkube.config import state_dir

    return state_dir(environ) / "approvals" / f"{fingerprint}.json"


def recall(environ: Mapping[str, str], session: CachedSession, fingerprint: str) -> str | None:
    """The approval id filed earlier for this exact command in this session, if any."""
    import json

    try:
        data = json.loads(_memory(environ, fingerprint).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("session_id") != session.session_id:
        return None
    approval_id = data.get("id")
    return approval_id if isinstance(approval_id, str) and approval_id.startswith("cmd_") else None


def remember(
    environ: Mapping[str, str], session: CachedSession, fingerprint: str, approval_id: str
) -> None:
    import json
    import os

    path = _memory(environ, fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"id": approval_id, "session_id": session.session_id}, fh)
    os.replace(tmp, path)


def forget(environ: Mapping[str, str], fingerprint: str) -> None:
    _memory(environ, fingerprint).unlink(missing_ok=True)
