"""Service endpoints and cross-cutting behaviour: health, metrics, problems, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from broker_harness import Broker, FakeClock, broker_config_dict, make_broker

from jitkube.broker.errors import CODES
from jitkube.broker.store import Store

REPO = Path(__file__).resolve().parents[2]


def test_client_config_needs_no_login_and_tells_the_cli_how_to_log_in(broker: Broker) -> None:
    config = broker.client.get("/v1/client-config").json()
    assert config["issuer"] == "https://issuer.test/oidc"
    assert config["authority"] == config["issuer"]
    assert config["client_id"] == "jitkube-cli"
    assert "openid" in config["scopes"]
    assert {r["name"] for r in config["roles"]} == {"viewer", "admin", "deployer"}


def test_healthz_checks_the_database(broker: Broker) -> None:
    healthy = broker.client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json()["schema_version"] >= 1
    broken = make_broker(Store(_broken_engine()), broker.clock, broker.sts)
    sick = broken.client.get("/healthz")
    assert sick.status_code == 503
    assert sick.json()["code"] == "unavailable"


def _broken_engine() -> Any:
    import sqlalchemy as sa

    return sa.create_engine("sqlite:////nonexistent-dir/broker.db")


def test_metrics_are_prometheus_text_with_route_templates(broker: Broker) -> None:
    broker.client.get("/v1/client-config")
    broker.client.get("/v1/sessions/ses_123", headers=broker.auth())
    text = broker.client.get("/metrics").text
    assert (
        'jitkube_broker_requests_total{method="GET",route="/v1/client-config",status="200"}' in text
    )
    assert 'route="/v1/sessions/{session_id}"' in text
    assert "ses_123" not in text


def test_openapi_describes_every_v1_route_and_the_bearer_scheme(broker: Broker) -> None:
    spec = broker.client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/v1/sessions",
        "/v1/sessions/{session_id}",
        "/v1/sessions/{session_id}/approvals",
        "/v1/sessions/{session_id}/eks-token",
        "/v1/commands",
        "/v1/commands/{command_id}/consume",
        "/v1/audit",
        "/v1/audit/export",
        "/healthz",
    } <= paths
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/v1/nothing", 404, "not_found"),
        ("put", "/v1/sessions", 405, "method_not_allowed"),
        ("get", "/v1/sessions/ses_missing", 404, "not_found"),
        ("post", "/v1/sessions", 422, "validation"),
    ],
)
def test_errors_are_problem_documents_with_stable_codes(
    broker: Broker, method: str, path: str, status: int, code: str
) -> None:
    response = getattr(broker.client, method)(path, headers=broker.auth())
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith("/" + code)


def test_every_problem_code_is_documented() -> None:
    doc = (REPO / "docs" / "broker-config.md").read_text(encoding="utf-8")
    missing = [code for code in CODES if f"`{code}`" not in doc]
    assert not missing, f"docs/broker-config.md lacks problem codes {missing}"


def test_requests_without_a_token_are_401_with_a_bearer_challenge(broker: Broker) -> None:
    response = broker.client.get("/v1/sessions")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_each_identity_is_rate_limited(
    tmp_path: Path, real_clock: FakeClock, broker_sts: Any
) -> None:
    config = broker_config_dict(limits={"requests_per_minute": 5})
    store = Store.open(f"sqlite:///{tmp_path / 'b.db'}")
    limited = make_broker(store, real_clock, broker_sts, config)
    codes = [
        limited.client.get("/v1/sessions", headers=limited.auth("alice")).status_code
        for _ in range(7)
    ]
    assert codes[:5] == [200] * 5
    assert codes[5:] == [429, 429]
    throttled = limited.client.get("/v1/sessions", headers=limited.auth("alice"))
    assert throttled.json()["code"] == "rate_limited"
    assert int(throttled.headers["retry-after"]) >= 1
    # Someone else is not affected.
    assert limited.client.get("/v1/sessions", headers=limited.auth("bob")).status_code == 200
    store.close()


def test_oversized_bodies_are_refused_before_parsing(broker: Broker) -> None:
    response = broker.client.post(
        "/v1/sessions",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={**broker.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_the_rate_limit_refills_over_time() -> None:
    from jitkube.broker.http import RateLimiter

    now = [0.0]
    limiter = RateLimiter(60, monotonic=lambda: now[0])
    assert all(limiter.check("alice") == 0 for _ in range(60))
    assert limiter.check("alice") == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.check("alice") == 0
    assert limiter.check("alice") > 0
