"""The active session, cached for the `jitkube kubectl` hot path (stdlib only).

One JSON file per broker + cluster + role, mode 0600, in a 0700 directory:
`$XDG_RUNTIME_DIR/jitkube/sessions/` (tmpfs, wiped at logout of the OS session), else
`$XDG_STATE_HOME/jitkube/sessions/`. A file holds the session id, broker URL, session
token, current EKS token and its expiry, cluster endpoint + CA and the policy snapshot
the broker sent with the session, so an allowed command needs no network at all.

`fresh_eks_token` fetches the next EKS token from the broker with the session token when
the cached one is within a minute of expiry, using urllib (imported only then) and the
CA bundle recorded at `jitkube request` time. Files are replaced atomically, so a reader
never sees half a session; two processes refreshing at once both get valid tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from jitkube.config import state_dir
from jitkube.dataclass_lite import asdict, dataclass, field, fields, replace
from jitkube.errors import (
    ApprovalPendingError,
    BrokerUnreachableError,
    SessionRequiredError,
    UsageError,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

FORMAT_VERSION = 1
REFRESH_MARGIN = 60.0  # fetch the next EKS token when the current one ends within this
# On a failed refresh, a token still valid this long is used rather than failing the command.
MIN_USABLE = 10.0
DEFAULT_TIMEOUT = 10.0
_SUFFIX = ".json"


class AmbiguousSessionError(UsageError):
    """Several cached sessions match; the caller must say which cluster/role."""

    code = "session_ambiguous"


@dataclass(frozen=True)
class CachedSession:
    """One session as the CLI caches it. Tokens must never be printed or logged."""

    session_id: str
    broker_url: str
    cluster: str
    role: str
    status: str  # "active" | "pending"
    session_token: str
    expires_at: float  # session end (active) or request expiry (pending), epoch seconds
    eks_token: str = ""
    eks_token_expires_at: float = 0.0
    cluster_endpoint: str = ""
    cluster_ca: str = ""  # base64 PEM, as the broker (and `aws eks describe-cluster`) gives it
    policy: Mapping[str, Any] | None = None
    ca_bundle: str | None = None  # PEM bundle to trust for the broker's HTTPS
    owner: str = ""  # the requester's email (or sub)
    # Who the requester is, for the audit record of every command in this session.
    owner_sub: str = ""
    owner_groups: tuple[str, ...] = ()
    agent_name: str = ""
    # The broker's verdict that the requester is an agent (e.g. a member of agent_groups):
    # commands in this session are then judged as an agent's even without JITKUBE_AGENT.
    agent: bool = False
    reason: str = ""
    delivery: str = "token"
    saved_at: float = 0.0
    path: Path | None = field(default=None, compare=False)  # where it was loaded from

    def __repr__(self) -> str:  # keep tokens out of tracebacks and debug output
        return (
            f"CachedSession(session_id={self.session_id!r}, cluster={self.cluster!r}, "
            f"role={self.role!r}, status={self.status!r}, expires_at={self.expires_at!r})"
        )

    @property
    def key(self) -> str:
        return cache_key(self.broker_url, self.cluster, self.role)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at <= (time.time() if now is None else now)

    def remaining(self, now: float | None = None) -> float:
        """Seconds until the session (or the pending request) ends; 0 when past."""
        return max(0.0, self.expires_at - (time.time() if now is None else now))

    def eks_token_due(self, now: float | None = None, margin: float = REFRESH_MARGIN) -> bool:
        """True when there is no EKS token or it ends within `margin` seconds."""
        moment = time.time() if now is None else now
        return not self.eks_token or self.eks_token_expires_at - moment <= margin

    def public(self, now: float | None = None) -> dict[str, Any]:
        """A JSON-able view without any token (for `status` and envelopes)."""
        moment = time.time() if now is None else now
        return {
            "id": self.session_id,
            "status": "expired" if self.expired(moment) else self.status,
            "role": self.role,
            "cluster": self.cluster,
            "broker_url": self.broker_url,
            "expires_at": _iso(self.expires_at),
            "remaining_seconds": int(self.remaining(moment)),
            "eks_token_expires_at": _iso(self.eks_token_expires_at) if self.eks_token else None,
            "cluster_endpoint": self.cluster_endpoint or None,
            "owner": self.owner or None,
            "agent_name": self.agent_name or None,
            "reason": self.reason or None,
        }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def cache_key(broker_url: str, cluster: str, role: str) -> str:
    """The file stem for one broker + cluster + role (a hash: names stay path-safe)."""
    raw = "\n".join((broker_url.rstrip("/"), cluster, role)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def cache_dir(environ: Mapping[str, str]) -> Path:
    """`$XDG_RUNTIME_DIR/jitkube/sessions`, or the state dir's `sessions` when unset."""
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "jitkube" / "sessions"
    return state_dir(environ) / "sessions"


