"""The event the runner records: agent detection, fields, bounds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jitkube.audit import AuditEntry, build_event, detect_agent, resolve_agent
from jitkube.audit.event import MAX_ARG_CHARS, iso_time, judgement_fields
from jitkube.judge import judge
from jitkube.policy import DecisionContext, default_policy


@pytest.mark.parametrize(
    ("environ", "name", "source"),
    [
        ({"CLAUDECODE": "1"}, "claude-code", "marker:CLAUDECODE"),
        ({"CURSOR_AGENT": "1"}, "cursor-agent", "marker:CURSOR_AGENT"),
        ({"CODEX_SANDBOX": "seatbelt"}, "codex", "marker:CODEX_SANDBOX"),
        ({"CODEX_THREAD_ID": "t-1"}, "codex", "marker:CODEX_THREAD_ID"),
        ({"GEMINI_CLI": "1"}, "gemini-cli", "marker:GEMINI_CLI"),
        ({"AWS_EXECUTION_ENV": "AmazonQ-For-CLI"}, "amazon-q", "marker:AWS_EXECUTION_ENV"),
        ({"AI_AGENT": "my-bot@2", "CLAUDECODE": "1"}, "my-bot@2", "marker:AI_AGENT"),
    ],
)
def test_agent_markers_name_the_agent(environ: dict[str, str], name: str, source: str) -> None:
    found = detect_agent(environ)
    assert found is not None
    assert (found.name, found.source) == (name, source)


@pytest.mark.parametrize(
    "environ",
    [{}, {"CURSOR_TRACE_ID": "x"}, {"CLAUDECODE": "0"}, {"CODEX_HOME": "/x"}, {"TERM": "xterm"}],
)
def test_no_marker_means_no_agent(environ: dict[str, str]) -> None:
    assert detect_agent(environ) is None


def test_explicit_agent_beats_session_beats_marker() -> None:
    env = {"CLAUDECODE": "1"}
    assert resolve_agent("ops-bot", "flag", "sess-bot", env).name == "ops-bot"  # type: ignore[union-attr]
    assert resolve_agent(None, "flag", "sess-bot", env).source == "session"  # type: ignore[union-attr]
    assert resolve_agent(None, "flag", None, env).source == "marker:CLAUDECODE"  # type: ignore[union-attr]


def test_event_carries_every_field_the_issue_lists() -> None:
    entry = AuditEntry(
        argv=["create", "secret", "generic", "db", "--from-literal=password=hunter2"],
        outcome="approved",
        started_at=1_900_000_000.25,
        duration_ms=123.456,
        sub="alice",
        email="alice@example.test",
        groups=("engineers",),
        agent="claude",
        agent_source="env",
        session_id="s-1",
        cluster="prod",
        role="admin",
        command="create secret generic",
        risk="write",
        reasons=("creates a Secret",),
        decision="approve",
        rule="secrets-need-approval",
        approval_id="c-9",
        approver="bob",
        exit_code=0,
        stdout_bytes=30,
        stderr_bytes=2,
        masked=0,
    )
    event = build_event(entry, {})
    assert event["time"] == "2030-03-17T17:46:40.250Z"
    assert event["argv"][-1] == "--from-literal=password=<redacted>"
    assert event["argv_redacted"] == 1
    assert "hunter2" not in json.dumps(event)
    expected = {
        "outcome": "approved",
        "sub": "alice",
        "email": "alice@example.test",
        "groups": ["engineers"],
        "agent": "claude",
        "agent_source": "env",
        "session_id": "s-1",
        "cluster": "prod",
        "role": "admin",
        "class": "write",
        "decision": "approve",
        "rule": "secrets-need-approval",
        "approval_id": "c-9",
        "approver": "bob",
        "exit_code": 0,
        "duration_ms": 123.5,
        "output_bytes": 32,
        "masked": 0,
    }
    assert {k: event[k] for k in expected} == expected
    assert len(event["id"]) == 32


def test_two_events_never_share_an_id() -> None:
    entry = AuditEntry(argv=["get", "pods"], outcome="allowed")
    assert build_event(entry, {})["id"] != build_event(entry, {})["id"]


def test_unknown_outcome_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="outcome"):
        build_event(AuditEntry(argv=["get", "pods"], outcome="maybe"), {})


def test_huge_arguments_are_bounded() -> None:
    event = build_event(AuditEntry(argv=["apply", "x" * 100_000], outcome="allowed"), {})
    assert len(event["argv"][1]) < MAX_ARG_CHARS + 40
    assert event["argv"][1].endswith("chars]")


def test_judgement_fields_fill_the_summary_from_a_real_judgement() -> None:
    j = judge(
        ["delete", "pod", "web-1", "-n", "prod"], DecisionContext(agent=True), default_policy()
    )
    fields = judgement_fields(j)
    assert fields["command"] == "delete"
    assert fields["invocation"]["names"] == ["web-1"]
    assert fields["risk"] == j.assessment.risk.label
    assert fields["decision"] == j.decision.action.label
    event = build_event(AuditEntry(argv=j.invocation.argv, outcome="pending", **fields), {})
    assert event["command"] == "delete"


def test_iso_time_rounds_to_milliseconds() -> None:
    assert iso_time(61.2346) == "1970-01-01T00:01:01.235Z"


def test_recording_an_invocation_stays_on_the_hot_path_budget(tmp_path: Path) -> None:
    """The runner records on every call: stdlib and jitkube core only, no network modules."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from jitkube.audit import AuditEntry, record_invocation
        record_invocation(
            AuditEntry(argv=["get", "pods"], outcome="allowed"), {{}},
            directory=Path({str(tmp_path / "audit")!r}),
        )
        heavy = {{"typer", "rich", "requests", "boto3", "botocore", "msal", "keyring",
                  "pydantic", "yaml", "urllib.request", "subprocess", "ssl"}}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, timeout=60
    )
    assert result.stdout.decode().strip() == "[]"
