"""Units of the session commands: durations, broker problem codes, the cache file, rendering."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from jitkube import session_cache
from jitkube.client.broker import problem_error
from jitkube.client.durations import format_duration, parse_duration
from jitkube.errors import ExitCode, UsageError
from jitkube.session_cache import AmbiguousSessionError, CachedSession

NOW = 1_900_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15m", 900),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2H", 7200),
        ("90s", 90),
        ("1d", 86_400),
        ("1h0m30s", 3630),
    ],
)
def test_human_durations_are_parsed(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "15x", "m15", "1h1h", "-15m", "1.5h", "15 minutes"])
def test_anything_else_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text, option="--ttl")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (900, "15m 00s"),
        (899, "14m 59s"),
        (5400, "1h 30m"),
        (90_000, "1d 1h"),
    ],
)
def test_durations_are_formatted_for_people(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (401, "unauthorized", ExitCode.LOGIN_REQUIRED),
        (403, "self_approval", ExitCode.DENIED),
        (403, "not_a_reviewer", ExitCode.DENIED),
        (403, "not_requestable", ExitCode.DENIED),
        (403, "denied_by_policy", ExitCode.DENIED),
        (404, "not_found", ExitCode.USAGE),
        (409, "already_decided", ExitCode.USAGE),
        (409, "session_not_active", ExitCode.SESSION_REQUIRED),
        (409, "approval_not_usable", ExitCode.APPROVAL_REFUSED),
        (422, "validation", ExitCode.USAGE),
        (429, "rate_limited", ExitCode.BROKER_UNREACHABLE),
        (502, "sts_unavailable", ExitCode.BROKER_UNREACHABLE),
        (503, "unavailable", ExitCode.BROKER_UNREACHABLE),
        (500, "", ExitCode.BROKER_UNREACHABLE),  # a proxy's HTML error page
        (418, "", ExitCode.USAGE),
    ],
)
def test_broker_problem_codes_map_to_documented_exit_codes(
    status: int, code: str, exit_code: ExitCode
) -> None:
    body = {"code": code, "detail": "why\nit\x1b[31m failed"} if code else None
    error = problem_error(status, body)
    assert error.exit_code == exit_code
    assert error.code == (code or error.code)
    assert "\n" not in error.message
    assert "\x1b" not in error.message


def test_a_refused_session_token_means_a_new_session_not_a_new_login() -> None:
    error = problem_error(401, {"code": "unauthorized", "detail": "invalid"}, session_auth=True)
    assert error.exit_code == ExitCode.SESSION_REQUIRED


# -- the cache file ------------------------------------------------------------------------


def _session(**changes: object) -> CachedSession:
    base = CachedSession(
        session_id="ses_0123",
        broker_url="https://broker.example.test",
        cluster="prod",
        role="viewer",
        status="active",
        session_token="jks.ses_0123.s3cr3t-session-token",
        expires_at=NOW + 900,
        eks_token="k8s-aws-v1.s3cr3t-eks-token",
        eks_token_expires_at=NOW + 840,
        cluster_endpoint="https://prod.eks.test",
        cluster_ca="LS0t",
        policy={"version": 1, "rules": []},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _environ(tmp_path: Path, runtime: bool = True) -> dict[str, str]:
    env = {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}
    if runtime:
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    return env


def test_the_cache_lives_in_the_runtime_dir_else_the_state_dir(tmp_path: Path) -> None:
    with_runtime = session_cache.save(_environ(tmp_path), _session())
    without = session_cache.save(_environ(tmp_path, runtime=False), _session())

    assert with_runtime.path == tmp_path / "run" / "jitkube" / "sessions" / (
        with_runtime.key + ".json"
    )
    assert without.path == tmp_path / "state" / "jitkube" / "sessions" / (without.key + ".json")
    for path in (with_runtime.path, without.path):
        assert path is not None
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
        assert sorted(os.listdir(path.parent)) == [path.name]  # no temp file left behind


def test_the_file_format_round_trips(tmp_path: Path) -> None:
    env = _environ(tmp_path)
    saved = session_cache.save(env, _session())
    assert saved.path is not None
    data = json.loads(saved.path.read_text())
    assert data["version"] == 1
    assert set(data) == {
        "version",
        "session_id",
        "broker_url",
        "cluster",
        "role",
        "status",
        "session_token",
        "expires_at",
        "eks_token",
        "eks_token_expires_at",
        "cluster_endpoint",
        "cluster_ca",
        "policy",
        "ca_bundle",
        "owner",
        "owner_sub",
        "owner_groups",
        "agent_name",
        "agent",
        "reason",
        "delivery",
        "saved_at",
    }
    loaded = session_cache.load(env, "prod", "viewer", now=NOW)
    assert loaded == saved


def test_one_entry_per_broker_cluster_and_role(tmp_path: Path) -> None:
    env = _environ(tmp_path)
    session_cache.save(env, _session())
    session_cache.save(env, _session(session_id="ses_newer"))
    session_cache.save(env, _session(session_id="ses_dev", cluster="dev"))

    assert sorted(s.session_id for s in session_cache.list_sessions(env)) == [
        "ses_dev",
        "ses_newer",
    ]
    loaded = session_cache.load(env, "prod", now=NOW)
    assert loaded is not None
    assert loaded.session_id == "ses_newer"
    with pytest.raises(AmbiguousSessionError) as caught:
        session_cache.load(env, now=NOW)
    assert caught.value.exit_code == ExitCode.USAGE


def test_expired_entries_are_ignored_and_removed_by_load(tmp_path: Path) -> None:
    env = _environ(tmp_path)
    saved = session_cache.save(env, _session())
    assert saved.path is not None

    assert session_cache.load(env, now=NOW + 899) is not None
    assert session_cache.load(env, now=NOW + 900) is None
    assert not saved.path.exists()


def test_remove_by_id_and_remove_everything(tmp_path: Path) -> None:
    env = _environ(tmp_path)
    session_cache.save(env, _session())
    session_cache.save(env, _session(session_id="ses_dev", cluster="dev"))

    assert [s.session_id for s in session_cache.remove(env, "ses_dev")] == ["ses_dev"]
    assert [s.session_id for s in session_cache.remove(env)] == ["ses_0123"]
    assert session_cache.list_sessions(env) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.chmod(0o644),  # readable by others: not trusted
        lambda p: p.write_text("{not json"),
        lambda p: p.write_text(json.dumps({"version": 99})),
        lambda p: p.write_text(json.dumps({"version": 1, "session_id": 5})),
    ],
)
def test_a_file_that_is_not_private_or_not_ours_is_never_used(
    tmp_path: Path, damage: object
) -> None:
    env = _environ(tmp_path)
    saved = session_cache.save(env, _session())
    assert saved.path is not None
    damage(saved.path)  # type: ignore[operator]
    assert session_cache.load(env, now=NOW) is None


def test_a_widened_cache_directory_is_tightened(tmp_path: Path) -> None:
    env = _environ(tmp_path)
    directory = session_cache.cache_dir(env)
    directory.mkdir(parents=True, mode=0o755)
    directory.chmod(0o755)
    session_cache.save(env, _session())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_tokens_stay_out_of_repr_and_the_public_view() -> None:
    session = _session()
    shown = repr(session) + json.dumps(session.public(NOW))
    assert "s3cr3t" not in shown
    assert session.public(NOW)["remaining_seconds"] == 900
    assert session.public(NOW + 901)["status"] == "expired"


def test_a_fresh_token_needs_no_network() -> None:
    session = _session(broker_url="http://127.0.0.1:9")  # nothing listens on port 9
    assert session_cache.fresh_eks_token(session, now=NOW) is session
    assert session.eks_token_due(NOW + 780)
    assert not session.eks_token_due(NOW + 779)


def test_the_cache_module_keeps_to_the_hot_path_budget(tmp_path: Path) -> None:
    """Loading and checking a cached session imports no heavy module (nor urllib/ssl)."""
    env = _environ(tmp_path)
    session_cache.save(env, _session(expires_at=4_000_000_000.0, eks_token_expires_at=4e9))
    code = textwrap.dedent(
        f"""
        import sys
        from jitkube import session_cache
        s = session_cache.load({env!r}, "prod", "viewer")
        assert s is not None
        assert session_cache.fresh_eks_token(s) is s
        heavy = {{"typer", "rich", "requests", "boto3", "botocore", "msal", "keyring",
                 "pydantic", "urllib.request", "ssl", "http.client"}}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


