"""Attack on the classification speed-up (1c32f0b): new judgements against the old code.

The speed-up added fast paths (first-word command lookup, TYPE without a comma, TYPE/NAME
counting, one `_FORMS` lookup, `_HAS_SPECIFICS`, cached command reasons, rule bit masks,
a shared Decision cache, dataclass_lite's slot fast path). Each is only safe if every
judgement stays exactly what the baseline (BASE_COMMIT, as in
test_classify_differential.py) gave. Here the argv aim at those paths (every command path
of the grammar, with and without aliases, every TYPE form, flag placement around `--`,
clustered and repeated flags) and the policies at the masks (every match condition,
repeated rule shapes, rules that differ in one condition) while one policy object, and
so its caches, serves many contexts in a row.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitkube.judge as new_judge
import jitkube.policy as new_policy
from fixtures.classify_baseline import BASE, SKIP_REASON
from fixtures.classify_baseline import judgement as _judgement
from fixtures.classify_baseline import swapped_modules as _modules
from jitkube.dataclass_lite import FrozenInstanceError, dataclass, field
from jitkube.kubectl import grammar
from jitkube.risk import REASON_CODES, RiskClass

needs_baseline = pytest.mark.skipif(BASE is None, reason=SKIP_REASON)


class _Side:
    """One side's policy objects (built once, then reused: their caches are shared)."""

    def __init__(self, policy_mod: ModuleType, modules: dict[str, ModuleType] | None) -> None:
        self.policy_mod = policy_mod
        self.modules = modules

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        if self.modules is None:
            yield
        else:
            with _modules(self.modules):
                yield


def _new_side() -> _Side:
    return _Side(new_policy, None)


def _base_side() -> _Side:
    assert BASE is not None
    return _Side(BASE[1], BASE[2])


def _build(side: _Side, policy: dict[str, Any] | None, contexts: list[dict[str, Any]]) -> Any:
    with side.active():
        mod = side.policy_mod
        built = mod.default_policy() if policy is None else mod.policy_from_dict(policy)
        return built, [mod.DecisionContext(**c) for c in contexts]


def _judge_all(
    side: _Side, judge_mod: ModuleType, built: Any, calls: Sequence[tuple[Sequence[str], int]]
) -> list[Any]:
    policy, contexts = built
    with side.active():
        return [_judgement(judge_mod, argv, contexts[c], policy) for argv, c in calls]


def _compare(
    policy: dict[str, Any] | None,
    contexts: list[dict[str, Any]],
    calls: Sequence[tuple[Sequence[str], int]],
) -> None:
    """Judge `calls` (argv, context index) in order on each side with ONE policy object per
    side, so the new side's caches carry over from call to call."""
    assert BASE is not None
    new, base = _new_side(), _base_side()
    got = _judge_all(new, new_judge, _build(new, policy, contexts), calls)
    want = _judge_all(base, BASE[0], _build(base, policy, contexts), calls)
    for (argv, c), g, w in zip(calls, got, want, strict=True):
        if g != w:
            where = next(i for i, (x, y) in enumerate(zip(g, w, strict=False)) if x != y)
            shown = 1 if where == 0 and g[0] != "raised" and w[0] != "raised" else where
            pytest.fail(
                f"argv {list(argv)!r} under context {contexts[c]} / policy {policy}: judged "
                f"differently (part {where})\nnew:  {g[shown]!r}\nbase: {w[shown]!r}"
            )


# -- argv aimed at the parser's fast paths

