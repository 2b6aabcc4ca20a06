"""Webhook notifications: Slack-compatible bodies, retries, a durable outbox shared by
every process on the database, and never on the request path."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from broker_harness import (
    POSTGRES_URL,
    FakeClock,
    Hook,
    broker_config_dict,
    free_port,
    make_broker,
)

from jitkube.broker import migrations as m
from jitkube.broker.config import WebhookSettings, parse_config
from jitkube.broker.metrics import BrokerMetrics
from jitkube.broker.notify import WebhookNotifier, hook_key
from jitkube.broker.store import Store


@pytest.fixture
def hook_factory() -> Iterator[Any]:
    hooks: list[Hook] = []

    def make(statuses: list[int], delay: float = 0.0, port: int = 0, retry_after: str = "") -> Hook:
        hooks.append(Hook(statuses, delay, port, retry_after))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    yield store
    store.close()


@pytest.fixture
def notifiers() -> Iterator[list[WebhookNotifier]]:
    """Notifiers made by a test; their delivery threads are stopped afterwards."""
    made: list[WebhookNotifier] = []
    yield made
    for notifier in made:
        notifier.stop()


def _notifier(
    made: list[WebhookNotifier],
    hooks: list[WebhookSettings],
    store: Store,
    *,
    start: bool = True,
    **options: Any,
) -> WebhookNotifier:
    options.setdefault("backoff_seconds", 0.01)
    options.setdefault("poll_seconds", 0.05)
    notifier = WebhookNotifier(hooks, store, **options)
    made.append(notifier)
    if start:
        notifier.start()
    return notifier


def _notify(notifier: WebhookNotifier, event: str, payload: dict[str, Any]) -> None:
    """An event on its own, as the broker stores one with its change: rows, then wake."""
    rows = notifier.outbox(event, payload)
    notifier._store.enqueue_notifications(rows)
    notifier.stored(rows)


def _payload(n: int = 1) -> dict[str, Any]:
    return {
        "id": f"ses_{n}",
        "requester": "alice@example.test",
        "role": "admin",
        "cluster": "prod",
        "ttl": 900,
        "reason": "INC-1",
    }


def _rows(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        query = sa.select(m.notifications).order_by(m.notifications.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]


def _wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


# -- what reaches the receiver ---------------------------------------------------------


def test_slack_webhook_gets_text_and_is_retried_on_server_errors(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    hook = hook_factory([500, 503, 200])
    notifier = _notifier(notifiers, [WebhookSettings(url=hook.url)], sqlite_store)
    _notify(notifier, "session.requested", _payload())
    assert notifier.join(5)
    assert notifier.delivered == 1
    assert len(hook.bodies) == 3
    text = hook.bodies[-1]["text"]
    assert "alice@example.test" in text
    assert "*admin*" in text
    assert "INC-1" in text
    [row] = _rows(sqlite_store)
    assert (row["attempts"], row["failed_at"], row["last_error"]) == (3, None, None)
    assert row["delivered_at"] is not None


def test_what_a_requester_wrote_cannot_ping_the_channel_or_hide_a_link(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    hook = hook_factory([])
    notifier = _notifier(notifiers, [WebhookSettings(url=hook.url)], sqlite_store)
    lure = "<!channel> <https://evil.test/approve|click to approve> & go"
    _notify(notifier, "session.requested", {**_payload(), "reason": lure})
    _notify(
        notifier,
        "command.requested",
        {
            "id": "cmd_1",
            "requester": "alice@example.test",
            "agent": "<@U123>",
            "command": "kubectl get pods -l `x` *bold*",
            "risk": "read",
            "cluster": "prod",
        },
    )
    assert notifier.join(5)
    session_text, command_text = (b["text"] for b in hook.bodies)
    assert "&lt;!channel&gt; &lt;https://evil.test/approve|click to approve&gt; &amp; go" in (
        session_text
    )
    assert "(agent &lt;@U123&gt;)" in command_text
    assert "`kubectl get pods -l 'x' *bold*`" in command_text
    for text in (session_text, command_text):
        assert "<" not in text
        assert ">" not in text


def test_client_errors_are_not_retried_and_attempts_are_bounded(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    rejecting = hook_factory([400])
    failing = hook_factory([500] * 10)
    notifier = _notifier(
        notifiers,
        [WebhookSettings(url=rejecting.url), WebhookSettings(url=failing.url, max_attempts=3)],
        sqlite_store,
    )
    _notify(notifier, "session.requested", _payload())
    assert notifier.join(5)
    assert (len(rejecting.bodies), len(failing.bodies), notifier.failed) == (1, 3, 2)


def test_json_webhooks_get_the_event_and_filters_apply(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    hook = hook_factory([])
    notifier = _notifier(
        notifiers,
        [WebhookSettings(url=hook.url, format="json", events=("session.break_glass",))],
        sqlite_store,
    )
    _notify(notifier, "session.requested", _payload())
    _notify(notifier, "session.break_glass", _payload())
    assert notifier.join(5)
    assert [b["event"] for b in hook.bodies] == ["session.break_glass"]
    assert hook.bodies[0]["cluster"] == "prod"
    assert len(_rows(sqlite_store)) == 1  # no row at all for an event nobody subscribes to


@pytest.mark.slow
def test_a_slow_webhook_never_slows_the_api(
    hook_factory: Any, tmp_path: Path, real_clock: FakeClock, broker_sts: Any
) -> None:
    """The receiver takes 5 s per post; the API call that notifies returns at once."""
    slow = hook_factory([], delay=5.0)
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    notifier = WebhookNotifier([WebhookSettings(url=slow.url, timeout_seconds=10)], store)
    made = make_broker(store, real_clock, broker_sts, notifier=notifier)
    try:
        with made.client:  # the lifespan starts (and stops) the delivery thread
            for n in range(2):  # the second while the thread is busy with the first
                start = time.monotonic()
                response = made.client.post(
                    "/v1/sessions",
                    json={"role": "admin", "cluster": "prod", "ttl": 900, "reason": f"INC-{n}"},
                    headers=made.auth(),
                )
                elapsed = time.monotonic() - start
                assert response.status_code == 202
                assert elapsed < 1.0, elapsed
            assert notifier.join(30)
        assert sorted(b["text"].split("reason: ")[1][:5] for b in slow.bodies) == [
            "INC-0",
            "INC-1",
        ]
    finally:
        store.close()


# -- durability ---------------------------------------------------------------------------


def test_a_notification_stored_while_the_receiver_is_down_arrives_when_it_is_back(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    notifier = _notifier(
        notifiers, [WebhookSettings(url=url, max_attempts=20, timeout_seconds=2)], sqlite_store
    )
    _notify(notifier, "session.break_glass", _payload())
    # Connection refused, then refused again: rescheduled with backoff, not lost.
    assert _wait_for(lambda: _rows(sqlite_store)[0]["attempts"] >= 2)
    row = _rows(sqlite_store)[0]
    assert row["delivered_at"] is None
    assert row["failed_at"] is None
    assert row["last_error"] == "ConnectionRefusedError"
    hook = hook_factory([], port=port)
    assert notifier.join(15)
    assert len(hook.bodies) == 1
    assert "BREAK-GLASS" in hook.bodies[0]["text"]


def test_a_change_is_never_committed_without_its_notification(
    hook_factory: Any, tmp_path: Path, real_clock: FakeClock, broker_sts: Any
) -> None:
    """The outbox row goes in the change's own transaction: while the database refuses
    notifications, sessions are neither created nor revoked; nothing goes unannounced."""
    hook = hook_factory([])
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    notifier = WebhookNotifier([WebhookSettings(url=hook.url, format="json")], store)
    made = make_broker(store, real_clock, broker_sts, notifier=notifier)
    refuse = (
        "CREATE TRIGGER refuse BEFORE INSERT ON notifications "
        "BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
    )

    def sessions() -> list[tuple[str, str]]:
        with store.read() as conn:
            return [tuple(r) for r in conn.execute(sa.select(m.sessions.c.id, m.sessions.c.status))]

    def create() -> Any:
        body = {"role": "viewer", "cluster": "prod", "ttl": 900, "reason": "look"}
        return made.client.post("/v1/sessions", json=body, headers=made.auth())

    try:
        with store.write() as conn:
            conn.execute(sa.text(refuse))
        assert create().status_code >= 500
        assert sessions() == []
        with store.write() as conn:
            conn.execute(sa.text("DROP TRIGGER refuse"))
        sid = create().json()["session"]["id"]
        assert sessions() == [(sid, "active")]

        with store.write() as conn:
            conn.execute(sa.text(refuse))
        assert made.client.delete(f"/v1/sessions/{sid}", headers=made.auth()).status_code >= 500
        assert sessions() == [(sid, "active")]
        with store.write() as conn:
            conn.execute(sa.text("DROP TRIGGER refuse"))
        assert made.client.delete(f"/v1/sessions/{sid}", headers=made.auth()).status_code == 200
        assert sessions() == [(sid, "revoked")]
        events = [json.loads(r["body"])["event"] for r in _rows(store)]
        assert events == ["session.activated", "session.revoked"]
    finally:
        store.close()


def test_rows_survive_a_notifier_that_never_ran(
    hook_factory: Any, tmp_path: Path, notifiers: list[WebhookNotifier]
) -> None:
    """Stored by one process (which then went away), sent by the next one to start."""
    hook = hook_factory([])
    url = f"sqlite:///{tmp_path / 'n.db'}"
    first_store = Store.open(url)
    first = _notifier(notifiers, [WebhookSettings(url=hook.url)], first_store, start=False)
    _notify(first, "session.requested", _payload())
    first_store.close()
    second_store = Store.open(url)
    try:
        second = _notifier(notifiers, [WebhookSettings(url=hook.url)], second_store)
        assert second.join(5)
        assert len(hook.bodies) == 1
    finally:
        second.stop()
        second_store.close()


def test_a_crashed_senders_lease_expires_and_another_process_sends(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    hook = hook_factory([])
    settings = [WebhookSettings(url=hook.url)]
    notifier = _notifier(notifiers, settings, sqlite_store, start=False)
    _notify(notifier, "session.requested", _payload())
    [(row_id, _)] = sqlite_store.due_notifications([hook_key(settings[0])], time.time())
    # A sender claims the row and dies before posting (no settle).
    now = time.time()
    assert sqlite_store.claim_notification(row_id, now, now + 3.0) is not None
    assert sqlite_store.claim_notification(row_id, now, now + 3.0) is None  # leased
    notifier.start()
    time.sleep(1.0)
    assert hook.bodies == []  # nobody sends while the lease holds
    assert notifier.join(10)
    assert len(hook.bodies) == 1
    assert _rows(sqlite_store)[0]["attempts"] == 2  # the crashed attempt counts


def test_a_receiver_that_does_not_speak_http_is_retried_then_given_up(
    sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []

    def answer_garbage() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                connections.append(1)
                conn.sendall(b"garbage\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    try:
        notifier = _notifier(notifiers, [WebhookSettings(url=url, max_attempts=3)], sqlite_store)
        _notify(notifier, "session.requested", _payload())
        assert notifier.join(5)
        [row] = _rows(sqlite_store)
        assert (row["attempts"], row["last_error"]) == (3, "BadStatusLine")
        assert row["failed_at"] is not None
        assert len(connections) == 3
    finally:
        server.close()


def test_a_dead_webhook_does_not_hold_up_the_others(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    healthy = hook_factory([])
    dead = WebhookSettings(url=f"http://127.0.0.1:{free_port()}/hook", max_attempts=20)
    notifier = _notifier(
        notifiers, [dead, WebhookSettings(url=healthy.url)], sqlite_store, start=False
    )
    for n in range(60):  # more than one pass's batch, the dead webhook's rows first
        _notify(notifier, "session.requested", _payload(n))
    notifier.start()
    assert _wait_for(lambda: len(healthy.bodies) == 60, timeout=10)
    # The receiver holds the 60th body a moment before the notifier marks that row
    # delivered, so wait for the count: what stays pending is the dead webhook's 60.
    assert _wait_for(lambda: notifier.pending() == 60, timeout=5), notifier.pending()
    assert len(healthy.bodies) == 60  # and nothing was sent twice


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_on_one_database_send_each_notification_once(
    backend: str,
    hook_factory: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    notifiers: list[WebhookNotifier],
) -> None:
    hook = hook_factory([])
    settings = [WebhookSettings(url=hook.url)]
    if backend == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'n.db'}", None
    else:
        url, schema = POSTGRES_URL, request.getfixturevalue("postgres_schema")
    stores = [Store.open(url, schema=schema) for _ in range(2)]  # separate pools, like processes
    try:
        senders = [_notifier(notifiers, settings, s, poll_seconds=0.01) for s in stores]
        for n in range(40):
            _notify(senders[n % 2], "session.requested", _payload(n))
        assert all(s.join(20) for s in senders)
        texts = [b["text"] for b in hook.bodies]
        assert len(texts) == 40
        assert len(set(texts)) == 40
        assert senders[0].delivered + senders[1].delivered == 40
        assert all(r["attempts"] == 1 for r in _rows(stores[0]))
    finally:
        for notifier in notifiers:
            notifier.stop()
        for store in stores:
            store.close()


# -- giving up, retention, metrics, config --------------------------------------------------


def test_give_up_after_max_attempts_marks_the_row_failed(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    failing = hook_factory([503] * 10)
    metrics = BrokerMetrics()
    notifier = _notifier(
        notifiers, [WebhookSettings(url=failing.url, max_attempts=4)], sqlite_store, metrics=metrics
    )
    _notify(notifier, "command.requested", {"id": "cmd_1", "command": "kubectl delete pod x"})
    assert notifier.join(5)
    [row] = _rows(sqlite_store)
    assert row["failed_at"] is not None
    assert row["delivered_at"] is None
    assert (row["attempts"], row["last_error"]) == (4, "HTTP 503")
    assert len(failing.bodies) == 4
    assert _wait_for(lambda: "jitkube_broker_notifications_pending 0.0" in _metrics(metrics))
    text = _metrics(metrics)
    assert 'jitkube_broker_notifications_total{result="failed"} 1.0' in text
    assert 'jitkube_broker_notifications_total{result="retried"} 3.0' in text


def _metrics(metrics: BrokerMetrics) -> str:
    return metrics.render().decode()


def test_metrics_count_delivered_and_pending(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    hook = hook_factory([])
    metrics = BrokerMetrics()
    down = f"http://127.0.0.1:{free_port()}/hook"
    notifier = _notifier(
        notifiers,
        [WebhookSettings(url=hook.url), WebhookSettings(url=down, max_attempts=20)],
        sqlite_store,
        metrics=metrics,
        backoff_seconds=60,
    )
    _notify(notifier, "session.requested", _payload())
    assert _wait_for(lambda: 'result="delivered"} 1.0' in _metrics(metrics))
    assert _wait_for(lambda: "jitkube_broker_notifications_pending 1.0" in _metrics(metrics))


def test_retention_deletes_old_delivered_rows_only(
    hook_factory: Any, sqlite_store: Store, notifiers: list[WebhookNotifier]
) -> None:
    hook = hook_factory([])
    clock = FakeClock(start=time.time())
    settings = [WebhookSettings(url=hook.url)]
    notifier = _notifier(
        notifiers, settings, sqlite_store, start=False, clock=clock, retention_seconds=86400
    )
    _notify(notifier, "session.requested", _payload(1))
    assert notifier.deliver_due() == 1
    clock.advance(3600)
    _notify(notifier, "session.requested", _payload(2))
    assert notifier.deliver_due() == 1
    gone = WebhookSettings(url="http://127.0.0.1:9/removed-from-config")
    sqlite_store.enqueue_notifications(
        [
            {
                "event": "session.requested",
                "hook": hook_key(gone),
                "body": "{}",
                "next_attempt_at": clock(),
                "created_at": clock(),
            }
        ]
    )
    _notify(notifier, "session.requested", _payload(3))  # pending: kept whatever its age
    clock.advance(86400 - 1800)  # row 1 delivered 24.5 h ago, row 2 23.5 h ago
    assert notifier.purge() == 1
    assert [r["id"] for r in _rows(sqlite_store)] == [2, 3, 4]
    clock.advance(3600)  # the orphan (its webhook is no longer configured) is past retention
    assert notifier.purge() == 2
    assert [r["body"].count("ses_3") for r in _rows(sqlite_store)] == [1]


def test_retention_is_a_documented_setting() -> None:
    assert parse_config(broker_config_dict()).notification_retention_seconds == 7 * 86400
    data = broker_config_dict()
    data["notifications"] = {"webhooks": [{"url": "https://hooks.test/x"}], "retention": "3d"}
    assert parse_config(data).notification_retention_seconds == 3 * 86400
    doc = (Path(__file__).resolve().parents[2] / "docs" / "broker-config.md").read_text()
    assert "`retention`" in doc
    assert "at least once" in doc


def test_stored_bodies_hold_no_token_or_credential(
    hook_factory: Any, tmp_path: Path, real_clock: FakeClock, broker_sts: Any
) -> None:
    """A session's life through the API, then every stored and received body is read."""
    hook = hook_factory([])
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    notifier = WebhookNotifier(
        [WebhookSettings(url=hook.url, format="json"), WebhookSettings(url=hook.url + "/s")],
        store,
        poll_seconds=0.05,
    )
    made = make_broker(store, real_clock, broker_sts, notifier=notifier)
    secrets: list[str] = []
    try:
        with made.client:
            created = made.client.post(
                "/v1/sessions",
                json={"role": "viewer", "cluster": "prod", "ttl": 900, "reason": "look"},
                headers=made.auth(),
            ).json()
            session_token = created["session_token"]
            secrets.append(session_token)
            sid = created["session"]["id"]
            eks = made.client.post(
                f"/v1/sessions/{sid}/eks-token", headers=made.session_auth(session_token)
            ).json()
            secrets.append(eks["token"])
            made.client.delete(f"/v1/sessions/{sid}", headers=made.auth())
            # The notifier also refuses secret fields a future caller might pass.
            _notify(notifier, "session.approved", {"id": sid, "session_token": session_token})
            assert notifier.join(10)
        with store.read() as conn:
            token_hash = conn.execute(sa.select(m.sessions.c.token_hash)).scalar_one()
        stored = " ".join(r["body"] + r["hook"] for r in _rows(store))
        received = json.dumps(hook.bodies)
        assert {json.loads(r["body"]).get("event") for r in _rows(store)} >= {
            "session.activated",
            "session.revoked",
        }
        for secret in [*secrets, token_hash, hook.url]:
            assert secret not in stored
            assert secret not in received
        assert "jks." not in stored
        assert "k8s-aws-v1." not in stored
    finally:
        store.close()


@pytest.mark.parametrize("header", ["3", "date"])
def test_a_rate_limited_receiver_is_not_retried_before_its_retry_after(
    hook_factory: Any,
    sqlite_store: Store,
    notifiers: list[WebhookNotifier],
    header: str,
) -> None:
    from email.utils import formatdate

    value = "3" if header == "3" else formatdate(time.time() + 3, usegmt=True)
    receiver = hook_factory([429], retry_after=value)
    hook = WebhookSettings(url=receiver.url, format="json", events=(), max_attempts=5)
    notifier = _notifier(notifiers, [hook], sqlite_store, clock=time.time)
    before = time.time()
    _notify(notifier, "session.requested", _payload())
    assert _wait_for(lambda: _rows(sqlite_store)[0]["last_error"] == "HTTP 429")
    row = _rows(sqlite_store)[0]
    # The backoff alone would retry after 0.01 s; the receiver asked for ~3 s.
    assert row["next_attempt_at"] >= before + 2.0
    assert len(receiver.bodies) == 1
    assert _wait_for(lambda: _rows(sqlite_store)[0]["delivered_at"] is not None, timeout=15)
    assert time.time() - before >= 2.0
