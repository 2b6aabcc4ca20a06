"""Audit ingest rate on SQLite (WAL, synchronous=FULL), batched.

Two figures: the store alone (`Store.ingest_audit`, one transaction per batch), and the
whole HTTP path of a real broker (`POST /v1/audit`, JWT validation, JSON, store) with
several clients shipping their spools at once.

    .venv/bin/python benchmarks/broker_audit_ingest.py [--events 20000] [--batch 500]
        [--clients 4]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from _common import emit
from broker_sessions import start_broker
from jitkube.broker.store import Store


def _event(client: str, seq: int) -> dict[str, Any]:
    return {
        "id": f"{client}-{seq}",
        "seq": seq,
        "session_id": None,
        "sub": "alice",
        "argv": ["get", "pods", "-n", "prod"],
        "risk": "read",
        "reasons": ["reads objects"],
        "decision": "allow",
        "exit_code": 0,
        "duration_ms": 112,
        "bytes_out": 2048,
        "masked": 0,
    }


def store_rate(events: int, batch: int) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="jitkube-bench-audit-"))
    store = Store.open(f"sqlite:///{tmp / 'audit.db'}")
    start = time.perf_counter()
    for first in range(1, events + 1, batch):
        rows = []
        for seq in range(first, min(first + batch, events + 1)):
            body = _event("c1", seq)
            rows.append((body.pop("id"), body.pop("seq"), None, body))
        store.ingest_audit("c1", "alice", rows, time.time())
    elapsed = time.perf_counter() - start
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return events / elapsed


def http_rate(events: int, batch: int, clients: int) -> tuple[float, list[float]]:
    setup = start_broker()
    per_client = events // clients
    latencies: list[float] = []
    lock = threading.Lock()

    def ship(client: str) -> None:
        auth = {"Authorization": f"Bearer {setup.token}"}
        mine: list[float] = []
        with requests.Session() as http:
            for first in range(1, per_client + 1, batch):
                batch_events = [
                    _event(client, s) for s in range(first, min(first + batch, per_client + 1))
                ]
                t = time.perf_counter()
                response = http.post(
                    setup.url + "/v1/audit",
                    json={"client_id": client, "events": batch_events},
                    headers=auth,
                )
                mine.append((time.perf_counter() - t) * 1000)
                response.raise_for_status()
        with lock:
            latencies.extend(mine)

    try:
        threads = [threading.Thread(target=ship, args=(f"laptop-{i}",)) for i in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    finally:
        setup.close()
    return per_client * clients / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    store_rates = {}
    for batch in sorted({1, 50, args.batch}):
        n = min(args.events, 2_000) if batch == 1 else args.events
        store_rates[batch] = store_rate(n, batch)
        print(f"store only, SQLite, batch={batch:>4}: {store_rates[batch]:>9.0f} events/s")
    rate, latencies = http_rate(args.events, args.batch, args.clients)
    latencies.sort()
    p50, worst = latencies[len(latencies) // 2], latencies[-1]
    print(
        f"HTTP POST /v1/audit, {args.clients} clients, batch={args.batch}: {rate:.0f} events/s "
        f"(batch latency p50={p50:.0f} ms, max={worst:.0f} ms)"
    )
    emit(
        f"broker audit ingest, HTTP, batches of {args.batch}",
        rate,
        "events/s",
        goal=(">=", 5_000),
        detail=f"{args.clients} clients, SQLite; batch latency p50 {p50:.0f} ms,"
        f" max {worst:.0f} ms",
    )
    emit(
        f"broker audit ingest, store only, batches of {args.batch}",
        store_rates[args.batch],
        "events/s",
        detail=f"SQLite WAL, synchronous=FULL; batch=1: {store_rates[1]:.0f} events/s",
    )


if __name__ == "__main__":
    main()
