"""The broker's JSON log lines: structured, one per request, and never a credential."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from broker_harness import Broker

from jitkube.broker.logs import REQUEST_LOGGER, JsonFormatter, redact

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
SESSION_TOKEN = "jks.ses_0123456789abcdef0123.Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0"
EKS_TOKEN = "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("header authorization=bearer opaque-token-123", "opaque-token-123"),
        (f"token {JWT} refused", JWT),
        (f"session {SESSION_TOKEN} unknown", SESSION_TOKEN.rsplit(".", 1)[1]),
        (f"exec answered {EKS_TOKEN}", EKS_TOKEN),
        ("GET /?X-Amz-Signature=abcdef0123&X-Amz-Security-Token=FwoGZXIvYXdz", "abcdef0123"),
        ("GET /?X-Amz-Security-Token=FwoGZXIvYXdzEJr", "FwoGZXIvYXdzEJr"),
        (f"<SecretAccessKey>{SECRET}</SecretAccessKey>", SECRET),
        (f'{{"SecretAccessKey": "{SECRET}"}}', SECRET),
        (f"aws_secret_access_key={SECRET}", SECRET),
        ("<SessionToken>IQoJb3JpZ2luX2VjEJr//////////wEaCXVz</SessionToken>", "IQoJb3JpZ2lu"),
        ("key ASIAQWERTYUIOPASDFGH used", "ASIAQWERTYUIOPASDFGH"),
    ],
)
def test_credential_shaped_text_is_redacted(text: str, leaked: str) -> None:
    assert leaked not in redact(text)
    assert "redacted" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "POST /v1/sessions/ses_0123456789abcdef0123/eks-token 200",
        "session ses_0123456789abcdef0123 activated for alice@example.test",
        "AssumeRole failed at activation of ses_1; will retry",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def _record(msg: str, *args: Any, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("jitkube.broker", logging.WARNING, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_json_object_with_its_extras() -> None:
    line = JsonFormatter().format(
        _record("session %s denied", "ses_1", sub="alice", status=403, tags=["a", JWT])
    )
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "warning"
    assert data["logger"] == "jitkube.broker"
    assert data["message"] == "session ses_1 denied"
    assert data["time"].endswith("Z")
    assert (data["sub"], data["status"]) == ("alice", 403)
    assert data["tags"] == ["a", "[redacted-jwt]"]


def test_tracebacks_are_kept_but_redacted() -> None:
    data = json.loads(JsonFormatter().format(_record("boom", exc=True)))
    assert data["exc_type"] == "ValueError"
    assert "Traceback" in data["exception"]
    assert JWT not in data["exception"]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def request_lines() -> Iterator[list[str]]:
    """JSON lines of the jitkube loggers while the test runs."""
    capture = _Capture()
    logger = logging.getLogger("jitkube")
    old_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    yield capture.lines
    logger.removeHandler(capture)
    logger.setLevel(old_level)


def _requests(lines: list[str]) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in lines]
    return [d for d in parsed if d["logger"] == REQUEST_LOGGER]


def test_each_request_gets_one_line_with_caller_status_and_request_id(
    broker: Broker, request_lines: list[str]
) -> None:
    auth = broker.auth()
    created = broker.client.post(
        "/v1/sessions", json={"role": "viewer", "cluster": "prod", "ttl": "15m"}, headers=auth
    )
    session = created.json()["session"]
    token = created.json()["session_token"]
    eks = broker.client.post(
        f"/v1/sessions/{session['id']}/eks-token",
        headers={**broker.session_auth(token), "X-Request-ID": "trace-42"},
    )
    listed = broker.client.get("/v1/sessions?status=active&cursor=c2VjcmV0", headers=auth)
    refused = broker.client.get("/v1/sessions", headers={"X-Request-ID": "bad id\nforged"})
    lines = _requests(request_lines)
    assert [(d["method"], d["route"], d["status"]) for d in lines] == [
        ("POST", "/v1/sessions", 201),
        ("POST", "/v1/sessions/{session_id}/eks-token", 200),
        ("GET", "/v1/sessions", 422),
        ("GET", "/v1/sessions", 401),
    ]
    create_line, eks_line, list_line, refused_line = lines
    assert (create_line["sub"], create_line["session_id"]) == ("alice", None)
    assert (eks_line["sub"], eks_line["session_id"]) == ("alice", session["id"])
    assert eks_line["path"] == f"/v1/sessions/{session['id']}/eks-token"
    assert eks_line["request_id"] == eks.headers["x-request-id"] == "trace-42"
    assert create_line["request_id"] == created.headers["x-request-id"]
    assert list_line["request_id"] == listed.headers["x-request-id"]
    assert "cursor" not in list_line["path"]  # never the query string
    assert refused_line["sub"] is None
    assert refused_line["request_id"] == refused.headers["x-request-id"] != "bad id\nforged"
    assert all(isinstance(d["duration_ms"], float) for d in lines)
    everything = "\n".join(request_lines)
    for secret in (auth["Authorization"].split()[1], token, eks.json()["token"], "c2VjcmV0"):
        assert secret not in everything


def test_a_refused_request_logs_why_without_the_token(
    broker: Broker, request_lines: list[str]
) -> None:
    """The request line says 401; the operator also needs the reason (a wrong audience,
    an expired token) — and never the token itself."""
    token = broker.issuer.token("alice", aud="another-api")
    refused = broker.client.get("/v1/sessions", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    reasons = [
        json.loads(line)
        for line in request_lines
        if json.loads(line)["logger"] != REQUEST_LOGGER and "refused" in line
    ]
    assert len(reasons) == 1, request_lines
    assert reasons[0]["level"] == "warning"
    assert reasons[0]["message"] == (
        "GET /v1/sessions refused: unauthorized: token is for another audience"
    )
    assert token not in "\n".join(request_lines)
