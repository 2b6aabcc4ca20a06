"""`jitkube kubectl ARGS…`: the command an agent types instead of `kubectl`.

Stdlib and jitkube core only (tests/test_hot_path_imports.py enforces it). Today the
path judges the command and refuses what policy denies; running kubectl with session
credentials arrives with sessions (issues "Identity and sessions", "Guarded kubectl").
"""

from __future__ import annotations

from collections.abc import Sequence

from jitkube.environment import Environment
from jitkube.errors import DeniedError, SessionRequiredError
from jitkube.judge import judge
from jitkube.policy import Action, DecisionContext, default_policy


def kubectl_main(args: Sequence[str], env: Environment) -> int:
    agent = bool(env.environ.get("JITKUBE_AGENT"))
    context = DecisionContext(agent=agent, interactive=env.interactive and not agent)
    j = judge(
        args,
        context,
        default_policy(),
        read_stdin=env.stdin.read,
        kubectl_path=env.environ.get("JITKUBE_KUBECTL", "kubectl"),
    )
    if j.decision.action is Action.DENY:
        reasons = [r.text for r in j.assessment.reasons] + list(j.decision.reasons)
        raise DeniedError(
            f"denied by policy rule {j.decision.rule!r} ({j.assessment.risk.label}): "
            + "; ".join(reasons[:3]),
            hint="ask a human to change the policy, or use a command the policy allows",
        )
    raise SessionRequiredError(
        "no active jitkube session: this version judges commands but cannot run them yet",
        hint="see `jitkube check -- kubectl …` for the judgement of a command",
    )