_PATHS = sorted(grammar.COMMANDS)
_ALIASED = [
    (*path[:-1], alias) for path, node in grammar.COMMANDS.items() for alias in node.aliases
]
_RESOURCE_ARGS = [
    "pods", "po", "pod", "Pods", "PODS", "pods,secrets", "secrets,pods", "pods,pods", "pods,",
    ",pods", "pods,,secrets", ",", "secret/x", "secrets/x", "Secret/x", "secret/", "/x",
    "secret/x/y", "secret,pods/x", "secrets.v1.", "secrets.v1", "Secret", "SECRETS", "secret",
    "sa", "cm", "deploy", "deployments.apps", "deployments.v1.apps", "deploy/web",
    "foo.example.com", "foo.example.com/x", "Foo.Example.Com", "widgets.example.com,secrets",
    "all", "all,secrets", "api-extensions", "crd", "nodes", "node/n1", "no", "ns", "ns/prod",
    "namespaces", "clusterrolebindings", "csr", "certificatesigningrequests/x", "events",
    "ev", "pv", "pvc", "rs", "sts", "ds", "cj", "job/x", "cronjob/x", "cronjobs/x", "cj/x",
    "", " ", "x", "y", "web", "ü", "secrets ", " secrets", "pods\t", "a=b", "k=v:NoExecute",
    "key-", "-", "=x", "ns/pod:/tmp", "pod:/x", "/tmp/y",
    "pod-security.kubernetes.io/enforce=privileged", "9090:80", "0.0.0.0", "svc/web",
    "service/web", "sh", "env", "secret:/x",
]  # fmt: skip
_VALUES = [
    "", "x", "true", "false", "True", "1", "0", "t", "f", "prod", "kube-system", "dev",
    "default", "team-a1", "yaml", "json", "name", "wide", "jsonpath={.data}",
    "go-template={{.data}}", "custom-columns=X:.data", "server", "client", "none", "orphan",
    "app=web", "a,b", "secret/x", "secrets/x", "-", "/tmp/x.yaml", "https://x/y.yaml", "dir/",
    "8", "9", "10", "-1", "cluster-admin", "admin", "LoadBalancer", "NodePort", "0.0.0.0",
    "*", "ü", "--", "-n", "-A", "x.go=9", '{"spec":{"hostPID":true}}', "/api/v1/secrets",
    "cronjob/x", "metadata.name=x",
]  # fmt: skip
_FREE = ["--", "-", "-A", "--all", "-l", "app=web", "-f", "-", "-k", ".", "=", "-n", "prod"]
_GLOBAL_FLAGS = sorted(grammar.COMMANDS[()].long_flags)


# Flags risk.py reads (their values change the judgement), with values that matter to it.
_JUDGED_FLAGS = [
    "address", "aggregation-rule", "all", "all-containers", "all-namespaces", "all-pods",
    "attach", "cascade", "clusterrole", "copy-to", "custom", "disable-eviction",
    "delete-emptydir-data", "dry-run", "edit", "enable-helm", "external-ip", "field-selector",
    "filename", "flatten", "force", "force-conflicts", "from", "from-env-file", "from-file",
    "grace-period", "image", "insecure-skip-tls-verify-backend", "interactive", "kustomize",
    "list", "local", "namespace", "now", "output", "overrides", "patch", "privileged",
    "profile", "prune", "raw", "recursive", "replicas", "resolve", "resource", "role",
    "selector", "server-side", "stdin", "template", "tty", "type", "v", "verb", "vmodule",
]  # fmt: skip
_JUDGED_VALUES = [
    "0", "true", "false", "orphan", "server", "client", "yaml", "cluster-admin", "admin",
    "NodePort", "LoadBalancer", "1.2.3.4", "0.0.0.0", "secret/x", "cronjob/x", "-", ".",
    "*", "get,list", "secrets", '{"spec":{"hostPID":true}}', "x.go=9", "9", "/api/v1/secrets",
    "mutatingwebhookconfigurations", "app=web", "", "busybox", "sysadmin",
]  # fmt: skip


def _flag_token(node: grammar.CommandNode, draw: st.DrawFn) -> list[str]:
    judged = [n for n in _JUDGED_FLAGS if n in node.long_flags]
    prefer_judged = draw(st.booleans())
    if judged and prefer_judged:
        spec = node.long_flags[draw(st.sampled_from(judged))]
        value = draw(st.sampled_from(_JUDGED_VALUES))
    else:
        spec = node.long_flags[draw(st.sampled_from(sorted(node.long_flags)))]
        value = draw(st.sampled_from(_VALUES))
    form = draw(st.integers(0, 7))
    long = f"--{spec.name}"
    if form == 0:
        return [long]
    if form == 1:
        return [f"{long}={value}"]
    if form == 2:
        return [long.replace("-", "_").replace("__", "--", 1), value]
    if spec.short and form == 3:
        return [f"-{spec.short}{value}"]
    if spec.short and form == 4:
        return [f"-{spec.short}={value}"]
    if spec.short and form == 5:
        return [f"-{spec.short}", value]
    if form == 6:  # clustered short booleans, maybe ending in a value flag
        letters = [s for s, f in node.short_flags.items() if f.kind == "bool"]
        if letters:
            picked = draw(st.lists(st.sampled_from(letters), min_size=1, max_size=3))
            tail = draw(st.sampled_from(["", *sorted(node.short_flags)]))
            return [f"-{''.join(picked)}{tail}", value]
    return [long, value]


