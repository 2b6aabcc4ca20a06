"""`confirm` asks on the terminal (never stdin) and only a "y" there runs the command."""

from __future__ import annotations

import os
import pty
from typing import Any

import pytest

from fixtures.sessions_harness import User
from fixtures.terminal import read_until
from jitkube.kubectl.resources import resolve_type

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("mode")]
PODS = resolve_type("pods")


def _run_on_a_terminal(user: User, answer: bytes, *argv: str) -> tuple[int, bytes]:
    args = [*user.command, *argv]
    pid, fd = pty.fork()
    if pid == 0:  # a session leader whose controlling terminal is the pty
        os.execve(args[0], args, user.env)  # noqa: S606 - no shell, by design
    try:
        seen = read_until(fd, b"[y/N]")
        assert b"[y/N]" in seen, seen.decode(errors="replace")
        os.write(fd, answer + b"\r")
        seen += read_until(fd, b"\x00", timeout=30)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


@pytest.mark.parametrize(("answer", "runs"), [(b"y", True), (b"n", False)])
def test_a_human_confirms_a_destructive_command_on_the_terminal(
    alice: User, sandbox: Any, answer: bytes, runs: bool
) -> None:
    assert alice.run("request", "--role", "admin", "--ttl", "15m").returncode == 0
    before = len(sandbox.cluster.requests)
    code, seen = _run_on_a_terminal(
        alice, answer, "kubectl", "delete", "pod", "web-7d4b9c6f5-abcde", "-n", "default"
    )
    text = seen.decode(errors="replace")
    assert "class: destructive" in text
    if runs:
        assert code == 0, text
        assert not sandbox.cluster.store.exists(PODS, "default", "web-7d4b9c6f5-abcde")
    else:
        assert code == 67, text
        assert sandbox.cluster.store.exists(PODS, "default", "web-7d4b9c6f5-abcde")
        assert len(sandbox.cluster.requests) == before  # nothing reached the cluster
