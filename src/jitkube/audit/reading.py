"""Reading and verifying the chain (not needed on the hot path, so imported lazily)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from jitkube.audit.chain import GENESIS, HEAD_FILE, is_sealed, segment_key
from jitkube.dataclass_lite import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

    from jitkube.audit.chain import AuditLog


@dataclass(frozen=True, slots=True)
class StoredLine:
    """One complete line of a segment; `record` is None when it is not valid JSON."""

    segment: str
    line: int | None  # 1-based, when known (None when read from an offset)
    end: int  # byte offset just after the line
    text: str
    record: dict[str, Any] | None

    @property
    def location(self) -> str:
        return f"{self.segment}:{self.line}" if self.line is not None else self.segment


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of `verify()`. `kind`: unreadable, edited, missing, out_of_order,
    duplicate, broken_link, head."""

    kind: str
    message: str
    seq: int | None = None
    location: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "seq": self.seq, "at": self.location}


def _segment_lines(directory: Path, segment: str, offset: int) -> Iterator[StoredLine]:
    try:
        f = open(directory / segment, "rb")  # noqa: SIM115 - generator-managed
    except FileNotFoundError:
        return
    with f:
        number: int | None = 0 if offset == 0 else None
        if offset:
            f.seek(offset)
        position = offset
        for raw in f:
            if not raw.endswith(b"\n"):
                return  # torn tail: not a record (yet)
            position += len(raw)
            if number is not None:
                number += 1
            text = raw[:-1].decode("utf-8", errors="replace")
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            yield StoredLine(
                segment, number, position, text, parsed if isinstance(parsed, dict) else None
            )


def read_lines(
    directory: Path, segments: Sequence[str], start: tuple[str, int] | None = None
) -> Iterator[StoredLine]:
    """Every complete line of `segments` (in order), from (segment, offset) when given."""
    for segment in segments:
        offset = 0
        if start is not None:
            if segment_key(segment) < segment_key(start[0]):
                continue
            if segment == start[0]:
                offset = start[1]
        yield from _segment_lines(directory, segment, offset)


def verify_chain(log: AuditLog, delivered_seq: int = 0) -> tuple[int, list[Problem]]:
    """See `AuditLog.verify`."""
    problems: list[Problem] = []
    by_seq: dict[int, tuple[str, str, str]] = {}  # seq -> (hash, prev, location)
    last_seq: int | None = None
    last_location = ""
    count = 0
    for line in log.lines():
        record = line.record
        seq = record.get("seq") if record is not None else None
        if record is None or not isinstance(seq, int) or isinstance(seq, bool):
            problems.append(
                Problem(
                    "unreadable",
                    f"{line.location}: not a valid audit record (edited or corrupt)",
                    None,
                    line.location,
                )
            )
            continue
        count += 1
        if not is_sealed(line.text, record):
            problems.append(
                Problem(
                    "edited",
                    f"{line.location}: record seq {seq} was edited (hash mismatch)",
                    seq,
                    line.location,
                )
            )
        if seq in by_seq:
            problems.append(
                Problem(
                    "duplicate",
                    f"{line.location}: seq {seq} appears again (first at {by_seq[seq][2]})",
                    seq,
                    line.location,
                )
            )
        elif last_seq is not None and seq < last_seq:
            problems.append(
                Problem(
                    "out_of_order",
                    f"{line.location}: seq {seq} comes after seq {last_seq} ({last_location}):"
                    " records were reordered",
                    seq,
                    line.location,
                )
            )
        if seq not in by_seq:
            by_seq[seq] = (
                str(record.get("hash", "")),
                str(record.get("prev", "")),
                line.location,
            )
        last_seq, last_location = seq, line.location
    highest = max(by_seq, default=0)
    for first, last in _gaps(sorted(by_seq)):
        problems.append(
            Problem("missing", f"records seq {first}-{last} are missing (deleted)", first)
        )
    for seq in sorted(by_seq):
        _, prev, location = by_seq[seq]
        if seq == 1:
            if prev != GENESIS:
                problems.append(
                    Problem(
                        "broken_link",
                        f"{location}: seq 1 does not start the chain",
                        1,
                        location,
                    )
                )
        elif seq - 1 in by_seq and prev != by_seq[seq - 1][0]:
            problems.append(
                Problem(
                    "broken_link",
                    f"{location}: seq {seq} does not follow seq {seq - 1} (prev hash differs)",
                    seq,
                    location,
                )
            )
    head = log.head()
    if head is None:
        if by_seq or (log.directory / HEAD_FILE).exists():
            problems.append(
                Problem("head", "the head pointer (head.json) is missing or unreadable")
            )
    else:
        if head.seq > highest:
            problems.append(
                Problem(
                    "missing",
                    f"records seq {highest + 1}-{head.seq} are missing at the end"
                    f" (the head pointer says {head.seq})",
                    highest + 1,
                )
            )
        elif head.seq < highest:
            problems.append(
                Problem(
                    "head",
                    f"records after seq {head.seq} are not covered by the head pointer",
                    head.seq + 1,
                )
            )
        elif head.seq in by_seq and by_seq[head.seq][0] != head.hash:
            problems.append(
                Problem(
                    "edited",
                    f"the last record (seq {head.seq}) differs from the head pointer",
                    head.seq,
                )
            )
    if delivered_seq > max(highest, head.seq if head else 0):
        problems.append(
            Problem(
                "missing",
                f"records seq {highest + 1}-{delivered_seq} were delivered to the broker"
                " but are missing here",
                highest + 1,
            )
        )
    return count, problems


def _gaps(seqs: list[int]) -> Iterator[tuple[int, int]]:
    expected = 1
    for seq in seqs:
        if seq > expected:
            yield expected, seq - 1
        expected = max(expected, seq + 1)
