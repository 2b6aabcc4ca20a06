"""The runner: real kubectl, a private kubeconfig, pass-through, cleanup on every exit path."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.cluster import KubeSession
from jitkube.kubectl.resources import resolve_type
from jitkube.runner import (
    SAFE_PATH,
    Target,
    child_environment,
    kubeconfig_document,
    sweep_stale,
)

pytestmark = pytest.mark.integration

# Runs run_kubectl in its own process, exactly as the hot path will (fds inherited).
DRIVER = r"""
import json, os, sys
from pathlib import Path
from jitkube.runner import Target, run_kubectl

spec = json.loads(os.environ.pop("RUNNER_SPEC"))
target = Target(spec["server"], spec["ca"].encode(), spec["token"])


class Upper:
    masked_count = 0

    def feed(self, chunk):
        self.masked_count += chunk.count(b"secret")
        return chunk.replace(b"secret", b"<masked>")

    def close(self):
        return b""


stdin_bytes = spec["stdin"].encode() if spec.get("stdin") is not None else None
result = run_kubectl(
    spec["kubectl"], spec["argv"], target,
    environ=os.environ, run_base=Path(spec["run_base"]), cache_dir=Path(spec["cache"]),
    stdin_bytes=stdin_bytes, maskers=(Upper, Upper) if spec.get("mask") else None,
)
Path(spec["result"]).write_text(json.dumps({
    "exit_code": result.exit_code, "masked_count": result.masked_count,
    "stdout_bytes": result.stdout_bytes}))
