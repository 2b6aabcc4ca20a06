"""The local audit trail: hash-chained JSON lines under `$XDG_STATE_HOME/jitkube/audit/`.

Each line is one record: the event's fields plus `seq` (1, 2, … per client, the same
number the broker sees), `prev` (the previous record's hash; 64 zeros for seq 1) and
`hash` = SHA-256 of the canonical JSON of every other field (sorted keys, no spaces,
ASCII). The line itself *is* that canonical JSON with `"hash"` appended last, so any
changed byte — even whitespace — is visible to `verify()`.

Files (segments) are `audit-YYYYMMDD-NNN.jsonl` (UTC day; a new NNN after
`max_segment_bytes`); the chain runs across them. `head.json` holds the last record's
seq, hash and position: it is both the cross-process lock (`flock`) and the anchor that
shows a deleted *last* record (the chain alone cannot: a shorter chain is still a valid
chain). The spool's delivered seq (and the broker's copy) anchor it further.

Appends are cheap on purpose (hot path, stdlib only): lock, read the head, one
`O_APPEND` write, rewrite the head, unlock — no fsync (an acknowledged copy lives at the
broker; `flush()` runs after every command). A crash between the write and the head
update is repaired by the next append (it adopts complete records past the head and cuts
a torn, newline-less tail).

Threat model: this detects edits by tools and people who do not recompute the chain. A
process running as the same user can rewrite the whole trail and its head; the broker's
copy (idempotent, per-client seq, gaps visible) is the authoritative record.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from jitkube.dataclass_lite import dataclass
from jitkube.errors import JitkubeError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

    from jitkube.audit.reading import Problem, StoredLine

GENESIS = "0" * 64
HEAD_FILE = "head.json"
SEGMENT_RE = re.compile(r"^audit-(\d{8})-(\d{3,})\.jsonl$")
DEFAULT_MAX_SEGMENT_BYTES = 16 * 1024 * 1024
_CHAIN_FIELDS = ("seq", "prev", "hash")


class AuditWriteError(JitkubeError):
    """The audit record could not be written (disk full, permissions)."""

    code = "audit_write_failed"


@dataclass(frozen=True, slots=True)  # dataclass_lite: no exec at import (hot path)
class Head:
    """Where the chain ends: last seq and hash, and the segment/offset after it."""

    seq: int
    hash: str
    segment: str
    offset: int


def canonical(obj: Any) -> str:
    """The one serialisation hashes are computed over."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def seal(record: Mapping[str, Any]) -> tuple[str, str]:
    """(line without newline, hash) for a record that has no `hash` yet."""
    body = canonical(record)
    digest = hashlib.sha256(body.encode("ascii")).hexdigest()
    return body[:-1] + ',"hash":"' + digest + '"}', digest


def is_sealed(text: str, record: Mapping[str, Any]) -> bool:
    """True when `text` is exactly the sealed form of `record` (hash included)."""
    rest = {k: v for k, v in record.items() if k != "hash"}
    if not rest:
        return False
    try:
        expected, digest = seal(rest)
    except (TypeError, ValueError):
        return False
    return text == expected and record.get("hash") == digest


def segment_key(name: str) -> tuple[str, int]:
    """Sort key of a segment file name: (UTC day, index)."""
    m = SEGMENT_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else ("", -1)


