"""Fixtures for the audit tests: a real broker, CI and auditor tokens, a refused port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_harness import BrokerProcess, broker_config, start_broker

from fixtures.idp import SandboxIdPInfo, device_login


@pytest.fixture
def reserved_port() -> Iterator[tuple[int, socket.socket]]:
    """A loopback port that is bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1], sock
    finally:
        sock.close()


@pytest.fixture
def broker_yaml(tmp_path: Path, sandbox_idp: SandboxIdPInfo) -> Path:
    return broker_config(tmp_path, sandbox_idp)


@pytest.fixture
def running_broker(broker_yaml: Path) -> Iterator[BrokerProcess]:
    process = start_broker(broker_yaml)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def ci_token(sandbox_idp: SandboxIdPInfo) -> str:
    """An access token of the CI client (client credentials) — what a pipeline ships with."""
    return sandbox_idp.ci_token()


@pytest.fixture
def auditor_token(sandbox_idp: SandboxIdPInfo) -> str:
    """carol is in `auditors`: she may read GET /v1/audit."""
    return str(device_login(sandbox_idp.as_provider(), "carol")["access_token"])
