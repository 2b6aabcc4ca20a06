"""Differential test: parse → assess → decide against a baseline copy of itself.

The baseline is the classification code as it was before its speed-up (BASE_COMMIT), taken
from git history (`git archive`), or the `src` directory named by
`JITKUBE_CLASSIFY_BASELINE` (for later work: `git archive HEAD src | tar -x -C
/tmp/classify-base`, then `JITKUBE_CLASSIFY_BASELINE=/tmp/classify-base/src`). Every argv
below (kubectl's help examples, the benchmark's extra lines, the string literals of the
parser/risk/policy suites, and generated argv) is judged by both under several policies
and contexts; the whole judgement, as plain data, must be identical. When classification
changes on purpose, move BASE_COMMIT to that change. Without git history (an sdist, a
shallow clone) and without the variable, the module is skipped.
"""

from __future__ import annotations

import ast
import shlex
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
from jitkube.kubectl import grammar

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
pytestmark = pytest.mark.skipif(BASE is None, reason=SKIP_REASON)


# -- policies and contexts, built by each side from the same plain data

_CUSTOM_POLICY: dict[str, Any] = {
    "version": 1,
    "protected_namespaces": ["kube-*", "prod", "team-[ab]?"],
    "default": "confirm",
    "unmask": "deny",
    "rules": [
        {"name": "sec", "match": {"kinds": ["secrets"], "namespaces": ["prod*"]},
         "action": "deny", "reason": "no secrets in prod"},
        {"name": "cl", "match": {"clusters": ["eks-*"], "roles": ["admin?"]}, "action": "allow"},
        {"name": "rb", "match": {"commands": ["rollout", "create secret"], "protected": False},
         "action": "approve"},
        {"name": "dep", "match": {"kinds": ["deployments.apps", "widgets.example.com"],
                                  "min_class": "destructive"}, "action": "approve"},
        {"name": "ns", "match": {"namespaces": ["dev", "*-test"], "mutating": True,
                                 "wide_scope": False}, "action": "allow"},
        {"name": "ex", "match": {"exposes_secret_values": True, "agent": False},
         "action": "confirm", "reason": "masked output"},
        {"name": "cs", "match": {"cluster_scoped": True, "class": ["read"]}, "action": "allow"},
        {"name": "codes", "match": {"codes": ["wide_scope", "editor", "port_forward"]},
         "action": "approve"},
        {"name": "reads", "match": {"class": ["read", "sensitive_read"], "protected": True},
         "action": "confirm"},
        {"name": "writes", "match": {"min_class": "write", "wide_scope": True}, "action": "deny"},
    ],
}  # fmt: skip
_EMPTY_POLICY: dict[str, Any] = {"version": 1, "default": "allow", "protected_namespaces": []}

_CONTEXTS: list[dict[str, Any]] = [
    {"agent": True},
    {"agent": False, "interactive": True},
    {"agent": False, "interactive": False, "cluster": "eks-prod", "role": "admin1"},
    {"agent": True, "cluster": "eks-x", "role": "adminx", "namespace_default": "prod"},
    {"interactive": True, "namespace_default": ""},
]


def _setup(policy_mod: ModuleType) -> list[tuple[Any, Any]]:
    policies = [
        policy_mod.default_policy(),
        policy_mod.policy_from_dict(_CUSTOM_POLICY),
        policy_mod.policy_from_dict(_EMPTY_POLICY),
    ]
    contexts = [policy_mod.DecisionContext(**c) for c in _CONTEXTS]
    return [(c, p) for p in policies for c in contexts]


_NEW_SETUP = _setup(new_policy)
_BASE_SETUP: list[tuple[Any, Any]] = []
if BASE:
    with _modules(BASE[2]):
        _BASE_SETUP = _setup(BASE[1])


