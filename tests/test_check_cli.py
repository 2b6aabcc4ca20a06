"""`jitkube check`: judges without running; exit code and envelope follow the decision."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.env import IsolatedEnv

PRIVILEGED_POD = b"""\
apiVersion: v1
kind: Pod
metadata:
  name: root-shell
  namespace: prod
spec:
  hostPID: true
  containers:
  - name: c
    image: busybox
    securityContext:
      privileged: true
"""


def _json(result: subprocess.CompletedProcess[bytes]) -> dict:
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def test_allowed_read_exits_zero_with_envelope(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run("check", "--output", "json", "--", "kubectl", "get", "pods", "-n", "prod")
    assert r.returncode == 0, r.stderr
    env = _json(r)
    assert env["jitkube_result_version"] == "1"
    assert env["command"] == "check"
    assert env["status"] == "ok"
    assert env["exit_code"] == 0
    data = env["data"]
    assert data["class"] == "read"
    assert data["decision"] == "allow"
    assert data["exposes_secret_values"] is False
    inv = data["invocation"]
    assert inv["command"] == "get"
    assert inv["kinds"] == ["pods"]
    assert inv["namespace"] == "prod"
    assert inv["all_namespaces"] is False
    assert inv["dry_run"] == "none"


def test_leading_kubectl_word_is_optional(isolated_env: IsolatedEnv) -> None:
    with_word = isolated_env.run("check", "--output", "json", "--", "kubectl", "get", "pods")
    without = isolated_env.run("check", "--output", "json", "--", "get", "pods")
    assert _json(with_word) == _json(without)


def test_agent_reading_secret_values_needs_approval(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run(
        "check", "--agent", "--output", "json", "--", "get", "secret", "db", "-o", "yaml"
    )
    assert r.returncode == 66, r.stderr
    data = _json(r)["data"]
    assert data["class"] == "credential_exposure"
    assert data["exposes_secret_values"] is True
    assert data["decision"] == "approve"
    assert data["invocation"]["kinds"] == ["secrets"]
    assert data["invocation"]["names"] == ["db"]


def test_agent_never_gets_confirm(isolated_env: IsolatedEnv) -> None:
    human = _json(isolated_env.run("check", "--output", "json", "--", "delete", "ns", "prod"))
    agent = _json(
        isolated_env.run("check", "--agent", "--output", "json", "--", "delete", "ns", "prod")
    )
    assert human["data"]["class"] == agent["data"]["class"] == "destructive"
    assert agent["data"]["decision"] == "approve"
    assert agent["exit_code"] == 66


def test_bypass_flag_is_denied_and_still_prints_envelope(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run(
        "check", "--output", "json", "--", "--kubeconfig", "/tmp/other", "get", "pods"
    )
    assert r.returncode == 65
    env = _json(r)
    assert env["status"] == "denied"
    assert env["data"]["class"] == "bypass"
    assert env["data"]["decision"] == "deny"
    assert any("kubeconfig" in reason for reason in env["data"]["reasons"])


def test_plugin_is_unknown_and_denied(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run("check", "--output", "json", "--", "krew-evil", "install")
    assert r.returncode == 65
    assert _json(r)["data"]["class"] == "unknown"


def test_stdin_manifest_is_judged(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run(
        "check", "--output", "json", "--", "apply", "-f", "-", input=PRIVILEGED_POD
    )
    data = _json(r)["data"]
    assert data["class"] == "privilege_escalation"
    assert "pods" in data["invocation"]["kinds"]
    assert "prod" in data["invocation"]["namespaces"]
    assert data["invocation"]["manifest_digest"]


def test_human_output_shows_parse_class_reasons_and_decision(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run("check", "--", "kubectl", "-n", "prod", "delete", "deploy", "web")
    out = r.stdout.decode()
    assert "command:    delete" in out
    assert "deployments.apps" in out
    assert "namespace:  prod" in out
    assert "class:      destructive" in out
    assert "decision:" in out
    assert "reasons:" in out


def test_broken_policy_file_is_rejected_with_line(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - name: x\n    match: {class: [destructve]}\n    action: allow\n"
    )
    r = isolated_env.run("check", "--policy", str(policy), "--", "get", "pods")
    assert r.returncode == 64
    err = r.stderr.decode()
    assert "policy.yaml:4" in err
    assert "destructve" in err
    assert r.stdout == b""


def test_custom_policy_decides(isolated_env: IsolatedEnv, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\ndefault: allow\nrules:\n"
        "  - name: no-reads-in-prod\n    match: {namespaces: [prod]}\n    action: deny\n"
    )
    denied = isolated_env.run("check", "--policy", str(policy), "--", "get", "pods", "-n", "prod")
    allowed = isolated_env.run("check", "--policy", str(policy), "--", "get", "pods", "-n", "dev")
    assert denied.returncode == 65
    assert "no-reads-in-prod" in denied.stdout.decode()
    assert allowed.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("check",), "no kubectl command"),
        (("check", "--bogus", "--", "get", "pods"), "unknown check option"),
        (("check", "--policy"), "needs a value"),
        (("--output", "yaml", "check", "--", "get", "pods"), "json or text"),
    ],
)
def test_usage_errors_exit_64_with_one_clear_line(
    isolated_env: IsolatedEnv, args: tuple[str, ...], message: str
) -> None:
    r = isolated_env.run(*args)
    assert r.returncode == 64
    assert message in r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()


def test_console_script_and_module_behave_the_same(isolated_env: IsolatedEnv) -> None:
    script = shutil.which("jitkube", path=str(Path(__import__("sys").executable).parent))
    assert script, "the jitkube console script is installed in the venv"
    args = ("check", "--output", "json", "--", "delete", "pod", "x", "--force", "--grace-period=0")
    via_module = isolated_env.run(*args)
    via_script = subprocess.run(
        [script, *args], capture_output=True, env=isolated_env.env, input=b"", check=False
    )
    assert via_script.returncode == via_module.returncode
    assert via_script.stdout == via_module.stdout


def test_help_goes_to_stdout_and_exits_zero(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run("check", "--help")
    assert r.returncode == 0
    assert r.stdout.decode().startswith("usage: jitkube check")
    assert "exit codes:" in r.stdout.decode()
    assert r.stderr == b""