# -- rendering (Rich at a fixed width) -----------------------------------------------------


def _render(renderable: object, width: int = 100) -> str:
    from rich.console import Console

    from jitkube.cli.sessions import print_text

    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, highlight=False, color_system=None)
    print_text(console, renderable)
    return out.getvalue()


SESSION_VIEW = {
    "id": "ses_7ecf35bbbc113682a627",
    "status": "active",
    "role": "admin",
    "cluster": "prod",
    "cluster_endpoint": "https://prod.eks.test",
    "expires_at": "2030-03-17T17:46:40Z",
    "reason": "INC-123 \x1b[31mred",
    "agent_name": "claude",
    "ttl": 5400,
    "approvals_required": 1,
    "approvals": [],
}


def test_the_active_session_panel() -> None:
    from jitkube.cli.sessions import render_session_panel

    now = 1_900_000_000.0 - 5000  # 5000 s before the end
    text = _render(render_session_panel(SESSION_VIEW, now))
    assert text == textwrap.dedent(
        """\
        ╭────── jitkube session active ───────╮
        │ session    ses_7ecf35bbbc113682a627 │
        │ role       admin                    │
        │ cluster    prod                     │
        │ endpoint   https://prod.eks.test    │
        │ expires    2030-03-17 17:46:40 UTC  │
        │ remaining  1h 23m                   │
        │ reason     INC-123 [31mred          │
        │ agent      claude                   │
        ╰─────────────────────────────────────╯
        """
    )