@st.composite
def attack_argv(draw: st.DrawFn) -> list[str]:
    path = list(draw(st.sampled_from(_PATHS + _ALIASED)))
    node = grammar.COMMANDS.get(tuple(path)) or grammar.COMMANDS[()]
    words = draw(st.lists(st.sampled_from(_RESOURCE_ARGS + _FREE), max_size=4))
    words = [draw(st.sampled_from(_RESOURCE_ARGS)), *words]  # most commands: TYPE first
    flags = [t for _ in range(draw(st.integers(0, 4))) for t in _flag_token(node, draw)]
    if draw(st.booleans()):  # a repeated flag, the last value wins
        flags += flags[-2:]
    argv = [*path, *words, *flags]
    order = draw(st.integers(0, 5))
    if order == 1:  # flags before the command words
        k = draw(st.integers(0, len(flags)))
        argv = [*flags[:k], *path, *words, *flags[k:]]
    elif order == 2:  # a global flag (maybe taking the next word) before the command
        g = draw(st.sampled_from(_GLOBAL_FLAGS))
        argv = [f"--{g}", *draw(st.sampled_from([[], ["prod"], ["get"]])), *argv]
    elif order == 3:  # `--` somewhere
        k = draw(st.integers(0, len(argv)))
        argv = [*argv[:k], "--", *argv[k:]]
    elif order == 4:
        argv = draw(st.permutations(argv))
    if draw(st.integers(0, 9)) == 0:
        argv = [*argv, *draw(st.lists(st.text(max_size=4), max_size=3))]  # any unicode, NUL
    return argv


# -- policies aimed at the rule masks

_COMMANDS = [
    *sorted(" ".join(c) for c in new_policy.KNOWN_COMMANDS),
    "create deploy", "create cm", "top po", "set sa", "config use", "create svc",
]  # fmt: skip
_KINDS = [
    "pods", "secrets", "secret", "Secret", "deployments.apps", "deploy", "configmaps",
    "nodes", "namespaces", "clusterrolebindings.rbac.authorization.k8s.io", "csr",
    "widgets.example.com", "foo.example.com", "serviceaccounts", "events",
]  # fmt: skip
_NS_GLOBS = ["prod", "prod*", "kube-*", "dev", "*", "*-test", "team-[ab]?", "default", "x?"]
_CLASSES = [c.label for c in RiskClass if c < RiskClass.BYPASS]
_CODES = sorted(REASON_CODES)
_ACTIONS = ["allow", "confirm", "approve", "deny"]


@st.composite
def _match(draw: st.DrawFn) -> dict[str, Any]:
    m: dict[str, Any] = {}
    pick = draw(st.lists(st.integers(0, 13), max_size=4, unique=True))
    for k in pick:
        if k == 0:
            m["commands"] = draw(st.lists(st.sampled_from(_COMMANDS), min_size=1, max_size=3))
        elif k == 1:
            m["kinds"] = draw(st.lists(st.sampled_from(_KINDS), min_size=1, max_size=3))
        elif k == 2:
            m["namespaces"] = draw(st.lists(st.sampled_from(_NS_GLOBS), min_size=1, max_size=2))
        elif k == 3:
            m["protected"] = draw(st.booleans())
        elif k == 4:
            if "min_class" not in m:  # one or the other
                m["class"] = draw(st.lists(st.sampled_from(_CLASSES), min_size=1, max_size=3))
        elif k == 5:
            if "class" not in m:
                m["min_class"] = draw(st.sampled_from(_CLASSES))
        elif k == 6:
            m["clusters"] = draw(st.lists(st.sampled_from(["eks-*", "dev", "*"]), min_size=1))
        elif k == 7:
            m["roles"] = draw(st.lists(st.sampled_from(["admin?", "ro", "*"]), min_size=1))
        elif k == 13:
            m["codes"] = draw(st.lists(st.sampled_from(_CODES), min_size=1, max_size=3))
        else:
            key = ("agent", "mutating", "exposes_secret_values", "cluster_scoped", "wide_scope")[
                k - 8
            ]
            m[key] = draw(st.booleans())
    return m


