"""docs/getting-started.md cannot drift: its `jitkube …` lines are real commands, and the
shell block that writes broker.yaml, run verbatim against a real sandbox, writes a config
the broker loads, with the sandbox's roles and cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.env import IsolatedEnv
from jitkube.broker.config import load_config
from test_examples import _check_command_line, _jitkube_lines

DOC = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"
TEXT = DOC.read_text()
LINES = list(_jitkube_lines(TEXT))
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", TEXT, re.DOTALL)
DOC_BROKER_DIR = "/tmp/jitkube-broker"


def test_the_walkthrough_shows_each_step() -> None:
    joined = "\n".join(LINES)
    for needed in (
        "jitkube sandbox up",
        "jitkube broker serve --config broker.yaml",
        "jitkube login --broker",
        "jitkube sandbox approve-device",
        "jitkube request --ttl 15m --role admin",
        "jitkube approvals",
        "jitkube approve ses_",
        "jitkube kubectl get pods",
        "jitkube sandbox down",
    ):
        assert needed in joined, needed


@pytest.mark.parametrize("line", LINES)
def test_every_jitkube_command_in_the_walkthrough_parses(line: str) -> None:
    _check_command_line(line)


@pytest.fixture
def sandbox(isolated_env: IsolatedEnv, tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "sbx"
    up = isolated_env.run("sandbox", "up", "--dir", str(directory))
    assert up.returncode == 0, up.stderr.decode()
    yield directory
    isolated_env.run("sandbox", "down", "--dir", str(directory))


def test_the_broker_yaml_block_writes_a_config_for_the_sandbox(
    isolated_env: IsolatedEnv, sandbox: Path, tmp_path: Path
) -> None:
    (block,) = [b for b in SH_BLOCKS if "cat > broker.yaml" in b]
    assert block.startswith(f"mkdir -p {DOC_BROKER_DIR} && cd {DOC_BROKER_DIR}\n")
    work = tmp_path / "broker"
    env = dict(
        isolated_env.env,
        JITKUBE_SANDBOX_DIR=str(sandbox),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), isolated_env.env["PATH"]]),
    )
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.replace(DOC_BROKER_DIR, str(work))],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert (work / "broker.key").stat().st_mode & 0o077 == 0

    config = load_config(work / "broker.yaml")
    state = json.loads((sandbox / "state.json").read_text())
    assert config.oidc.issuer == state["issuer"]
    assert config.oidc.ca_bundle == state["ca_bundle"]
    (cluster,) = config.clusters.values()
    assert cluster.eks_cluster_name == state["cluster_name"]
    assert cluster.region == state["region"]
    assert {role.role_arn for role in config.roles.values()} <= set(state["roles"].values())
    assert config.aws.sts_endpoint_url == config.aws.eks_endpoint_url == state["sts_url"]
    assert config.storage.encryption_key_file == str(work / "broker.key")
