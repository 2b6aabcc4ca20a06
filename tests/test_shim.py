"""The kubectl shim guards agents that call `kubectl` directly, without recursion."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fixtures.env import IsolatedEnv
from jitkube.errors import ConfigError, UsageError
from jitkube.runner import resolve_kubectl
from jitkube.shim import install, is_shim


def _real_kubectl_dir(tmp_path: Path, kubectl_bin: Path) -> Path:
    real = tmp_path / "real-bin"
    real.mkdir()
    (real / "kubectl").symlink_to(kubectl_bin)
    return real


def test_shim_routes_kubectl_through_jitkube(
    isolated_env: IsolatedEnv, tmp_path: Path, kubectl_bin: Path
) -> None:
    shim_dir = tmp_path / "shim"
    r = isolated_env.run("shim", "install", "--dir", str(shim_dir))
    assert r.returncode == 0, r.stderr
    assert is_shim(shim_dir / "kubectl")
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


def test_runner_skips_the_shim_when_searching_path(tmp_path: Path, kubectl_bin: Path) -> None:
    shim_dir = tmp_path / "shim"
    install(shim_dir)
    real = _real_kubectl_dir(tmp_path, kubectl_bin)
    found = resolve_kubectl("kubectl", {"PATH": f"{shim_dir}:{real}"})
    assert found == str(real / "kubectl")


def test_kubectl_setting_pointing_at_the_shim_is_refused(tmp_path: Path) -> None:
    target = install(tmp_path / "shim")
    with pytest.raises(ConfigError, match="shim"):
        resolve_kubectl(str(target), {"PATH": ""})


def test_install_never_overwrites_a_real_kubectl(tmp_path: Path) -> None:
    directory = tmp_path / "bin"
    directory.mkdir()
    real = directory / "kubectl"
    real.write_bytes(b"\x7fELF not really")
    with pytest.raises(UsageError, match="not a jitkube shim"):
        install(directory)
    assert real.read_bytes() == b"\x7fELF not really"
    # Reinstalling over an existing shim is fine.
    install(tmp_path / "again")
    install(tmp_path / "again")
