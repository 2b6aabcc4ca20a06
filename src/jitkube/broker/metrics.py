"""Prometheus metrics of one broker app, in its own registry (no module-level globals).

Under `broker serve --workers N` each worker process counts into prometheus_client's
multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by the supervisor before the workers
start) and `render()` adds up every worker's files, so a scrape that lands on any worker
sees the whole broker.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class BrokerMetrics:
    """The broker's counters; `render()` is the /metrics body."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "jitkube_broker_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "jitkube_broker_request_seconds",
            "HTTP request latency by route template.",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.sessions = Counter(
            "jitkube_broker_sessions",
            "Session requests by outcome (active, pending, denied, break_glass, ...).",
            ["outcome"],
            registry=self.registry,
        )
        self.eks_tokens = Counter(
            "jitkube_broker_eks_tokens", "EKS tokens minted.", registry=self.registry
        )
        self.assume_role = Counter(
            "jitkube_broker_assume_role",
            "STS AssumeRole calls by result.",
            ["result"],
            registry=self.registry,
        )
        self.audit_events = Counter(
            "jitkube_broker_audit_events",
            "Audit events received, by result (accepted, duplicate, conflict).",
            ["result"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "jitkube_broker_auth_failures", "Rejected bearer tokens.", registry=self.registry
        )
        self.commands = Counter(
            "jitkube_broker_command_approvals",
            "Per-command approval requests by broker decision.",
            ["decision"],
            registry=self.registry,
        )

        self.notifications = Counter(
            "jitkube_broker_notifications",
            "Webhook deliveries by result (delivered, retried, failed: given up).",
            ["result"],
            registry=self.registry,
        )
        # Read from the shared outbox table, so every worker reports the same number.
        self.notifications_pending = Gauge(
            "jitkube_broker_notifications_pending",
            "Webhook notifications neither delivered nor given up yet.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return bytes(generate_latest(self.registry))
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(combined))