sys.exit(result.exit_code)
"""


class Driver:
    def __init__(self, session: KubeSession, tmp_path: Path, server: str, ca_pem: bytes) -> None:
        self.session = session
        self.tmp = tmp_path
        self.run_base = tmp_path / "run"
        self.spec = {
            "server": server,
            "ca": ca_pem.decode(),
            "token": session.token,
            "kubectl": str(session.kubectl),
            "run_base": str(self.run_base),
            "cache": str(tmp_path / "kcache"),
            "result": str(tmp_path / "result.json"),
        }

    def popen(
        self, *argv: str, env_extra: dict[str, str] | None = None, **spec
    ) -> subprocess.Popen[bytes]:
        env = dict(self.session.env)
        env.update(env_extra or {})
        env["RUNNER_SPEC"] = json.dumps({**self.spec, "argv": list(argv), **spec})
        return subprocess.Popen(
            [sys.executable, "-c", DRIVER],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def run(self, *argv: str, **kw) -> tuple[int, bytes, bytes]:
        proc = self.popen(*argv, **kw)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out, err

    def result(self) -> dict:
        return json.loads(Path(self.spec["result"]).read_text())


@pytest.fixture
def driver(sandbox, kube_login: Callable[..., KubeSession], tmp_path: Path) -> Driver:
    session = kube_login("jitkube-admin")
    return Driver(session, tmp_path, sandbox.cluster.url, sandbox.cluster.ca_pem)


def test_output_matches_bare_kubectl_byte_for_byte(driver: Driver) -> None:
    # JSON, not the table: the AGE column may tick between the two runs.
    bare = driver.session.run("get", "pods", "-n", "prod", "-o", "json")
    assert bare.returncode == 0, bare.stderr
    code, out, err = driver.run("get", "pods", "-n", "prod", "-o", "json")
    assert code == 0, err
    assert out.decode() == bare.stdout
    assert list(driver.run_base.iterdir()) == [], "the private kubeconfig must be gone"


def test_kubectl_exit_codes_pass_through(driver: Driver) -> None:
    code, _out, err = driver.run("get", "pod", "no-such-pod", "-n", "prod")
    assert code == 1
    assert b"NotFound" in err or b"not found" in err


def test_callers_kubeconfig_and_cluster_variables_are_ignored(
    driver: Driver, sandbox, tmp_path: Path
) -> None:
    evil = tmp_path / "evil-kubeconfig"
    evil.write_text("this is not a kubeconfig")
    code, out, err = driver.run(
        "get",
        "ns",
        "-o",
        "name",
        env_extra={
            "KUBECONFIG": str(evil),
            "KUBERNETES_SERVICE_HOST": "10.0.0.1",
            "HTTPS_PROXY": "http://127.0.0.1:9",
        },
    )
    assert code == 0, err
    assert b"namespace/prod" in out
    users = {r.user for r in sandbox.cluster.requests if r.path.startswith("/api")}
    assert any(u and "tester" in u for u in users), users


def test_stdin_manifest_reaches_the_cluster(driver: Driver, sandbox) -> None:
    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "from-stdin", "namespace": "prod"},
            "data": {"k": "v"},
        }
    )
    code, out, err = driver.run("apply", "-f", "-", stdin=manifest)
    assert code == 0, err
    assert b"configmap/from-stdin" in out
    assert sandbox.cluster.store.exists(resolve_type("configmaps"), "prod", "from-stdin")


def test_filtered_streams_go_through_the_masker(driver: Driver) -> None:
    code, out, err = driver.run("get", "secrets", "-n", "prod", "-o", "name", mask=True)
    assert code == 0, err
    assert b"secret" not in out
    assert b"<masked>" in out
    assert driver.result()["masked_count"] >= 1
    assert driver.result()["stdout_bytes"] == len(out)


def test_sigterm_stops_kubectl_and_removes_the_kubeconfig(driver: Driver) -> None:
    proc = driver.popen("get", "pods", "-n", "prod", "-w")
    deadline = time.monotonic() + 20
    run_dirs: list[Path] = []
    while time.monotonic() < deadline and not run_dirs:
        run_dirs = list(driver.run_base.glob("*/kubeconfig")) if driver.run_base.exists() else []
        time.sleep(0.05)
    assert run_dirs, "the runner never wrote its kubeconfig"
    kubeconfig = run_dirs[0]
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert stat.S_IMODE(kubeconfig.parent.stat().st_mode) == 0o700
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode in (143, 1, 0), proc.returncode
    assert not kubeconfig.exists()
    assert not kubeconfig.parent.exists()


def test_leftovers_of_a_killed_run_are_swept(tmp_path: Path) -> None:
    base = tmp_path / "run"
    base.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = base / f"{dead.pid}-abc"
    stale.mkdir()
    (stale / "kubeconfig").write_text("token")
    live = base / f"{os.getpid()}-def"
    live.mkdir()
    sweep_stale(base)
    assert not stale.exists()
    assert live.exists()


def test_child_environment_is_an_allowlist_not_the_callers(tmp_path: Path) -> None:
    caller = {
        "PATH": "/home/agent/evil-bin:/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm",
        "KUBECONFIG": "/elsewhere",
        "AWS_SECRET_ACCESS_KEY": "x",
        "GITHUB_TOKEN": "x",
        "DB_PASSWORD": "x",
        "JITKUBE_ID_TOKEN": "x",
        "KUBECTL_KUBERC": "true",
        "POD_NAMESPACE": "kube-system",
        "HTTPS_PROXY": "http://proxy",
        # Go prints every request header (the bearer token) with this set.
        "GODEBUG": "http2debug=1",
        # kubectl edit/diff would run these next to the kubeconfig.
        "KUBE_EDITOR": "sh -c 'cat $KUBECONFIG'",
        "EDITOR": "evil",
        "VISUAL": "evil",
        "SHELL": "/home/agent/evil-shell",
        "SSLKEYLOGFILE": "/tmp/keys",
    }
    env = child_environment(caller, tmp_path / "run", tmp_path / "cache")
    assert env["PATH"] == SAFE_PATH
    assert env["LANG"] == env["LC_ALL"] == "C.UTF-8"
    assert env["TERM"] == "xterm"
    assert env["KUBECONFIG"] == str(tmp_path / "run" / "kubeconfig")
    assert env["HOME"] == str(tmp_path / "run")
    assert env["KUBECTL_KUBERC"] == "false"
    assert env["KUBECTL_ENABLE_CMD_SHADOW"] == "false"
    allowed = {"PATH", "LANG", "LC_ALL", "TERM", "KUBECONFIG", "KUBECACHEDIR", "HOME",
               "KUBECTL_KUBERC", "KUBECTL_ENABLE_CMD_SHADOW"}  # fmt: skip
    assert set(env) == allowed


def test_target_repr_hides_the_token() -> None:
    target = Target("https://127.0.0.1:1", b"ca", "k8s-aws-v1.super-secret")
    assert "super-secret" not in repr(target)
    assert "super-secret" in kubeconfig_document(target)
