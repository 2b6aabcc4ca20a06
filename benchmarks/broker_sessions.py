"""Session creation latency of a real broker with 50 concurrent clients (issue #4).

Processes, all on this machine and sharing its cores: a real `jitkube broker serve`
(uvicorn, `--workers N`), the STS emulator (moto, AssumeRole over HTTP), the sandbox IdP
(HTTPS, JWKS; in this process, idle during the runs) and one load-generator process
(asyncio, stdlib only, one keep-alive HTTP/1.1 connection per client) so that the
clients cost little CPU and share no GIL with what is measured.

Every session is granted at once (approval rule `min_approvals: 0`): each
`POST /v1/sessions` validates the JWT, runs the approval rule, calls STS AssumeRole,
encrypts the credentials and inserts the row. Each client then fetches the session's EKS
token, as `jitkube kubectl` would (`--no-eks-token` leaves that out). Both runs start
after one unmeasured warm-up session per client.

closed loop  each client creates a session, fetches its token, and at once starts the
             next one (`--per-client` times). This measures capacity: with no pause
             between requests, latency is clients / throughput (Little's law).
open loop    the clients together start `--rate` sessions/s on a fixed schedule (each
             client every clients/rate s, staggered evenly) for `--duration` s. Latency is
             counted from the *scheduled* start, so any backlog counts in full (no
             coordinated omission). This is "latency with N concurrent clients" of a
             service at a stated load; the issue's goal (p99 <= 50 ms) applies here.

    .venv/bin/python benchmarks/broker_sessions.py [--clients 50] [--per-client 10]
        [--rate 50] [--duration 20] [--workers 1] [--database sqlite|postgresql]
        [--no-eks-token] [--skip-closed] [--skip-open]

`--workers` is passed to `jitkube broker serve`. Besides latency, the report gives the
CPU time per session of each process (broker, STS emulator, load generator): the
emulator's share is what a real STS would take off this machine. The last lines are
`BENCH {json}` records (see _common.emit). `--loadgen` is internal (the load generator).

The open loop needs about 0.8 of the 2 cores. Whatever else runs on the machine takes
its share of them: with other processes using one core or more, the run saturates the
machine and p99 grows to hundreds of ms, whatever the broker does. So each run starts
once the machine has been nearly idle for a second (`--quiet-wait` s at most), and the
report gives the cores other processes used during the run: a figure measured next to
more than QUIET_CORES of other work says so in its BENCH detail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY = "jitkube broker listening on "
RUNNER = (
    "import sys, typer; from jitkube.environment import Environment; "
    "from jitkube.cli.broker import broker_app; "
    "typer.main.get_command(broker_app(Environment())).main("
    "args=sys.argv[1:], prog_name='jitkube broker')"
)
# The emulator stands in for AWS: its full garbage collections (moto and its imports, walked
# in one go: 25 ms on a quiet machine, 100 ms on a busy one) are not the broker's latency.
# Frozen once set up, they only walk the sessions moto stores as the run goes on.
STS_RUNNER = (
    "import gc, json, sys; from jitkube.sandbox.sts import StsEmulator; "
    "e = StsEmulator().start(); "
    "arn = e.ensure_role('jitkube-bench', max_session_duration=43200); "
    "k, s = e.create_access_key('jitkube-bench-broker'); gc.collect(); gc.freeze(); "
    "print(json.dumps({'url': e.url, 'arn': arn, 'key_id': k, 'secret': s}), flush=True); "
    "sys.stdin.read()"
)
POSTGRES_URL = os.environ.get(
    "JITKUBE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SESSION_BODY = {"role": "viewer", "cluster": "prod", "ttl": "15m", "reason": "bench"}
GOAL_P99_MS = 50.0
QUIET_CORES = 0.25  # CPU other processes may use while a run starts or goes on, in cores


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
    sts_pid: int | None = None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for part in self.stop_parts:
            part.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.pg_schema is not None:
            import sqlalchemy as sa

            with sa.create_engine(POSTGRES_URL).begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{self.pg_schema}" CASCADE'))


def start_broker(database: str = "sqlite", rpm: int = 10_000_000, workers: int = 1) -> Setup:
    """IdP in-process, STS emulator and broker as subprocesses; returns a CI access token."""
    import requests
    import yaml
    from cryptography.fernet import Fernet

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
    # IdP and measure Python thread scheduling instead of the broker.
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
    command = [sys.executable, "-c", RUNNER, "serve", "--config", str(tmp / "broker.yaml")]
    command += ["--port", "0", "--log-level", "warning"]
    if workers != 1:
        command += ["--workers", str(workers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith(READY):
        proc.kill()
        raise SystemExit("broker did not start")
    url = line.strip()[len(READY) :]
    # The socket listens before the announcement; with --workers the answer waits until a
    # worker process has started (seconds on a busy machine).
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(url + "/healthz", timeout=30)
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    token = requests.post(
        idp.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=("bench-ci", secret),
        verify=str(bundle),
        timeout=10,
    ).json()["access_token"]
    return Setup(url, proc, token, tmp, [idp, _Process(sts)], schema, sts.pid)


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- CPU accounting (/proc) -------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy since boot (every process)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


def wait_for_quiet(limit: float) -> float:
    """Wait (at most `limit` s) for a second in which the machine is nearly idle; the
    cores it used in the last second. Called while every part of the benchmark is idle."""
    deadline = time.monotonic() + limit
    while True:
        busy, start = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        used = (machine_busy_seconds() - busy) / (time.monotonic() - start)
        if used <= QUIET_CORES or time.monotonic() >= deadline:
            return used


def cpu_seconds(pid: int | None) -> float:
    """CPU time of `pid` and its live descendants (uvicorn workers), in seconds."""
    if pid is None:
        return 0.0
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = found
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += stats[current][1]
        todo.extend(child for child, (parent, _) in stats.items() if parent == current)
    return total


# -- the load generator (a separate process; stdlib and asyncio only) ---------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection; just enough HTTP for the broker's answers."""

    IDLE_LIMIT = 4.0  # uvicorn closes idle keep-alive connections after 5 s

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def _connect(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None or time.monotonic() - self.last_used > self.IDLE_LIMIT:
            await self._connect()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        self.last_used = time.monotonic()
        return int(head[9:12]), data


@dataclass
class _Samples:
    create_ms: list[float] = field(default_factory=list)  # from the (scheduled) start
    service_ms: list[float] = field(default_factory=list)  # from the actual send
    token_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)  # open loop: sent late by
    errors: list[str] = field(default_factory=list)


