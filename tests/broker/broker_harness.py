"""Helpers for the broker tests: fake clock, test issuer, config, in-process broker."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from fixtures.broker_process import spawn_broker
from jitkube.broker.store import Store

POSTGRES_URL = os.environ.get(
    "JITKUBE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'broker.db'}"


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- a test OpenID issuer: RSA keys in memory, JWKS handed to the validator directly --------

ISSUER = "https://issuer.test/oidc"
AUDIENCE = "jitkube"


_KEY_POOL: list[Any] = []
_KEY_COUNTER = itertools.count()


def _next_rsa_key() -> Any:
    """RSA keys from a small per-process pool (generating one costs ~50-100 ms).

    Consecutive calls return different keys, so an issuer and an "other provider" made in
    the same test never share a key.
    """
    from cryptography.hazmat.primitives.asymmetric import rsa

    index = next(_KEY_COUNTER) % 8
    while len(_KEY_POOL) <= index:
        _KEY_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEY_POOL[index]


class TestIssuer:
    """Signs access tokens like an IdP would; `jwks()` is what its JWKS endpoint serves."""

    __test__ = False  # not a test class

    def __init__(self, issuer: str = ISSUER, clock: FakeClock | None = None) -> None:
        self.issuer = issuer
        self.clock = clock or FakeClock()
        self.keys: dict[str, Any] = {}
        self.kid = self.add_key()
        self.jwks_fetches = 0

    def add_key(self) -> str:
        kid = f"k{len(self.keys) + 1}-{uuid.uuid4().hex[:6]}"
        self.keys[kid] = _next_rsa_key()
        return kid

    def jwks(self) -> dict[str, Any]:
        import jwt

        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def fetch(self, url: str) -> bytes:
        """The JwksCache fetch seam: discovery and JWKS from memory."""
        if url.endswith("/.well-known/openid-configuration"):
            return json.dumps({"issuer": self.issuer, "jwks_uri": self.issuer + "/jwks"}).encode()
        assert url == self.issuer + "/jwks"
        self.jwks_fetches += 1
        return json.dumps(self.jwks()).encode()

    def claims(self, sub: str, groups: Sequence[str], **extra: Any) -> dict[str, Any]:
        now = int(self.clock())
        return {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "email": f"{sub}@example.test",
            "groups": list(groups),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            **extra,
        }

    def token(
        self,
        sub: str = "alice",
        groups: Sequence[str] = ("engineers",),
        *,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        import jwt

        kid = kid or self.kid
        return jwt.encode(
            self.claims(sub, groups, **extra),
            self.keys[kid],
            algorithm="RS256",
            headers={"kid": kid, "typ": "at+jwt", **(headers or {})},
        )


def broker_config_dict(role_arns: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    """A broker.yaml as data, with the roles the broker tests use."""
    arns = role_arns or {}

    def arn(name: str) -> str:
        return arns.get(name, f"arn:aws:iam::123456789012:role/{name}")

    data: dict[str, Any] = {
        "version": 1,
        "oidc": {
            "issuer": ISSUER,
            "audience": [AUDIENCE],
            "client_id": "jitkube-cli",
            "agent_groups": ["agents"],
            "jwks_min_refresh_seconds": 0,
        },
        "clusters": [
            {
                "name": "prod",
                "region": "us-east-1",
                "endpoint": "https://prod.eks.test",
                "certificate_authority": "LS0tLS1CRUdJTg==",
            },
            {
                "name": "dev",
                "region": "eu-west-1",
                "endpoint": "https://dev.eks.test",
                "certificate_authority": "LS0tLS1CRUdJTg==",
                "eks_cluster_name": "dev-eks",
            },
        ],
        "roles": [
            {
                "name": "viewer",
                "role_arn": arn("jitkube-viewer"),
                "clusters": ["prod", "dev"],
                "requestable_by": ["engineers", "agents"],
                "max_ttl": "1h",
                "approval": {"min_approvals": 0},
            },
            {
                "name": "admin",
                "role_arn": arn("jitkube-admin"),
                "cluster": "prod",
                "requestable_by": ["engineers", "sre-oncall"],
                "max_ttl": "2h",
                "approval": {
                    "approver_groups": ["reviewers"],
                    "min_approvals": 1,
                    "reason_required": True,
                    "agent_allowed": False,
                    "break_glass": True,
                    "break_glass_groups": ["sre-oncall"],
                },
            },
            {
                "name": "deployer",
                "role_arn": arn("jitkube-deployer"),
                "clusters": ["prod"],
                "requestable_by": ["engineers", "agents", "ci-deployers"],
                "max_ttl": "1h",
                "delivery": "credentials",
                "session_tags": {"team": "platform"},
                "approval": {
                    "approver_groups": ["reviewers"],
                    "min_approvals": 2,
                    "auto_approve_groups": ["ci-deployers"],
                },
            },
        ],
        "admin_groups": ["platform-admins"],
        "auditor_groups": ["auditors"],
        "command_approver_groups": ["reviewers"],
    }
    data.update(overrides)
    return data


@dataclass(frozen=True)
class StsHandle:
    """The STS emulator and an access key moto knows (the broker's own AWS identity)."""

    emulator: Any
    key_id: str
    secret: str
    issuer: Any = None  # a Boto3CredentialIssuer, built once (a boto3 client costs ~150 ms)


def loopback_broker_config(
    tmp_path: Path, sandbox_idp: Any, sts: StsHandle, **sections: Any
) -> Path:
    """broker.yaml for a real `jitkube broker serve`: the sandbox IdP, the STS emulator,
    SQLite in `tmp_path`; `sections` add or replace top-level sections."""
    data = broker_config_dict()
    data["oidc"].update(
        issuer=sandbox_idp.idp.issuer, ca_bundle=str(sandbox_idp.ca_bundle), audience=["jitkube"]
    )
    data["storage"] = {"url": sqlite_url(tmp_path)}
    data["aws"] = {"region": "us-east-1", "sts_endpoint_url": sts.emulator.url}
    data.update(sections)
    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    return config


def broker_aws_env(tmp_path: Path, sts: StsHandle) -> dict[str, str]:
    """The broker process's AWS identity (the emulator's access key), and no AWS config
    files of the machine's."""
    return {
        "AWS_ACCESS_KEY_ID": sts.key_id,
        "AWS_SECRET_ACCESS_KEY": sts.secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }


def child_pids(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (a supervisor's workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def stop_supervisor(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a supervisor stops its workers), then SIGKILL whatever is left."""
    left = child_pids(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def eks_describer(sts: StsHandle) -> Any:
    """A Boto3ClusterDescriber pointed at the emulator (EKS DescribeCluster over HTTP)."""
    import boto3

    from jitkube.broker.clusters import Boto3ClusterDescriber

    session = boto3.session.Session(
        aws_access_key_id=sts.key_id, aws_secret_access_key=sts.secret, region_name="us-east-1"
    )
    return Boto3ClusterDescriber(sts.emulator.url, session=session)


def sts_issuer(sts: StsHandle) -> Any:
    """A Boto3CredentialIssuer pointed at the emulator."""
    import boto3

    from jitkube.broker.sts import Boto3CredentialIssuer

    session = boto3.session.Session(
        aws_access_key_id=sts.key_id, aws_secret_access_key=sts.secret, region_name="us-east-1"
    )
    return Boto3CredentialIssuer("us-east-1", sts.emulator.url, session=session)


@dataclass
class Broker:
    """An in-process broker app with its parts, for API tests."""

    client: Any  # starlette TestClient
    app: Any
    store: Store
    issuer: TestIssuer
    clock: FakeClock
    sts: StsHandle
    notifier: Any

    def auth(
        self, sub: str = "alice", groups: Sequence[str] = ("engineers",), **extra: Any
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issuer.token(sub, groups, **extra)}"}

    @staticmethod
    def session_auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


class RecordingNotifier:
    """A Notifier that keeps what was committed (the webhook delivery has its own tests).

    Its rows go into the outbox like a webhook's, under a hook key no notifier sends, and
    an event is kept only once the broker reports its transaction committed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def outbox(self, event: str, payload: Any) -> list[dict[str, Any]]:
        body = json.dumps({"event": event, "payload": dict(payload)}, default=str)
        return [
            {
                "event": event,
                "hook": "recording",
                "body": body,
                "attempts": 0,
                "next_attempt_at": 0.0,
                "claimed_until": 0.0,
                "created_at": 0.0,
            }
        ]

    def stored(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            kept = json.loads(row["body"])
            self.events.append((kept["event"], kept["payload"]))


def make_broker(
    store: Store,
    clock: FakeClock,
    sts: StsHandle,
    config: dict[str, Any] | None = None,
    notifier: Any = None,
) -> Broker:
    from starlette.testclient import TestClient

    from jitkube.broker.app import create_app
    from jitkube.broker.auth import JwksCache, TokenValidator
    from jitkube.broker.config import parse_config
    from jitkube.broker.sts import CredentialVault

    settings = parse_config(config or broker_config_dict())
    issuer = TestIssuer(clock=clock)
    validator = TokenValidator(settings.oidc, JwksCache(settings.oidc, issuer.fetch), clock)
    notifier = notifier if notifier is not None else RecordingNotifier()
    from cryptography.fernet import Fernet

    app = create_app(
        settings,
        store,
        clock,
        validator=validator,
        issuer=sts.issuer or sts_issuer(sts),
        vault=CredentialVault([Fernet.generate_key()]),
        notifier=notifier,
        cluster_describer=eks_describer(sts),
    )
    client = TestClient(app, raise_server_exceptions=False)
    return Broker(client, app, store, issuer, clock, sts, notifier)


# -- a real `jitkube broker serve` process ------------------------------------------


@dataclass
class BrokerProcess:
    url: str
    proc: subprocess.Popen[bytes]
    db: Path
    log: Path  # the process's stderr: its JSON log lines

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


_LOG_NUMBERS = itertools.count(1)


def start_broker(
    config: Path, env: dict[str, str], timeout: float = 30, args: tuple[str, ...] = ()
) -> BrokerProcess:
    log = config.parent / f"broker-{next(_LOG_NUMBERS)}.log"
    proc, url = spawn_broker(config, env, log, *args, timeout=timeout)
    data = yaml.safe_load(config.read_text())
    return BrokerProcess(url, proc, Path(data["storage"]["url"].removeprefix("sqlite:///")), log)


# -- per-command approvals through the API --------------------------------------------


def open_session(broker: Broker, *, agent: bool = False, role: str = "viewer") -> tuple[str, str]:
    """A session of alice's (or the agent's): its id and session token."""
    who = ("agent-claude", ("agents",)) if agent else ("alice", ("engineers",))
    body = {"role": role, "cluster": "prod", "ttl": "15m", "reason": "INC-1", "agent": agent}
    created = broker.client.post("/v1/sessions", json=body, headers=broker.auth(*who)).json()
    return created["session"]["id"], created["session_token"]


def ask_command(broker: Broker, token: str, argv: list[str], **body: Any) -> Any:
    """POST /v1/commands with the session token (namespace prod unless given)."""
    return broker.client.post(
        "/v1/commands",
        json={"argv": argv, "namespace": "prod", **body},
        headers=broker.session_auth(token),
    )


# -- webhook receivers ------------------------------------------------------------------


class Hook:
    """A loopback webhook receiver that answers a scripted list of statuses.

    With `port`, it listens on that port (a receiver that comes back where it was).
    """

    def __init__(
        self, statuses: list[int], delay: float = 0.0, port: int = 0, retry_after: str = ""
    ) -> None:
        self.statuses = statuses
        self.delay = delay
        self.retry_after = retry_after
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(hook.delay)
                hook.bodies.append(json.loads(body))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                if status == 429 and hook.retry_after:
                    self.send_header("Retry-After", hook.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A loopback port nobody listens on (until a test starts a receiver there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
