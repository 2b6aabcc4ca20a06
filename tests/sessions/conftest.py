"""Fixtures for the session commands: a real broker process, a sandbox IdP, logged-in users.

One broker, IdP and STS emulator per xdist worker (session scope); every test gets its
own HOME/XDG tree per user, holding a copy of a real `jitkube login` made once per worker.
Access tokens live an hour here, so no copy ever needs a refresh (which would rotate the
refresh token under the other copies).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.idp import SandboxIdPInfo
from fixtures.sessions_harness import (
    BrokerProcess,
    User,
    broker_config,
    logged_in_user,
    login_user,
    start_broker,
)


@pytest.fixture(scope="session")
def sessions_idp(hour_token_idp: SandboxIdPInfo) -> SandboxIdPInfo:
    return hour_token_idp


@pytest.fixture(scope="session")
def sessions_sts() -> Iterator[Any]:
    from jitkube.sandbox.sts import StsEmulator

    emulator = StsEmulator().start()
    for name in ("jitkube-viewer", "jitkube-admin"):
        emulator.ensure_role(name, max_session_duration=43_200)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def live_broker(
    tmp_path_factory: pytest.TempPathFactory, sessions_idp: SandboxIdPInfo, sessions_sts: Any
) -> Iterator[BrokerProcess]:
    directory = tmp_path_factory.mktemp("sessions-broker")
    config = broker_config(directory, sessions_idp, sessions_sts)
    process = start_broker(config, sessions_sts, directory)
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture(scope="session")
def logins(
    tmp_path_factory: pytest.TempPathFactory,
    sessions_idp: SandboxIdPInfo,
    live_broker: BrokerProcess,
) -> dict[str, Path]:
    """name -> a HOME template holding that user's real device-code login."""
    base = tmp_path_factory.mktemp("sessions-logins")
    return {
        name: login_user(base / name, name, sessions_idp, live_broker) for name in ("alice", "bob")
    }


@pytest.fixture
def alice(
    tmp_path: Path,
    logins: dict[str, Path],
    sessions_idp: SandboxIdPInfo,
    live_broker: BrokerProcess,
) -> User:
    return logged_in_user("alice", tmp_path, logins, sessions_idp, live_broker)


@pytest.fixture
def bob(
    tmp_path: Path,
    logins: dict[str, Path],
    sessions_idp: SandboxIdPInfo,
    live_broker: BrokerProcess,
) -> User:
    return logged_in_user("bob", tmp_path, logins, sessions_idp, live_broker)