async def _session(
    conn: _Connection, token: str, eks: bool, samples: _Samples | None, due: float
) -> None:
    sent = time.perf_counter()
    status, data = await conn.post("/v1/sessions", token, json.dumps(SESSION_BODY).encode())
    created = time.perf_counter()
    if status != 201:
        if samples is not None:
            samples.errors.append(f"create {status}: {data[:120]!r}")
        return
    if samples is not None:
        samples.create_ms.append((created - due) * 1000)
        samples.service_ms.append((created - sent) * 1000)
        samples.send_lag_ms.append((sent - due) * 1000)
    if eks:
        answer = json.loads(data)
        path = f"/v1/sessions/{answer['session']['id']}/eks-token"
        status, data = await conn.post(path, answer["session_token"])
        if samples is not None:
            if status != 200:
                samples.errors.append(f"eks-token {status}: {data[:120]!r}")
            else:
                samples.token_ms.append((time.perf_counter() - created) * 1000)


async def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    host, _, port = spec["url"].removeprefix("http://").partition(":")
    clients: int = spec["clients"]
    token, eks = spec["token"], spec["eks"]
    conns = [_Connection(host, int(port)) for _ in range(clients)]
    await asyncio.gather(*(_session(c, token, eks, None, 0.0) for c in conns))  # warm-up
    loop = asyncio.get_running_loop()
    print("warm", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the parent reads CPU counters
    samples = _Samples()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()

    async def closed(conn: _Connection) -> None:
        for _ in range(spec["per_client"]):
            await _session(conn, token, eks, samples, time.perf_counter())

    async def opened(index: int, conn: _Connection) -> None:
        rate: float = spec["rate"]
        interval = clients / rate
        for k in range(max(1, round(spec["duration"] * rate / clients))):
            due = start + index / rate + k * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await _session(conn, token, eks, samples, due)

    if spec["mode"] == "closed":
        await asyncio.gather(*(closed(c) for c in conns))
    else:
        await asyncio.gather(*(opened(i, c) for i, c in enumerate(conns)))
    wall = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_SELF)
    for conn in conns:
        if conn.writer is not None:
            conn.writer.close()
    return {
        "wall": wall,
        "cpu": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
        **samples.__dict__,
    }


