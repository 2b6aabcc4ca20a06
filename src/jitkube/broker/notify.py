"""Notifications to webhooks (Slack-compatible or plain JSON), through a database outbox.

On the request path, `WebhookNotifier.outbox()` renders one row per subscribed webhook and
the store INSERTs them into the `notifications` table in the same transaction as the
change they announce (a session created, approved, revoked…): no network, so a slow or
broken chat service never slows an API call, and a crash cannot commit the one without
the other. A delivery thread per process
(started and stopped with the app's lifespan) claims due rows with a conditional UPDATE
(a lease: `claimed_until`), posts them, and marks them delivered, reschedules them with
exponential backoff (network errors, 429, 5xx; never sooner than a `Retry-After` asks)
or gives up after the webhook's `max_attempts`. Rows survive restarts and crashes; every
process and replica on the same database delivers from the same table, each row once in
normal operation.

Delivery is at least once: a process that dies after a post but before recording it, or
whose lease runs out mid-post, leaves the row to be sent again once the lease expires.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from jitkube.broker.config import WebhookSettings

if TYPE_CHECKING:
    from jitkube.broker.metrics import BrokerMetrics
    from jitkube.broker.store import Store

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

# Never rendered into a body, whatever a caller passes: bodies are stored and sent to a
# third-party chat service. (No caller passes them today; this keeps it so.)
_SECRET_FIELDS = frozenset(
    {
        "session_token",
        "token",
        "eks_token",
        "credentials",
        "access_key_id",
        "secret_access_key",
        "aws_session_token",
    }
)


Outbox = list[dict[str, Any]]  # rows of the notifications table, rendered


class Notifier(Protocol):
    """What the services need: rows to store in the same transaction as the change they
    announce (so a crash between the two cannot lose one), and a nudge once committed."""

    def outbox(self, event: str, payload: Mapping[str, Any]) -> Outbox: ...

    def stored(self, rows: Outbox) -> None: ...


class NullNotifier:
    def outbox(self, event: str, payload: Mapping[str, Any]) -> Outbox:
        return []

    def stored(self, rows: Outbox) -> None:
        return None


def render(hook: WebhookSettings, event: str, payload: Mapping[str, Any]) -> bytes:
    """The webhook body: Slack's `{"text": …}` or the event as JSON."""
    if hook.format == "json":
        return json.dumps({"event": event, **payload}, default=str).encode()
    return json.dumps({"text": _slack_text(event, payload)}).encode()


def _slack_escape(value: Any) -> Any:
    """Slack's control characters as entities: a requester's reason, argv or agent name
    cannot ping the channel (`<!channel>`) or dress a link up (`<https://…|approve>`)."""
    if not isinstance(value, str):
        return value
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(event: str, payload: Mapping[str, Any]) -> str:
    p = {k: _slack_escape(v) for k, v in payload.items()}
    # Inside `…` a backquote would end the code span and let the rest be formatted.
    p["command"] = str(p.get("command", "")).replace("`", "'")
    who = p.get("requester") or p.get("reviewer") or "someone"
    what = f"role *{p.get('role', '?')}* on *{p.get('cluster', '?')}*"
    reason = f" — reason: {p['reason']}" if p.get("reason") else ""
    by_agent = f" (agent {p['agent']})" if p.get("agent") else ""
    ref = f" (`{p.get('id', '')}`)"
    texts = {
        "session.requested": f":key: {who} requests {what} for {p.get('ttl', '?')}s{reason}{ref}",
        "session.approved": f":white_check_mark: {p.get('reviewer', '?')} approved {what}{ref}",
        "session.denied": f":no_entry: {p.get('reviewer', '?')} denied {what}{ref}",
        "session.activated": f":unlock: session for {who}: {what} is active{ref}",
        "session.revoked": f":lock: session {what} revoked by {p.get('by', '?')}{ref}",
        "session.break_glass": f":rotating_light: BREAK-GLASS: {who} took {what}{reason}{ref}",
        "command.requested": (
            f":hourglass: {who}{by_agent} asks to run `{p.get('command', '')}` "
            f"({p.get('risk', '?')}) on *{p.get('cluster', '?')}*{ref}"
        ),
        "command.approved": f":white_check_mark: command{ref} approved by {p.get('reviewer')}",
        "command.denied": f":no_entry: command{ref} denied by {p.get('reviewer')}",
    }
    return texts.get(event, f"{event}{ref}")


def hook_key(hook: WebhookSettings) -> str:
    """How the outbox names a webhook: a digest of its URL (the URL may hold a secret)."""
    return hashlib.sha256(hook.url.encode()).hexdigest()


# A webhook answer: the status and, for 429/503, how long the receiver asked us to wait.
Post = Callable[[str, bytes, float], tuple[int, float | None]]


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when - now)


