"""`jitkube check [options] -- kubectl ARGS…`: judge a command without running it.

Hot path: stdlib and jitkube core only. Options are parsed by hand because argparse
alone costs more start-up time than the whole judgement (see benchmarks/check_startup.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jitkube import envelope
from jitkube.dataclass_lite import dataclass
from jitkube.environment import Environment
from jitkube.errors import ExitCode, UsageError
from jitkube.judge import Judgement, judge, judgement_data, strip_kubectl_word
from jitkube.policy import Action, DecisionContext, Policy, default_policy, load_policy_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    pass

USAGE = (
    "usage: jitkube check [--agent] [--non-interactive] [--policy FILE] "
    "[--namespace-default NS] [--cluster NAME] [--role NAME] [--output json] "
    "-- [kubectl] ARGS…"
)

_VALUE_OPTIONS = ("--policy", "--namespace-default", "--cluster", "--role", "--kubectl")
_BOOL_OPTIONS = ("--agent", "--non-interactive")


HELP = f"""{USAGE}

Judge a kubectl command without running it: parse it as kubectl would, assess its risk
class and reasons, and apply the policy. Nothing is sent anywhere.

options:
  --agent               judge as for an AI agent (also JITKUBE_AGENT)
  --non-interactive     judge as if no human can answer a prompt
  --policy FILE         use this policy instead of the shipped default
  --namespace-default NS  the namespace the context would use (default: default)
  --cluster NAME, --role NAME  match policy rules on cluster and role
  --kubectl PATH        kubectl used to render -k directories (also JITKUBE_KUBECTL)
  --output json         print the versioned JSON envelope

exit codes: 0 allow, 65 deny, 66 confirm or approve needed, 64 usage error.
"""


class HelpRequested(Exception):
    """`jitkube check --help`: print HELP on stdout and exit 0."""


@dataclass
class CheckOptions:
    agent: bool = False
    non_interactive: bool = False
    policy: str | None = None
    namespace_default: str = "default"
    cluster: str = ""
    role: str = ""
    kubectl: str = "kubectl"
    kubectl_argv: tuple[str, ...] = ()


def parse_check_args(args: Sequence[str], kubectl_default: str = "kubectl") -> CheckOptions:
    opts = CheckOptions()
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            raise HelpRequested
        if arg in _BOOL_OPTIONS:
            setattr(opts, arg[2:].replace("-", "_"), True)
        elif arg.partition("=")[0] in _VALUE_OPTIONS:
            name, eq, value = arg.partition("=")
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"{name} needs a value", hint=USAGE)
                i += 1
                value = args[i]
            values[name[2:].replace("-", "_")] = value
        elif arg.startswith("-"):
            raise UsageError(
                f"unknown check option {arg!r}; put the kubectl command after --", hint=USAGE
            )
        else:
            break
        i += 1
    for key, value in values.items():
        setattr(opts, key, value)
    if "kubectl" not in values:
        opts.kubectl = kubectl_default
    opts.kubectl_argv = tuple(strip_kubectl_word(args[i:]))
    if not opts.kubectl_argv:
        raise UsageError("no kubectl command to check", hint=USAGE)
    return opts


def _load_policy(path: str | None) -> Policy:
    if path is None:
        return default_policy()
    return load_policy_file(Path(path))


EXIT_BY_ACTION = {
    Action.ALLOW: ExitCode.OK,
    Action.CONFIRM: ExitCode.APPROVAL_REQUIRED,
    Action.APPROVE: ExitCode.APPROVAL_REQUIRED,
    Action.DENY: ExitCode.DENIED,
}
STATUS_BY_ACTION = {
    Action.ALLOW: "ok",
    Action.CONFIRM: "approval_required",
    Action.APPROVE: "approval_required",
    Action.DENY: "denied",
}


def render_text(j: Judgement) -> str:
    data = judgement_data(j)
    inv = data["invocation"]
    ns = inv["namespace"] if inv["namespace"] else "(context default)"
    if inv["all_namespaces"]:
        ns = "(all namespaces)"
    lines = [
        f"command:    {inv['command'] or '(unknown)'}",
        f"kinds:      {', '.join(inv['kinds']) or '-'}",
        f"names:      {', '.join(inv['names']) or '-'}",
        f"namespace:  {ns}",
    ]
    if inv["dry_run"] != "none":
        lines.append(f"dry run:    {inv['dry_run']}")
    if inv["files"]:
        lines.append(f"manifests:  {', '.join(inv['files'])}")
    lines.append(f"class:      {data['class']}")
    secret = "may appear in the output" if data["exposes_secret_values"] else "no"
    lines.append(f"secrets:    {secret}")
    lines.append(f"decision:   {data['decision']} (rule: {data['rule']})")
    if data["reasons"]:
        lines.append("reasons:")
        lines.extend(f"  - {r}" for r in data["reasons"])
    return "\n".join(lines) + "\n"


def check_main(args: Sequence[str], env: Environment) -> int:
    try:
        opts = parse_check_args(args, env.environ.get("JITKUBE_KUBECTL", "kubectl"))
    except HelpRequested:
        env.stdout.write(HELP)
        return int(ExitCode.OK)
    policy = _load_policy(opts.policy)
    agent = opts.agent or bool(env.environ.get("JITKUBE_AGENT"))
    context = DecisionContext(
        agent=agent,
        interactive=not (agent or opts.non_interactive or env.non_interactive),
        cluster=opts.cluster,
        role=opts.role,
        namespace_default=opts.namespace_default,
    )
    j = judge(
        opts.kubectl_argv,
        context,
        policy,
        read_stdin=env.stdin.read,
        kubectl_path=opts.kubectl,
    )
    code = EXIT_BY_ACTION[j.decision.action]
    if env.json_output:
        env.stdout.write(
            envelope.dumps(
                envelope.build(
                    "check", STATUS_BY_ACTION[j.decision.action], code, judgement_data(j)
                )
            )
            + "\n"
        )
    else:
        env.stdout.write(render_text(j))
    return int(code)