def loadgen_main() -> None:
    spec = json.loads(sys.stdin.readline())
    print(json.dumps(asyncio.run(_loadgen(spec))), flush=True)


# -- the runs -----------------------------------------------------------------------------


@dataclass
class RunResult:
    label: str
    sessions: int
    wall: float
    create_ms: list[float]
    service_ms: list[float]
    token_ms: list[float]
    send_lag_ms: list[float]
    errors: list[str]
    cpu: dict[str, float]  # process -> CPU seconds during the run

    @property
    def throughput(self) -> float:
        return self.sessions / self.wall if self.wall else 0.0

    def cpu_ms_per_session(self, part: str) -> float:
        return self.cpu[part] * 1000 / self.sessions if self.sessions else float("nan")

    @property
    def other_cores(self) -> float:
        """Cores used during the run by processes that are not part of the benchmark."""
        ours = sum(seconds for part, seconds in self.cpu.items() if part != "machine")
        return max(0.0, self.cpu["machine"] - ours) / self.wall if self.wall else 0.0


def run_load(setup: Setup, label: str, spec: dict[str, Any], quiet_wait: float = 0.0) -> RunResult:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(json.dumps({"url": setup.url, "token": setup.token, **spec}) + "\n")
    proc.stdin.flush()
    if proc.stdout.readline().strip() != "warm":
        proc.kill()
        raise SystemExit("load generator failed during warm-up")
    if quiet_wait > 0:
        waited = time.monotonic()
        idle = wait_for_quiet(quiet_wait)
        if idle > QUIET_CORES:
            print(f"  (machine still busy after {quiet_wait:g} s: {idle:.2f} cores in use)")
        elif time.monotonic() - waited > 1.5:
            print(f"  (waited {time.monotonic() - waited:.0f} s for the machine to be idle)")
    busy = machine_busy_seconds()
    before = {"broker": cpu_seconds(setup.proc.pid), "sts": cpu_seconds(setup.sts_pid)}
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    after = {"broker": cpu_seconds(setup.proc.pid), "sts": cpu_seconds(setup.sts_pid)}
    busy = machine_busy_seconds() - busy
    proc.wait(timeout=30)
    if not line:
        raise SystemExit("load generator failed")
    data = json.loads(line)
    cpu = {part: after[part] - before[part] for part in before}
    cpu["loadgen"] = data["cpu"]
    cpu["machine"] = busy  # every process on the machine, other work included
    return RunResult(
        label,
        len(data["create_ms"]),
        data["wall"],
        data["create_ms"],
        data["service_ms"],
        data["token_ms"],
        data["send_lag_ms"],
        data["errors"],
        cpu,
    )


