"""The hot path (`jitkube check`, `jitkube kubectl`) imports only stdlib and jitkube core."""

from __future__ import annotations

import json
import subprocess
import sys
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


def _loaded_modules(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    subprocess.run([sys.executable, str(script), *args], check=True, timeout=60)
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


def test_probe_would_see_heavy_imports(tmp_path: Path) -> None:
    """Guard the guard: a non-hot command does import typer in the same probe."""
    _rc, modules = _loaded_modules(tmp_path, "version-that-does-not-exist")
    assert "typer" in modules
