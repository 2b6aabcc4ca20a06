"""`jitkube demo` end to end: the real CLI, a real sandbox, real kubectl.

What `make demo` promises: exit 0 only when every step behaved as narrated, a summary
that says so, nothing left running afterwards, and no secret value on the screen.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from fixtures.env import IsolatedEnv
from fixtures.kubectl_bin import find_pinned_kubectl

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = [
    "Start the sandbox",
    "Device-code sign-in",
    "Request admin for 15 min",
    "Allowed read",
    "Secret values masked",
    "Preview namespace",
    "Agent's delete namespace",
    "Bypass refused",
    "Audit chain verifies",
    "Broker's audit view",
]


def _run_demo(isolated_env: IsolatedEnv, *args: str) -> subprocess.CompletedProcess[bytes]:
    kubectl = find_pinned_kubectl()
    if kubectl is None:
        pytest.skip("kubectl is not installed on this machine (CI has it)")
    return isolated_env.run(
        "demo", *args, extra_env={"COLUMNS": "120", "JITKUBE_KUBECTL": str(kubectl)}, timeout=180
    )


def _summary_rows(text: str) -> dict[str, str]:
    """step title -> result, read from the summary table (titled "jitkube demo")."""
    lines = text.splitlines()
    start = max(i for i, line in enumerate(lines) if line.strip() == "jitkube demo")
    rows: dict[str, str] = {}
    for line in lines[start:]:
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 4 and cells[1].isdigit():
            rows[cells[2]] = cells[3]
    return rows


def _process_alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"jitkube.sandbox.daemon" in cmdline


def test_demo_passes_every_step_and_leaves_nothing_behind(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    # A short path, as `make demo` has under /tmp: the users' warm servers (jitkube.warm)
    # can listen there, and must be gone afterwards too.
    short = Path(tempfile.mkdtemp(prefix="jkd-", dir="/tmp"))
    workdir = short / "demo"
    try:
        done = _run_demo(isolated_env, "--dir", str(workdir))
        out = done.stdout.decode()
        assert done.returncode == 0, out + done.stderr.decode()
        assert _summary_rows(out) == dict.fromkeys(STEPS, "passed"), out
        assert "every step behaved as narrated" in out
        assert "\x1b[" not in out  # NO_COLOR and a pipe: plain text
        match = re.search(r"sandbox pid (\d+)", out)
        assert match, out
        assert not _process_alive(int(match.group(1)))
        assert not workdir.exists()
        deadline = time.monotonic() + 10
        while _processes_mentioning(workdir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_mentioning(workdir) == []
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _processes_mentioning(path: Path) -> list[int]:
    """PIDs whose command line names `path` (a warm server names its socket)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if os.fsencode(path) in cmdline and int(entry.name) != os.getpid():
                found.append(int(entry.name))
    return found


def _planted_secrets(workdir: Path, kubectl: Path, tmp_path: Path) -> list[str]:
    """Every Secret value in prod, read straight from the kept sandbox with bare kubectl
    and alice's EKS token (what the demo must never have printed)."""
    sessions = workdir / "users" / "alice" / "run" / "jitkube" / "sessions"
    session = json.loads(next(sessions.glob("*.json")).read_text())
    ca = tmp_path / "cluster-ca.crt"
    ca.write_bytes(base64.b64decode(session["cluster_ca"]))
    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "bare-cache")}
    done = subprocess.run(
        [
            str(kubectl),
            "--kubeconfig",
            os.devnull,
            "--server",
            session["cluster_endpoint"],
            "--certificate-authority",
            str(ca),
            "--token",
            session["eks_token"],
            "get",
            "secrets",
            "-n",
            "prod",
            "-o",
            "json",
        ],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    values: list[str] = []
    for item in json.loads(done.stdout)["items"]:
        for encoded in (item.get("data") or {}).values():
            values += [encoded, base64.b64decode(encoded).decode()]
    return values


def test_demo_keep_leaves_a_usable_sandbox_and_never_prints_a_secret_value(
    isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    workdir = tmp_path / "demo"
    done = _run_demo(isolated_env, "--keep", "--dir", str(workdir))
    out = done.stdout.decode() + done.stderr.decode()
    try:
        assert done.returncode == 0, out
        assert "<masked:hmac-sha256:" in out
        assert f"jitkube sandbox down --dir {workdir / 'sandbox'}" in out
        kubectl = find_pinned_kubectl()
        assert kubectl is not None
        secrets = _planted_secrets(workdir, kubectl, tmp_path)
        assert len(secrets) >= 6
        leaks = [s[:6] + "…" for s in secrets if len(s) >= 6 and s in out]
        assert leaks == []
        # The printed instructions work when pasted into a new shell, as printed.
        text = done.stdout.decode()
        block = text[text.index("# Work as alice") : text.index("# Or start afresh")]
        script = "set -e\n" + block
        pasted = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            timeout=120,
            check=False,
        )
        assert pasted.returncode == 0, pasted
        assert b"api-5c8d7f9b4-x2k9p" in pasted.stdout  # kubectl get pods -n prod
    finally:
        isolated_env.run("sandbox", "down", "--dir", str(workdir / "sandbox"))
