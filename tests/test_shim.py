"""The kubectl shim guards agents that call `kubectl` directly, without recursion."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fixtures.env import IsolatedEnv
from jitkube.errors import ConfigError, UsageError
from jitkube.runner import resolve_kubectl
from jitkube.shim import install, is_compiled, is_shim


def _real_kubectl_dir(tmp_path: Path, kubectl_bin: Path) -> Path:
    real = tmp_path / "real-bin"
    real.mkdir()
    (real / "kubectl").symlink_to(kubectl_bin)
    return real


FRONTS = pytest.mark.parametrize("front", ["script", "compiled"])


@FRONTS
def test_shim_routes_kubectl_through_jitkube(
    isolated_env: IsolatedEnv, tmp_path: Path, kubectl_bin: Path, front: str
) -> None:
    shim_dir = tmp_path / "shim"
    r = isolated_env.run("shim", "install", "--dir", str(shim_dir), "--front", front)
    assert r.returncode == 0, r.stderr
    assert f"({front})" in r.stdout.decode()
    assert is_shim(shim_dir / "kubectl")
    assert is_compiled(shim_dir / "kubectl") == (front == "compiled")
    assert os.access(shim_dir / "kubectl", os.X_OK)
    env = dict(isolated_env.env)
    env["PATH"] = f"{shim_dir}:{_real_kubectl_dir(tmp_path, kubectl_bin)}:{env['PATH']}"
    # An agent types plain kubectl; jitkube judges it and refuses the bypass.
    agent = subprocess.run(
        ["kubectl", "--kubeconfig", "/tmp/stolen", "get", "pods"],
        capture_output=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert agent.returncode == 65
    assert b"jitkube:" in agent.stderr


@FRONTS
def test_runner_skips_the_shim_when_searching_path(
    tmp_path: Path, kubectl_bin: Path, front: str
) -> None:
    shim_dir = tmp_path / "shim"
    install(shim_dir, front=front)
    real = _real_kubectl_dir(tmp_path, kubectl_bin)
    found = resolve_kubectl("kubectl", {"PATH": f"{shim_dir}:{real}"})
    assert found == str(real / "kubectl")


@FRONTS
def test_kubectl_setting_pointing_at_the_shim_is_refused(tmp_path: Path, front: str) -> None:
    [target, *_] = install(tmp_path / "shim", front=front)
    with pytest.raises(ConfigError, match="shim"):
        resolve_kubectl(str(target), {"PATH": ""})


def test_install_never_overwrites_a_real_kubectl(tmp_path: Path) -> None:
    directory = tmp_path / "bin"
    directory.mkdir()
    real = directory / "kubectl"
    real.write_bytes(b"\x7fELF not really")
    with pytest.raises(UsageError, match="not written by jitkube"):
        install(directory)
    assert real.read_bytes() == b"\x7fELF not really"
    # Reinstalling over an existing shim is fine.
    install(tmp_path / "again")
    install(tmp_path / "again")
