"""Session creation latency of a real broker under 50 concurrent clients.

A real `jitkube broker serve` process (uvicorn, one worker) on loopback; the sandbox IdP
(HTTPS, JWKS) and the STS emulator (moto, AssumeRole over HTTP) run in this process. Each
client thread creates sessions (role granted at once: every request does JWT validation,
AssumeRole, encryption, a database insert) and then fetches an EKS token for each.

    .venv/bin/python benchmarks/broker_sessions.py [--clients 50] [--per-client 10]
        [--database sqlite|postgresql]

Note: the emulator shares a core with the clients here, so the figures include moto's
time; against real STS the broker's own share is what `--eks-token` shows (no STS call).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from cryptography.fernet import Fernet

READY = "jitkube broker listening on "
RUNNER = (
    "import sys, typer; from jitkube.environment import Environment; "
    "from jitkube.cli.broker import broker_app; "
    "typer.main.get_command(broker_app(Environment())).main("
    "args=sys.argv[1:], prog_name='jitkube broker')"
)
STS_RUNNER = (
    "import json, sys; from jitkube.sandbox.sts import StsEmulator; e = StsEmulator().start(); "
    "arn = e.ensure_role('jitkube-bench', max_session_duration=43200); "
    "k, s = e.create_access_key('jitkube-bench-broker'); "
    "print(json.dumps({'url': e.url, 'arn': arn, 'key_id': k, 'secret': s}), flush=True); "
    "sys.stdin.read()"
)
POSTGRES_URL = os.environ.get(
    "JITKUBE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@dataclass
class Setup:
    url: str
    proc: subprocess.Popen[bytes]
    token: str
    tmp: Path
    stop_parts: list[Any]
    pg_schema: str | None = None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for part in self.stop_parts:
            part.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.pg_schema is not None:
            import sqlalchemy as sa

            with sa.create_engine(POSTGRES_URL).begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{self.pg_schema}" CASCADE'))


def start_broker(database: str = "sqlite", rpm: int = 10_000_000) -> Setup:
    """IdP + STS emulator in-process, broker as a subprocess; returns a CI access token."""
    from jitkube.sandbox.idp import Client, SandboxIdP, User
    from jitkube.sandbox.tls import CertificateAuthority

    tmp = Path(tempfile.mkdtemp(prefix="jitkube-bench-"))
    ca = CertificateAuthority()
    secret = uuid.uuid4().hex
    idp = SandboxIdP(
        (User("alice", "alice@example.test", ("engineers",)),),
        (Client("bench-ci", grant_types=("client_credentials",), secret=secret, groups=("ci",)),),
        "jitkube",
        ca,
    ).start()
    bundle = ca.write_bundle(tmp / "ca.pem")
    # The emulator gets its own process: in this one it would share the GIL with the
    # 50 client threads and measure Python thread scheduling instead of the broker.
    sts = subprocess.Popen(
        [sys.executable, "-c", STS_RUNNER], stdout=subprocess.PIPE, stdin=subprocess.PIPE
    )
    assert sts.stdout is not None
    sts_info = json.loads(sts.stdout.readline())
    arn, key_id, key_secret = sts_info["arn"], sts_info["key_id"], sts_info["secret"]
    storage = f"sqlite:///{tmp / 'broker.db'}"
    schema: str | None = None
    if database == "postgresql":
        import sqlalchemy as sa

        schema = f"jk_bench_{uuid.uuid4().hex[:8]}"
        with sa.create_engine(POSTGRES_URL).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        storage = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    config = {
        "version": 1,
        "oidc": {"issuer": idp.issuer, "audience": ["jitkube"], "ca_bundle": str(bundle)},
        "clusters": [
            {
                "name": "prod",
                "region": "us-east-1",
                "endpoint": "https://prod.eks.test",
                "certificate_authority": "LS0tLS1CRUdJTg==",
            }
        ],
        "roles": [
            {
                "name": "viewer",
                "role_arn": arn,
                "clusters": ["prod"],
                "requestable_by": ["ci"],
                "max_ttl": "1h",
                "approval": {"min_approvals": 0},
            }
        ],
        "storage": {"url": storage},
        "aws": {"region": "us-east-1", "sts_endpoint_url": sts_info["url"]},
        "limits": {"requests_per_minute": rpm},
    }
    (tmp / "broker.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": key_secret,
        "AWS_CONFIG_FILE": str(tmp / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
        "JITKUBE_BROKER_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUNNER,
            "serve",
            "--config",
            str(tmp / "broker.yaml"),
            "--port",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith(READY):
        proc.kill()
        raise SystemExit("broker did not start")
    url = line.strip()[len(READY) :]
    for _ in range(200):
        try:
            requests.get(url + "/healthz", timeout=2)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    token = requests.post(
        idp.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=("bench-ci", secret),
        verify=str(bundle),
        timeout=10,
    ).json()["access_token"]
    return Setup(url, proc, token, tmp, [idp, _Process(sts)], schema)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(clients: int, per_client: int, database: str) -> None:
    setup = start_broker(database)
    create_ms: list[float] = []
    token_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client() -> None:
        auth = {"Authorization": f"Bearer {setup.token}"}
        body = {"role": "viewer", "cluster": "prod", "ttl": "15m", "reason": "bench"}
        mine: list[tuple[float, float]] = []
        with requests.Session() as http:
            barrier.wait()
            for _ in range(per_client):
                start = time.perf_counter()
                created = http.post(setup.url + "/v1/sessions", json=body, headers=auth)
                mid = time.perf_counter()
                if created.status_code != 201:
                    with lock:
                        errors.append(f"create {created.status_code}")
                    continue
                data = created.json()
                eks = http.post(
                    f"{setup.url}/v1/sessions/{data['session']['id']}/eks-token",
                    headers={"Authorization": f"Bearer {data['session_token']}"},
                )
                end = time.perf_counter()
                if eks.status_code != 200:
                    with lock:
                        errors.append(f"eks-token {eks.status_code}")
                mine.append(((mid - start) * 1000, (end - mid) * 1000))
        with lock:
            create_ms.extend(m[0] for m in mine)
            token_ms.extend(m[1] for m in mine)

    try:
        threads = [threading.Thread(target=client) for _ in range(clients)]
        wall = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall
    finally:
        setup.close()
    total = len(create_ms)
    print(f"broker sessions: {clients} concurrent clients x {per_client}, database={database}")
    print(
        f"  POST /v1/sessions   n={total} p50={percentile(create_ms, 50):.1f} ms "
        f"p99={percentile(create_ms, 99):.1f} ms mean={statistics.mean(create_ms):.1f} ms"
    )
    print(
        f"  POST .../eks-token  n={len(token_ms)} p50={percentile(token_ms, 50):.1f} ms "
        f"p99={percentile(token_ms, 99):.1f} ms"
    )
    print(
        f"  throughput {total / wall:.0f} sessions/s (with their EKS token); errors={len(errors)}"
    )
    if errors:
        print("  first errors:", errors[:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    run(args.clients, args.per_client, args.database)


if __name__ == "__main__":
    main()
