"""The hot path (`jitkube check`, `jitkube kubectl`) imports only stdlib and jitkube core."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HEAVY = ("typer", "rich", "click", "requests", "boto3", "botocore", "msal", "keyring", "pydantic")

PROBE = r"""
import io, json, sys
from jitkube.entry import main
from jitkube.environment import Environment
env = Environment(stdin=io.BytesIO(b""), stdout=io.StringIO(), stderr=io.StringIO(), environ={})
rc = main(sys.argv[1:], env)
with open(sys.argv[0] + ".out", "w") as fh:
    json.dump({"rc": rc, "modules": sorted(sys.modules)}, fh)
"""


def _loaded_modules(
    tmp_path: Path, *args: str, environ: dict[str, str] | None = None
) -> tuple[int, set[str]]:
    script = tmp_path / "probe.py"
    probe = PROBE if environ is None else PROBE.replace("environ={}", "environ=dict(os.environ)")
    script.write_text(probe.replace("import io,", "import io, os,"))
    subprocess.run([sys.executable, str(script), *args], check=True, timeout=60, env=environ)
    result = json.loads((tmp_path / "probe.py.out").read_text())
    return result["rc"], {m.split(".")[0] for m in result["modules"]}


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--", "kubectl", "get", "pods"),
        ("check", "--agent", "--output", "json", "--", "delete", "ns", "prod"),
        ("kubectl", "get", "pods", "-n", "prod"),
        ("kubectl", "--kubeconfig", "/tmp/other", "get", "pods"),
    ],
)
def test_hot_path_never_imports_heavy_libraries(tmp_path: Path, args: tuple[str, ...]) -> None:
    _rc, modules = _loaded_modules(tmp_path, *args)
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_check_without_manifests_does_not_import_yaml(tmp_path: Path) -> None:
    rc, modules = _loaded_modules(tmp_path, "check", "--", "get", "pods")
    assert rc == 0
    assert "yaml" not in modules


# Costly at start-up and not needed: `dataclasses` alone pulls inspect, ast, dis and
# tokenize (~11 ms), so hot-path classes use jitkube.dataclass_lite; `typing` costs ~2.5 ms,
# so hot-path modules import it only under TYPE_CHECKING.
SLOW_STDLIB = ("dataclasses", "inspect", "ast", "tokenize", "typing")


@pytest.mark.parametrize(
    "args",
    [
        ("check", "--", "get", "pods"),
        ("kubectl", "get", "pods"),  # no session: refused after judging
    ],
)
def test_hot_path_never_imports_dataclasses_or_inspect(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    _rc, modules = _loaded_modules(tmp_path, *args)
    assert not modules & set(SLOW_STDLIB), sorted(modules & set(SLOW_STDLIB))


def test_cached_session_kubectl_run_never_imports_dataclasses_or_inspect(tmp_path: Path) -> None:
    stand_in = tmp_path / "kubectl"
    stand_in.symlink_to(shutil.which("true") or "/bin/true")
    from jitkube.session_cache import CachedSession, save

    home = tmp_path / "home"
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        # A stand-in for kubectl (named kubectl, as the setting must be): the full path runs
        # (kubeconfig, child, audit record).
        "JITKUBE_KUBECTL": str(stand_in),
    }
    now = time.time()
    save(
        environ,
        CachedSession(
            session_id="ses_probe",
            broker_url="http://127.0.0.1:9",  # never contacted: the EKS token is fresh
            cluster="probe",
            role="viewer",
            status="active",
            session_token="jks.probe",
            expires_at=now + 3600,
            eks_token="k8s-aws-v1.probe",
            eks_token_expires_at=now + 3600,
            cluster_endpoint="https://127.0.0.1:9",
            cluster_ca=base64.b64encode(b"not a real CA").decode(),
        ),
    )
    rc, modules = _loaded_modules(tmp_path, "kubectl", "get", "pods", environ=environ)
    assert rc == 0
    assert "jitkube" in modules
    assert not modules & set(SLOW_STDLIB + HEAVY), sorted(modules & set(SLOW_STDLIB + HEAVY))


def test_probe_would_see_heavy_imports(tmp_path: Path) -> None:
    """Guard the guard: a non-hot command does import typer in the same probe."""
    _rc, modules = _loaded_modules(tmp_path, "version-that-does-not-exist")
    assert "typer" in modules
    assert "dataclasses" in modules  # the CLI's own modules still use dataclasses
