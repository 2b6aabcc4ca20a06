"""Delivery to a real broker process: outages lose nothing, redelivery is idempotent."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from audit_harness import (
    BrokerProcess,
    broker_client_status,
    broker_events,
    start_broker,
)

from fixtures.env import IsolatedEnv
from jitkube.audit import (
    AuditEntry,
    AuditSpool,
    audit_dir,
    flush_after_command,
    record_invocation,
    spawn_background_flush,
)

pytestmark = [pytest.mark.integration]

SECRETS = ("hunter2", "regpw-9", "tok-abc-123")


def record_some(environ: dict[str, str], n: int) -> None:
    argvs = [
        ["create", "secret", "generic", "db", f"--from-literal=password={SECRETS[0]}"],
        ["create", "secret", "docker-registry", "r", f"--docker-password={SECRETS[1]}"],
        ["get", "pods", f"--token={SECRETS[2]}"],
        ["get", "pods", "-n", "prod"],
    ]
    for i in range(n):
        record_invocation(
            AuditEntry(
                argv=argvs[i % len(argvs)], outcome="allowed", sub="jitkube-ci", exit_code=0
            ),
            environ,
        )


def test_events_spooled_while_the_broker_is_down_are_delivered_after_it_starts(
    isolated_env: IsolatedEnv,
    broker_yaml: Path,
    reserved_port: tuple[int, socket.socket],
    ci_token: str,
    auditor_token: str,
) -> None:
    port, placeholder = reserved_port
    url = f"http://127.0.0.1:{port}"
    environ = isolated_env.env
    record_some(environ, 7)
    spool = AuditSpool(audit_dir(environ))

    down = spool.flush(url, f"Bearer {ci_token}", timeout=2)
    assert down.error_code == "unreachable"
    assert (down.delivered, down.pending, spool.delivery().seq) == (0, 7, 0)
    assert spool.delivery().failures == 1
    assert not spool.flush_due()  # back-off: the hot path does not retry at once

    cli_down = isolated_env.run(
        "audit", "--flush", extra_env={"JITKUBE_BROKER_URL": url, "JITKUBE_ID_TOKEN": ci_token}
    )
    assert cli_down.returncode == 70, cli_down.stderr
    assert b"7 record(s) stay spooled" in cli_down.stderr

    record_some(environ, 3)  # more commands run during the outage
    placeholder.close()
    broker = start_broker(broker_yaml, port=port)
    try:
        assert broker.url == url
        cli = isolated_env.run(
            "--output",
            "json",
            "audit",
            "--flush",
            extra_env={"JITKUBE_BROKER_URL": url, "JITKUBE_ID_TOKEN": ci_token},
        )
        assert cli.returncode == 0, cli.stderr
        result = json.loads(cli.stdout)["data"]
        assert (result["delivered"], result["pending"], result["delivered_seq"]) == (10, 0, 10)

        client_id = spool.client_id()
        events = broker_events(url, auditor_token, client_id)
        assert sorted(e["seq"] for e in events) == list(range(1, 11))
        assert {e["sub"] for e in events} == {"jitkube-ci"}
        status = broker_client_status(url, auditor_token, client_id)
        assert (status["high_water"], status["max_seq"], status["missing"]) == (10, 10, 0)
        assert status["gaps"] == []

        # Redelivery (as after an answer lost on the way back) stores nothing twice.
        (spool.directory / "delivery.json").unlink()
        again = spool.flush(url, f"Bearer {ci_token}")
        assert (again.delivered, again.duplicates, again.error) == (0, 10, None)
        assert len(broker_events(url, auditor_token, client_id)) == 10

        nothing = isolated_env.run(
            "audit", "--flush", extra_env={"JITKUBE_BROKER_URL": url, "JITKUBE_ID_TOKEN": ci_token}
        )
        assert nothing.returncode == 0
        assert b"nothing to deliver" in nothing.stdout
    finally:
        broker.stop()

    # Leak scan: no secret value and no bearer token in any audit file.
    for path in audit_dir(environ).rglob("*"):
        data = path.read_bytes()
        for secret in (*SECRETS, ci_token):
            assert secret.encode() not in data, f"{secret[:8]}… leaked into {path.name}"


def test_broker_copy_matches_the_local_chain_and_holds_no_secret(
    isolated_env: IsolatedEnv, running_broker: BrokerProcess, ci_token: str, auditor_token: str
) -> None:
    environ = isolated_env.env
    record_some(environ, 4)
    spool = AuditSpool(audit_dir(environ))
    result = spool.flush(running_broker.url, f"Bearer {ci_token}")
    assert (result.delivered, result.error) == (4, None)
    local = {r["id"]: r for r in spool.log.records()}
    remote = broker_events(running_broker.url, auditor_token, spool.client_id())
    for event in remote:
        mine = local[event["id"]]
        assert (event["seq"], event["hash"], event["prev"], event["argv"]) == (
            mine["seq"],
            mine["hash"],
            mine["prev"],
            mine["argv"],
        )
    blob = json.dumps(remote)
    for secret in (*SECRETS, ci_token):
        assert secret not in blob


def test_background_flush_delivers_without_the_caller_waiting(
    isolated_env: IsolatedEnv, running_broker: BrokerProcess, ci_token: str, auditor_token: str
) -> None:
    environ = isolated_env.env
    record_some(environ, 5)
    directory = audit_dir(environ)
    started = time.monotonic()
    pid = flush_after_command(environ, running_broker.url, f"Bearer {ci_token}")
    assert pid is not None
    assert time.monotonic() - started < 1.0  # spawning, not delivering
    spool = AuditSpool(directory)
    deadline = time.monotonic() + 20
    while spool.delivery().seq < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spool.delivery().seq == 5
    assert len(broker_events(running_broker.url, auditor_token, spool.client_id())) == 5
    assert flush_after_command(environ, running_broker.url, f"Bearer {ci_token}") is None
    assert ci_token not in (directory / "delivery.json").read_text()


def test_a_refused_token_keeps_everything_spooled(
    isolated_env: IsolatedEnv, running_broker: BrokerProcess
) -> None:
    environ = isolated_env.env
    record_some(environ, 2)
    spool = AuditSpool(audit_dir(environ))
    result = spool.flush(running_broker.url, "Bearer not.a.token")
    assert (result.error_code, result.status, result.pending) == ("unauthorized", 401, 2)
    assert spool.delivery().seq == 0


def test_a_busy_flush_lock_makes_the_background_child_give_way(isolated_env: IsolatedEnv) -> None:
    import fcntl
    import os

    environ = isolated_env.env
    record_some(environ, 1)
    spool = AuditSpool(audit_dir(environ))
    fd = os.open(spool.directory / "flush.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = spool.flush("http://127.0.0.1:9", "Bearer x", wait_for_lock=False)
        assert (result.error_code, result.pending) == ("busy", 1)
    finally:
        os.close(fd)


def test_spawned_child_gets_the_credential_through_a_pipe_not_argv(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    # A stand-in interpreter records what the child would see.
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\ncat > {tmp_path}/stdin\n')
    fake.chmod(0o700)
    pid = spawn_background_flush(
        audit_dir(isolated_env.env), "http://127.0.0.1:9", "Bearer sekrit-xyz", python=str(fake)
    )
    deadline = time.monotonic() + 10
    while not (tmp_path / "stdin").exists() or b"}" not in (tmp_path / "stdin").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert pid > 0
    assert b"sekrit-xyz" not in (tmp_path / "argv").read_bytes()
    job = json.loads((tmp_path / "stdin").read_bytes())
    assert job["auth_header"] == "Bearer sekrit-xyz"
    assert job["directory"] == str(audit_dir(isolated_env.env))


def test_a_lingering_flusher_exits_when_its_directory_is_removed(
    isolated_env: IsolatedEnv,
) -> None:
    """The flusher waits LINGER (15 s) for more records; a demo or test that removes its
    HOME must not leave it behind for that long."""
    import fcntl
    import os
    import shutil

    from jitkube.audit.background import LINGER
    from jitkube.audit.spool import FLUSHER_LOCK

    directory = audit_dir(isolated_env.env)
    directory.mkdir(parents=True, exist_ok=True)
    pid = spawn_background_flush(directory, "http://127.0.0.1:9", "Bearer x")
    lock = os.open(directory / FLUSHER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + 20
        while True:  # until the child holds its presence lock: it is lingering
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                break
            fcntl.flock(lock, fcntl.LOCK_UN)
            assert time.monotonic() < deadline, "the flusher never started"
            time.sleep(0.05)
    finally:
        os.close(lock)
    removed = time.monotonic()
    shutil.rmtree(directory)
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        assert time.monotonic() - removed < LINGER / 2, "the flusher outlived its directory"
        time.sleep(0.05)


def test_an_event_the_broker_refuses_is_skipped_and_shows_as_a_gap(
    isolated_env: IsolatedEnv, running_broker: BrokerProcess, ci_token: str, auditor_token: str
) -> None:
    environ = isolated_env.env
    directory = audit_dir(environ)
    record_some(environ, 1)
    from jitkube.audit import AuditLog

    bad = AuditLog(directory).append({"id": "bad-1", "session_id": "s" * 41, "argv": []})
    record_some(environ, 1)
    spool = AuditSpool(directory)
    result = spool.flush(running_broker.url, f"Bearer {ci_token}")
    assert (result.delivered, result.rejected, result.delivered_seq) == (2, [bad["id"]], 3)
    assert result.error is None
    status = broker_client_status(running_broker.url, auditor_token, spool.client_id())
    assert (status["missing"], status["gaps"]) == (1, [{"first": 2, "last": 2}])
    assert AuditLog(directory).verify() == (3, [])  # still in the local trail


def test_a_tampered_client_id_is_refused_before_sending(isolated_env: IsolatedEnv) -> None:
    environ = isolated_env.env
    record_some(environ, 1)
    spool = AuditSpool(audit_dir(environ))
    (spool.directory / "client-id").write_text("not valid!\n")
    result = spool.flush("http://127.0.0.1:9", "Bearer x")
    assert (result.error_code, result.pending) == ("rejected", 1)
