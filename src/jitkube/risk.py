"""Risk classes and the judgement of one kubectl invocation.

`assess(invocation, manifests)` is pure: it reads no files and opens no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class RiskClass(IntEnum):
    """Ordered by severity; a command gets the maximum over everything it touches.

    `BYPASS` and `UNKNOWN` are refusals: commands that would change which cluster or
    identity kubectl talks to, and commands jitkube cannot understand. Both fail closed.
    """

    READ = 0
    SENSITIVE_READ = 1
    WRITE = 2
    DESTRUCTIVE = 3
    CREDENTIAL_EXPOSURE = 4
    PRIVILEGE_ESCALATION = 5
    BYPASS = 6
    UNKNOWN = 7

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> RiskClass:
        try:
            return cls[label.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown risk class {label!r}") from None


@dataclass(frozen=True, slots=True)
class Reason:
    """One human-readable reason, with the class it alone would give."""

    risk: RiskClass
    text: str


@dataclass(frozen=True, slots=True)
class Assessment:
    """The judgement of one invocation, before policy.

    `risk` is the maximum over `reasons`. `exposes_secret_values` is True when the output
    may carry secret values (the runner then masks it). `namespaces` are the effective
    namespaces touched (from argv or manifests; "" = context default); `kinds` include
    every object of -f/-k manifests.
    """

    risk: RiskClass
    reasons: tuple[Reason, ...]
    exposes_secret_values: bool
    kinds: tuple[str, ...]
    namespaces: tuple[str, ...]
    mutating: bool
    cluster_scoped: bool = False