def _ensure_dir(directory: Path) -> None:
    for d in (directory.parent, directory):
        d.mkdir(mode=0o700, exist_ok=True, parents=True)
        info = d.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise SessionRequiredError(f"session cache directory {d} is not ours; refusing it")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(d, 0o700)  # umask or an older tool may have widened it


def _to_json(session: CachedSession) -> dict[str, Any]:
    data = asdict(session)
    data.pop("path")
    data["policy"] = dict(session.policy) if session.policy is not None else None
    return {"version": FORMAT_VERSION, **data}


def _from_json(data: Any, path: Path) -> CachedSession | None:
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        return None
    known = {f.name for f in fields(CachedSession)} - {"path"}
    values = {k: v for k, v in data.items() if k in known}
    # The file is ours (0600), but a hand-edited or foreign one must not crash the hot path.
    for key in ("session_id", "broker_url", "cluster", "role", "status", "session_token"):
        if not isinstance(values.get(key), str) or not values[key]:
            return None
    for key in ("expires_at", "eks_token_expires_at"):
        if not isinstance(values.get(key, 0.0), int | float):
            return None
    groups = values.get("owner_groups", ())
    values["owner_groups"] = tuple(
        g for g in (groups if isinstance(groups, list | tuple) else ()) if isinstance(g, str)
    )
    try:
        return CachedSession(**values, path=path)
    except TypeError:
        return None


def _write_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save(environ: Mapping[str, str], session: CachedSession) -> CachedSession:
    """Write `session` (0600, atomically) under its key; returns it with `path` set."""
    directory = cache_dir(environ)
    _ensure_dir(directory)
    return save_at(session, directory / (session.key + _SUFFIX))


