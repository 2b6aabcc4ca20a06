"""Reason codes: one published set (`jitkube.risk.REASON_CODES`), all of it matchable.

A policy rule's `codes:` may name exactly the codes `assess()` can give. These tests
derive the emitted codes from the real sources (risk.py's own calls and command table)
and from a large corpus (every example of kubectl's help, every command node with risky
flags, the manifest test data), not from a hand-written list.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

import jitkube.risk as risk
from jitkube.errors import PolicyError
from jitkube.kubectl.manifests import read_manifests
from jitkube.kubectl.parser import parse
from jitkube.policy import Action, DecisionContext, decide, load_policy
from jitkube.risk import COMMANDS, DENY_CODES, RAISE_CODES, REASON_CODES, assess

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
EXAMPLES = DATA / "kubectl_help_examples.txt"
MANIFESTS = DATA / "manifests"
DOC = REPO / "docs" / "policy.md"
_PLACEHOLDER = re.compile(r"<([A-Za-z][\w-]*)>")
_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "<(", ">(", "(", ")", ")|", ");"}


def _codes_in_risk_source() -> set[str]:
    """Every code literal risk.py passes to a Reason: `acc.add/expose(risk, text, CODE)`,
    `_c(..., code=CODE)` and the values assigned to a local `code` variable."""
    tree = ast.parse(Path(risk.__file__).read_text(encoding="utf-8"))
    found: set[str] = set()
    dynamic: list[str] = []

    def literals(node: ast.AST) -> set[str]:
        return {
            n.value
            for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value
        }

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            candidates: list[ast.expr] = []
            if name in ("add", "expose") and len(node.args) >= 3:
                candidates.append(node.args[2])
            candidates += [k.value for k in node.keywords if k.arg == "code"]
            for value in candidates:
                if isinstance(value, ast.Constant):
                    found |= literals(value)
                else:
                    dynamic.append(ast.unparse(value))
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "code" for t in node.targets
        ):
            found |= literals(node.value)
    # Codes not given literally come from the two forms handled above: a local `code`
    # (its literals are collected) and `rule.code` (from `_c(code=…)`). A new dynamic
    # form must be taught to this test rather than silently escape it.
    assert set(dynamic) <= {"code", "rule.code", "reason.code"}, dynamic
    return found


def _help_examples() -> Iterator[list[str]]:
    for line in EXAMPLES.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        command = _PLACEHOLDER.sub(r"\1", line.split("\t", 1)[1])
        lex = shlex.shlex(command, posix=True, punctuation_chars="|;&<>()")
        lex.whitespace_split = True
        segment: list[str] = []
        for token in [*lex, "|"]:
            if token in _OPERATORS:
                if segment and segment[0] == "kubectl":
                    yield segment[1:]
                segment = []
            else:
                segment.append(token)


_VARIANTS = (
    (),
    ("--force", "--grace-period=0"),
    ("-A",),
    ("--all",),
    ("-l", "app=web"),
    ("-v=9",),
    ("--vmodule=x=9",),
    ("--vmodule=bad",),
    ("--dry-run=server",),
    ("--kubeconfig=/tmp/k",),
    ("--prune", "-l", "a=b"),
    ("--address", "0.0.0.0"),
    ("--insecure-skip-tls-verify-backend",),
    ("-o", "yaml"),
    ("--no-such-flag",),
)
_TARGETS = (
    (),
    ("pods", "web"),
    ("secrets", "db"),
    ("namespace", "prod"),
    ("node/n1",),
    ("widgets.example.com", "w"),
    ("clusterrolebinding", "x", "--clusterrole=cluster-admin", "--user=me"),
    ("-f", "https://example.com/x.yaml"),
)


def _grammar_argvs() -> Iterator[list[str]]:
    """Every command node of the risk table, with risky flags and targets."""
    for command in COMMANDS:
        for target in _TARGETS:
            for variant in _VARIANTS:
                yield [*command, *target, *variant]
    yield ["get", "--raw", "/api/v1/nodes/n1/proxy/pods"]
    yield ["get", "--raw", "/not/a/judgeable/path?x"]
    yield ["plugin-does-not-exist", "x"]
    yield ["config", "view", "--raw"]
    yield ["label", "ns", "prod", "pod-security.kubernetes.io/enforce=privileged"]
    yield ["apply", "-f", "missing.yaml"]
    yield ["patch", "deploy", "x", "--patch-file", "p.json"]


def _all_assessments() -> Iterator[tuple[str, frozenset[str]]]:
    for argv in [*_help_examples(), *_grammar_argvs()]:
        yield shlex.join(argv), assess(parse(argv)).codes
    for path in sorted(MANIFESTS.rglob("*")):
        if not path.is_file() or "kustomize" in path.parts:
            continue
        inv = parse(["apply", "-f", str(path)])
        manifests = read_manifests(inv.files)
        yield f"apply -f {path.name}", assess(inv, manifests).codes
    inv = parse(["apply", "-f", str(MANIFESTS / "plain-deployment.yaml")])
    yield "apply without manifests read", assess(inv, None).codes


def test_every_code_risk_py_can_give_is_published_and_nothing_else() -> None:
    in_source = _codes_in_risk_source()
    assert in_source - set(REASON_CODES) == set(), "emitted but not in REASON_CODES"
    assert set(REASON_CODES) - in_source == set(), "in REASON_CODES but never emitted"


def test_the_command_table_uses_only_published_codes() -> None:
    table = {rule.code for rule in COMMANDS.values() if rule.code}
    assert table <= set(REASON_CODES)


def test_every_code_seen_over_a_large_corpus_is_published() -> None:
    seen: dict[str, str] = {}
    for what, codes in _all_assessments():
        for code in codes:
            seen.setdefault(code, what)
    unpublished = {c: w for c, w in seen.items() if c not in REASON_CODES}
    assert not unpublished
    # The corpus reaches most of the codes (the static test above covers the rest).
    assert len(seen) >= len(REASON_CODES) * 2 // 3, sorted(set(REASON_CODES) - set(seen))


def test_deny_and_raise_codes_are_published_codes() -> None:
    assert set(REASON_CODES) >= DENY_CODES
    assert set(REASON_CODES) >= RAISE_CODES


@pytest.mark.parametrize("code", sorted(REASON_CODES))
def test_each_code_has_a_one_line_description(code: str) -> None:
    text = REASON_CODES[code]
    assert re.fullmatch(r"[a-z][a-z_]*", code)
    assert text
    assert text.strip() == text
    assert "\n" not in text
    assert len(text) <= 140


@pytest.mark.parametrize("code", sorted(REASON_CODES))
def test_a_policy_may_name_every_published_code(code: str) -> None:
    policy = load_policy(
        f"version: 1\ndefault: allow\nrules:\n  - name: r\n    match: {{codes: [{code}]}}\n"
        "    action: deny\n",
        "test",
    )
    assert policy.rules[0].match.codes == (code,)


def test_a_policy_naming_an_unpublished_code_is_refused() -> None:
    with pytest.raises(PolicyError, match="unknown reason code 'protected_target'"):
        load_policy(
            "version: 1\ndefault: allow\nrules:\n"
            "  - {name: r, match: {codes: protected_target}, action: deny}\n",
            "test",
        )


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        ("edit deployment web -n dev", "editor"),
        ("get pods -v=9 -n dev", "verbose_bodies"),
        ("get widgets.example.com -n dev", "custom_resource"),
        ("apply -f https://example.com/x.yaml", "remote_manifest"),
    ],
)
def test_rules_on_formerly_unmatchable_codes_match(argv: str, code: str) -> None:
    """`editor`, `verbose_bodies`, … used to be refused in policies; now they decide."""
    policy = load_policy(
        f"version: 1\ndefault: allow\nrules:\n"
        f"  - name: on-{code}\n    match: {{codes: [{code}]}}\n    action: approve\n",
        "test",
    )
    assessment = assess(parse(shlex.split(argv)))
    assert code in assessment.codes
    context = DecisionContext(agent=False, interactive=True)
    decision = decide(assessment, context, policy, command=parse(shlex.split(argv)).command)
    if assessment.risk >= risk.RiskClass.BYPASS:
        assert decision.action is Action.DENY  # the hard floor still wins
    else:
        assert (decision.action, decision.rule) == (Action.APPROVE, f"on-{code}")


def _doc_block() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- reason-codes:[^>]*-->\n(.*?)<!-- /reason-codes -->", text, re.S)
    assert match, "docs/policy.md lost its reason-codes block"
    return match.group(1).splitlines()


def test_docs_list_exactly_the_published_codes_with_their_descriptions() -> None:
    expected = [f"- `{code}`: {text}" for code, text in sorted(REASON_CODES.items())]
    assert _doc_block() == expected, "regenerate the block in docs/policy.md:\n" + "\n".join(
        expected
    )
