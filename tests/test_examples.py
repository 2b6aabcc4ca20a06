"""Every file under examples/ and every command in docs/agents.md is checked against the
code, so the examples cannot rot: broker configs load with the broker's loader, policies
with the policy loader, IAM JSON keeps its shape, the shell script and workflow parse,
the Kubernetes manifests are judged by jitkube itself, and each `jitkube …` line shown
to users parses as a real command."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

try:  # Typer >= 0.22 vendors click as typer._click (as jitkube.cli.app does)
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover - older Typer with the click package
    from click.exceptions import UsageError as ClickUsageError  # type: ignore[assignment]

from jitkube import config as client_config
from jitkube.broker.config import BrokerConfig, load_config
from jitkube.check import parse_check_args
from jitkube.entry import HOT_COMMANDS, _take_global_options, report_error
from jitkube.environment import Environment
from jitkube.errors import (
    ApprovalPendingError,
    ApprovalRefusedError,
    BrokerUnreachableError,
    DeniedError,
    ExitCode,
    JitkubeError,
    LoginRequiredError,
    SessionRequiredError,
    UsageError,
)
from jitkube.judge import judge
from jitkube.kubectl.parser import parse
from jitkube.policy import DecisionContext, default_policy, load_policy_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
AWS = EXAMPLES / "aws"
K8S = EXAMPLES / "kubernetes" / "broker"
WORKFLOW = EXAMPLES / "github-actions" / "deploy.yml"
AGENTS_DOC = ROOT / "docs" / "agents.md"
BROKER_CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
POLICIES = sorted((EXAMPLES / "policies").glob("*.y*ml"))


# --------------------------------------------------------------------------- helpers


def _k8s_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def _one(kind: str) -> dict[str, Any]:
    found = [o for o in _k8s_objects() if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _configmap_broker(tmp_path: Path) -> tuple[BrokerConfig, Path]:
    """Write the ConfigMap's files as the pod sees them and load broker.yaml."""
    mount = tmp_path / "etc-jitkube"
    mount.mkdir()
    for key, text in _one("ConfigMap")["data"].items():
        (mount / key).write_text(text)
    return load_config(mount / "broker.yaml"), mount


