"""`jitkube kubectl exec -it` gives kubectl the caller's terminal, as bare kubectl has it."""

from __future__ import annotations

import os
import pty
import time

import pytest

from fixtures.sessions_harness import User
from fixtures.terminal import read_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("mode")]


def test_exec_it_passes_a_tty_through_after_approval(alice: User, bob: User) -> None:
    assert alice.run("request", "--role", "admin", "--ttl", "15m").returncode == 0
    argv = [*alice.command, "kubectl", "exec", "-it", "-n", "default",
            "web-7d4b9c6f5-abcde", "--", "sh"]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        os.execve(argv[0], argv, alice.env)  # noqa: S606 - no shell, by design
    try:
        seen = read_until(fd, b"cmd_")
        approval = next(
            w.strip(b"`();,.").decode()
            for w in seen.split()
            if w.strip(b"`();,.").startswith(b"cmd_")
        )
        assert bob.run("approve", approval).returncode == 0
        time.sleep(2)  # kubectl connects and switches the terminal to raw mode
        os.write(fd, b"tty\r")
        seen = read_until(fd, b"/dev/pts/")
        assert b"/dev/pts/" in seen, seen.decode(errors="replace")
        os.write(fd, b"exit 0\r")
        read_until(fd, b"\x00", timeout=10)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