@st.composite
def attack_policy(draw: st.DrawFn) -> dict[str, Any]:
    matches = draw(st.lists(_match(), max_size=8))
    # the same rule shape again, and shapes that differ in one condition only
    for m in list(matches[: draw(st.integers(0, 3))]):
        twin = dict(m)
        change = draw(st.booleans())
        if twin and change:
            key = draw(st.sampled_from(sorted(twin)))
            value = twin[key]
            twin[key] = (not value) if isinstance(value, bool) else draw(_match()).get(key, value)
        matches.insert(draw(st.integers(0, len(matches))), twin)
    rules = [
        {
            "name": f"r{i}",
            "match": m,
            "action": draw(st.sampled_from(_ACTIONS)),
            **({"reason": draw(st.sampled_from(["why", "other"]))} if draw(st.booleans()) else {}),
        }
        for i, m in enumerate(matches)
    ]
    policy: dict[str, Any] = {
        "version": 1,
        "default": draw(st.sampled_from(_ACTIONS)),
        "rules": rules,
    }
    if draw(st.booleans()):
        policy["protected_namespaces"] = draw(st.lists(st.sampled_from(_NS_GLOBS), max_size=2))
    return policy


_CONTEXT = st.fixed_dictionaries(
    {
        "agent": st.booleans(),
        "interactive": st.booleans(),
        "cluster": st.sampled_from(["", "eks-prod", "dev"]),
        "role": st.sampled_from(["", "admin1", "ro"]),
        "namespace_default": st.sampled_from(["default", "", "prod", "kube-system", "dev"]),
    }
)


# -- property tests

_SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))


@needs_baseline
@_SETTINGS
@given(argvs=st.lists(attack_argv(), min_size=1, max_size=6), ctx=_CONTEXT)
def test_attack_argv_are_judged_as_before_under_the_default_policy(
    argvs: list[list[str]], ctx: dict[str, Any]
) -> None:
    _compare(None, [ctx], [(a, 0) for a in argvs])


@needs_baseline
@_SETTINGS
@given(
    policy=attack_policy(),
    contexts=st.lists(_CONTEXT, min_size=1, max_size=4),
    argvs=st.lists(attack_argv(), min_size=1, max_size=5),
    order=st.randoms(use_true_random=False),
)
def test_one_policy_object_judges_as_before_across_contexts(
    policy: dict[str, Any],
    contexts: list[dict[str, Any]],
    argvs: list[list[str]],
    order: Any,
) -> None:
    """Every argv under every context, interleaved, through one policy object per side:
    bit masks, the command mask cache and the Decision cache are shared by the calls."""
    calls = [(a, c) for a in argvs for c in range(len(contexts))]
    order.shuffle(calls)
    _compare(policy, contexts, calls)


# -- every command with every flag risk.py reads, at the values that change a judgement

_FLAG_VALUES: dict[str, list[str]] = {
    "grace-period": ["0", "30"], "replicas": ["0", "2"], "cascade": ["orphan", "background"],
    "type": ["NodePort", "LoadBalancer", "ClusterIP"], "external-ip": ["1.2.3.4"],
    "clusterrole": ["cluster-admin", "admin", "view"], "role": ["cluster-admin", "admin"],
    "verb": ["*", "get,list", "escalate"], "resource": ["secrets", "*", "pods/exec"],
    "aggregation-rule": ["a=b"], "from": ["secret/x", "cronjob/x", "cj/x"],
    "from-env-file": ["x.env"], "from-file": ["x"], "address": ["0.0.0.0", "localhost"],
    "overrides": ['{"spec":{"hostPID":true}}', "{", "{}"],
    "patch": ['{"spec":{"hostNetwork":true}}', "{}"], "dry-run": ["server", "client", "none"],
    "output": ["yaml", "jsonpath={.data}", "name"], "template": ["{{.data}}"],
    "v": ["9", "8", "1"], "vmodule": ["x.go=9", "x.go=1"], "raw": ["/api/v1/secrets"],
    "profile": ["cpu", "bogus"], "selector": ["app=web"], "field-selector": ["a=b"],
    "namespace": ["kube-system", "prod"], "filename": ["-"], "kustomize": ["."],
    "image": ["busybox"], "custom": ["x.yaml"], "copy-to": ["copy"],
}  # fmt: skip


