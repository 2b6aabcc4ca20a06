"""Helpers for the audit tests: start a real broker process (uvicorn on loopback) that
trusts the sandbox IdP, and read what it stored as an auditor."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from fixtures.broker_process import spawn_broker
from fixtures.idp import SandboxIdPInfo


def broker_config(tmp_path: Path, idp: SandboxIdPInfo) -> Path:
    """A minimal broker.yaml: the sandbox issuer, one role, auditors, SQLite."""
    data: dict[str, Any] = {
        "version": 1,
        "oidc": {
            "issuer": idp.idp.issuer,
            "ca_bundle": str(idp.ca_bundle),
            "audience": ["jitkube"],
            "client_id": "jitkube-cli",
            "agent_groups": ["agents"],
        },
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
                "role_arn": "arn:aws:iam::123456789012:role/jitkube-viewer",
                "clusters": ["prod"],
                "requestable_by": ["engineers", "ci-deployers"],
                "max_ttl": "1h",
                "approval": {"min_approvals": 0},
            }
        ],
        "auditor_groups": ["auditors"],
        "storage": {"url": f"sqlite:///{tmp_path / 'broker.db'}"},
        "aws": {"region": "us-east-1", "sts_endpoint_url": "http://127.0.0.1:9"},
    }
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@dataclass
class BrokerProcess:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def start_broker(config: Path, port: int = 0, timeout: float = 30) -> BrokerProcess:
    """Start `jitkube broker serve` and wait until /healthz answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JITKUBE_"))}
    env["AWS_ACCESS_KEY_ID"] = "AKIDEXAMPLE"
    env["AWS_SECRET_ACCESS_KEY"] = "test-only"
    log = config.parent / f"broker-{port}-{time.monotonic_ns()}.log"
    proc, url = spawn_broker(config, env, log, port=port, timeout=timeout)
    return BrokerProcess(url, proc)


def broker_events(url: str, token: str, client_id: str) -> list[dict[str, Any]]:
    """Every event the broker holds for `client_id`, across pages."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"client_id": client_id, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = requests.get(
            url + "/v1/audit",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        page.raise_for_status()
        body = page.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return items


def broker_client_status(url: str, token: str, client_id: str) -> dict[str, Any]:
    response = requests.get(
        url + "/v1/audit/clients", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    response.raise_for_status()
    found = [c for c in response.json()["items"] if c["client_id"] == client_id]
    assert found, f"broker knows no audit client {client_id}"
    status: dict[str, Any] = found[0]
    return status
