"""Policy language: strict loading, first-match rules, hard floors, the shipped default."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import jitkube
from jitkube.errors import ExitCode, PolicyError
from jitkube.policy import (
    COMMAND_ALIASES,
    KNOWN_COMMANDS,
    MAX_POLICY_BYTES,
    Action,
    Decision,
    DecisionContext,
    Policy,
    decide,
    default_policy,
    default_policy_snapshot_text,
    load_policy,
    load_policy_file,
    policy_digest,
    policy_from_dict,
)
from jitkube.risk import Assessment, Reason, RiskClass

REPO = Path(__file__).resolve().parents[1]

AGENT = DecisionContext(agent=True, interactive=False)
HUMAN = DecisionContext(agent=False, interactive=True)
CI = DecisionContext(agent=False, interactive=False)


def assessment(
    risk: RiskClass | str,
    *,
    kinds: tuple[str, ...] = ("pods",),
    namespaces: tuple[str, ...] = ("",),
    mutating: bool | None = None,
    exposes: bool = False,
    cluster_scoped: bool = False,
    wide_scope: bool = False,
    codes: tuple[str, ...] = (),
) -> Assessment:
    cls = RiskClass.from_label(risk) if isinstance(risk, str) else risk
    return Assessment(
        risk=cls,
        reasons=(Reason(cls, "test"), *(Reason(cls, f"finding {c}", c) for c in codes)),
        exposes_secret_values=exposes,
        kinds=kinds,
        namespaces=namespaces,
        mutating=cls >= RiskClass.WRITE if mutating is None else mutating,
        cluster_scoped=cluster_scoped,
        wide_scope=wide_scope,
    )


def policy(body: str) -> Policy:
    return load_policy("version: 1\n" + body, "policy.yaml")


# --------------------------------------------------------------------------- loading


BAD_POLICIES = [
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match:\n      clas: read\n"
        "    action: allow\n",
        "policy.yaml:6: rules[0].match.clas: unknown key 'clas'",
        id="typo-in-match-key",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {}\n    acton: allow\n",
        "policy.yaml:6: rules[0].acton: unknown key 'acton'",
        id="typo-in-rule-key",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nprotected: [kube-system]\n",
        "policy.yaml:3: protected: unknown key 'protected'",
        id="typo-in-top-level-key",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match:\n      class: destructve\n"
        "    action: deny\n",
        "policy.yaml:6: rules[0].match.class: unknown class 'destructve'",
        id="unknown-class",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match:\n      min_class: wrte\n"
        "    action: deny\n",
        "policy.yaml:6: rules[0].match.min_class: unknown class 'wrte'",
        id="unknown-min-class",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {}\n    action: block\n",
        "policy.yaml:6: rules[0].action: unknown action 'block'",
        id="unknown-action",
    ),
    pytest.param(
        "version: 1\ndefault: permit\n",
        "policy.yaml:2: default: unknown action 'permit'",
        id="unknown-default-action",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {}\n    action: deny\n"
        "  - name: a\n    match: {}\n    action: allow\n",
        "policy.yaml:7: rules[1].name: duplicate rule name 'a'",
        id="duplicate-rule-name",
    ),
    pytest.param(
        "version: 1\ndefault: deny\ndefault: allow\n",
        "policy.yaml:3: default: duplicate key (first given on line 2)",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match:\n      agent: true\n"
        "      agent: false\n    action: deny\n",
        "policy.yaml:7: rules[0].match.agent: duplicate key",
        id="duplicate-nested-key",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match:\n      agent: 'yes'\n"
        "    action: deny\n",
        "policy.yaml:6: rules[0].match.agent: expected true or false, got a string",
        id="string-for-boolean",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match:\n      kinds: 3\n"
        "    action: deny\n",
        "policy.yaml:6: rules[0].match.kinds: expected a string or a list of strings, got a number",
        id="number-for-list",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match:\n      namespaces: []\n"
        "    action: deny\n",
        "policy.yaml:6: rules[0].match.namespaces: an empty list would match nothing",
        id="empty-list",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nprotected_namespaces: [kube-system, no]\n",
        "policy.yaml:3: protected_namespaces[1]: expected a string, got a boolean",
        id="norway-problem",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  a: b\n",
        "policy.yaml:3: rules: expected a list of rules, got a mapping",
        id="rules-not-a-list",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - deny everything\n",
        "policy.yaml:4: rules[0]: a rule must be a mapping, got a string",
        id="rule-not-a-mapping",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    action: deny\n",
        "policy.yaml:4: rules[0]: missing required key 'match'",
        id="rule-without-match",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n"
        "    match: {class: read, min_class: write}\n    action: deny\n",
        "rules[0].match.min_class: give either 'class' or 'min_class', not both",
        id="class-and-min-class",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {kinds: widgets}\n"
        "    action: deny\n",
        "policy.yaml:5: rules[0].match.kinds: unknown kind 'widgets'",
        id="unknown-kind",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {kinds: podz.apps}\n"
        "    action: deny\n",
        "unknown kind 'podz.apps'",
        id="custom-type-in-builtin-group",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {kinds: pods/exec}\n"
        "    action: deny\n",
        "subresources are not supported",
        id="subresource",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {commands: [get, delte]}\n"
        "    action: deny\n",
        "policy.yaml:5: rules[0].match.commands[1]: unknown kubectl command 'delte'; "
        "did you mean 'delete'?",
        id="unknown-command",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: default\n    match: {}\n    action: deny\n",
        "rules[0].name: rule name 'default'",
        id="reserved-rule-name",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {namespaces: 'prod team'}\n"
        "    action: deny\n",
        "contains whitespace",
        id="glob-with-space",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {codes: [delete_critcal]}\n"
        "    action: deny\n",
        "rules[0].match.codes[0]: unknown reason code 'delete_critcal'",
        id="unknown-reason-code",
    ),
    pytest.param("version: 2\ndefault: allow\n", "policy.yaml:1: version: unsupported", id="v2"),
    pytest.param("version: '1'\ndefault: allow\n", "version: expected the number 1", id="v-str"),
    pytest.param("version: true\ndefault: allow\n", "version: expected the number 1", id="v-bool"),
    pytest.param("default: allow\n", "missing required key 'version'", id="no-version"),
    pytest.param("version: 1\n", "missing required key 'default'", id="no-default"),
    pytest.param("", "policy.yaml: the policy is empty", id="empty-file"),
    pytest.param("# only a comment\n", "policy.yaml: the policy is empty", id="only-comment"),
    pytest.param("- version: 1\n", "policy.yaml:1: a policy must be a mapping", id="a-list"),
    pytest.param("just words\n", "policy.yaml:1: a policy must be a mapping", id="a-string"),
    pytest.param("version: 1\n---\nversion: 1\n", "policy.yaml:2: not valid YAML", id="two-docs"),
    pytest.param("version: [1\n", "policy.yaml:2: not valid YAML", id="broken-yaml"),
    pytest.param(
        "version: 1\ndefault: !!python/object:os.system allow\n",
        "policy.yaml:2:",
        id="python-tag",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nrules:\n  - name: a\n    match: {namespaces: 2024-01-01}\n"
        "    action: deny\n",
        "unsupported YAML value of type date",
        id="timestamp",
    ),
    pytest.param(
        "version: 1\ndefault: allow\nbase: &b {a: 1}\n",
        "policy.yaml:3: YAML anchors and aliases are not allowed",
        id="anchor",
    ),
    pytest.param(
        "version: 1\n" + "x: " + "[" * 20 + "]" * 20 + "\n",
        "policy.yaml:2: YAML nesting is too deep",
        id="deep-nesting",
    ),
    pytest.param(
        "version: 1\n" + "x: " + "[" * 100_000 + "\n",
        "policy.yaml:2: ",
        id="very-deep-nesting",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_POLICIES)
def test_bad_policy_is_refused_with_line_and_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(text, "policy.yaml")
    assert message in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_yaml_bomb_is_refused_quickly() -> None:
    lines = ["version: 1", "default: allow", 'a0: &a0 ["lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    started = time.perf_counter()
    with pytest.raises(PolicyError, match="anchors and aliases are not allowed"):
        load_policy("\n".join(lines) + "\n", "bomb.yaml")
    assert time.perf_counter() - started < 2


def test_huge_policy_is_refused_before_parsing() -> None:
    text = "version: 1\ndefault: allow\n" + "#" * MAX_POLICY_BYTES
    with pytest.raises(PolicyError, match="too large"):
        load_policy(text, "huge.yaml")


def test_unknown_key_suggests_the_intended_one() -> None:
    with pytest.raises(PolicyError, match="did you mean 'exposes_secret_values'"):
        policy(
            "default: allow\nrules:\n- {name: a, match: {exposes_secrets: true}, action: deny}\n"
        )


def test_an_error_in_the_last_rule_rejects_the_whole_policy() -> None:
    rules = "".join(f"- {{name: r{i}, match: {{}}, action: allow}}\n" for i in range(20))
    with pytest.raises(PolicyError, match=r"policy.yaml:24: rules\[20\]\.action"):
        policy("default: deny\nrules:\n" + rules + "- {name: bad, match: {}, action: alow}\n")


def test_policy_file_reads_utf8_and_refuses_binary(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("version: 1\ndefault: approve\n", encoding="utf-8")
    assert load_policy_file(good).default is Action.APPROVE
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"version: 1\ndefault: \xff\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy_file(bad)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yaml")


def test_kinds_are_normalized_to_qualified_plural_names() -> None:
    p = policy(
        "default: allow\nrules:\n- name: a\n  match:\n"
        "    kinds: [po, Deployment, deploy.apps, SECRETS, widgets.example.com]\n  action: deny\n"
    )
    assert p.rules[0].match.kinds == ("pods", "deployments.apps", "secrets", "widgets.example.com")


def test_command_aliases_are_normalized() -> None:
    p = policy(
        "default: allow\nrules:\n- name: a\n  match:\n"
        "    commands: ['create deploy', 'top po', 'config use', delete]\n  action: deny\n"
    )
    assert p.rules[0].match.commands == (
        "create deployment",
        "top pod",
        "config use-context",
        "delete",
    )


def test_omitted_protected_namespaces_default_to_the_system_namespaces() -> None:
    assert policy("default: allow\n").protected_namespaces == (
        "kube-system",
        "kube-public",
        "kube-node-lease",
    )
    assert policy("default: allow\nprotected_namespaces: []\n").protected_namespaces == ()


# --------------------------------------------------------------------------- snapshot


def test_json_snapshot_round_trips_with_the_same_digest() -> None:
    original = default_policy()
    snapshot = json.loads(json.dumps(original.to_dict()))
    again = policy_from_dict(snapshot, "snapshot")
    assert again == original
    assert policy_digest(again) == original.digest
    assert original.digest.startswith("sha256:")


def test_digest_changes_when_a_rule_changes() -> None:
    data = default_policy().to_dict()
    data["rules"][0]["action"] = "approve"
    assert policy_from_dict(data).digest != default_policy().digest


def test_digest_ignores_formatting_and_aliases() -> None:
    a = policy("default: allow\nrules:\n- {name: x, match: {kinds: po}, action: deny}\n")
    b = policy(
        "# comment\ndefault: allow\nrules:\n  - name: x\n    match:\n      kinds: [pods]\n"
        "    action: deny\n"
    )
    assert a.digest == b.digest


def test_snapshot_is_validated_like_yaml() -> None:
    data = {
        "version": 1,
        "default": "allow",
        "rules": [{"name": "a", "match": {"clas": "read"}, "action": "deny"}],
    }
    with pytest.raises(PolicyError, match=r"^snapshot: rules\[0\]\.match\.clas: unknown key"):
        policy_from_dict(data, "snapshot")
    with pytest.raises(PolicyError, match="a policy must be a mapping"):
        policy_from_dict(["version", 1], "snapshot")


def test_snapshot_loads_without_pyyaml() -> None:
    snapshot = json.dumps(default_policy().to_dict())
    code = (
        "import sys, json\n"
        "sys.modules['yaml'] = None\n"
        "from jitkube.policy import policy_from_dict\n"
        f"p = policy_from_dict(json.loads({snapshot!r}))\n"
        "assert 'yaml' not in sys.modules or sys.modules['yaml'] is None\n"
        "print(p.digest)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == default_policy().digest


# --------------------------------------------------------------------------- deciding


def test_first_matching_rule_wins() -> None:
    p = policy(
        "default: deny\nrules:\n"
        "- name: allow-dev-deletes\n"
        "  match: {commands: delete, namespaces: 'dev-*'}\n"
        "  action: allow\n"
        "- {name: deletes-need-approval, match: {commands: delete}, action: approve}\n"
    )
    dev = decide(assessment("destructive", namespaces=("dev-1",)), HUMAN, p, command=("delete",))
    assert (dev.action, dev.rule) == (Action.ALLOW, "allow-dev-deletes")
    other = decide(assessment("destructive", namespaces=("web",)), HUMAN, p, command=("delete",))
    assert (other.action, other.rule) == (Action.APPROVE, "deletes-need-approval")
    nothing = decide(assessment("read"), HUMAN, p, command=("get",))
    assert (nothing.action, nothing.rule) == (Action.DENY, "default")


ALLOW_EVERYTHING = (
    "default: allow\nrules:\n"
    "- {name: yes-to-all, match: {class: [bypass, unknown]}, action: allow}\n"
)


@pytest.mark.parametrize("risk", [RiskClass.BYPASS, RiskClass.UNKNOWN])
@pytest.mark.parametrize("context", [AGENT, HUMAN], ids=["agent", "human"])
def test_bypass_and_unknown_are_denied_whatever_the_policy_says(
    risk: RiskClass, context: DecisionContext
) -> None:
    d = decide(assessment(risk), context, policy(ALLOW_EVERYTHING), command=("get",))
    assert d.action is Action.DENY
    assert d.rule == f"floor:{risk.label}"
    assert "no policy can allow this" in d.reasons[0]


CONFIRM_ALL = "default: confirm\n"


@pytest.mark.parametrize(
    ("context", "expected", "why"),
    [
        (DecisionContext(agent=True, interactive=True), Action.APPROVE, "caller is an agent"),
        (DecisionContext(agent=True, interactive=False), Action.APPROVE, "caller is an agent"),
        (DecisionContext(agent=False, interactive=False), Action.APPROVE, "no human can answer"),
        (DecisionContext(agent=False, interactive=True), Action.CONFIRM, None),
    ],
    ids=["agent-with-tty", "agent", "ci", "human-at-terminal"],
)
def test_confirm_becomes_approve_unless_a_human_can_answer(
    context: DecisionContext, expected: Action, why: str | None
) -> None:
    d = decide(assessment("write"), context, policy(CONFIRM_ALL), command=("apply",))
    assert d.action is expected
    assert any(why in r for r in d.reasons) if why else len(d.reasons) == 1


PROTECTED = (
    "protected_namespaces: [kube-system, '*prod*']\ndefault: allow\nrules:\n"
    "- {name: guard, match: {protected: true, mutating: true}, action: approve}\n"
    "- {name: open, match: {protected: false}, action: allow}\n"
)


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ("kube-system", Action.APPROVE),
        ("payments-prod", Action.APPROVE),
        ("prod", Action.APPROVE),
        ("production-eu", Action.APPROVE),
        ("kube-systemx", Action.ALLOW),
        ("staging", Action.ALLOW),
    ],
)
def test_protected_namespaces_are_globs(namespace: str, expected: Action) -> None:
    d = decide(assessment("write", namespaces=(namespace,)), HUMAN, policy(PROTECTED), command=())
    assert d.action is expected


def test_empty_namespace_means_the_context_default() -> None:
    in_prod = DecisionContext(interactive=True, namespace_default="shop-prod")
    d = decide(assessment("write", namespaces=("",)), in_prod, policy(PROTECTED), command=())
    assert d.action is Action.APPROVE
    d = decide(assessment("write", namespaces=("",)), HUMAN, policy(PROTECTED), command=())
    assert d.action is Action.ALLOW


def test_several_namespaces_take_the_strictest_outcome() -> None:
    p = policy(PROTECTED)
    d = decide(assessment("write", namespaces=("dev", "kube-system")), HUMAN, p, command=())
    assert (d.action, d.rule) == (Action.APPROVE, "guard")
    d = decide(assessment("write", namespaces=("kube-system", "dev")), HUMAN, p, command=())
    assert (d.action, d.rule) == (Action.APPROVE, "guard")


def test_all_namespaces_cannot_slip_past_a_namespace_specific_rule() -> None:
    p = policy(
        "protected_namespaces: []\ndefault: allow\nrules:\n"
        "- {name: no-payments, match: {namespaces: 'payments-*', mutating: true}, action: deny}\n"
        "- {name: dev-ok, match: {namespaces: 'dev-*'}, action: allow}\n"
    )
    everywhere = assessment("write", namespaces=("*",))
    assert decide(everywhere, HUMAN, p, command=("label",)).action is Action.DENY
    assert decide(everywhere, HUMAN, p, command=("label",)).rule == "no-payments"
    assert (
        decide(assessment("read", namespaces=("*",)), HUMAN, p, command=()).action is Action.ALLOW
    )


def test_all_namespaces_include_the_protected_ones() -> None:
    d = decide(assessment("write", namespaces=("*",)), HUMAN, policy(PROTECTED), command=())
    assert d.action is Action.APPROVE


def test_several_kinds_take_the_strictest_outcome() -> None:
    p = policy(
        "default: approve\nrules:\n"
        "- {name: pods-ok, match: {kinds: pods}, action: allow}\n"
        "- {name: secrets-denied, match: {kinds: secrets}, action: deny}\n"
    )
    assert decide(assessment("write"), HUMAN, p, command=("apply",)).action is Action.ALLOW
    both = assessment("write", kinds=("pods", "secrets"))
    assert decide(both, HUMAN, p, command=("apply",)).rule == "secrets-denied"
    unknown_kind = assessment("write", kinds=("pods", "configmaps"))
    assert decide(unknown_kind, HUMAN, p, command=("apply",)).action is Action.APPROVE


@pytest.mark.parametrize(
    ("pattern", "command", "matches"),
    [
        ("create", ("create",), True),
        ("create", ("create", "secret", "generic"), True),
        ("create secret", ("create", "secret", "tls"), True),
        ("create secret", ("create", "configmap"), False),
        ("rollout restart", ("rollout", "restart"), True),
        ("rollout restart", ("rollout",), False),
        ("rollout restart", ("rollout", "status"), False),
        ("get", ("get",), True),
        ("get", (), False),
    ],
)
def test_commands_match_whole_words_as_a_prefix(
    pattern: str, command: tuple[str, ...], matches: bool
) -> None:
    p = policy(
        f"default: allow\nrules:\n- {{name: r, match: {{commands: '{pattern}'}}, action: deny}}\n"
    )
    assert (decide(assessment("write"), HUMAN, p, command=command).rule == "r") is matches


@pytest.mark.parametrize(
    ("condition", "assessed", "context", "matches"),
    [
        ("class: [read, write]", assessment("write"), HUMAN, True),
        ("class: read", assessment("sensitive_read"), HUMAN, False),
        ("min_class: destructive", assessment("privilege_escalation"), HUMAN, True),
        ("min_class: destructive", assessment("write"), HUMAN, False),
        ("agent: true", assessment("read"), AGENT, True),
        ("agent: true", assessment("read"), HUMAN, False),
        ("mutating: false", assessment("read"), HUMAN, True),
        ("mutating: false", assessment("write"), HUMAN, False),
        ("exposes_secret_values: true", assessment("read", exposes=True), HUMAN, True),
        ("exposes_secret_values: true", assessment("read"), HUMAN, False),
        ("cluster_scoped: true", assessment("write", cluster_scoped=True), HUMAN, True),
        ("cluster_scoped: true", assessment("write"), HUMAN, False),
        ("clusters: 'eks-prod-*'", assessment("read"), DecisionContext(cluster="eks-prod-1"), True),
        ("clusters: 'eks-prod-*'", assessment("read"), DecisionContext(cluster="eks-dev"), False),
        ("roles: [admin, 'break-glass*']", assessment("read"), DecisionContext(role="admin"), True),
        ("roles: [admin]", assessment("read"), DecisionContext(role="viewer"), False),
        ("namespaces: team-a", assessment("read", namespaces=()), HUMAN, False),
        ("protected: false", assessment("read", namespaces=()), HUMAN, True),
        ("kinds: nodes", assessment("read", kinds=()), HUMAN, False),
        ("wide_scope: true", assessment("destructive", wide_scope=True), HUMAN, True),
        ("wide_scope: true", assessment("destructive"), HUMAN, False),
        ("codes: [force, delete_wide]", assessment("destructive", codes=("force",)), HUMAN, True),
        ("codes: delete_wide", assessment("destructive", codes=("force",)), HUMAN, False),
    ],
)
def test_each_condition_narrows_a_rule(
    condition: str, assessed: Assessment, context: DecisionContext, matches: bool
) -> None:
    p = policy(f"default: allow\nrules:\n- name: r\n  match: {{{condition}}}\n  action: deny\n")
    assert (decide(assessed, context, p, command=("get",)).action is Action.DENY) is matches


def test_decide_is_fast_enough_for_the_hot_path() -> None:
    p = default_policy()
    cases = [
        assessment("read"),
        assessment("destructive", kinds=("pods", "deployments.apps"), namespaces=("*",)),
    ]
    fastest = float("inf")
    for _ in range(7):  # best of several rounds: other test workers share the CPU
        started = time.perf_counter()
        for _ in range(1_000):
            for a in cases:
                decide(a, AGENT, p, command=("delete",))
        fastest = min(fastest, time.perf_counter() - started)
    rate = 2_000 / fastest
    assert rate > 20_000, f"only {rate:.0f} decisions/s"


# --------------------------------------------------------------------------- default policy

DEFAULT_CASES = [
    # (description, assessment, command, agent action, human action)
    ("get pods", assessment("read"), ("get",), "allow", "allow"),
    ("get pods -A", assessment("read", namespaces=("*",)), ("get",), "allow", "allow"),
    ("logs in dev", assessment("sensitive_read", namespaces=("dev",)), ("logs",), "allow", "allow"),
    (
        "logs in prod",
        assessment("sensitive_read", namespaces=("shop-prod",)),
        ("logs",),
        "approve",
        "allow",
    ),
    ("port-forward", assessment("sensitive_read"), ("port-forward",), "approve", "allow"),
    ("apply in dev", assessment("write", namespaces=("dev",)), ("apply",), "approve", "allow"),
    (
        "apply in kube-system",
        assessment("write", namespaces=("kube-system",)),
        ("apply",),
        "approve",
        "confirm",
    ),
    ("delete pod in dev", assessment("destructive"), ("delete",), "approve", "confirm"),
    (
        "delete pod in prod",
        assessment("destructive", namespaces=("prod",)),
        ("delete",),
        "approve",
        "approve",
    ),
    (
        "delete namespace prod",
        assessment(
            "destructive",
            kinds=("namespaces",),
            namespaces=(),
            cluster_scoped=True,
            codes=("delete_critical",),
        ),
        ("delete",),
        "approve",
        "approve",
    ),
    (
        "delete pods --all -A",
        assessment("destructive", namespaces=("*",), wide_scope=True, codes=("delete_wide",)),
        ("delete",),
        "approve",
        "approve",
    ),
    (
        "delete pvc data",
        assessment("destructive", kinds=("persistentvolumeclaims",), codes=("delete_critical",)),
        ("delete",),
        "approve",
        "approve",
    ),
    (
        "rollout restart deploy -n dev",
        assessment(
            "destructive",
            kinds=("deployments.apps",),
            namespaces=("dev",),
            wide_scope=True,
            codes=("wide_scope",),
        ),
        ("rollout", "restart"),
        "approve",
        "confirm",
    ),
    (
        "create clusterrolebinding to cluster-admin",
        assessment(
            "privilege_escalation",
            kinds=("clusterrolebindings.rbac.authorization.k8s.io",),
            namespaces=(),
            cluster_scoped=True,
            codes=("cluster_admin_binding",),
        ),
        ("create", "clusterrolebinding"),
        "deny",
        "approve",
    ),
    (
        "port-forward --address 0.0.0.0",
        assessment("sensitive_read", codes=("non_loopback_listen", "port_forward")),
        ("port-forward",),
        "deny",
        "approve",
    ),
    (
        "get secret -o yaml",
        assessment("credential_exposure", kinds=("secrets",), mutating=False, exposes=True),
        ("get",),
        "approve",
        "confirm",
    ),
    (
        "create token",
        assessment("credential_exposure", kinds=("serviceaccounts",), mutating=False),
        ("create", "token"),
        "deny",
        "deny",
    ),
    (
        "config view --raw",
        assessment("credential_exposure", kinds=(), namespaces=(), mutating=False),
        ("config", "view"),
        "deny",
        "deny",
    ),
    ("exec in dev", assessment("privilege_escalation"), ("exec",), "approve", "approve"),
    (
        "exec in kube-system",
        assessment("privilege_escalation", namespaces=("kube-system",)),
        ("exec",),
        "deny",
        "approve",
    ),
    (
        "debug node",
        assessment(
            "privilege_escalation",
            kinds=("pods", "nodes"),
            cluster_scoped=True,
            codes=("debug_node",),
        ),
        ("debug",),
        "deny",
        "approve",
    ),
    (
        "cordon node",
        assessment("write", kinds=("nodes",), namespaces=(), cluster_scoped=True),
        ("cordon",),
        "approve",
        "approve",
    ),
    (
        "get nodes",
        assessment("read", kinds=("nodes",), namespaces=(), cluster_scoped=True),
        ("get",),
        "allow",
        "allow",
    ),
    ("kubeconfig bypass", assessment("bypass"), ("get",), "deny", "deny"),
    ("plugin", assessment("unknown", kinds=(), namespaces=()), (), "deny", "deny"),
]


@pytest.mark.parametrize(
    ("assessed", "command", "agent", "human"),
    [pytest.param(*case[1:], id=case[0]) for case in DEFAULT_CASES],
)
def test_default_policy_decisions(
    assessed: Assessment, command: tuple[str, ...], agent: str, human: str
) -> None:
    p = default_policy()
    assert decide(assessed, AGENT, p, command=command).action.label == agent
    assert decide(assessed, HUMAN, p, command=command).action.label == human


# agents: approve, see docs/policy.md
REVIEWED_NOT_DENIED = {"delete_wide", "delete_critical", "delete_force"}


def test_default_policy_refuses_agents_what_the_taxonomy_denies() -> None:
    from jitkube.risk import DENY_CODES

    for code in sorted(DENY_CODES - REVIEWED_NOT_DENIED):
        for cls in ("read", "sensitive_read", "write", "destructive", "privilege_escalation"):
            a = assessment(cls, codes=(code,))
            d = decide(a, AGENT, default_policy(), command=("apply",))
            assert d.action is Action.DENY, (code, cls, d)


def test_default_policy_never_lets_ci_confirm() -> None:
    for _, assessed, command, _, _ in DEFAULT_CASES:
        assert decide(assessed, CI, default_policy(), command=command).action is not Action.CONFIRM


def test_default_policy_is_loaded_once() -> None:
    assert default_policy() is default_policy()


def test_default_policy_json_snapshot_matches_the_yaml() -> None:
    package = Path(jitkube.__file__).parent
    yaml_text = (package / "default_policy.yaml").read_text(encoding="utf-8")
    snapshot = (package / "default_policy.json").read_text(encoding="utf-8")
    assert snapshot == default_policy_snapshot_text(yaml_text), (
        "default_policy.json is stale: run .venv/bin/python scripts/gen_default_policy_json.py"
    )
    assert load_policy(yaml_text, "x").digest == default_policy().digest


def test_default_policy_loads_without_pyyaml() -> None:
    code = (
        "import sys\n"
        "sys.modules['yaml'] = None\n"
        "from jitkube.policy import default_policy\n"
        "print(default_policy().digest)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == default_policy().digest


def test_decision_names_its_rule_and_reason() -> None:
    d = decide(assessment("destructive"), AGENT, default_policy(), command=("delete",))
    assert d == Decision(
        Action.APPROVE,
        "agents-changes",
        ("changes and secret reads by agents need a reviewer's approval",),
    )


# --------------------------------------------------------------------------- examples

EXAMPLES = REPO / "examples" / "policies"


@pytest.mark.parametrize("name", ["strict-production.yaml", "read-only-agents.yaml"])
def test_example_policy_loads(name: str) -> None:
    load_policy_file(EXAMPLES / name)


def test_read_only_agents_example_refuses_every_agent_change() -> None:
    p = load_policy_file(EXAMPLES / "read-only-agents.yaml")
    assert decide(assessment("read"), AGENT, p, command=("get",)).action is Action.ALLOW
    for risk in ("write", "destructive", "credential_exposure", "privilege_escalation"):
        assert decide(assessment(risk), AGENT, p, command=("apply",)).action is Action.DENY
    assert decide(assessment("write"), HUMAN, p, command=("apply",)).action is Action.ALLOW


def test_strict_production_example_denies_agents_critical_deletes_everywhere() -> None:
    p = load_policy_file(EXAMPLES / "strict-production.yaml")
    dev = DecisionContext(agent=True, cluster="eks-dev")
    critical = assessment("destructive", kinds=("namespaces",), codes=("delete_critical",))
    assert decide(critical, dev, p, command=("delete",)).action is Action.DENY
    assert decide(assessment("destructive"), dev, p, command=("delete",)).action is Action.APPROVE


def test_strict_production_example_denies_agents_in_production_clusters() -> None:
    p = load_policy_file(EXAMPLES / "strict-production.yaml")
    prod = DecisionContext(agent=True, cluster="eks-prod-eu")
    dev = DecisionContext(agent=True, cluster="eks-dev")
    assert decide(assessment("write"), prod, p, command=("apply",)).action is Action.DENY
    assert decide(assessment("write"), dev, p, command=("apply",)).action is Action.APPROVE
    assert decide(assessment("read"), prod, p, command=("get",)).action is Action.ALLOW


# --------------------------------------------------------------------------- kubectl


def _kubectl_subcommands(kubectl: Path, path: tuple[str, ...]) -> list[str]:
    out = subprocess.run(
        [str(kubectl), *path, "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    names: list[str] = []
    in_commands = False
    for line in out.splitlines():
        if re.match(r"^[A-Z][A-Za-z ]*Commands( \(.*\))?:$", line):
            in_commands = True
        elif in_commands and (m := re.match(r"^  ([a-z][a-z0-9-]*)\s", line)):
            names.append(m.group(1))
        elif line and not line.startswith(" "):
            in_commands = False
    return names


@pytest.mark.integration
def test_known_commands_are_kubectls_command_tree(kubectl_bin: Path) -> None:
    found: set[tuple[str, ...]] = set()
    level: list[tuple[str, ...]] = [()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        while level:
            children = pool.map(lambda path: _kubectl_subcommands(kubectl_bin, path), level)
            level = [
                (*path, name)
                for path, names in zip(level, children, strict=True)
                for name in names
                if name != "help"
            ]
            found.update(level)
    hidden = {("help",), ("options",)}  # real commands that `kubectl --help` does not list
    assert found | hidden == set(KNOWN_COMMANDS)


@pytest.mark.integration
def test_command_aliases_are_kubectls(kubectl_bin: Path) -> None:
    for parent, aliases in COMMAND_ALIASES.items():
        for alias, canonical in aliases.items():
            out = subprocess.run(
                [str(kubectl_bin), *parent, canonical, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout
            listed = re.search(r"^Aliases:\n(.*)$", out, re.M)
            assert listed, f"{parent} {canonical} has no aliases"
            assert alias in listed.group(1).replace(",", " ").split()


# --------------------------------------------------------------------------- end to end

END_TO_END = [
    # (argv, agent action, engineer-at-terminal action)
    ("get pods", "allow", "allow"),
    ("get pods -A", "allow", "allow"),
    ("--kubeconfig x get pods", "deny", "deny"),
    ("foo bar", "deny", "deny"),
    ("delete namespace prod", "approve", "approve"),
    ("delete pod web-1", "approve", "confirm"),
    ("delete pod web-1 -n prod", "approve", "approve"),
    ("delete pods --all -A", "approve", "approve"),
    ("create clusterrolebinding x --clusterrole=cluster-admin --user=bob", "deny", "approve"),
    ("debug node/n1 -it --image=busybox", "deny", "approve"),
    ("run x --image=nginx --privileged", "deny", "approve"),
    ("get secrets -A -o yaml", "approve", "confirm"),
    ("logs web -n dev", "allow", "allow"),
    ("logs web -n shop-prod", "approve", "allow"),
    ("get secret db -o yaml", "approve", "confirm"),
    ("create token default", "deny", "deny"),
    ("config view --raw", "deny", "deny"),
    ("exec -n kube-system web -- sh", "deny", "approve"),
    ("exec web -- sh", "approve", "approve"),
    ("cordon node-1", "approve", "approve"),
    ("rollout restart deploy/web -n dev", "approve", "allow"),
]


@pytest.mark.parametrize(("argv", "agent", "human"), END_TO_END, ids=[c[0] for c in END_TO_END])
def test_default_policy_end_to_end(argv: str, agent: str, human: str) -> None:
    from jitkube.kubectl.parser import parse
    from jitkube.risk import assess

    invocation = parse(argv.split())
    assessed = assess(invocation)
    p = default_policy()
    assert decide(assessed, AGENT, p, command=invocation.command).action.label == agent
    assert decide(assessed, HUMAN, p, command=invocation.command).action.label == human
