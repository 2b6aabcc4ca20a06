"""The judgement pipeline shared by `jitkube check` and `jitkube kubectl`.

parse → read manifests (only when -f/-k are used) → assess → decide. Pure apart from
reading the manifest files the command names; stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jitkube.dataclass_lite import dataclass
from jitkube.kubectl.invocation import Invocation
from jitkube.kubectl.parser import parse
from jitkube.policy import Decision, DecisionContext, Policy, decide
from jitkube.risk import Assessment, assess

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

    from jitkube.kubectl.manifests import ManifestSet

# A manifest on stdin larger than this is refused rather than buffered without bound.
STDIN_LIMIT = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Judgement:
    invocation: Invocation
    manifests: ManifestSet | None
    assessment: Assessment
    decision: Decision
    stdin: bytes | None  # the buffered stdin manifest, to hand to kubectl unchanged


def strip_kubectl_word(argv: Sequence[str]) -> list[str]:
    """`jitkube check -- kubectl get pods` and `… -- get pods` mean the same."""
    args = list(argv)
    if args and args[0] == "kubectl":
        args = args[1:]
    return args


def judge(
    kubectl_argv: Sequence[str],
    context: DecisionContext,
    policy: Policy,
    *,
    read_stdin: Callable[[int], bytes] | None = None,
    kubectl_path: str = "kubectl",
) -> Judgement:
    """Judge one kubectl argv (without the leading `kubectl`)."""
    invocation = parse(kubectl_argv)
    manifests: ManifestSet | None = None
    stdin: bytes | None = None
    if (invocation.files or invocation.flags.get("patch-file")) and not invocation.problems:
        # Imported here: most commands name no manifest, and the hot path stays lean.
        from jitkube.kubectl.manifests import read_manifests

        if any(f.kind == "stdin" for f in invocation.files) and read_stdin is not None:
            stdin = read_stdin(STDIN_LIMIT + 1)
        manifests = read_manifests(invocation, stdin=stdin, kubectl=kubectl_path)
    assessment = assess(invocation, manifests)
    decision = decide(assessment, context, policy, command=invocation.command)
    return Judgement(invocation, manifests, assessment, decision, stdin)


def judgement_data(j: Judgement) -> dict[str, Any]:
    """The judgement as plain data: the `data` of check's envelope and of refusal lines on
    the kubectl path, and the summary in audit records."""
    inv = j.invocation
    return {
        "class": j.assessment.risk.label,
        "decision": j.decision.action.label,
        "rule": j.decision.rule,
        "reasons": [r.text for r in j.assessment.reasons] + list(j.decision.reasons),
        "exposes_secret_values": j.assessment.exposes_secret_values,
        "invocation": {
            "command": inv.command_name,
            "kinds": list(j.assessment.kinds or inv.kinds),
            "names": list(inv.names),
            "namespace": inv.namespace,
            "namespaces": list(j.assessment.namespaces),
            "all_namespaces": inv.all_namespaces,
            "dry_run": inv.dry_run,
            "output": inv.output,
            "files": [f.path for f in inv.files],
            "manifest_digest": j.manifests.digest if j.manifests else None,
            "problems": list(inv.problems),
        },
    }
