"""`jitkube audit`: listing, --since, --json, --output json, --verify exit codes."""

from __future__ import annotations

import json
import time

import pytest

from fixtures.env import IsolatedEnv
from jitkube.audit import AuditEntry, audit_dir, record_invocation
from jitkube.envelope import RESULT_VERSION
from jitkube.errors import ExitCode


def seed(env: IsolatedEnv) -> None:
    now = time.time()
    for age_hours, argv, outcome in (
        (48, ["get", "pods", "-n", "old"], "allowed"),
        (0.1, ["delete", "ns", "prod"], "denied"),
        (0, ["create", "secret", "generic", "x", "--from-literal=pw=topsecret"], "approved"),
    ):
        record_invocation(
            AuditEntry(
                argv=argv,
                outcome=outcome,
                started_at=now - age_hours * 3600,
                sub="alice",
                agent="claude" if outcome == "approved" else None,
                cluster="prod",
                role="admin",
                exit_code=0 if outcome != "denied" else 65,
                risk="write",
            ),
            env.env,
        )


def test_audit_lists_records_oldest_first_without_secrets(isolated_env: IsolatedEnv) -> None:
    seed(isolated_env)
    result = isolated_env.run("audit")
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.decode().splitlines()
    assert header.split() == [
        "SEQ", "TIME", "OUTCOME", "EXIT", "CLASS", "WHO", "AGENT", "WHERE", "COMMAND"
    ]  # fmt: skip
    assert len(lines) == 3
    assert [line.split()[5:7] for line in lines] == [
        ["alice", "-"],
        ["alice", "-"],
        ["alice", "claude"],  # who is the identity, the agent has its own column
    ]
    assert "kubectl get pods -n old" in lines[0]
    assert "denied" in lines[1]
    assert "pw=<redacted>" in lines[2]
    assert b"topsecret" not in result.stdout


@pytest.mark.parametrize(("since", "count"), [("1h", 2), ("30m", 2), ("3d", 3), ("2m", 1)])
def test_since_filters_by_age(isolated_env: IsolatedEnv, since: str, count: int) -> None:
    seed(isolated_env)
    result = isolated_env.run("audit", "--since", since, "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == count
    assert all("hash" in r and "seq" in r for r in records)


def test_since_accepts_a_date_and_refuses_nonsense(isolated_env: IsolatedEnv) -> None:
    seed(isolated_env)
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 3600))
    dated = isolated_env.run("audit", "--since", today, "--json")
    assert dated.returncode == 0
    assert 2 <= len(dated.stdout.splitlines()) <= 3
    bad = isolated_env.run("audit", "--since", "yesterdayish")
    assert bad.returncode == ExitCode.USAGE
    assert b"--since" in bad.stderr


def test_output_json_prints_the_envelope(isolated_env: IsolatedEnv) -> None:
    seed(isolated_env)
    result = isolated_env.run("--output", "json", "audit", "--limit", "2")
    envelope = json.loads(result.stdout)
    assert list(envelope) == [
        "jitkube_result_version",
        "command",
        "status",
        "exit_code",
        "data",
        "errors",
    ]
    assert envelope["jitkube_result_version"] == RESULT_VERSION
    assert (envelope["command"], envelope["status"], envelope["exit_code"]) == ("audit", "ok", 0)
    assert envelope["data"]["count"] == 2
    assert [r["seq"] for r in envelope["data"]["records"]] == [2, 3]


def test_empty_trail_says_so(isolated_env: IsolatedEnv) -> None:
    result = isolated_env.run("audit")
    assert result.returncode == 0
    assert b"no audit records" in result.stdout


def test_verify_passes_then_fails_with_exit_72_naming_the_record(
    isolated_env: IsolatedEnv,
) -> None:
    seed(isolated_env)
    ok = isolated_env.run("audit", "--verify")
    assert ok.returncode == 0, ok.stderr
    assert b"intact: 3 records" in ok.stdout

    segment = sorted(audit_dir(isolated_env.env).glob("audit-*.jsonl"))[-1]
    text = segment.read_text()
    segment.write_text(text.replace('"outcome":"denied"', '"outcome":"allowed"'))
    bad = isolated_env.run("audit", "--verify")
    assert bad.returncode == ExitCode.AUDIT_INVALID == 72
    assert b"edited" in bad.stdout
    assert b"seq 2" in bad.stdout

    as_json = isolated_env.run("--output", "json", "audit", "--verify")
    envelope = json.loads(as_json.stdout)
    assert (envelope["status"], envelope["exit_code"]) == ("error", 72)
    assert envelope["data"]["problems"][0]["kind"] == "edited"
    assert envelope["data"]["problems"][0]["seq"] == 2


def test_verify_and_flush_together_is_a_usage_error(isolated_env: IsolatedEnv) -> None:
    result = isolated_env.run("audit", "--verify", "--flush")
    assert result.returncode == ExitCode.USAGE


def test_flush_with_nothing_pending_needs_no_login(isolated_env: IsolatedEnv) -> None:
    result = isolated_env.run("audit", "--flush")
    assert result.returncode == 0, result.stderr
    assert b"nothing to deliver" in result.stdout
