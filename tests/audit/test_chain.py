"""The local hash chain: appends, tamper detection, rotation, crashes, concurrency."""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jitkube.audit import AuditEntry, AuditLog, AuditSpool, build_event, verify
from jitkube.audit.chain import GENESIS, HEAD_FILE
from jitkube.audit.reading import Problem

DAY = 1_900_000_000.0  # 2030-03-17


def event(n: int) -> dict[str, object]:
    entry = AuditEntry(argv=["get", "pods", f"p-{n}"], outcome="allowed", exit_code=0)
    return build_event(entry, {})


def filled(directory: Path, n: int, **kwargs: int) -> AuditLog:
    log = AuditLog(directory, **kwargs)
    for i in range(n):
        log.append(event(i), now=DAY)
    return log


def lines_of(log: AuditLog) -> tuple[Path, list[str]]:
    segment = log.directory / log.segments()[0]
    return segment, segment.read_text().splitlines(keepends=True)


def kinds(problems: list[Problem]) -> set[str]:
    return {p.kind for p in problems}


def test_appended_records_form_an_intact_chain(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 10)
    count, problems = verify(log.directory)
    assert (count, problems) == (10, [])
    records = list(log.records())
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert records[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))


def test_files_are_private(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 1)
    assert stat.S_IMODE(log.directory.stat().st_mode) == 0o700
    for path in log.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_one_changed_byte_is_named_with_its_seq(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 5)
    segment, lines = lines_of(log)
    lines[2] = lines[2].replace('"p-2"', '"p-9"')
    segment.write_text("".join(lines))
    _, problems = verify(log.directory)
    assert [(p.kind, p.seq) for p in problems] == [("edited", 3)]
    assert f"{segment.name}:3" in problems[0].message


def test_whitespace_only_edit_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 3)
    segment, lines = lines_of(log)
    lines[1] = lines[1].replace('"kind":', '"kind": ')
    segment.write_text("".join(lines))
    assert [(p.kind, p.seq) for p in verify(log.directory)[1]] == [("edited", 2)]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    from jitkube.audit.chain import seal

    log = filled(tmp_path / "audit", 4)
    segment, lines = lines_of(log)
    record = json.loads(lines[1])
    del record["hash"]
    record["exit_code"] = 1
    lines[1] = seal(record)[0] + "\n"
    segment.write_text("".join(lines))
    assert [(p.kind, p.seq) for p in verify(log.directory)[1]] == [("broken_link", 3)]


def test_deleted_record_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 6)
    segment, lines = lines_of(log)
    del lines[3]
    segment.write_text("".join(lines))
    problems = verify(log.directory)[1]
    assert [(p.kind, p.seq) for p in problems] == [("missing", 4)]


def test_swapped_records_are_detected(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 6)
    segment, lines = lines_of(log)
    lines[2], lines[3] = lines[3], lines[2]
    segment.write_text("".join(lines))
    problems = verify(log.directory)[1]
    assert [(p.kind, p.seq) for p in problems] == [("out_of_order", 3)]


def test_deleting_the_last_record_is_caught_by_the_head_pointer(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 5)
    segment, lines = lines_of(log)
    segment.write_text("".join(lines[:-1]))
    problems = verify(log.directory)[1]
    assert [(p.kind, p.seq) for p in problems] == [("missing", 5)]
    assert "head pointer" in problems[0].message


def test_deleting_the_last_record_and_the_head_is_caught_by_the_delivered_seq(
    tmp_path: Path,
) -> None:
    log = filled(tmp_path / "audit", 5)
    (log.directory / "delivery.json").write_text('{"seq": 5}')  # as after a flush of 1-5
    assert AuditSpool(log.directory).delivery().seq == 5
    segment, lines = lines_of(log)
    segment.write_text("".join(lines[:-1]))
    (log.directory / HEAD_FILE).unlink()
    found = {(p.kind, p.seq) for p in verify(log.directory)[1]}
    assert ("missing", 5) in found
    assert ("head", None) in found


def test_garbage_line_is_reported_unreadable(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 3)
    segment, lines = lines_of(log)
    lines[1] = lines[1][:40] + "\n"
    segment.write_text("".join(lines))
    assert {"unreadable", "missing"} <= kinds(verify(log.directory)[1])


def test_the_chain_runs_across_size_rotated_segments(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 30, max_segment_bytes=2000)
    assert len(log.segments()) > 3
    assert verify(log.directory) == (30, [])
    # Removing a whole middle segment is a deletion.
    (log.directory / log.segments()[1]).unlink()
    assert kinds(verify(log.directory)[1]) == {"missing"}


def test_a_new_day_starts_a_new_segment_and_keeps_the_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append(event(1), now=DAY)
    log.append(event(2), now=DAY + 86_400)
    log.append(event(3), now=DAY)  # the clock went back: never sorts before the head
    assert log.segments() == ["audit-20300317-000.jsonl", "audit-20300318-000.jsonl"]
    assert verify(log.directory) == (3, [])


def test_a_crash_between_append_and_head_update_is_repaired(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 3)
    head_before = (log.directory / HEAD_FILE).read_bytes()
    log.append(event(3), now=DAY)
    (log.directory / HEAD_FILE).write_bytes(head_before)  # as if we died before the head write
    segment, _ = lines_of(log)
    with segment.open("a") as f:
        f.write('{"torn":')  # and another writer died mid-line
    record = log.append(event(4), now=DAY)
    assert record["seq"] == 5
    assert verify(log.directory) == (5, [])


def test_chain_fields_cannot_be_smuggled_in_by_the_event(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chain fields"):
        AuditLog(tmp_path / "audit").append({"seq": 99, "x": 1})


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from jitkube.audit import AuditLog
    log = AuditLog(Path(sys.argv[1]))
    go = Path(sys.argv[4])
    while not go.exists():  # both writers start together
        time.sleep(0.001)
    for i in range(int(sys.argv[2])):
        log.append({"writer": sys.argv[3], "n": i, "argv": ["get", "pods"]})
    """
)


def test_two_processes_appending_at_once_keep_the_chain_intact(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(directory), "200", name, str(go)])
        for name in ("a", "b")
    ]
    time.sleep(0.3)  # let both interpreters start
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    count, problems = verify(directory)
    assert (count, problems) == (400, [])
    writers = [r["writer"] for r in AuditLog(directory).records()]
    assert writers.count("a") == writers.count("b") == 200
    assert os.path.getsize(directory / HEAD_FILE) > 0


def test_a_crash_right_after_opening_a_new_days_segment_is_repaired(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 2)
    head_before = (log.directory / HEAD_FILE).read_bytes()
    log.append(event(2), now=DAY + 86_400)  # first record of the next day…
    (log.directory / HEAD_FILE).write_bytes(head_before)  # …whose head update was lost
    assert log.append(event(3), now=DAY + 86_400)["seq"] == 4
    assert verify(log.directory) == (4, [])


def test_pending_is_everything_after_the_delivered_seq(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit", 5)
    spool = AuditSpool(log.directory)
    assert [r["seq"] for r in spool.pending()] == [1, 2, 3, 4, 5]
    (log.directory / "delivery.json").write_text('{"seq": 3}')
    assert [r["seq"] for r in spool.pending()] == [4, 5]
    assert spool.pending_count() == 2
    assert spool.flush_due()
    client = spool.client_id()
    assert client == AuditSpool(log.directory).client_id()  # generated once
    assert stat.S_IMODE((log.directory / "client-id").stat().st_mode) == 0o600
