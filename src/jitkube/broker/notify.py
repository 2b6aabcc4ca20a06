"""Notifications to webhooks (Slack-compatible or plain JSON), off the request path.

`WebhookNotifier.notify()` only enqueues; one daemon thread delivers with retries and
exponential backoff, so a slow or broken chat service never slows an API call. Events
are dropped (and counted) when the queue is full rather than blocking requests.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jitkube.broker.config import WebhookSettings

log = logging.getLogger("jitkube.broker.notify")

EVENTS = (
    "session.requested",
    "session.approved",
    "session.denied",
    "session.activated",
    "session.revoked",
    "session.break_glass",
    "command.requested",
    "command.approved",
    "command.denied",
)


class Notifier(Protocol):
    def notify(self, event: str, payload: Mapping[str, Any]) -> None: ...


class NullNotifier:
    def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        return None


@dataclass(frozen=True)
class _Delivery:
    hook: WebhookSettings
    body: bytes
    attempt: int = 1


def render(hook: WebhookSettings, event: str, payload: Mapping[str, Any]) -> bytes:
    """The webhook body: Slack's `{"text": …}` or the event as JSON."""
    if hook.format == "json":
        return json.dumps({"event": event, **payload}, default=str).encode()
    return json.dumps({"text": _slack_text(event, payload)}).encode()


def _slack_text(event: str, p: Mapping[str, Any]) -> str:
    who = p.get("requester") or p.get("reviewer") or "someone"
    what = f"role *{p.get('role', '?')}* on *{p.get('cluster', '?')}*"
    reason = f" — reason: {p['reason']}" if p.get("reason") else ""
    ref = f" (`{p.get('id', '')}`)"
    texts = {
        "session.requested": f":key: {who} requests {what} for {p.get('ttl', '?')}s{reason}{ref}",
        "session.approved": f":white_check_mark: {p.get('reviewer', '?')} approved {what}{ref}",
        "session.denied": f":no_entry: {p.get('reviewer', '?')} denied {what}{ref}",
        "session.activated": f":unlock: session for {who}: {what} is active{ref}",
        "session.revoked": f":lock: session {what} revoked by {p.get('by', '?')}{ref}",
        "session.break_glass": f":rotating_light: BREAK-GLASS: {who} took {what}{reason}{ref}",
        "command.requested": (
            f":hourglass: {who} asks to run `{p.get('command', '')}` "
            f"({p.get('risk', '?')}) on *{p.get('cluster', '?')}*{ref}"
        ),
        "command.approved": f":white_check_mark: command{ref} approved by {p.get('reviewer')}",
        "command.denied": f":no_entry: command{ref} denied by {p.get('reviewer')}",
    }
    return texts.get(event, f"{event}{ref}")


Post = Callable[[str, bytes, float], int]


def urllib_post(url: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(  # noqa: S310 - URL comes from the operator's config
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class WebhookNotifier:
    """Delivers to every configured webhook that subscribes to the event."""

    def __init__(
        self,
        hooks: Sequence[WebhookSettings],
        *,
        post: Post = urllib_post,
        backoff_seconds: float = 1.0,
        max_queue: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._hooks = tuple(hooks)
        self._post = post
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._queue: queue.Queue[_Delivery | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        for hook in self._hooks:
            if hook.events and event not in hook.events:
                continue
            self._ensure_thread()
            try:
                self._queue.put_nowait(_Delivery(hook, render(hook, event, payload)))
            except queue.Full:
                self.dropped += 1
                log.warning("notification queue full: dropped %s", event)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="jitkube-notify", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            try:
                self._deliver(item)
            finally:
                self._queue.task_done()

    def _deliver(self, item: _Delivery) -> None:
        attempt = 1
        while True:
            try:
                status = self._post(item.hook.url, item.body, item.hook.timeout_seconds)
            except OSError as exc:
                status, error = 0, exc.__class__.__name__
            else:
                error = f"HTTP {status}"
            if 200 <= status < 300:
                self.delivered += 1
                return
            retryable = status == 0 or status == 429 or status >= 500
            if not retryable or attempt >= item.hook.max_attempts:
                self.failed += 1
                log.warning("webhook delivery failed after %d attempt(s): %s", attempt, error)
                return
            self._sleep(self._backoff * 2 ** (attempt - 1))
            attempt += 1

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was delivered or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)