def _statements(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    assert document["Version"] == "2012-10-17"
    statements = document["Statement"]
    assert isinstance(statements, list)
    assert statements
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allowed_actions(statements: list[dict[str, Any]], principal: str | None = None) -> set[str]:
    actions: set[str] = set()
    for st in statements:
        if st["Effect"] != "Allow":
            continue
        if principal is not None and principal not in _as_list(
            st.get("Principal", {}).get("AWS", [])
        ):
            continue
        actions.update(_as_list(st["Action"]))
    return actions


def _jitkube_lines(text: str) -> Iterator[str]:
    """`jitkube …` command lines inside fenced code blocks (prompts and comments removed)."""
    in_block = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        stripped = line.strip().removeprefix("$ ").strip()
        if in_block and stripped.startswith("jitkube "):
            yield stripped


def _check_command_line(line: str) -> None:
    """Parse one `jitkube …` line the way jitkube would, without running it."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    # Only the jitkube command itself: stop at `||`, `&&`, `|`, `;` or a redirection.
    for i, word in enumerate(words):
        if word and set(word) <= set("|&;<>()"):
            words = words[:i]
            break
    assert words[0] == "jitkube"
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), environ={})
    args = _take_global_options(words[1:], env)
    command = next(a for a in args if not a.startswith("-"))
    rest = args[args.index(command) + 1 :]
    if command in HOT_COMMANDS:
        kubectl_argv = list(rest) if command == "kubectl" else []
        if command == "check":
            kubectl_argv = list(parse_check_args(rest).kubectl_argv)
        invocation = parse(kubectl_argv[1:] if kubectl_argv[:1] == ["kubectl"] else kubectl_argv)
        assert not invocation.problems, (line, invocation.problems)
        return
    from jitkube.cli.app import build_app

    # Typer may vendor click (typer._click): go by duck type, not by click's classes.
    cmd: Any = typer.main.get_command(build_app(env))
    # Walk the command path, letting click validate each level's options and arguments.
    ctx = cmd.make_context("jitkube", list(args), resilient_parsing=False)
    remaining = [*getattr(ctx, "_protected_args", []), *ctx.args]
    while hasattr(cmd, "resolve_command") and remaining:
        name, sub, remaining = cmd.resolve_command(ctx, remaining)
        assert sub is not None, f"{line}: unknown command {name}"
        cmd = sub
        ctx = cmd.make_context(str(name), remaining, parent=ctx, resilient_parsing=False)
        remaining = [*getattr(ctx, "_protected_args", []), *ctx.args]
    assert not remaining, f"{line}: left over {remaining}"


# --------------------------------------------------------------------------- broker configs


def test_examples_include_a_generic_and_an_entra_id_broker_config() -> None:
    names = {p.name for p in BROKER_CONFIGS}
    assert {"broker.yaml", "broker-entra-id.yaml", "broker-github-actions.yaml"} <= names


@pytest.mark.parametrize("path", BROKER_CONFIGS, ids=lambda p: p.name)
def test_broker_config_loads_with_the_brokers_loader(path: Path) -> None:
    config = load_config(path)
    assert config.roles
    assert config.clusters
    if config.policy_file is not None:
        load_policy_file(Path(config.policy_file))


def test_entra_id_config_uses_the_v2_issuer_and_serves_an_authority() -> None:
    config = load_config(EXAMPLES / "broker-entra-id.yaml")
    issuer = re.fullmatch(
        r"https://login\.microsoftonline\.com/([0-9a-f-]{36})/v2\.0", config.oidc.issuer
    )
    assert issuer, config.oidc.issuer
    assert config.oidc.authority == f"https://login.microsoftonline.com/{issuer.group(1)}"
    assert config.oidc.groups_claim in ("groups", "roles")
    assert any(a.startswith("api://") for a in config.oidc.audience)
    assert config.oidc.client_id
    assert config.oidc.client_id not in config.oidc.audience


def test_every_session_role_of_the_examples_is_assumable_by_the_broker(tmp_path: Path) -> None:
    configs = [load_config(p) for p in BROKER_CONFIGS] + [_configmap_broker(tmp_path)[0]]
    role_arns = {role.role_arn for c in configs for role in c.roles.values()}
    statements = _statements(AWS / "broker-permissions-policy.json")
    resources = {
        r
        for st in statements
        if st["Effect"] == "Allow" and "sts:AssumeRole" in _as_list(st["Action"])
        for r in _as_list(st["Resource"])
    }
    assert role_arns <= resources, role_arns - resources


# --------------------------------------------------------------------------- policies


def test_policy_examples_exist() -> None:
    assert {p.name for p in POLICIES} >= {"strict-production.yaml", "read-only-agents.yaml"}


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_policy_example_loads(path: Path) -> None:
    policy = load_policy_file(path)
    assert policy.rules


def test_the_default_policy_the_examples_index_points_to_loads() -> None:
    index = (EXAMPLES / "README.md").read_text()
    target = re.search(r"\]\((\.\./src/jitkube/default_policy\.yaml)\)", index)
    assert target, "examples/README.md must point to the shipped default policy"
    assert load_policy_file(EXAMPLES / target.group(1)).rules == default_policy().rules


# --------------------------------------------------------------------------- AWS


def test_broker_role_trusts_only_eks_pod_identity() -> None:
    statements = _statements(AWS / "broker-trust-policy.json")
    assert all(st["Principal"] == {"Service": "pods.eks.amazonaws.com"} for st in statements)
    assert _allowed_actions(statements) == {"sts:AssumeRole", "sts:TagSession"}
    assert all(st.get("Condition") for st in statements), "bind it to one cluster and SA"


def test_session_roles_trust_the_broker_with_what_sts_assume_role_sends() -> None:
    statements = _statements(AWS / "session-role-trust-policy.json")
    broker = "arn:aws:iam::123456789012:role/jitkube-broker"
    # The broker's AssumeRole (broker/sts.py) sends SourceIdentity and session tags.
    assert _allowed_actions(statements, broker) >= {
        "sts:AssumeRole",
        "sts:TagSession",
        "sts:SetSourceIdentity",
    }
    assume = [
        st
        for st in statements
        if st["Effect"] == "Allow" and "sts:AssumeRole" in _as_list(st["Action"])
    ]
    assert assume
    assert all(
        any("sts:SourceIdentity" in block for block in st.get("Condition", {}).values())
        for st in assume
    )
    principals = {p for st in statements for p in _as_list(st["Principal"].get("AWS", []))}
    assert principals <= {broker, "*"}


def test_session_role_name_condition_matches_the_brokers_session_names() -> None:
    from jitkube.broker.sts import role_session_name

    statements = _statements(AWS / "session-role-trust-policy.json")
    patterns = [
        value
        for st in statements
        for block in st.get("Condition", {}).values()
        for key, value in block.items()
        if key == "sts:RoleSessionName"
    ]
    assert patterns
    name = role_session_name("ses_0123456789abcdef")
    for pattern in patterns:
        assert re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), name)


def test_broker_permissions_allow_cluster_discovery() -> None:
    statements = _statements(AWS / "broker-permissions-policy.json")
    assert "eks:DescribeCluster" in _allowed_actions(statements)
    assert {"sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"} <= _allowed_actions(
        statements
    )


def test_access_entry_script_is_valid_bash_with_the_documented_mapping() -> None:
    script = AWS / "eks-access-entries.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    text = script.read_text()
    assert "set -euo pipefail" in text
    for role, policy in [
        ("jitkube-viewer", "AmazonEKSViewPolicy"),
        ("jitkube-editor", "AmazonEKSEditPolicy"),
        ("jitkube-admin", "AmazonEKSClusterAdminPolicy"),
    ]:
        assert re.search(rf"^policy {role} {policy} ", text, re.MULTILINE), role
        assert re.search(rf"^entry {role} ", text, re.MULTILINE), role
    assert "aws eks create-access-entry" in text
    assert "aws eks associate-access-policy" in text


# --------------------------------------------------------------------------- GitHub Actions


def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def test_workflow_may_request_an_id_token() -> None:
    data = _workflow()
    assert data["permissions"]["id-token"] == "write"
    assert True in data or "on" in data  # YAML 1.1 reads the `on:` key as True


def test_workflow_steps_request_a_session_and_apply_handling_pending_and_denied() -> None:
    job = _workflow()["jobs"]["deploy"]
    runs = [step.get("run", "") for step in job["steps"]]
    request = next(r for r in runs if "request --role deployer" in r)
    apply = next(r for r in runs if " kubectl apply -f k8s/" in r)
    wanted = 'jitkube --non-interactive request --role deployer --ttl 15m --reason "$GITHUB_RUN_ID"'
    assert wanted in request
    for script in (request, apply):
        assert re.search(r"^\s*66\)", script, re.MULTILINE)
        assert re.search(r"^\s*65\)", script, re.MULTILINE)
        check = subprocess.run(["bash", "-n"], input=script.encode(), capture_output=True)
        assert check.returncode == 0, check.stderr.decode()
    for line in _jitkube_lines("```\n" + "\n".join(runs) + "\n```"):
        _check_command_line(line)
    assert {"JITKUBE_BROKER_URL", "JITKUBE_ID_TOKEN_AUDIENCE"} <= set(job["env"])


def test_workflow_matches_the_github_actions_broker() -> None:
    job = _workflow()["jobs"]["deploy"]
    config = load_config(EXAMPLES / "broker-github-actions.yaml")
    assert config.oidc.issuer == "https://token.actions.githubusercontent.com"
    assert job["env"]["JITKUBE_ID_TOKEN_AUDIENCE"] in config.oidc.audience
    role = config.roles[job["env"]["JITKUBE_ROLE"]]
    assert job["env"]["JITKUBE_CLUSTER"] in role.clusters
    # GitHub's `sub` for a job with an environment (groups_claim: sub).
    assert config.oidc.groups_claim == "sub"
    assert f"repo:my-org/my-app:environment:{job['environment']}" in role.requestable_by


# --------------------------------------------------------------------------- Kubernetes


def test_manifests_hold_every_piece_of_a_replicated_broker() -> None:
    kinds = {o["kind"] for o in _k8s_objects()}
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }


@pytest.mark.parametrize("agent", [False, True], ids=["engineer", "agent"])
def test_manifests_are_judged_offline_without_unknowns_or_privileged_pods(agent: bool) -> None:
    j = judge(["apply", "-f", str(K8S)], DecisionContext(agent=agent), default_policy())
    assert not j.invocation.problems
    assert j.manifests is not None
    assert not j.manifests.problems
    assert j.assessment.risk.label != "unknown"
    codes = {r.code for r in j.assessment.reasons}
    assert not codes & {"privileged_pod", "host_namespace_pod"}
    assert j.decision.action.label != "deny", j.decision
    assert "deployments.apps" in j.assessment.kinds


def test_deployment_is_replicated_probed_and_locked_down() -> None:
    deployment = _one("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    port_names = {p["name"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["port"] in port_names


def test_deployment_runs_a_real_broker_command_on_the_mounted_config(tmp_path: Path) -> None:
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    _check_command_line(shlex.join(args))
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert int(args[args.index("--port") + 1]) == container["ports"][0]["containerPort"]
    config_path = Path(args[args.index("--config") + 1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == _one("ConfigMap")["metadata"]["name"]
    assert config_path.name in _one("ConfigMap")["data"]
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]


def test_configmap_broker_config_loads_and_uses_postgresql(tmp_path: Path) -> None:
    config, mount = _configmap_broker(tmp_path)
    assert config.storage.url.startswith("postgresql+psycopg://")
    assert ":" not in config.storage.url.split("//", 1)[1].split("@", 1)[0], "no password"
    assert config.policy_file == str(mount / "policy.yaml")
    load_policy_file(Path(config.policy_file))


def test_database_password_from_the_secret_reaches_the_brokers_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap's URL has no password; libpq must take PGPASSWORD from the env."""
    import sqlalchemy as sa

    from jitkube.broker.store import create_engine

    config, _ = _configmap_broker(tmp_path)
    target = sa.engine.make_url(
        os.environ.get(
            "JITKUBE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    )
    # The example's URL shape, pointed at the test server (trust auth accepts any password).
    url = sa.engine.make_url(config.storage.url).set(
        host=target.host, port=target.port, username=target.username, database=target.database
    )
    assert url.password is None
    secret_value = "not-a-real-password-" + tmp_path.name
    monkeypatch.setenv("PGPASSWORD", secret_value)
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            info = conn.connection.dbapi_connection.info  # type: ignore[union-attr]
            assert info.password == secret_value
    except sa.exc.OperationalError:
        pytest.skip("no PostgreSQL server answers (JITKUBE_TEST_POSTGRES_URL)")
    finally:
        engine.dispose()


def test_secret_holds_placeholders_for_what_the_broker_reads_from_env(tmp_path: Path) -> None:
    config, _ = _configmap_broker(tmp_path)
    secret = _one("Secret")
    assert set(secret["stringData"]) == {"PGPASSWORD", config.storage.encryption_key_env}
    assert all(v.startswith("REPLACE-") for v in secret["stringData"].values())
    container = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in container["envFrom"]


def test_service_and_disruption_budget_select_the_broker_pods() -> None:
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [
        _one("Service")["spec"]["selector"],
        _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        _one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    namespaces = {o["metadata"].get("namespace") for o in _k8s_objects()} - {None}
    assert namespaces == {_one("Namespace")["metadata"]["name"]}


# --------------------------------------------------------------------------- agents.md


AGENT_LINES = list(_jitkube_lines(AGENTS_DOC.read_text()))


def test_agents_doc_shows_the_commands_an_agent_needs() -> None:
    words = {shlex.split(line, comments=True)[1] for line in AGENT_LINES}
    assert len(AGENT_LINES) >= 8
    joined = "\n".join(AGENT_LINES)
    for needed in ("shim install --dir", "approvals status", "--no-wait", "--agent"):
        assert needed in joined, needed
    assert "kubectl" in {w for line in AGENT_LINES for w in line.split()}
    assert words & {"login", "request"}


@pytest.mark.parametrize("line", AGENT_LINES)
def test_every_jitkube_command_in_agents_doc_parses(line: str) -> None:
    _check_command_line(line)


@pytest.mark.parametrize(
    "line",
    [
        "jitkube approvals stats cmd_1",
        "jitkube request --role viewer --ttl 15m --no-such-flag",
        "jitkube shim install --directory /tmp/x",
        "jitkube approvals status",
        "jitkube --agent claude-code kubectl get pods --kubeconfig",
    ],
)
def test_a_made_up_command_line_is_caught(line: str) -> None:
    # click's UsageError (NoSuchOption, MissingParameter… derive from it), a jitkube
    # UsageError, or a failed assertion of the checker.
    with pytest.raises((ClickUsageError, UsageError, AssertionError)):
        _check_command_line(line)


def test_jitkube_variables_named_in_examples_and_agents_doc_exist() -> None:
    texts = [AGENTS_DOC.read_text(), WORKFLOW.read_text()]
    texts += [p.read_text() for p in K8S.glob("*.yaml")]
    named = {v for text in texts for v in re.findall(r"\bJITKUBE_[A-Z_]+\b", text)}
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "jitkube").rglob("*.py"))
    known = {client_config.env_var(key) for key in client_config.KEYS}
    unknown = {v for v in named if v not in known and f'"{v}"' not in source}
    assert not unknown, unknown


def _doc_refusal_sample() -> dict[str, Any]:
    blocks = re.findall(r"```json\n(.*?)```", AGENTS_DOC.read_text(), re.DOTALL)
    envelopes = [json.loads(b) for b in blocks if "jitkube_result_version" in b]
    assert len(envelopes) == 1
    return envelopes[0]  # type: ignore[no-any-return]


def test_refusal_sample_in_agents_doc_is_what_jitkube_prints(isolated_env: Any) -> None:
    sample = _doc_refusal_sample()
    result = isolated_env.run(
        "kubectl", "get", "pods", "--kubeconfig", "/nonexistent",
        extra_env={"JITKUBE_AGENT": "claude-code"},
    )  # fmt: skip
    assert result.returncode == ExitCode.DENIED
    real = json.loads(result.stderr.decode().splitlines()[0])
    assert list(real) == list(sample)  # the envelope's fixed key order
    assert real["data"] == sample["data"]
    assert real["status"] == sample["status"]
    assert real["exit_code"] == sample["exit_code"]
    assert real["errors"][0]["code"] == sample["errors"][0]["code"]
    assert real["errors"][0]["hint"] == sample["errors"][0]["hint"]


def _status_table() -> dict[int, str]:
    text = AGENTS_DOC.read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \|", text, re.MULTILINE)
    return {int(code): status for status, code in rows}


@pytest.mark.parametrize(
    "error",
    [
        DeniedError("no", data={"class": "bypass"}),
        ApprovalPendingError("wait", data={"approval_id": "cmd_1"}),
        ApprovalRefusedError("denied"),
        LoginRequiredError("login"),
        SessionRequiredError("session"),
        BrokerUnreachableError("down"),
        UsageError("bad"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_status_table_in_agents_doc_matches_the_refusal_line(error: JitkubeError) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(stdout=stdout, stderr=stderr, environ={})
    env.agent = "claude-code"
    code = report_error(env, "kubectl", error)
    assert stdout.getvalue() == ""  # stdout belongs to kubectl
    line = json.loads(stderr.getvalue().splitlines()[0])
    assert line["exit_code"] == code
    assert _status_table()[code] == line["status"]
    if isinstance(error, ApprovalPendingError):
        assert line["data"]["approval_id"] == "cmd_1"
