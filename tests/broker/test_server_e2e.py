"""A real broker process (uvicorn on loopback, port 0) with the sandbox IdP and STS emulator."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from broker_harness import (
    BrokerProcess,
    StsHandle,
    broker_aws_env,
    broker_config_dict,
    loopback_broker_config,
    start_broker,
)
from cryptography.fernet import Fernet

from jitkube.broker.server import READY_PREFIX
from jitkube.broker.store import Store
from jitkube.eks_token import decode_eks_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The real CLI, as an operator starts it.
RUNNER = [sys.executable, "-m", "jitkube", "broker"]


@pytest.fixture
def broker_env(
    tmp_path: Path, sandbox_idp: Any, broker_sts: StsHandle
) -> tuple[Path, dict[str, str]]:
    config = loopback_broker_config(tmp_path, sandbox_idp, broker_sts)
    env = {
        **os.environ,
        **broker_aws_env(tmp_path, broker_sts),
        "JITKUBE_BROKER_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    return config, env


@pytest.fixture
def running_broker(broker_env: tuple[Path, dict[str, str]]) -> Iterator[BrokerProcess]:
    process = start_broker(*broker_env)
    try:
        yield process
    finally:
        process.kill()


def test_ci_gets_a_session_and_a_working_eks_token_from_a_real_broker(
    running_broker: BrokerProcess, sandbox_idp: Any, broker_sts: StsHandle
) -> None:
    url = running_broker.url
    assert requests.get(url + "/v1/client-config", timeout=5).json()["client_id"] == "jitkube-cli"
    auth = {"Authorization": f"Bearer {sandbox_idp.ci_token()}"}
    created = requests.post(
        url + "/v1/sessions",
        json={"role": "deployer", "cluster": "prod", "ttl": "15m", "reason": "deploy 42"},
        headers=auth,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    session = created.json()["session"]
    eks = requests.post(
        f"{url}/v1/sessions/{session['id']}/eks-token",
        headers={"Authorization": f"Bearer {created.json()['session_token']}"},
        timeout=10,
    ).json()
    now = dt.datetime.now(dt.UTC)
    presigned = decode_eks_token(eks["token"], "prod", now=now)
    identity = broker_sts.emulator.validate_presigned(presigned.url, presigned.headers, now)
    assert getattr(identity, "arn", "").endswith(f"/jitkube-{session['id']}")
    metrics = requests.get(url + "/metrics", timeout=5).text
    assert "jitkube_broker_eks_tokens_total 1.0" in metrics
    openapi = requests.get(url + "/openapi.json", timeout=5).json()
    assert "/v1/sessions/{session_id}/eks-token" in openapi["paths"]
    # A token from nowhere is refused by the real server too.
    bogus = requests.get(url + "/v1/sessions", headers={"Authorization": "Bearer x.y.z"}, timeout=5)
    assert bogus.status_code == 401


def test_the_broker_logs_json_lines_without_any_token_or_credential(
    broker_env: tuple[Path, dict[str, str]], sandbox_idp: Any, broker_sts: StsHandle
) -> None:
    """A session's whole life through a real process at debug level; then read its stderr.

    The cluster has no endpoint/CA in the config: the process finds them with EKS
    DescribeCluster (its own AWS identity, the emulator's URL), and logs a clear warning at
    start for a configured cluster EKS does not know.
    """
    import uuid

    config, env = broker_env
    eks_name = f"eks-{uuid.uuid4().hex[:10]}"
    ca_pem = b"-----BEGIN CERTIFICATE-----\nMIIBe2e\n-----END CERTIFICATE-----\n"
    broker_sts.emulator.register_eks_cluster(eks_name, "https://10.8.8.8:443", ca_pem)
    data = yaml.safe_load(config.read_text())
    data["clusters"] += [
        {"name": "found", "region": "us-east-1", "eks_cluster_name": eks_name},
        {"name": "ghost", "region": "us-east-1", "eks_cluster_name": f"{eks_name}-missing"},
    ]
    data["roles"][2]["clusters"] = ["prod", "found"]  # deployer: CI is auto-approved
    data["aws"]["eks_endpoint_url"] = broker_sts.emulator.url
    config.write_text(yaml.safe_dump(data), encoding="utf-8")

    process = start_broker(config, env, args=("--log-level", "debug"))
    url = process.url
    try:
        oidc_token = sandbox_idp.ci_token()
        auth = {"Authorization": f"Bearer {oidc_token}"}
        created = requests.post(
            url + "/v1/sessions",
            json={"role": "deployer", "cluster": "found", "ttl": "15m", "reason": "deploy 7"},
            headers=auth,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        sid = created.json()["session"]["id"]
        session_token = created.json()["session_token"]
        held = {"Authorization": f"Bearer {session_token}"}
        eks = requests.post(f"{url}/v1/sessions/{sid}/eks-token", headers=held, timeout=10)
        assert eks.status_code == 200, eks.text
        assert eks.json()["cluster_endpoint"] == "https://10.8.8.8:443"
        assert eks.json()["cluster_certificate_authority"] == base64.b64encode(ca_pem).decode()
        sts = requests.post(f"{url}/v1/sessions/{sid}/credentials", headers=held, timeout=10)
        assert sts.status_code == 200, sts.text
        requests.get(f"{url}/v1/sessions/{sid}", headers=held, timeout=10)
        requests.get(
            f"{url}/v1/sessions?status=active&cursor={oidc_token}", headers=auth, timeout=10
        )
        bogus = requests.get(
            url + "/v1/sessions", headers={"Authorization": "Bearer x.y.z"}, timeout=10
        )
        assert bogus.status_code == 401
        process.proc.send_signal(signal.SIGTERM)  # graceful: uvicorn logs its shutdown too
        process.proc.wait(timeout=15)
    finally:
        process.kill()

    text = process.log.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(d) for d in lines)
    requests_logged = [d for d in lines if d["logger"] == "jitkube.broker.request"]
    seen = [(d["method"], d.get("route"), d["status"]) for d in requests_logged]
    for expected in [
        ("POST", "/v1/sessions", 201),
        ("POST", "/v1/sessions/{session_id}/eks-token", 200),
        ("POST", "/v1/sessions/{session_id}/credentials", 200),
        ("GET", "/v1/sessions/{session_id}", 200),
        ("GET", "/v1/sessions", 422),
        ("GET", "/v1/sessions", 401),
    ]:
        assert expected in seen, f"{expected} not logged: {seen}"
    eks_line = next(d for d in requests_logged if d.get("route", "").endswith("/eks-token"))
    assert eks_line["session_id"] == sid
    assert eks_line["sub"] == created.json()["session"]["owner"]["sub"]
    assert eks_line["request_id"] == eks.headers["x-request-id"]
    assert isinstance(eks_line["duration_ms"], float)
    assert any(d["logger"].startswith("uvicorn") for d in lines)  # uvicorn's own, as JSON
    ghost = [d for d in lines if d.get("cluster") == "ghost"]
    assert ghost
    assert ghost[0]["level"] == "warning"
    assert "ResourceNotFoundException" in ghost[0]["error"]
    assert not any(d.get("cluster") == "found" for d in lines)  # found at start, no warning

    secrets = {
        "OIDC access token": oidc_token,
        "session token": session_token,
        "session token secret": session_token.rsplit(".", 1)[1],
        "EKS token": eks.json()["token"],
        "EKS token body": eks.json()["token"].removeprefix("k8s-aws-v1.")[:40],
        "STS secret key": sts.json()["secret_access_key"],
        "STS session token": sts.json()["session_token"],
        "STS session token (start)": sts.json()["session_token"][:24],
        "broker's own AWS secret": broker_sts.secret,
    }
    for name, value in secrets.items():
        assert value not in text, f"the broker log contains the {name}"


def test_no_acknowledged_audit_event_is_lost_when_the_broker_is_sigkilled(
    broker_env: tuple[Path, dict[str, str]], sandbox_idp: Any
) -> None:
    config, env = broker_env
    process = start_broker(config, env)
    auth = {"Authorization": f"Bearer {sandbox_idp.ci_token()}"}
    acked: list[str] = []
    attempted_up_to = 0
    stop = threading.Event()

    def ship() -> None:
        nonlocal attempted_up_to
        seq = 0
        with requests.Session() as http:
            while not stop.is_set():
                batch = [
                    {"id": f"ci-{n}", "seq": n, "argv": ["apply", "-f", "x.yaml"], "exit_code": 0}
                    for n in range(seq + 1, seq + 26)
                ]
                attempted_up_to = batch[-1]["seq"]
                try:
                    response = http.post(
                        process.url + "/v1/audit",
                        json={"client_id": "ci-runner-1", "events": batch},
                        headers=auth,
                        timeout=5,
                    )
                except requests.RequestException:
                    return  # the broker died mid-request: this batch is not acknowledged
                if response.status_code == 200:
                    acked.extend(e["id"] for e in batch)
                    seq = batch[-1]["seq"]

    shipper = threading.Thread(target=ship)
    try:
        shipper.start()
        deadline = time.monotonic() + 30
        while len(acked) < 500 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.proc.pid, signal.SIGKILL)  # mid-stream, no shutdown of any kind
        shipper.join(timeout=10)
    finally:
        stop.set()
        process.kill()
    assert len(acked) >= 500

    store = Store.open(f"sqlite:///{process.db}")
    stored = {r["event_id"] for r in store.list_audit(limit=1_000_000)}
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events lost"
    store.close()

    # The client's spool resends everything not acknowledged; a restarted broker takes it.
    restarted = start_broker(config, env)
    try:
        last_acked = max(int(e.split("-")[1]) for e in acked)
        batch = [
            {"id": f"ci-{n}", "seq": n, "exit_code": 0}
            for n in range(last_acked + 1, attempted_up_to + 1)
        ]
        response = requests.post(
            restarted.url + "/v1/audit",
            json={"client_id": "ci-runner-1", "events": batch},
            headers=auth,
            timeout=10,
        ).json()
        assert response["high_water"] == attempted_up_to
        assert response["missing"] == 0
    finally:
        restarted.kill()


def test_keep_alive_requests_are_not_delayed_by_nagle(running_broker: BrokerProcess) -> None:
    """Without TCP_NODELAY on accepted sockets each reused connection waits ~40 ms."""
    samples = []
    with requests.Session() as http:
        http.get(running_broker.url + "/healthz", timeout=5)
        for _ in range(15):
            start = time.perf_counter()
            http.get(running_broker.url + "/healthz", timeout=5)
            samples.append(time.perf_counter() - start)
    assert sorted(samples)[len(samples) // 2] < 0.025


def test_the_broker_serves_https_with_the_given_certificate(
    broker_env: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    from jitkube.sandbox.tls import CertificateAuthority

    ca = CertificateAuthority()
    cert, key = ca.issue_server().write(tmp_path, "broker")
    bundle = ca.write_bundle(tmp_path / "ca.pem")
    config, env = broker_env
    proc = subprocess.Popen(
        [
            *RUNNER,
            "serve",
            "--config",
            str(config),
            "--port",
            "0",
            *("--tls-cert", str(cert), "--tls-key", str(key)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip().removeprefix(READY_PREFIX)
        assert url.startswith("https://127.0.0.1:")
        deadline = time.monotonic() + 20
        while True:
            try:
                health = requests.get(url + "/healthz", verify=str(bundle), timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert health.json()["status"] == "ok"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url + "/healthz", timeout=2)  # not trusted without the CA
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 3}, "version: must be 1"),
        ({"roles": []}, "roles: required"),
    ],
)
def test_serve_refuses_a_bad_config_before_listening(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    from jitkube.broker.server import ServeOptions, serve
    from jitkube.errors import ConfigError

    data = {**broker_config_dict(), **change}
    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        serve(ServeOptions(config, port=0))


def test_what_start_up_built_is_frozen_out_of_the_garbage_collectors_sight(
    tmp_path: Path,
) -> None:
    """A full collection must not walk the broker's imports and app on every run: they are
    frozen once the app is built, before the first request."""
    import gc

    from jitkube.broker.server import ServeOptions, _build_app

    data = broker_config_dict()
    data["storage"] = {"url": f"sqlite:///{tmp_path / 'broker.db'}"}
    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    gc.unfreeze()
    app, store = _build_app(ServeOptions(config, port=0))
    try:
        assert gc.get_freeze_count() > 10_000
        # Frozen objects are in no generation: a collection never walks them.
        walked = gc.get_objects()
        assert not any(obj is app or obj is store for obj in walked)
        del walked
    finally:
        store.close()
        gc.unfreeze()


def test_serve_wants_certificate_and_key_together(tmp_path: Path) -> None:
    from jitkube.broker.server import ServeOptions, serve
    from jitkube.errors import ConfigError

    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump(broker_config_dict()), encoding="utf-8")
    with pytest.raises(ConfigError, match="go together"):
        serve(ServeOptions(config, port=0, tls_cert=tmp_path / "c.pem"))


@pytest.mark.parametrize("level", ["trace", "verbose"])
def test_serve_refuses_log_levels_that_could_log_headers_or_do_not_exist(
    tmp_path: Path, level: str
) -> None:
    from jitkube.broker.server import ServeOptions, serve
    from jitkube.errors import ConfigError

    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump(broker_config_dict()), encoding="utf-8")
    with pytest.raises(ConfigError, match="--log-level must be one of debug, info"):
        serve(ServeOptions(config, port=0, log_level=level))


def test_register_adds_broker_serve_with_its_options() -> None:
    import typer
    from typer.testing import CliRunner

    from jitkube.cli.broker import register
    from jitkube.environment import Environment

    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """jitkube"""

    register(app, Environment())
    result = CliRunner().invoke(app, ["broker", "serve", "--help"])
    assert result.exit_code == 0
    for option in ("--config", "--host", "--port", "--tls-cert", "--tls-key"):
        assert option in result.output


def test_bad_config_exits_64_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "broker.yaml"
    config.write_text("version: 1\nstorage: {url: 'sqlite:///x.db'}\n")
    result = subprocess.run(
        [*RUNNER, "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 64
    assert "oidc" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////nonexistent-dir/jitkube/broker.db", "sqlite:////nonexistent-dir"),
        (
            "postgresql+psycopg://jitkube:hunter2-secret@127.0.0.1:9/none",
            "postgresql+psycopg://jitkube:***@127.0.0.1:9/none",
        ),
    ],
)
def test_a_database_that_cannot_be_opened_is_a_config_error_without_its_password(
    tmp_path: Path, url: str, shown: str
) -> None:
    data = broker_config_dict()
    data["storage"] = {**data.get("storage", {}), "url": url}
    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = subprocess.run(
        [*RUNNER, "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = result.stderr.decode()
    assert result.returncode == 64, err
    assert f"cannot open the database {shown}" in err
    assert "hunter2" not in err
    assert "Traceback" not in err