def test_the_waiting_line_says_who_was_asked() -> None:
    from jitkube.cli.sessions import waiting_line

    pending = {**SESSION_VIEW, "status": "pending", "approvals_required": 2}
    assert waiting_line(pending) == (
        "Waiting for reviewers of role admin to approve ses_7ecf35bbbc113682a627 "
        "(admin@prod): 0/2 approvals"
    )
    voted = {
        **pending,
        "approver_groups": ["reviewers"],
        "approvals": [{"reviewer": "bob@example.test", "decision": "approve"}],
    }
    assert waiting_line(voted).endswith("1/2 approvals (approved by bob@example.test)")
    assert "a reviewer in group reviewers" in waiting_line(voted)


PENDING_COMMAND = {
    "id": "cmd_1",
    "requester": "alice",
    "argv": ["delete", "deployment", "checkout-service-with-a-long-name", "-n", "prod"],
    "cluster": "prod",
    "namespace": "prod",
    "risk": "destructive",
    "reasons": ["deletes objects", "[bold]protected[/bold] namespace prod"],
    "created_at": "2030-03-17T17:46:40Z",
}


def test_the_approvals_table_fits_100_columns_and_shows_commands_whole() -> None:
    from jitkube.cli.sessions import render_approvals

    command = PENDING_COMMAND
    session = {**SESSION_VIEW, "owner": {"email": "alice@example.test"}, "created_at": None}
    text = _render(render_approvals([session], [command], 1_900_000_000.0 + 60))
    lines = text.splitlines()
    table_lines = lines[: lines.index("Commands in full:")]
    assert all(len(line) <= 100 for line in table_lines)
    assert (
        "cmd_1: kubectl delete deployment checkout-service-with-a-long-name -n prod "
        "[cluster prod, namespace prod]" in lines
    )
    assert "[bold]" in text
    assert "1m 00s" in text
    assert "…" not in text  # folded if need be, never cut off
    assert "destructive" in text
    assert "\x1b" not in text


def test_on_an_80_column_terminal_approvals_are_listed_without_folding_words() -> None:
    from jitkube.cli.sessions import render_approvals

    command = {
        **PENDING_COMMAND,
        "requester": "alice@example.test",
        "argv": ["delete", "pod", "worker-0", "-n", "prod"],
    }
    session = {**SESSION_VIEW, "owner": {"email": "alice@example.test"}, "created_at": None}
    text = _render(render_approvals([session], [command], 1_900_000_000.0 + 60, 80), width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines if not line.startswith("  what:"))
    assert "  who:     alice@example.test" in lines
    assert "  class:   destructive" in lines
    assert "  reasons: deletes objects; [bold]protected[/bold] namespace prod" in lines
    assert "cmd_1  (1m 00s ago)" in lines
    assert any(line.startswith(f"{SESSION_VIEW['id']}") for line in lines)
    assert "  what:    kubectl delete pod worker-0 -n prod [cluster prod, namespace prod]" in lines


def test_request_envelope_data_is_pinned() -> None:
    from jitkube.cli.sessions import REQUEST_KEYS, request_data
    from jitkube.client.sessions import RequestOutcome

    assert REQUEST_KEYS == (
        "id",
        "status",
        "role",
        "cluster",
        "ttl_seconds",
        "expires_at",
        "remaining_seconds",
        "request_expires_at",
        "reason",
        "agent",
        "agent_name",
        "break_glass",
        "approvals_required",
        "approvals",
        "cluster_endpoint",
        "cached",
    )
    data = request_data(RequestOutcome("active", dict(SESSION_VIEW)), 1_900_000_000.0 - 5400)
    assert list(data) == list(REQUEST_KEYS)
    assert data["remaining_seconds"] == 5400
    assert data["cached"] is False


@pytest.mark.parametrize("reason", ["audience", "issuer"])
def test_a_token_the_broker_can_never_accept_does_not_send_the_user_to_log_in_again(
    reason: str,
) -> None:
    # The broker says why (tests/broker/test_auth.py checks it sends `reason`): logging in
    # again gets the same kind of token.
    error = problem_error(401, {"code": "unauthorized", "detail": "x", "reason": reason})
    assert error.exit_code == ExitCode.LOGIN_REQUIRED
    assert error.hint is not None
    assert "jitkube login" not in error.hint
    assert "oidc.audience" in error.hint
    plain = problem_error(401, {"code": "unauthorized", "detail": "x", "reason": "invalid"})
    assert plain.hint == "run `jitkube login`"
