"""The sandbox's broker: the real jitkube broker, configured for the sandbox world.

Runs in a thread of the sandbox process (uvicorn installs no signal handlers off the
main thread), over HTTPS with the sandbox CA, on SQLite in the sandbox directory.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from jitkube.sandbox.tls import CertificateAuthority

SANDBOX_AUDIENCE = "jitkube"


def sandbox_broker_config(
    *,
    directory: Path,
    issuer: str,
    ca_bundle: Path,
    cluster_name: str,
    cluster_url: str,
    cluster_ca_pem: bytes,
    region: str,
    sts_url: str,
    role_arns: dict[str, str],
) -> dict[str, Any]:
    """The broker.yaml of the sandbox: three roles over the simulated cluster.

    - viewer (jitkube-view): anyone, active at once.
    - editor (jitkube-edit): engineers and agents, active at once.
    - admin (jitkube-admin): engineers and agents, active at once for engineers; agents
      need a reviewer. Risky commands still need per-command approval by a reviewer.
    """
    everyone = ["engineers", "reviewers", "sre", "agents", "ci-deployers", "auditors"]
    return {
        "version": 1,
        "oidc": {
            "issuer": issuer,
            "audience": [SANDBOX_AUDIENCE],
            "algorithms": ["RS256"],
            "groups_claim": "groups",
            "client_id": "jitkube-cli",
            "scopes": [SANDBOX_AUDIENCE],
            "agent_groups": ["agents"],
            "ca_bundle": str(ca_bundle),
        },
        "clusters": [
            {
                "name": cluster_name,
                "region": region,
                "endpoint": cluster_url,
                "certificate_authority": base64.b64encode(cluster_ca_pem).decode(),
            }
        ],
        "roles": [
            {
                "name": "viewer",
                "role_arn": role_arns["jitkube-view"],
                "cluster": cluster_name,
                "requestable_by": everyone,
                "max_ttl": "8h",
                "approval": {"min_approvals": 0},
            },
            {
                "name": "editor",
                "role_arn": role_arns["jitkube-edit"],
                "cluster": cluster_name,
                "requestable_by": ["engineers", "agents", "ci-deployers", "sre"],
                "max_ttl": "4h",
                "approval": {"min_approvals": 0},
            },
            {
                "name": "admin",
                "role_arn": role_arns["jitkube-admin"],
                "cluster": cluster_name,
                "requestable_by": ["engineers", "sre", "agents"],
                "max_ttl": "1h",
                "approval": {
                    "approver_groups": ["reviewers", "sre"],
                    "min_approvals": 1,
                    "auto_approve_groups": ["engineers", "sre"],
                    "agent_allowed": True,
                },
            },
        ],
        "admin_groups": ["sre"],
        "auditor_groups": ["auditors", "sre"],
        "command_approver_groups": ["reviewers", "sre"],
        "storage": {
            "url": f"sqlite:///{directory / 'broker.db'}",
            "encryption_key_file": str(directory / "broker-fernet.key"),
        },
        "aws": {"region": region, "sts_endpoint_url": sts_url},
    }


class SandboxBroker:
    """The broker app served by uvicorn in a background thread."""

    def __init__(self, config_path: Path, ca: CertificateAuthority, directory: Path) -> None:
        self._config_path = config_path
        self._ca = ca
        self._directory = directory
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._store: Any = None
        self.url = ""

    def start(self, timeout: float = 15.0) -> SandboxBroker:
        import uvicorn

        from jitkube.broker.app import create_app
        from jitkube.broker.config import load_config
        from jitkube.broker.store import Store

        settings = load_config(self._config_path)
        self._store = Store.open(settings.storage.url)
        app = create_app(settings, self._store)
        cert, key = self._ca.issue_server("jitkube sandbox broker").write(
            self._directory, "broker-tls"
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            server_header=False,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox broker did not start")
            time.sleep(0.02)
        self.url = f"https://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._store is not None:
            self._store.close()


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(
        "# The sandbox broker's configuration (written by `jitkube sandbox up`).\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    return path
