"""Audit ingest (idempotent, per-client seq with visible gaps) and export."""

from __future__ import annotations

import json
from typing import Any

from broker_harness import Broker

AUDITOR = ("carol", ("auditors",))


def _events(seqs: list[int], client: str = "laptop-1", **extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": f"{client}-{n}", "seq": n, "argv": ["get", "pods"], "exit_code": 0, **extra}
        for n in seqs
    ]


def _send(
    broker: Broker, events: list[dict[str, Any]], headers: dict[str, str], client: str = "laptop-1"
) -> Any:
    return broker.client.post(
        "/v1/audit", json={"client_id": client, "events": events}, headers=headers
    )


def test_ingest_is_idempotent_and_reports_duplicates(broker: Broker) -> None:
    first = _send(broker, _events([1, 2, 3]), broker.auth())
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 3
    again = _send(broker, _events([2, 3, 4]), broker.auth())
    assert again.json()["accepted"] == 1
    assert again.json()["duplicates"] == ["laptop-1-2", "laptop-1-3"]
    assert again.json()["high_water"] == 4


def test_gaps_stay_visible_until_the_missing_events_arrive(broker: Broker) -> None:
    result = _send(broker, _events([1, 2, 5, 6, 9]), broker.auth()).json()
    assert (result["high_water"], result["max_seq"], result["missing"]) == (2, 9, 4)
    clients = broker.client.get("/v1/audit/clients", headers=broker.auth(*AUDITOR)).json()
    [laptop] = clients["items"]
    assert laptop["gaps"] == [{"first": 3, "last": 4}, {"first": 7, "last": 8}]
    _send(broker, _events([3, 4, 7, 8]), broker.auth())
    clients = broker.client.get("/v1/audit/clients", headers=broker.auth(*AUDITOR)).json()
    assert clients["items"][0]["missing"] == 0
    assert clients["items"][0]["high_water"] == 9


def test_events_sent_with_a_session_token_are_tied_to_that_session(broker: Broker) -> None:
    created = broker.client.post(
        "/v1/sessions",
        json={"role": "viewer", "cluster": "prod", "ttl": 900},
        headers=broker.auth(),
    ).json()
    sid, token = created["session"]["id"], created["session_token"]
    events = _events([1], session_id="ses_forged")
    assert _send(broker, events, broker.session_auth(token)).json()["accepted"] == 1
    listed = broker.client.get(f"/v1/audit?session_id={sid}", headers=broker.auth(*AUDITOR)).json()
    [event] = listed["items"]
    assert event["session_id"] == sid
    assert event["sub"] == "alice"
    assert event["argv"] == ["get", "pods"]


def test_a_client_id_belongs_to_the_identity_that_used_it_first(broker: Broker) -> None:
    _send(broker, _events([1]), broker.auth())
    stolen = _send(broker, _events([2]), broker.auth("mallory", ["engineers"]))
    assert stolen.status_code == 409
    assert stolen.json()["code"] == "audit_client_conflict"


def test_only_auditors_read_audit_events(broker: Broker) -> None:
    _send(broker, _events([1]), broker.auth())
    assert broker.client.get("/v1/audit", headers=broker.auth()).status_code == 403
    assert broker.client.get("/v1/audit/export", headers=broker.auth()).status_code == 403
    assert broker.client.get("/v1/audit", headers=broker.auth(*AUDITOR)).status_code == 200


def test_audit_pages_with_a_cursor_and_exports_json_lines(broker: Broker) -> None:
    _send(broker, _events(list(range(1, 8))), broker.auth())
    page = broker.client.get("/v1/audit?limit=3", headers=broker.auth(*AUDITOR)).json()
    seen = [e["seq"] for e in page["items"]]
    while page["next_cursor"]:
        page = broker.client.get(
            f"/v1/audit?limit=3&cursor={page['next_cursor']}", headers=broker.auth(*AUDITOR)
        ).json()
        seen += [e["seq"] for e in page["items"]]
    assert seen == list(range(1, 8))
    export = broker.client.get("/v1/audit/export", headers=broker.auth(*AUDITOR))
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 8))
    assert lines[0]["client_id"] == "laptop-1"


def test_batches_over_the_limit_are_refused(broker: Broker) -> None:
    too_many = _send(broker, _events(list(range(1, 502))), broker.auth())
    assert too_many.status_code == 413
    huge = _send(broker, _events([1], blob="x" * 2_000_000), broker.auth())
    assert huge.status_code == 413
    assert huge.json()["code"] == "payload_too_large"


def test_malformed_events_are_refused_without_echoing_them(broker: Broker) -> None:
    bad = _send(broker, [{"id": "has space", "seq": 0, "token": "s3cr3t-value"}], broker.auth())
    assert bad.status_code == 422
    assert "s3cr3t-value" not in bad.text