def _flag_argvs() -> list[list[str]]:
    from jitkube.kubectl import parser

    out: list[list[str]] = []
    for path, node in sorted(grammar.COMMANDS.items()):
        typed = path in parser._GENERIC or path in parser._PAIRS
        target = ["deploy/web"] if typed else ["web"]
        for name in _JUDGED_FLAGS:
            spec = node.long_flags.get(name)
            if spec is None:
                continue
            if spec.kind == "bool":
                tokens = [[f"--{name}"], [f"--{name}=false"]]
            else:
                tokens = [[f"--{name}={v}"] for v in _FLAG_VALUES.get(name, ["x"])]
            out.extend([*path, *target, *t] for t in tokens)
    return out


_FLAG_ARGVS = _flag_argvs()


@needs_baseline
@pytest.mark.parametrize("chunk", range(4))
def test_every_judged_flag_of_every_command_is_judged_as_before(chunk: int) -> None:
    contexts: list[dict[str, Any]] = [
        {"agent": True},
        {"agent": False, "interactive": True, "namespace_default": ""},
    ]
    argvs = _FLAG_ARGVS[chunk::4]
    _compare(None, contexts, [(a, i % 2) for i, a in enumerate(argvs)])


# -- every command path (and alias) with every TYPE form, and `--`/flags before the command

_FORMS_ARGS: list[list[str]] = [
    [], ["pods"], ["pods,secrets"], ["secrets,pods", "x"], ["pods,"], ["pods,,secrets"], [""],
    ["secret/x"], ["secret/x", "pods/y"], ["secret/x", "y"], ["secret/x/y"], ["secrets.v1."],
    ["Secret", "x"], ["SECRETS"], ["sa", "x"], ["foo.example.com"], ["foo.example.com/x"],
    ["all"], ["api-extensions"], ["pods", "--all"], ["pods", "-A"], ["pods", "-l", "a=b"],
    ["pods", "--field-selector", "a=b"], ["-f", "-"], ["-k", "."], ["pods", "--", "sh"],
    ["--", "pods"], ["x", "k=v"], ["node/n1", "k=v:NoExecute"], ["ns/pod:/tmp", "/tmp/y"],
]  # fmt: skip


def _forms_argvs() -> list[list[str]]:
    out: list[list[str]] = []
    for path in _PATHS + _ALIASED:
        for i, args in enumerate(_FORMS_ARGS):
            if i % 5 == 1:
                out.append(["-n", "prod", *path, *args])  # a flag (with a value) first
            elif i % 5 == 2:
                out.append(["--namespace=kube-system", *path[:1], "-A", *path[1:], *args])
            else:
                out.append([*path, *args])
    return out


_FORMS_ARGVS = _forms_argvs()


@needs_baseline
@pytest.mark.parametrize("chunk", range(4))
def test_every_command_with_every_type_form_is_judged_as_before(chunk: int) -> None:
    contexts: list[dict[str, Any]] = [
        {"agent": True, "namespace_default": "prod"},
        {"interactive": True},
    ]
    argvs = _FORMS_ARGVS[chunk::4]
    _compare(None, contexts, [(a, i % 2) for i, a in enumerate(argvs)])


@needs_baseline
@pytest.mark.parametrize(
    "argv",
    [
        ["delete", "pods", *(f"p{i}" for i in range(3000))],
        ["delete", *(f"secret/s{i}" for i in range(3000))],
        ["delete", *(f"secret/s{i % 7}" for i in range(3000))],  # many refs, few objects
        ["get", ",".join(["pods", "secrets"] * 500)],
        ["get", "pods", *["-n", "dev"] * 2000, "-n", "kube-system"],
        ["label", "pods", "x", *(f"k{i}=v" for i in range(2000))],
        ["get", "pods", "-l", "a" * 100_000],
        ["get", "x" * 100_000],
        ["exec", "web", "--", *["sh"] * 5000],
        ["get", "pods", "x\0y"],  # NUL
        ["get", *["--"] * 100, "pods"],
        [*["-v=9"] * 500, "get", "secrets"],
    ],
    ids=lambda a: f"{a[0]}-{len(a)}",
)
def test_long_argv_are_judged_as_before(argv: list[str]) -> None:
    _compare(None, [{"agent": True}, {"interactive": True}], [(argv, 0), (argv, 1)])