class AuditLog:
    """Append-only, hash-chained JSONL in `directory` (created 0700 on first use)."""

    def __init__(self, directory: Path, *, max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES):
        self.directory = Path(directory)
        self.max_segment_bytes = max_segment_bytes

    # -- writing -------------------------------------------------------------------------

    def _open_head(self) -> int:
        path = os.path.join(self.directory, HEAD_FILE)
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def append(self, event: Mapping[str, Any], *, now: float | None = None) -> dict[str, Any]:
        """Append `event` as the next record; returns it with `seq`, `prev` and `hash`."""
        clash = [k for k in _CHAIN_FIELDS if k in event]
        if clash:
            raise ValueError(f"event must not carry chain fields {clash}")
        try:
            fd = self._open_head()
        except OSError as exc:
            raise AuditWriteError(f"cannot open the audit log: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return self._append_locked(fd, event, time.time() if now is None else now)
        except OSError as exc:
            raise AuditWriteError(f"cannot write the audit log: {exc.strerror}") from None
        finally:
            os.close(fd)  # releases the lock

    def _append_locked(self, head_fd: int, event: Mapping[str, Any], now: float) -> dict[str, Any]:
        head = _parse_head(os.pread(head_fd, 4096, 0))
        if head is None:
            head = self._recover(None)
        segment = self._segment_for(head, now)
        path = os.path.join(self.directory, segment)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            expected = head.offset if head is not None and segment == head.segment else 0
            if head is not None and size > expected:
                # A writer died between its append and its head update: adopt its records.
                head = self._recover(head) or head
                size = os.fstat(fd).st_size
            record = dict(event)
            record["seq"] = head.seq + 1 if head else 1
            record["prev"] = head.hash if head else GENESIS
            text, digest = seal(record)
            data = (text + "\n").encode("ascii")
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(28, "short write to the audit log")
        finally:
            os.close(fd)
        new_head = canonical(
            {"seq": record["seq"], "hash": digest, "segment": segment, "offset": size + written}
        ).encode("ascii")
        os.pwrite(head_fd, new_head, 0)
        os.ftruncate(head_fd, len(new_head))
        record["hash"] = digest
        return record

    def _segment_for(self, head: Head | None, now: float) -> str:
        day = time.strftime("%Y%m%d", time.gmtime(now))
        if head is None or not SEGMENT_RE.match(head.segment):
            return f"audit-{day}-000.jsonl"
        head_day, index = segment_key(head.segment)
        if day > head_day:
            return f"audit-{day}-000.jsonl"
        if head.offset >= self.max_segment_bytes:
            return f"audit-{head_day}-{index + 1:03d}.jsonl"
        return head.segment  # same day, or the clock went back: never sort before the head

    def _recover(self, head: Head | None) -> Head | None:
        """Rebuild the head from the newest segment's last complete record (lock held)."""
        segments = self.segments()
        if head is not None and head.segment in segments:
            segments = segments[segments.index(head.segment) :]
        found: Head | None = None
        for segment in reversed(segments):
            path = self.directory / segment
            last: StoredLine | None = None
            good_end = 0
            for line in self.lines((segment, 0)):
                if line.segment != segment:
                    break
                good_end = line.end
                if line.record is not None and isinstance(line.record.get("seq"), int):
                    last = line
            if path.stat().st_size > good_end:
                os.truncate(path, good_end)  # a torn, newline-less tail from a crash
            if last is not None and last.record is not None:
                found = Head(
                    int(last.record["seq"]), str(last.record.get("hash", "")), segment, last.end
                )
                break
        return found

    # -- reading -------------------------------------------------------------------------

    def head(self) -> Head | None:
        """The head pointer as stored (None when absent or unreadable)."""
        try:
            return _parse_head((self.directory / HEAD_FILE).read_bytes())
        except OSError:
            return None

    def segments(self) -> list[str]:
        """Segment file names in chain order."""
        try:
            names = [n for n in os.listdir(self.directory) if SEGMENT_RE.match(n)]
        except FileNotFoundError:
            return []
        return sorted(names, key=segment_key)

    def lines(self, start: tuple[str, int] | None = None) -> Iterator[StoredLine]:
        """Every complete line in chain order, from (segment, offset) when given."""
        from jitkube.audit.reading import read_lines

        return read_lines(self.directory, self.segments(), start)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every parseable record in chain order."""
        for line in self.lines():
            if line.record is not None:
                yield line.record

    def verify(self, *, delivered_seq: int = 0) -> tuple[int, list[Problem]]:
        """Check the whole chain; returns (records read, problems). No problems = intact.

        Detects edited records (hash or byte mismatch), deleted records (seq gaps; a
        deleted tail through the head pointer and `delivered_seq`), reordering, duplicate
        seqs and broken `prev` links.
        """
        from jitkube.audit.reading import verify_chain

        return verify_chain(self, delivered_seq)


def _parse_head(raw: bytes) -> Head | None:
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
        return Head(int(data["seq"]), str(data["hash"]), str(data["segment"]), int(data["offset"]))
    except (ValueError, KeyError, TypeError):
        return None
