"""The y/N question for `confirm`: asked on the controlling terminal, never on stdin.

An agent that pipes "y" into jitkube's stdin cannot answer it: stdin belongs to kubectl
(and may carry a manifest). Without a terminal there is nobody to ask: the caller then
files an approval instead.
"""

from __future__ import annotations


def confirm_on_tty(question: str) -> bool | None:
    """True/False as answered on /dev/tty; None when there is no terminal to ask."""
    try:
        tty = open("/dev/tty", "r+", encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return None
    with tty:
        try:
            tty.write(question + " [y/N] ")
            tty.flush()
            answer = tty.readline()
        except (OSError, KeyboardInterrupt):
            tty.write("\n")
            return False
    return answer.strip().lower() in ("y", "yes")