# -- the caches: what one call leaves behind must not change the next


@needs_baseline
def test_the_comparison_can_fail() -> None:
    """Both sides really judge: different argv differ, the same argv agree."""
    assert BASE is not None
    new, base = _new_side(), _base_side()
    built_new, built_base = _build(new, None, [{}]), _build(base, None, [{}])
    assert built_new[0] is not built_base[0]
    (n_pods,) = _judge_all(new, new_judge, built_new, [(["get", "pods"], 0)])
    b_pods, b_secrets = _judge_all(
        base, BASE[0], built_base, [(["get", "pods"], 0), (["get", "secrets", "-o", "yaml"], 0)]
    )
    assert n_pods == b_pods != b_secrets


@needs_baseline
def test_a_cached_decision_is_shared_but_cannot_be_changed() -> None:
    """`decide` hands out one Decision per (action, rule, reason, note): frozen, with a
    tuple of reasons, so one caller cannot alter what a later caller gets."""
    policy = new_policy.policy_from_dict({"version": 1, "default": "confirm"})
    person = new_policy.DecisionContext(agent=False, interactive=True)
    j1 = new_judge.judge(["get", "pods"], person, policy)
    j2 = new_judge.judge(["get", "configmaps", "-n", "dev"], person, policy)
    assert j1.decision is j2.decision  # the cache at work
    with pytest.raises(FrozenInstanceError):
        j1.decision.action = new_policy.Action.ALLOW  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        j1.decision.reasons = ()  # type: ignore[misc]
    assert isinstance(j1.decision.reasons, tuple)
    j1.invocation.flags["namespace"] = ("kube-system",)  # a dict: mutable, but not cached
    new_judge.judgement_data(j1)["reasons"].clear()
    agent = new_policy.DecisionContext(agent=True)
    j3 = new_judge.judge(["get", "pods"], agent, policy)
    j4 = new_judge.judge(["get", "pods"], person, policy)
    assert (j3.decision.action, j3.decision.reasons[-1]) == (
        new_policy.Action.APPROVE,
        "confirm becomes approve: the caller is an agent",
    )
    assert (j4.decision.action, j4.decision.reasons) == (
        new_policy.Action.CONFIRM,
        ("no policy rule matched; the default applies",),
    )
    assert j4.invocation.flags == {}


@needs_baseline
@pytest.mark.parametrize(
    "contexts",
    [
        # agent then person, person then agent: the confirm note must follow the context
        [{"agent": True}, {"agent": False, "interactive": True}, {"agent": False}],
        [{"agent": False, "interactive": True}, {"agent": True}, {"interactive": False}],
        # cluster/role rules in and out of play for the same argv
        [{"cluster": "eks-prod", "role": "admin1"}, {"cluster": "dev", "role": "admin1"}],
        [{"cluster": "dev", "role": "ro"}, {"cluster": "eks-prod", "role": "admin9"}],
        # the context's default namespace decides the (namespace, kind) pairs
        [{"namespace_default": "prod"}, {"namespace_default": "dev"}, {"namespace_default": ""}],
    ],
)
def test_the_caches_follow_the_context(contexts: list[dict[str, Any]]) -> None:
    policy = {
        "version": 1,
        "default": "confirm",
        "protected_namespaces": ["prod", "kube-*"],
        "rules": [
            {"name": "cl", "match": {"clusters": ["eks-*"], "roles": ["admin?"]},
             "action": "allow"},
            {"name": "ag", "match": {"agent": True, "class": ["read"]}, "action": "approve"},
            {"name": "pr", "match": {"protected": True}, "action": "deny", "reason": "prot"},
            {"name": "pr2", "match": {"protected": True}, "action": "allow"},
            {"name": "dv", "match": {"namespaces": ["dev"]}, "action": "allow"},
            {"name": "dv2", "match": {"namespaces": ["dev"], "agent": False}, "action": "deny"},
            {"name": "sec", "match": {"kinds": ["secrets"]}, "action": "confirm"},
        ],
    }  # fmt: skip
    argvs = [
        ["get", "pods"], ["get", "secrets"], ["delete", "pods", "--all"], ["get", "pods", "-A"],
        ["get", "pods", "-n", "dev"], ["get", "pods", "-n", "prod"], ["logs", "web"],
        ["get", "secrets,pods", "-n", "kube-system"], ["create", "ns", "x"],
    ]  # fmt: skip
    calls = [(a, c) for _ in range(2) for a in argvs for c in range(len(contexts))]
    _compare(policy, contexts, calls)