def report(result: RunResult) -> None:
    c = result.create_ms
    print(f"  {result.label}")
    print(
        f"    POST /v1/sessions   n={len(c)} p50={percentile(c, 50):.1f} ms "
        f"p99={percentile(c, 99):.1f} ms max={max(c, default=float('nan')):.1f} ms"
    )
    if result.send_lag_ms:
        s = result.service_ms
        print(
            f"      (from the actual send: p50={percentile(s, 50):.1f} ms "
            f"p99={percentile(s, 99):.1f} ms; sends late by p99 "
            f"{percentile(result.send_lag_ms, 99):.1f} ms)"
        )
    t = result.token_ms
    if t:
        print(
            f"    POST .../eks-token  n={len(t)} p50={percentile(t, 50):.1f} ms "
            f"p99={percentile(t, 99):.1f} ms"
        )
    cpu = ", ".join(
        f"{part} {result.cpu_ms_per_session(part):.1f}" for part in result.cpu if part != "machine"
    )
    cores = os.cpu_count() or 1
    print(
        f"    {result.throughput:.0f} sessions/s over {result.wall:.1f} s; "
        f"CPU ms per session: {cpu}; errors={len(result.errors)}"
    )
    print(
        f"    machine busy {result.cpu['machine'] / result.wall:.2f} of {cores} cores, "
        f"of which other processes (not this benchmark) {result.other_cores:.2f}"
    )
    if result.errors:
        print("    first errors:", result.errors[:3])


def emit_latency(
    name: str, result: RunResult, detail: str, goal: tuple[str, float] | None = None
) -> None:
    """p50 and p99 of session creation; `goal` applies to p99."""
    from _common import emit

    for p in (50, 99):
        emit(
            f"broker session creation p{p}, {name}",
            round(percentile(result.create_ms, p), 1),
            "ms",
            goal=goal if p == 99 else None,
            detail=detail,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=10, help="closed loop: sessions each")
    parser.add_argument("--rate", type=float, default=50.0, help="open loop: sessions/s in all")
    parser.add_argument("--duration", type=float, default=20.0, help="open loop: seconds")
    parser.add_argument("--workers", type=int, default=1, help="broker serve --workers")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--no-eks-token", dest="eks", action="store_false")
    parser.add_argument("--skip-closed", action="store_true")
    parser.add_argument("--skip-open", action="store_true")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="wait at most this many seconds for an idle machine before each run (0: never)",
    )
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main()
        return
    from _common import emit

    n = args.clients
    what = "create + EKS token" if args.eks else "create only"
    print(
        f"broker sessions: {n} concurrent clients, database={args.database}, "
        f"workers={args.workers}, {what}, {os.cpu_count()} cores shared by all processes"
    )
    setup = start_broker(args.database, workers=args.workers)
    base = {"clients": n, "eks": args.eks}
    try:
        closed = None
        if not args.skip_closed:
            closed = run_load(
                setup,
                f"closed loop: {n} clients x {args.per_client}, no pause",
                {**base, "mode": "closed", "per_client": args.per_client},
                args.quiet_wait,
            )
            report(closed)
        opened = None
        if not args.skip_open:
            opened = run_load(
                setup,
                f"open loop: {n} clients, {args.rate:g} sessions/s in all for "
                f"{args.duration:g} s (latency from the scheduled start)",
                {**base, "mode": "open", "rate": args.rate, "duration": args.duration},
                args.quiet_wait,
            )
            report(opened)
    finally:
        setup.close()
    setting = f"{args.database}, {args.workers} worker(s), {what}, STS emulated (moto)"
    if closed is not None:
        detail = f"{setting}; saturated: latency ~ clients / throughput"
        emit_latency(f"{n} clients (closed loop)", closed, detail)
        emit(
            f"broker sessions/s, {n} clients (closed loop)",
            round(closed.throughput, 1),
            "sessions/s",
            detail=f"{setting}; broker CPU {closed.cpu_ms_per_session('broker'):.1f} ms/session",
        )
    if opened is not None:
        rate = f"{args.rate:g}/s"
        detail = (
            f"{setting}; latency from the scheduled start; other processes used "
            f"{opened.other_cores:.2f} cores"
        )
        if opened.other_cores > QUIET_CORES:
            detail += " (machine not idle: figure not representative)"
        emit_latency(f"{n} clients (open loop, {rate})", opened, detail, goal=("<=", GOAL_P99_MS))
    failed = [r for r in (closed, opened) if r is not None and r.errors]
    if failed:
        raise SystemExit(f"{sum(len(r.errors) for r in failed)} requests failed")


if __name__ == "__main__":
    main()
