"""The process environment jitkube runs in, injectable for tests (like httpie's Environment).

Stdlib only: the hot path builds one on every call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from jitkube.dataclass_lite import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

_TRUE = {"1", "true", "yes", "on"}
_UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, what: str = "duration") -> float:
    """`15m`, `1h30m`, `90s` or plain seconds → seconds. Raises UsageError otherwise."""
    from jitkube.errors import UsageError

    raw = text.strip().lower()
    if raw.isdigit():
        return float(raw)
    total, number = 0, ""
    for ch in raw:
        if ch.isdigit():
            number += ch
        elif ch in _UNITS and number:
            total += int(number) * _UNITS[ch]
            number = ""
        else:
            number = "x"
            break
    if number or total <= 0:
        raise UsageError(f"{what}: {text!r} is not a duration like 15m, 1h30m or 90s")
    return float(total)


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in _TRUE


@dataclass
class Environment:
    """Streams, variables and global switches of one jitkube run."""

    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    debug: bool = False
    json_output: bool = False
    non_interactive: bool = False
    # Options of the guarded kubectl path (given before `kubectl`, or as JITKUBE_* vars).
    agent: str | None = None
    no_wait: bool = False
    unmask: bool = False  # `jitkube --unmask kubectl …`: show values, after policy's `unmask`
    approval_timeout: float = 600.0
    reason: str = ""

    @classmethod
    def from_process(cls) -> Environment:
        env = cls()
        env.debug = env_flag(env.environ, "JITKUBE_DEBUG")
        env.json_output = env.environ.get("JITKUBE_OUTPUT", "").strip().lower() == "json"
        env.non_interactive = env_flag(env.environ, "JITKUBE_NON_INTERACTIVE") or env_flag(
            env.environ, "CI"
        )
        env.no_wait = env_flag(env.environ, "JITKUBE_NO_WAIT")
        timeout = env.environ.get("JITKUBE_APPROVAL_TIMEOUT", "").strip()
        if timeout:
            env.approval_timeout = parse_duration(timeout, "JITKUBE_APPROVAL_TIMEOUT")
        env.reason = env.environ.get("JITKUBE_REASON", "")
        return env

    @property
    def stdin_isatty(self) -> bool:
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def interactive(self) -> bool:
        """A human may be at a terminal: not forced non-interactive and stderr is a TTY."""
        if self.non_interactive:
            return False
        try:
            return self.stderr.isatty()
        except (AttributeError, ValueError):
            return False