# -- _HAS_SPECIFICS must name every command `_command_specifics` has a branch for


def _specifics_commands(source: str) -> set[tuple[str, ...]]:
    """Every command tuple `_command_specifics` compares `cmd` with (`cmd == (...)`,
    `cmd in ((...), ...)`)."""
    import ast

    func = next(
        n
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.FunctionDef) and n.name == "_command_specifics"
    )
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(func):
        if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name)):
            continue
        if node.left.id != "cmd":
            continue
        for comparator in node.comparators:
            tuples = comparator.elts if isinstance(comparator, ast.Tuple) else []
            if isinstance(comparator, ast.Tuple) and all(
                isinstance(e, ast.Constant) for e in comparator.elts
            ):
                tuples = [comparator]
            for t in tuples:
                if isinstance(t, ast.Tuple) and all(isinstance(e, ast.Constant) for e in t.elts):
                    found.add(tuple(str(e.value) for e in t.elts))  # type: ignore[attr-defined]
    return found


def _missing_specifics(has: frozenset[tuple[str, ...]], source: str) -> set[tuple[str, ...]]:
    return {
        c
        for c in _specifics_commands(source)
        if c not in has and c[:1] not in (("create",), ("config",))
    }


def test_has_specifics_names_every_branch_of_command_specifics() -> None:
    import jitkube.risk as risk

    source = Path(risk.__file__).read_text()
    branches = _specifics_commands(source)
    assert ("set", "env") in branches  # the parse finds them
    assert ("delete",) in branches
    assert _missing_specifics(risk._HAS_SPECIFICS, source) == set()
    # and it would see one missing
    assert _missing_specifics(risk._HAS_SPECIFICS - {("scale",)}, source) == {("scale",)}


# -- dataclass_lite's slot fast path


def test_the_slot_fast_path_still_runs_post_init_and_keeps_frozen() -> None:
    calls: list[int] = []

    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int
        y: int = 0

        def __post_init__(self) -> None:
            calls.append(self.x)
            if self.x < 0:
                raise ValueError("negative")

    with pytest.raises(ValueError, match="negative"):
        Checked(-1, 2)  # every field positional: the fast path would skip __post_init__
    assert calls == [-1]

    @dataclass(frozen=True, slots=True)
    class Base:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    @dataclass(frozen=True, slots=True)
    class Child(Base):
        y: int = 0

    with pytest.raises(ValueError, match="negative"):
        Child(-1, 5)  # __post_init__ inherited

    @dataclass(frozen=True, slots=True)
    class Plain:
        x: int
        y: int
        late: int = field(default=7, init=False)

    assert Plain(1, 2).late == 7  # an init=False field: the general path fills it
    p = Checked(3, 4)
    with pytest.raises(FrozenInstanceError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        Checked(1, 2, 3)  # type: ignore[call-arg]


@needs_baseline
def test_the_slot_fast_path_honours_a_subclass_descriptor() -> None:
    assert BASE is not None
    outcomes = []
    for lite in (BASE[2]["jitkube.dataclass_lite"], sys.modules["jitkube.dataclass_lite"]):

        @lite.dataclass(frozen=True, slots=True)
        class Base:
            x: int
            y: int = 0

        class Guarded(Base):
            __slots__ = ()

            @property
            def x(self) -> int:
                value: int = Base.x.__get__(self)  # type: ignore[attr-defined]
                return value

            @x.setter
            def x(self, value: int) -> None:
                if value < 0:
                    raise ValueError("negative")
                Base.x.__set__(self, value)  # type: ignore[attr-defined]

        try:
            Guarded(-1, 2)  # type: ignore[call-arg]
            outcomes.append("accepted")
        except ValueError:
            outcomes.append("refused")
    assert outcomes == ["refused", "refused"]