def urllib_post(url: str, body: bytes, timeout: float) -> tuple[int, float | None]:
    request = urllib.request.Request(  # noqa: S310 - URL comes from the operator's config
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        wait = retry_after_seconds(exc.headers.get("Retry-After"), time.time())
        return int(exc.code), wait


def _error_name(exc: Exception) -> str:
    """`ConnectionRefusedError`, `TimeoutError`, …: never the message (it may hold the URL)."""
    reason = getattr(exc, "reason", None)  # urllib wraps the socket's error in URLError
    return (reason if isinstance(reason, BaseException) else exc).__class__.__name__


class WebhookNotifier:
    """Stores a row per subscribed webhook in the outbox; its thread delivers them.

    `start()`/`stop()` run the delivery thread (the app's lifespan calls them);
    `deliver_due()` is one pass, `join()` waits until this notifier's webhooks have
    nothing left to send (tests, shutdown).
    """

    def __init__(
        self,
        hooks: Sequence[WebhookSettings],
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        metrics: BrokerMetrics | None = None,
        post: Post = urllib_post,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 900.0,
        poll_seconds: float = 1.0,
        lease_seconds: float = 60.0,
        retention_seconds: float = 7 * 86400,
        purge_every_seconds: float = 3600.0,
        batch: int = 50,
    ) -> None:
        self._hooks = tuple(hooks)
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._post = post
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._retention = retention_seconds
        self._purge_every = purge_every_seconds
        self._batch = batch
        self._by_key: dict[str, WebhookSettings] = {}
        for hook in self._hooks:
            self._by_key.setdefault(hook_key(hook), hook)  # same URL twice: the first wins
        self._keys = tuple(self._by_key)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # What this process did (the metrics count the same; tests read these).
        self.delivered = 0
        self.failed = 0

    # -- the request path -------------------------------------------------------------

    def outbox(self, event: str, payload: Mapping[str, Any]) -> Outbox:
        """The event's outbox rows, one per subscribed webhook, for the caller to insert
        in the transaction that makes the change (see Store's `notifications=`)."""
        clean = {k: v for k, v in payload.items() if k not in _SECRET_FIELDS}
        now = self._clock()
        return [
            {
                "event": event,
                "hook": hook_key(hook),
                "body": render(hook, event, clean).decode(),
                "attempts": 0,
                "next_attempt_at": now,
                "claimed_until": 0.0,
                "created_at": now,
            }
            for hook in self._hooks
            if not hook.events or event in hook.events
        ]

    def stored(self, rows: Outbox) -> None:
        """Rows were committed: wake this process's delivery thread."""
        if rows:
            self._wake.set()

    # -- the delivery thread ----------------------------------------------------------

    def start(self) -> None:
        """Start this process's delivery thread (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="jitkube-notify", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the post in flight; undelivered rows stay for the next start."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    close = stop

    def _run(self) -> None:
        next_purge = 0.0
        while not self._stopping.is_set():
            self._wake.clear()
            busy = False
            try:
                busy = self.deliver_due() >= self._batch
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self._purge_every
                    self.purge()
                if self._metrics is not None:
                    self._metrics.notifications_pending.set(self._store.pending_notifications())
            except Exception as exc:  # e.g. the database is briefly unreachable: next round
                log.warning("notification delivery pass failed: %s", exc.__class__.__name__)
            if not busy:
                self._wake.wait(self._poll)

    def deliver_due(self) -> int:
        """One pass: claim and send what is due now, webhook by webhook (a webhook that fails
        is left for later in this pass, so it cannot hold up the others). Returns how many
        rows were tried."""
        tried = 0
        for key, hook in self._by_key.items():
            for notification_id, _ in self._store.due_notifications(
                [key], self._clock(), self._batch
            ):
                if self._stopping.is_set():
                    return tried
                now = self._clock()
                # Long enough for the post itself (urllib's timeout is per socket operation).
                lease = self._lease + 4 * hook.timeout_seconds
                row = self._store.claim_notification(notification_id, now, now + lease)
                if row is None:
                    continue  # another process sends it, or already did
                tried += 1
                if not self._attempt(row, hook):
                    break
        return tried

    def _attempt(self, row: Mapping[str, Any], hook: WebhookSettings) -> bool:
        attempt = int(row["attempts"])
        asked: float | None = None  # the receiver's Retry-After, in seconds
        try:
            status, asked = self._post(hook.url, str(row["body"]).encode(), hook.timeout_seconds)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, DNS
            status, error = 0, _error_name(exc)  # the class name only: retried
        except Exception as exc:  # e.g. an invalid URL: retrying will not help
            status, error = -1, exc.__class__.__name__
        else:
            error = f"HTTP {status}"
        now = self._clock()
        if 200 <= status < 300:
            self._store.settle_notification(row["id"], {"delivered_at": now, "last_error": None})
            self.delivered += 1
            self._count("delivered")
            return True
        retryable = status == 0 or status == 429 or status >= 500
        if not retryable or attempt >= hook.max_attempts:
            self._store.settle_notification(row["id"], {"failed_at": now, "last_error": error})
            self.failed += 1
            self._count("failed")
            log.warning(
                "webhook delivery of %s (#%s) given up after %d attempt(s): %s",
                row["event"],
                row["id"],
                attempt,
                error,
            )
            return False
        delay = self._backoff * 2 ** (attempt - 1)
        if asked is not None:  # a rate-limited receiver says when: never sooner
            delay = max(delay, asked)
        delay = min(delay, self._max_backoff)
        self._store.settle_notification(
            row["id"], {"next_attempt_at": now + delay, "last_error": error}
        )
        self._count("retried")
        return False

    def purge(self) -> int:
        """Retention: delete rows delivered (or given up) more than `retention` ago."""
        removed = self._store.purge_notifications(self._clock() - self._retention, self._keys)
        if removed:
            log.info("notifications purged", extra={"rows": removed})
        return removed

    def pending(self) -> int:
        """Rows of this notifier's webhooks neither delivered nor given up."""
        return self._store.pending_notifications(self._keys)

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until this notifier's webhooks have nothing pending (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.pending() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.02)

    def _count(self, result: str, amount: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.notifications.labels(result).inc(amount)
