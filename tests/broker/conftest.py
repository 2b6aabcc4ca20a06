"""Fixtures for the broker's tests: databases, a test OIDC issuer, STS, a fake clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from broker_harness import (
    POSTGRES_URL,
    Broker,
    FakeClock,
    StsHandle,
    TestIssuer,
    make_broker,
    sqlite_url,
    sts_issuer,
)

from jitkube.broker.store import Store


def _postgres_engine() -> sa.Engine | None:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        engine.dispose()
        return None
    return engine


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    engine = _postgres_engine()
    if engine is None:
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_URL} (JITKUBE_TEST_POSTGRES_URL)")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_schema(postgres_admin: sa.Engine) -> Iterator[str]:
    """A fresh schema per test: parallel xdist workers never see each other's rows."""
    name = f"jk_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:10]}"
    with postgres_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with postgres_admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url_and_schema(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(url, schema) for each supported database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path), None
    schema = request.getfixturevalue("postgres_schema")
    return POSTGRES_URL, schema


@pytest.fixture
def store(db_url_and_schema: tuple[str, str | None]) -> Iterator[Store]:
    url, schema = db_url_and_schema
    opened = Store.open(url, schema=schema)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def test_issuer(clock: FakeClock) -> TestIssuer:
    return TestIssuer(clock=clock)


@pytest.fixture(scope="session")
def broker_sts() -> Iterator[Any]:
    """The STS emulator (moto in-process) with the broker test roles; one per worker."""
    from jitkube.sandbox.sts import StsEmulator

    emulator = StsEmulator().start()
    for name in ("jitkube-viewer", "jitkube-admin", "jitkube-deployer"):
        emulator.ensure_role(name, max_session_duration=43_200)
    handle = StsHandle(emulator, *emulator.create_access_key())
    yield StsHandle(handle.emulator, handle.key_id, handle.secret, sts_issuer(handle))
    emulator.stop()


@pytest.fixture
def real_clock() -> FakeClock:
    """A controllable clock that starts at the real time (moto's credentials use real time)."""
    import time

    return FakeClock(start=float(int(time.time())))


@pytest.fixture
def broker(tmp_path: Path, real_clock: FakeClock, broker_sts: Any) -> Iterator[Broker]:
    store = Store.open(sqlite_url(tmp_path))
    made = make_broker(store, real_clock, broker_sts)
    with made.client:
        yield made
    store.close()


@pytest.fixture
def pg_broker(postgres_schema: str, real_clock: FakeClock, broker_sts: Any) -> Iterator[Broker]:
    store = Store.open(POSTGRES_URL, schema=postgres_schema)
    made = make_broker(store, real_clock, broker_sts)
    with made.client:
        yield made
    store.close()
