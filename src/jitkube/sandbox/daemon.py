"""The sandbox process: every sandbox service in one background process.

Started by `jitkube sandbox up` as `python -m jitkube.sandbox.daemon --dir DIR`. It holds
an exclusive lock on `DIR/sandbox.lock` for its whole life (so a second `up` can tell a
live sandbox from a stale state file), starts the services on free loopback ports,
writes `DIR/state.json` last (atomically: its presence means "ready"), and on SIGTERM or
SIGINT stops everything and removes the state file.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LOCK_FILE = "sandbox.lock"
SECRETS_FILE = "secrets.json"
EXIT_IN_USE = 3


def write_private(path: Path, data: str | bytes) -> None:
    """Write a file only the owner can read, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def run(directory: Path, auto_approve: str | None) -> int:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"sandbox directory {directory} is in use by another sandbox", file=sys.stderr)
        return EXIT_IN_USE
    os.ftruncate(lock_fd, 0)
    os.write(lock_fd, f"{os.getpid()}\n".encode())

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    started = time.monotonic()
    # Imported after the lock: a refused second daemon should not pay for moto.
    from jitkube.sandbox.broker import SandboxBroker, sandbox_broker_config, write_config
    from jitkube.sandbox.idp import SandboxIdP
    from jitkube.sandbox.tls import CertificateAuthority
    from jitkube.sandbox.world import SANDBOX_ROLES, Sandbox

    ca = CertificateAuthority("jitkube sandbox CA")
    world = Sandbox.start(ca=ca)
    idp: SandboxIdP | None = None
    broker: SandboxBroker | None = None
    try:
        idp = SandboxIdP(ca=ca, auto_approve=auto_approve).start()
        ca_path = ca.write_bundle(directory / "ca.crt")
        if not (directory / "broker-fernet.key").exists():
            from cryptography.fernet import Fernet

            write_private(directory / "broker-fernet.key", Fernet.generate_key())
        broker_config = write_config(
            directory / "broker.yaml",
            sandbox_broker_config(
                directory=directory,
                issuer=idp.issuer,
                ca_bundle=ca_path,
                cluster_name=world.cluster.name,
                cluster_url=world.cluster.url,
                cluster_ca_pem=world.cluster.ca_pem,
                region=world.sts.region,
                sts_url=world.sts.url,
                role_arns={role: world.role_arn(role) for role in SANDBOX_ROLES},
            ),
        )
        # The broker's own AWS identity (it calls AssumeRole): a real key of the emulator's
        # IAM, set in this process only (the sandbox process exists to run these services).
        key_id, key_secret = world.sts.create_access_key("jitkube-broker")
        os.environ["AWS_ACCESS_KEY_ID"] = key_id
        os.environ["AWS_SECRET_ACCESS_KEY"] = key_secret
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        broker = SandboxBroker(broker_config, ca, directory).start()
        public_client = next(c for c in idp.clients.values() if c.is_public)
        ci_client = next((c for c in idp.clients.values() if not c.is_public), None)
        write_private(
            directory / SECRETS_FILE,
            json.dumps(
                {
                    "idp_admin_secret": idp.admin_secret,
                    "ci_client_id": ci_client.client_id if ci_client else None,
                    "ci_client_secret": ci_client.secret if ci_client else None,
                },
                indent=2,
            ),
        )
        write_private(
            directory / "config.toml",
            "# jitkube client configuration for the local sandbox (written by `sandbox up`).\n"
            f"issuer = {_toml_str(idp.issuer)}\n"
            f"client_id = {_toml_str(public_client.client_id)}\n"
            'scopes = ["jitkube"]\n'
            f"ca_bundle = {_toml_str(str(ca_path))}\n"
            f"broker_url = {_toml_str(broker.url)}\n"
            f"cluster = {_toml_str(world.cluster.name)}\n"
            'token_store = "file"\n',
        )
        state: dict[str, Any] = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "startup_seconds": round(time.monotonic() - started, 3),
            "ca_bundle": str(ca_path),
            "config": str(directory / "config.toml"),
            "sts_url": world.sts.url,
            "region": world.sts.region,
            "account_id": world.sts.account_id,
            "cluster_name": world.cluster.name,
            "cluster_url": world.cluster.url,
            "roles": {role: world.role_arn(role) for role in SANDBOX_ROLES},
            "issuer": idp.issuer,
            "broker_url": broker.url,
            "broker_config": str(broker_config),
            "idp_admin_url": idp.admin_url,
            "client_id": public_client.client_id,
            "auto_approve": auto_approve,
        }
        write_private(directory / STATE_FILE, json.dumps(state, indent=2))
        stop.wait()
    finally:
        (directory / STATE_FILE).unlink(missing_ok=True)
        if broker is not None:
            broker.stop()
        if idp is not None:
            idp.stop()
        world.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jitkube.sandbox.daemon")
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--auto-approve", default=None, help="approve every device code as USER")
    args = ap.parse_args(argv)
    return run(args.dir.resolve(), args.auto_approve)


if __name__ == "__main__":
    sys.exit(main())