def same(argv: Sequence[str], setups: slice = slice(None)) -> None:
    assert BASE is not None
    for (ctx, policy), (bctx, bpolicy) in zip(_NEW_SETUP[setups], _BASE_SETUP[setups], strict=True):
        got = _judgement(new_judge, argv, ctx, policy)
        with _modules(BASE[2]):
            want = _judgement(BASE[0], argv, bctx, bpolicy)
        if got != want:
            diff = next(
                (
                    f"{i}: {g!r}\n != {w!r}"
                    for i, (g, w) in enumerate(zip(got, want, strict=True))
                    if g != w
                ),
                "",
            )
            pytest.fail(f"argv {list(argv)!r} under {policy.source} / {ctx}: judged differently"
                        f"\n{diff}")  # fmt: skip


# -- corpus: help examples, the benchmark's extra lines, the suites' literals


def _bench_corpus() -> list[list[str]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import classify_rate
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return classify_rate.corpus() + [shlex.split(x) for x in classify_rate.EXTRA]


def _help_segments() -> Iterator[list[str]]:
    import test_parser_corpus as tpc

    for _source, command in tpc._examples():
        yield from tpc._kubectl_segments(command)


_SUITES = (
    "test_parser.py", "test_parser_corpus.py", "test_parser_fuzz.py", "test_risk.py",
    "test_policy.py", "test_policy_docs.py", "test_reason_codes.py", "test_kubectl_grammar.py",
    "test_hot_path_imports.py", "test_check_cli.py",
)  # fmt: skip


def _suite_literals() -> Iterator[list[str]]:
    """Every short one-line string literal of the suites, shell-split (most are argv)."""
    for name in _SUITES:
        path = TESTS / name
        if not path.is_file():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if not text or "\n" in text or len(text) > 400:
                    continue
                try:
                    words = shlex.split(text)
                except ValueError:
                    words = text.split()
                if words and words[0] == "kubectl":
                    words = words[1:]
                yield words


def _corpus() -> list[tuple[str, ...]]:
    if BASE is None:
        return []
    seen: dict[tuple[str, ...], None] = {}
    for argv in [*_bench_corpus(), *_help_segments(), *_suite_literals()]:
        seen.setdefault(tuple(argv), None)
    manifests = sorted(p for p in (TESTS / "data" / "manifests").rglob("*") if p.is_file())
    for path in manifests:
        for verb in ("apply", "create", "delete", "replace", "get", "diff"):
            seen.setdefault((verb, "-f", str(path)), None)
            seen.setdefault((verb, "-n", "prod", "-f", str(path), "--dry-run=server"), None)
    seen.setdefault(("apply", "-R", "-f", str(TESTS / "data" / "manifests" / "dir")), None)
    return list(seen)


CORPUS = _corpus()


def test_corpus_is_large() -> None:
    assert len(CORPUS) > 1500


def test_the_baseline_is_a_different_copy() -> None:
    assert BASE is not None
    assert BASE[0].judge is not new_judge.judge
    assert BASE[1].Policy is not new_policy.Policy


@pytest.mark.parametrize("chunk", range(8))
def test_corpus_is_judged_identically(chunk: int) -> None:
    for argv in CORPUS[chunk::8]:
        same(argv)


def test_a_difference_would_be_seen() -> None:
    """The comparison itself can fail: a different argv gives a different judgement."""
    assert BASE is not None
    ctx, policy = _BASE_SETUP[0]
    with _modules(BASE[2]):
        a = _judgement(BASE[0], ["get", "pods"], ctx, policy)
        b = _judgement(BASE[0], ["get", "secrets", "-o", "yaml"], ctx, policy)
    assert a != b
    nctx, npolicy = _NEW_SETUP[0]
    assert _judgement(new_judge, ["get", "pods"], nctx, npolicy) == a


# -- generated argv

_COMMAND_WORDS = sorted({w for node in grammar.COMMANDS.values() for w in node.children})
_FLAG_WORDS = sorted(
    {f"--{n}" for node in grammar.COMMANDS.values() for n in node.long_flags}
    | {f"-{s}" for node in grammar.COMMANDS.values() for s in node.short_flags}
)
_VALUES = [
    "x", "0", "1", "8", "9", "true", "false", "T", "maybe", "a,b", "", "5s", "-1", "a=b", "ü",
    "prod", "kube-system", "dev", "team-a1", "yaml", "json", "jsonpath={.data}", "name",
    "go-template={{.metadata.annotations}}", "server", "client", "none", "orphan",
    "cluster-admin", "admin", "0.0.0.0", "localhost", "secret/x", "cronjob/x", "sysadmin",
    '{"spec":{"hostPID":true}}', "/api/v1/namespaces/x/secrets", "/api/v1/nodes/n/proxy/x",
    "/apis/apps/v1/deployments", "/logs/x", "pod-security.kubernetes.io/enforce=privileged",
    "app=web", "NoExecute", "get,list", "secrets,pods/exec", "LoadBalancer", "x.go=9",
]  # fmt: skip
_WORDS = [
    "pods", "po", "secret", "secrets", "deploy", "deployments.apps", "ns", "namespace",
    "all", "api-extensions", "svc", "nodes", "node/n1", "deploy/x", "secret/s", "cm/x",
    "widgets.example.com", "roles.rbac.authorization.k8s.io", "clusterrolebindings", "ev",
    "events.events.k8s.io", "crd", "pv", "pvc", "a,b", "pods,svc", "x", "y", "web", "--",
    "-", "=", "", "GET", "—n", "ns/pod:/tmp", "pod:/x", "/tmp/y", "key=value", "key-",
    "pod-security.kubernetes.io/enforce=privileged", "k=v:NoExecute", "sh", "-c", "env",
    "Secret", "SECRETS", "deployments.v1.apps", "secrets.v1.", "foo.bar", "ingress",
]  # fmt: skip
_PATHS = sorted(grammar.COMMANDS)


@st.composite
def _flag(draw: st.DrawFn) -> list[str]:
    flag = draw(st.sampled_from(_FLAG_WORDS))
    value = draw(st.sampled_from(_VALUES))
    form = draw(st.integers(0, 4))
    if form == 0:
        return [flag]
    if form == 1:
        return [f"{flag}={value}"]
    if form == 2 and flag.startswith("--") and draw(st.booleans()):
        return [flag.replace("-", "_").replace("__", "--", 1), value]
    if form == 3 and not flag.startswith("--"):
        return [f"{flag}{value}"]
    return [flag, value]


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    path = list(draw(st.sampled_from(_PATHS)))
    flags = [t for f in draw(st.lists(_flag(), max_size=4)) for t in f]
    words = draw(st.lists(st.sampled_from(_WORDS), max_size=4))
    argv = [*path, *words, *flags]
    order = draw(st.integers(0, 3))
    if order == 1:  # some flags before the command words
        k = draw(st.integers(0, len(flags)))
        argv = [*flags[:k], *path, *words, *flags[k:]]
    elif order == 2:
        argv = draw(st.permutations(argv))
    return argv


_TOKENS = st.one_of(
    st.sampled_from(_COMMAND_WORDS),
    st.sampled_from(_FLAG_WORDS),
    st.sampled_from(_WORDS),
    st.text(alphabet="-=,/:_.abnopAv8", max_size=8),
    st.text(max_size=6),  # full unicode
)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(argv=_argv(), which=st.integers(0, len(_CONTEXTS) * 3 - 1))
def test_generated_argv_are_judged_identically(argv: list[str], which: int) -> None:
    same(argv, slice(which, which + 1))
    same(argv, slice(0, 1))


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(argv=st.lists(_TOKENS, max_size=10), which=st.integers(0, len(_CONTEXTS) * 3 - 1))
def test_token_soup_is_judged_identically(argv: list[str], which: int) -> None:
    same(argv, slice(which, which + 1))
