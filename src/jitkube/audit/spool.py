"""Delivery of the local audit trail to the broker: `POST /v1/audit`, at least once.

The spool *is* the chain: records with `seq` above the delivered mark are pending, so
nothing is copied on the hot path and a broker outage loses nothing. `delivery.json`
holds the mark (seq plus the segment/offset after it, so a flush reads only what is new)
and the retry back-off; `client-id` holds this installation's id, generated once.

Acknowledgement: a 200 answer means the broker committed the whole batch (its docs:
"committed before the broker answers"), so the mark moves to the batch's last seq. The
broker's `high_water`/`missing` are reported, not trusted blindly: a broker that lost
events shows them as gaps to its auditors. Duplicates (a batch resent after a lost
answer) are harmless: the broker is idempotent by event id. `conflicts` (ids the broker
holds for another client, or a reused seq after local state was lost) cannot be fixed by
resending; they are reported and skipped.

Stdlib only (`urllib`): the flush runs right after kubectl exits, or in a short-lived
background child (`spawn_background_flush`) so the caller does not wait on the network.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from jitkube.audit.chain import AuditLog
from jitkube.audit.reading import StoredLine
from jitkube.dataclass_lite import asdict, dataclass, field, fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

CLIENT_ID_FILE = "client-id"
DELIVERY_FILE = "delivery.json"
FLUSH_LOCK = "flush.lock"
FLUSHER_LOCK = "flusher.lock"  # held by a live background flusher for its whole life


def flusher_running(directory: Path) -> bool:
    """True when a background flusher is alive (it will deliver new records too)."""
    try:
        fd = os.open(directory / FLUSHER_LOCK, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


BATCH_EVENTS = 200  # the broker accepts up to 500 by default (limits.audit_batch_max)
BATCH_BYTES = 512 * 1024  # the broker refuses bodies over 1 MiB by default
MAX_BACKOFF = 300.0
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # the broker's AuditBatch.client_id


@dataclass
class Delivery:
    """What the broker has acknowledged, and when to try again after a failure."""

    seq: int = 0
    segment: str | None = None
    offset: int = 0
    failures: int = 0
    next_attempt: float = 0.0
    last_error: str | None = None
    high_water: int | None = None
    missing: int | None = None
    conflicts: int = 0
    rejected: int = 0


@dataclass
class FlushResult:
    """The outcome of one flush. `error` is None when everything pending was delivered."""

    delivered: int = 0
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # ids the broker refused to store
    pending: int = 0
    delivered_seq: int = 0
    high_water: int | None = None
    missing: int | None = None
    error: str | None = None
    error_code: str | None = None  # unreachable | unauthorized | rejected | busy
    status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeliveryError(Exception):
    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class AuditSpool:
    """The pending part of the audit trail in `directory` and its delivery to a broker."""

    def __init__(self, directory: Path, log: AuditLog | None = None) -> None:
        self.directory = Path(directory)
        self.log = log or AuditLog(self.directory)

    def client_id(self) -> str:
        """This installation's audit client id (`jk-` + 32 hex), created once."""
        path = self.directory / CLIENT_ID_FILE
        try:
            value = path.read_text(encoding="ascii").strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        candidate = "jk-" + os.urandom(16).hex()
        tmp = self.directory / f".{CLIENT_ID_FILE}.{os.getpid()}.tmp"
        _atomic_write(tmp, (candidate + "\n").encode("ascii"))
        try:
            os.link(tmp, path)  # first writer wins; never replaces an existing id
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_text(encoding="ascii").strip()

    def delivery(self) -> Delivery:
        """The stored delivery mark (zero when nothing was ever delivered)."""
        try:
            data = json.loads((self.directory / DELIVERY_FILE).read_bytes())
        except (OSError, ValueError):
            return Delivery()
        known = {f.name for f in fields(Delivery)}
        return Delivery(**{k: v for k, v in data.items() if k in known})

    def _save(self, state: Delivery) -> None:
        _atomic_write(self.directory / DELIVERY_FILE, json.dumps(asdict(state)).encode())

    def pending_count(self) -> int:
        """Records not yet acknowledged (from the head pointer: no file scan)."""
        head = self.log.head()
        return max(0, (head.seq if head else 0) - self.delivery().seq)

    def _pending_lines(self, state: Delivery) -> Iterator[StoredLine]:
        start = (state.segment, state.offset) if state.segment else None
        for line in self.log.lines(start):
            seq = line.record.get("seq") if line.record else None
            if isinstance(seq, int) and seq > state.seq:
                yield line

    def pending(self) -> list[dict[str, Any]]:
        """The records a flush would send, in order."""
        return [line.record for line in self._pending_lines(self.delivery()) if line.record]

    def flush_due(self, now: float | None = None) -> bool:
        """Something is pending and no back-off is running (cheap: two small reads)."""
        state = self.delivery()
        head = self.log.head()
        if head is None or head.seq <= state.seq:
            return False
        return (time.time() if now is None else now) >= state.next_attempt

    def flush(
        self,
        broker_url: str,
        auth_header: str,
        ca_bundle: str | None = None,
        *,
        timeout: float = 5.0,
        wait_for_lock: bool = True,
        max_seconds: float | None = None,
    ) -> FlushResult:
        """Send every pending record in batches; stop at the first failure (kept for later).

        `auth_header` is the full `Authorization` value (`Bearer …` with an OIDC access
        token or a session token). It is never stored or logged.
        """
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        lock = os.open(self.directory / FLUSH_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait_for_lock else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return FlushResult(
                    pending=self.pending_count(),
                    error="another flush is running",
                    error_code="busy",
                )
            return self._flush_locked(broker_url, auth_header, ca_bundle, timeout, max_seconds)
        finally:
            os.close(lock)

    def _flush_locked(
        self,
        broker_url: str,
        auth_header: str,
        ca_bundle: str | None,
        timeout: float,
        max_seconds: float | None,
    ) -> FlushResult:
        state = self.delivery()
        result = FlushResult(delivered_seq=state.seq)
        client_id = self.client_id()
        if not _CLIENT_ID.fullmatch(client_id):
            # The broker would refuse every batch (422) and each event alone with it.
            result.error, result.error_code = (
                f"invalid audit client id in {CLIENT_ID_FILE}",
                "rejected",
            )
            result.pending = self.pending_count()
            return result
        started = time.monotonic()
        batch: list[StoredLine] = []
        size = 0
        lines = self._pending_lines(state)
        try:
            while True:
                line = next(lines, None)
                if line is not None:
                    batch.append(line)
                    size += len(line.text) + 1
                if batch and (line is None or len(batch) >= BATCH_EVENTS or size >= BATCH_BYTES):
                    answer = _send(broker_url, auth_header, ca_bundle, client_id, batch, timeout)
                    last = batch[-1]
                    assert last.record is not None
                    state.seq, state.segment, state.offset = (
                        int(last.record["seq"]),
                        last.segment,
                        last.end,
                    )
                    state.failures, state.next_attempt, state.last_error = 0, 0.0, None
                    state.high_water = _int(answer.get("high_water"))
                    state.missing = _int(answer.get("missing"))
                    conflicts = [str(c) for c in answer.get("conflicts") or []]
                    state.conflicts += len(conflicts)
                    state.rejected += len(answer["rejected"])
                    self._save(state)
                    result.delivered += int(answer.get("accepted") or 0)
                    result.duplicates += len(answer.get("duplicates") or [])
                    result.conflicts.extend(conflicts)
                    result.rejected.extend(answer["rejected"])
                    result.delivered_seq = state.seq
                    result.high_water, result.missing = state.high_water, state.missing
                    batch, size = [], 0
                    if max_seconds is not None and time.monotonic() - started > max_seconds:
                        break
                if line is None:
                    break
        except DeliveryError as exc:
            state.failures += 1
            state.next_attempt = time.time() + min(MAX_BACKOFF, 2.0 ** min(state.failures, 10))
            state.last_error = exc.message
            self._save(state)
            result.error, result.error_code, result.status = exc.message, exc.code, exc.status
        result.pending = self.pending_count()
        return result


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _send(
    broker_url: str,
    auth_header: str,
    ca_bundle: str | None,
    client_id: str,
    batch: list[StoredLine],
    timeout: float,
) -> dict[str, Any]:
    """Post `batch`; when the broker refuses it as invalid or too large (413/422), send the
    events one by one and skip only those it refuses alone, so one bad record cannot block
    the spool forever (it stays in the local trail; its id is reported as rejected)."""
    try:
        answer = _post(broker_url, auth_header, ca_bundle, client_id, batch, timeout)
        answer["rejected"] = []
        return answer
    except DeliveryError as exc:
        if exc.status not in (413, 422) or len(batch) == 1:
            if exc.status in (413, 422):
                record = batch[0].record or {}
                return {"accepted": 0, "rejected": [str(record.get("id"))]}
            raise
    merged: dict[str, Any] = {"accepted": 0, "duplicates": [], "conflicts": [], "rejected": []}
    for line in batch:
        one = _send(broker_url, auth_header, ca_bundle, client_id, [line], timeout)
        merged["accepted"] += int(one.get("accepted") or 0)
        for key in ("duplicates", "conflicts", "rejected"):
            merged[key].extend(one.get(key) or [])
        for key in ("high_water", "missing"):
            if key in one:
                merged[key] = one[key]
    return merged


def _post(
    broker_url: str,
    auth_header: str,
    ca_bundle: str | None,
    client_id: str,
    batch: list[StoredLine],
    timeout: float,
) -> dict[str, Any]:
    from jitkube.broker_http import call

    # The stored lines are already JSON: splice them instead of re-serialising.
    body = (
        '{"client_id":'
        + json.dumps(client_id)
        + ',"events":['
        + ",".join(x.text for x in batch)
        + "]}"
    ).encode("utf-8")
    try:
        status, answer = call(
            broker_url,
            "POST",
            "/v1/audit",
            authorization=auth_header,
            raw_body=body,
            ca_bundle=ca_bundle,
            timeout=timeout,
        )
    except (OSError, ValueError) as exc:
        raise DeliveryError(
            "unreachable", f"broker {broker_url} is unreachable ({type(exc).__name__})"
        ) from None
    if status != 200:
        code = answer.get("code") if isinstance(answer, dict) else None
        kind = "unauthorized" if status in (401, 403) else "rejected"
        if status in (408, 429) or status >= 500:
            kind = "unreachable"
        raise DeliveryError(kind, f"broker answered {status} ({code}) to the audit upload", status)
    if not isinstance(answer, dict):
        raise DeliveryError("rejected", "the broker's audit answer is not a JSON object")
    return answer


def spawn_background_flush(
    directory: Path,
    broker_url: str,
    auth_header: str,
    ca_bundle: str | None = None,
    *,
    python: str | None = None,
) -> int:
    """Start a detached child that flushes the spool and exits; returns its pid.

    The credential travels through a pipe (never argv or environment, both visible to
    other tools). The child gets no stdout/stderr of ours, so a caller reading our
    output sees EOF as soon as we exit; it takes the flush lock without waiting (a flush
    already running does the work) and gives up after about 20 s.
    """
    import signal
    import sys

    payload = json.dumps(
        {
            "directory": str(directory),
            "broker_url": broker_url,
            "auth_header": auth_header,
            "ca_bundle": ca_bundle,
        }
    ).encode()
    executable = python or sys.executable
    # posix_spawn, not subprocess: importing subprocess (threading, selectors, locale)
    # costs ~2 ms of the command's own start-up. Our descriptors are non-inheritable
    # (PEP 446), so the child gets exactly the three below.
    read_end, write_end = os.pipe()
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            pid = os.posix_spawnp(
                executable,
                [executable, "-P", "-m", "jitkube.audit.background"],  # -P: no cwd on sys.path
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                ],
                setsid=True,  # detached: a Ctrl-C at the terminal does not reach it
                setsigdef=(signal.SIGPIPE,),  # as subprocess's restore_signals
            )
        finally:
            os.close(devnull)
            os.close(read_end)
        with os.fdopen(write_end, "wb") as pipe:
            write_end = -1
            pipe.write(payload)
    finally:
        if write_end != -1:
            os.close(write_end)
    return pid
