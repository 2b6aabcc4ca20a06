"""Webhook notifications: Slack-compatible bodies, retries, and never on the request path."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from broker_harness import FakeClock, make_broker

from jitkube.broker.config import WebhookSettings
from jitkube.broker.notify import WebhookNotifier
from jitkube.broker.store import Store


class Hook:
    """A loopback webhook receiver that answers a scripted list of statuses."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses = statuses
        self.delay = delay
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(hook.delay)
                hook.bodies.append(json.loads(body))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_factory() -> Iterator[Any]:
    hooks: list[Hook] = []

    def make(statuses: list[int], delay: float = 0.0) -> Hook:
        hooks.append(Hook(statuses, delay))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.close()


def _payload() -> dict[str, Any]:
    return {
        "id": "ses_1",
        "requester": "alice@example.test",
        "role": "admin",
        "cluster": "prod",
        "ttl": 900,
        "reason": "INC-1",
    }


def test_slack_webhook_gets_text_and_is_retried_on_server_errors(hook_factory: Any) -> None:
    hook = hook_factory([500, 503, 200])
    notifier = WebhookNotifier([WebhookSettings(url=hook.url)], backoff_seconds=0.01)
    notifier.notify("session.requested", _payload())
    assert notifier.join(5)
    assert notifier.delivered == 1
    assert len(hook.bodies) == 3
    text = hook.bodies[-1]["text"]
    assert "alice@example.test" in text
    assert "*admin*" in text
    assert "INC-1" in text


def test_client_errors_are_not_retried_and_attempts_are_bounded(hook_factory: Any) -> None:
    rejecting = hook_factory([400])
    failing = hook_factory([500] * 10)
    notifier = WebhookNotifier(
        [WebhookSettings(url=rejecting.url), WebhookSettings(url=failing.url, max_attempts=3)],
        backoff_seconds=0.01,
    )
    notifier.notify("session.requested", _payload())
    assert notifier.join(5)
    assert (len(rejecting.bodies), len(failing.bodies), notifier.failed) == (1, 3, 2)


def test_json_webhooks_get_the_event_and_filters_apply(hook_factory: Any) -> None:
    hook = hook_factory([])
    notifier = WebhookNotifier(
        [WebhookSettings(url=hook.url, format="json", events=("session.break_glass",))]
    )
    notifier.notify("session.requested", _payload())
    notifier.notify("session.break_glass", _payload())
    assert notifier.join(5)
    assert [b["event"] for b in hook.bodies] == ["session.break_glass"]
    assert hook.bodies[0]["cluster"] == "prod"


def test_an_unreachable_webhook_never_slows_the_api(
    hook_factory: Any, tmp_path: Path, real_clock: FakeClock, broker_sts: Any
) -> None:
    slow = hook_factory([], delay=2.0)
    notifier = WebhookNotifier([WebhookSettings(url=slow.url, timeout_seconds=5)])
    store = Store.open(f"sqlite:///{tmp_path / 'n.db'}")
    made = make_broker(store, real_clock, broker_sts, notifier=notifier)
    start = time.monotonic()
    response = made.client.post(
        "/v1/sessions",
        json={"role": "admin", "cluster": "prod", "ttl": 900, "reason": "INC-2"},
        headers=made.auth(),
    )
    elapsed = time.monotonic() - start
    assert response.status_code == 202
    assert elapsed < 1.5
    assert notifier.join(5)
    assert "INC-2" in slow.bodies[0]["text"]
    notifier.close()
    store.close()
