"""Schemathesis against the broker's own /openapi.json: no input gives a server error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from broker_harness import Broker, FakeClock, make_broker
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from jitkube.broker.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture
def fuzzed_broker(tmp_path: Path, real_clock: FakeClock, broker_sts: Any) -> Iterator[Broker]:
    store = Store.open(f"sqlite:///{tmp_path / 'fuzz.db'}")
    made = make_broker(store, real_clock, broker_sts)
    yield made
    store.close()


def test_no_request_makes_the_broker_fail(fuzzed_broker: Broker) -> None:
    """Every operation, generated bodies/queries/paths; a token with every group.

    (schemathesis' pytest loader does not work with pytest 9 yet, so the operations are
    driven with Hypothesis directly.)
    """
    api = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_broker.app)
    groups = ["engineers", "reviewers", "auditors", "platform-admins", "ci-deployers"]
    headers = fuzzed_broker.auth("fuzzer", groups)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 18

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        check()
