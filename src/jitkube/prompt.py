"""The y/N question for `confirm`: asked on the controlling terminal, never on stdin.

An agent that pipes "y" into jitkube's stdin cannot answer it: stdin belongs to kubectl
(and may carry a manifest). Without a terminal there is nobody to ask: the caller then
files an approval instead.
"""

from __future__ import annotations

import contextlib
import os

_MAX_ANSWER = 256
# The caller's terminal when a warm-server worker runs this call (jitkube.warm_server): the
# worker has no controlling terminal of its own, so the front end passes its /dev/tty.
TTY_FD: int | None = None


def confirm_on_tty(question: str) -> bool | None:
    """True/False as answered on /dev/tty; None when there is no terminal to ask."""
    # Raw file descriptors: a text-mode "r+" stream on a tty is not seekable and fails.
    try:
        fd = os.dup(TTY_FD) if TTY_FD is not None else os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        os.write(fd, (question + " [y/N] ").encode("utf-8", errors="replace"))
        answer = b""
        while not answer.endswith(b"\n") and len(answer) < _MAX_ANSWER:
            chunk = os.read(fd, 64)
            if not chunk:
                break
            answer += chunk
    except (OSError, KeyboardInterrupt):
        with contextlib.suppress(OSError):
            os.write(fd, b"\n")
        return False
    finally:
        os.close(fd)
    return answer.strip().lower() in (b"y", b"yes")