def _read(path: Path) -> CachedSession | None:
    """One cache file, or None when it is not ours, not private, or not readable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        # Fail closed: a file someone else could have written (or read) is not trusted.
        if (
            not stat.S_ISREG(info.st_mode)
            or info.st_uid != os.getuid()
            or stat.S_IMODE(info.st_mode) & 0o077
        ):
            return None
        raw = fh.read(4 * 1024 * 1024)
    try:
        return _from_json(json.loads(raw), path)
    except ValueError:
        return None


def list_sessions(environ: Mapping[str, str]) -> list[CachedSession]:
    """Every readable cached session, expired ones included (see `prune`), oldest first."""
    directory = cache_dir(environ)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        if name.endswith(_SUFFIX) and not name.startswith("."):
            session = _read(directory / name)
            if session is not None:
                found.append(session)
    return sorted(found, key=lambda s: s.saved_at)


def prune(environ: Mapping[str, str], now: float | None = None) -> list[CachedSession]:
    """Remove expired entries; returns what was removed."""
    moment = time.time() if now is None else now
    gone = [s for s in list_sessions(environ) if s.expired(moment)]
    for session in gone:
        _unlink(session)
    return gone


def _unlink(session: CachedSession) -> None:
    if session.path is not None:
        session.path.unlink(missing_ok=True)


def load(
    environ: Mapping[str, str],
    cluster: str | None = None,
    role: str | None = None,
    *,
    broker_url: str | None = None,
    now: float | None = None,
) -> CachedSession | None:
    """The one unexpired cached session matching cluster/role (None = any).

    Expired entries are removed on the way. Several matches raise AmbiguousSessionError
    (exit 64): guessing a cluster is how a command lands on prod by mistake.
    """
    moment = time.time() if now is None else now
    matches = []
    for session in list_sessions(environ):
        if session.expired(moment):
            _unlink(session)
            continue
        if cluster is not None and session.cluster != cluster:
            continue
        if role is not None and session.role != role:
            continue
        if broker_url is not None and session.broker_url != broker_url.rstrip("/"):
            continue
        matches.append(session)
    if len(matches) > 1:
        names = ", ".join(f"{s.role}@{s.cluster}" for s in matches)
        raise AmbiguousSessionError(
            f"several jitkube sessions match: {names}",
            hint="say which with JITKUBE_CLUSTER=… and JITKUBE_ROLE=… "
            "(commands other than `jitkube kubectl` also take --cluster/--role)",
        )
    return matches[0] if matches else None


def remove(
    environ: Mapping[str, str],
    session_id: str | None = None,
    *,
    cluster: str | None = None,
    role: str | None = None,
) -> list[CachedSession]:
    """Remove entries by session id, or by cluster/role; returns what was removed.

    With no argument at all, every entry is removed (what `jitkube logout` does).
    """
    gone = []
    for session in list_sessions(environ):
        if session_id is not None and session.session_id != session_id:
            continue
        if cluster is not None and session.cluster != cluster:
            continue
        if role is not None and session.role != role:
            continue
        _unlink(session)
        gone.append(session)
    return gone


# -- the next EKS token -----------------------------------------------------------------


def _epoch(value: Any) -> float:
    """An ISO 8601 time from the broker as epoch seconds (ValueError when it is not one)."""
    if not isinstance(value, str):
        raise ValueError("not a time")
    import datetime as dt

    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def apply_eks_answer(session: CachedSession, answer: Mapping[str, Any]) -> CachedSession:
    """`session` updated with a `POST /v1/sessions/{id}/eks-token` answer (now active)."""
    token = answer.get("token")
    if not isinstance(token, str) or not token:
        raise ValueError("no token in the answer")
    return replace(
        session,
        status="active",
        eks_token=token,
        eks_token_expires_at=_epoch(answer.get("expires_at")),
        expires_at=_epoch(answer.get("session_expires_at")),
        cluster_endpoint=str(answer.get("cluster_endpoint") or session.cluster_endpoint),
        cluster_ca=str(answer.get("cluster_certificate_authority") or session.cluster_ca),
    )


def _post_eks_token(session: CachedSession, timeout: float) -> tuple[int, Any]:
    """POST the eks-token call; (status, parsed JSON or None). Raises OSError when offline."""
    from jitkube.broker_http import call

    return call(
        session.broker_url,
        "POST",
        f"/v1/sessions/{session.session_id}/eks-token",
        authorization=f"Bearer {session.session_token}",
        raw_body=b"",
        ca_bundle=session.ca_bundle,
        timeout=timeout,
    )


def fresh_eks_token(
    session: CachedSession,
    now: float | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    margin: float = REFRESH_MARGIN,
) -> CachedSession:
    """`session` with an EKS token valid for more than `margin` seconds.

    Returns `session` itself when its token is fresh (no network). Otherwise asks the
    broker, rewrites the cache file (when `session.path` is set) and returns the update.
    Raises SessionRequiredError (entry removed) when the broker says the session ended,
    ApprovalPendingError while a request is still pending, and BrokerUnreachableError
    when the broker does not answer and the cached token is no longer usable.
    """
    moment = time.time() if now is None else now
    if session.status == "active" and not session.eks_token_due(moment, margin):
        return session
    if session.expired(moment):
        _unlink(session)
        what = "request" if session.status == "pending" else "session"
        raise SessionRequiredError(
            f"the jitkube {what} {session.session_id} for {session.role}@{session.cluster} "
            "has expired",
            hint="run `jitkube request` for a new session",
        )
    try:
        status, body = _post_eks_token(session, timeout)
    except OSError as exc:
        return _unreachable(session, moment, f"cannot reach it ({type(exc).__name__})")
    code = body.get("code") if isinstance(body, dict) else None
    if status == 200 and isinstance(body, dict):
        try:
            updated = apply_eks_answer(session, body)
        except ValueError:
            return _unreachable(session, moment, "its answer is not an EKS token")
        if session.path is not None:
            return save_at(updated, session.path)
        return updated
    if status == 409 and code == "session_not_active":
        state = body.get("session_status") if isinstance(body, dict) else None
        if state == "pending":
            raise ApprovalPendingError(
                f"session request {session.session_id} is still waiting for approval",
                hint="`jitkube status` shows it; reviewers use `jitkube approve`",
            )
        _unlink(session)
        raise SessionRequiredError(
            f"the jitkube session {session.session_id} has ended ({state or 'not active'})",
            hint="run `jitkube request` for a new session",
        )
    if status in (401, 403, 404):
        _unlink(session)
        raise SessionRequiredError(
            f"the broker no longer accepts session {session.session_id}",
            hint="run `jitkube request` for a new session",
        )
    return _unreachable(session, moment, f"it answered HTTP {status}")


def save_at(session: CachedSession, path: Path) -> CachedSession:
    """Rewrite one cache file in place (atomically); returns the session as written."""
    stamped = replace(session, saved_at=time.time(), path=path)
    payload = json.dumps(_to_json(stamped), separators=(",", ":")).encode()
    _write_atomic(path, payload)
    return stamped


def _unreachable(session: CachedSession, now: float, why: str) -> CachedSession:
    if session.status == "active" and session.eks_token_expires_at - now >= MIN_USABLE:
        return session  # the current token still works; try again on the next call
    raise BrokerUnreachableError(
        f"cannot get the next EKS token from the broker at {session.broker_url}: {why}",
        hint="check the network or the broker; the session itself is unchanged",
    )
