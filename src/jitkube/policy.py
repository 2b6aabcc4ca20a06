"""Policy: ordered rules that turn an assessment into allow / confirm / approve / deny."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Action(IntEnum):
    """Ordered: a later rule or modifier may raise, never silently lower."""

    ALLOW = 0
    CONFIRM = 1
    APPROVE = 2
    DENY = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """Who asks, where. `interactive` is True only when a human can answer on /dev/tty."""

    agent: bool = False
    interactive: bool = False
    cluster: str = ""
    role: str = ""
    namespace_default: str = "default"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    rule: str  # name of the rule that decided, "default" when none matched
    reasons: tuple[str, ...]
