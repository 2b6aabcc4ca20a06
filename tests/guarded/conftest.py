"""The whole product in one place: simulated EKS cluster + STS emulator (in-process, so
tests can read the cluster's request log), the sandbox IdP, a real broker process wired
to them, and two logged-in users: alice (engineer) and bob (reviewer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from fixtures.idp import SandboxIdPInfo
from fixtures.kubectl_bin import find_pinned_kubectl
from fixtures.sessions_harness import (
    BrokerProcess,
    User,
    logged_in_user,
    login_user,
    start_broker,
)
from fixtures.warm import compiled_front, warm_served, warm_server
from jitkube.sandbox.broker import sandbox_broker_config
from jitkube.sandbox.world import SANDBOX_ROLES


@pytest.fixture(scope="session")
def guarded_idp(hour_token_idp: SandboxIdPInfo) -> SandboxIdPInfo:
    return hour_token_idp


@pytest.fixture(scope="session")
def guarded_broker(
    tmp_path_factory: pytest.TempPathFactory, guarded_idp: SandboxIdPInfo, sandbox_world: Any
) -> Iterator[BrokerProcess]:
    directory = tmp_path_factory.mktemp("guarded-broker")
    (directory / "broker-fernet.key").write_bytes(Fernet.generate_key())
    data = sandbox_broker_config(
        directory=directory,
        issuer=guarded_idp.idp.issuer,
        ca_bundle=guarded_idp.ca_bundle,
        cluster_name=sandbox_world.cluster.name,
        cluster_url=sandbox_world.cluster.url,
        cluster_ca_pem=sandbox_world.cluster.ca_pem,
        region=sandbox_world.sts.region,
        sts_url=sandbox_world.sts.url,
        role_arns={role: sandbox_world.role_arn(role) for role in SANDBOX_ROLES},
    )
    config = directory / "broker.yaml"
    config.write_text(yaml.safe_dump(data))
    process = start_broker(config, sandbox_world.sts, directory)
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture(scope="session")
def guarded_logins(
    tmp_path_factory: pytest.TempPathFactory,
    guarded_idp: SandboxIdPInfo,
    guarded_broker: BrokerProcess,
) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("guarded-logins")
    return {
        name: login_user(base / name, name, guarded_idp, guarded_broker)
        for name in ("alice", "bob")
    }


def _user(name: str, tmp_path: Path, logins: dict[str, Path], idp: Any, broker: Any) -> User:
    user = logged_in_user(name, tmp_path, logins, idp, broker)
    kubectl = find_pinned_kubectl()
    if kubectl is None:
        pytest.skip("kubectl is not installed on this machine (CI has it)")
    user.env["JITKUBE_KUBECTL"] = str(kubectl)
    return user


@pytest.fixture
def alice(
    sandbox: Any,
    tmp_path: Path,
    guarded_logins: dict[str, Path],
    guarded_idp: SandboxIdPInfo,
    guarded_broker: BrokerProcess,
) -> User:
    return _user("alice", tmp_path, guarded_logins, guarded_idp, guarded_broker)


@pytest.fixture
def bob(
    tmp_path: Path,
    guarded_logins: dict[str, Path],
    guarded_idp: SandboxIdPInfo,
    guarded_broker: BrokerProcess,
) -> User:
    return _user("bob", tmp_path, guarded_logins, guarded_idp, guarded_broker)


@pytest.fixture(params=["in-process", "warm", "compiled"])
def mode(request: pytest.FixtureRequest, alice: User, tmp_path: Path) -> Iterator[str]:
    """Run a test three times: jitkube in-process; through the warm server (jitkube.warm)
    from the Python front end; and from the compiled front end (front.c) that `jitkube
    shim install` builds. All must behave the same; the warm runs prove the server
    served alice's calls."""
    if request.param == "in-process":
        yield "in-process"
        return
    with warm_server(alice):
        if request.param == "compiled":
            alice.command = [str(compiled_front(tmp_path / "front"))]
        yield request.param
        assert warm_served(alice) >= 1, "the warm server served none of alice's calls"
