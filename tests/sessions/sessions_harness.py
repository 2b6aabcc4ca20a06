"""Helpers for the session tests: a real broker process, users with their own HOME, scans."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import yaml
from cryptography.fernet import Fernet

from fixtures.idp import API_SCOPE, PUBLIC_CLIENT_ID, SandboxIdPInfo
from jitkube.broker.server import READY_PREFIX

CLUSTER_ENDPOINT = "https://prod.eks.test"


@dataclass
class BrokerProcess:
    url: str
    proc: subprocess.Popen[bytes]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def broker_config(directory: Path, idp: SandboxIdPInfo, sts: Any) -> Path:
    """broker.yaml for these tests: viewer (granted at once) and admin (a reviewer approves)."""
    data = {
        "version": 1,
        "oidc": {
            "issuer": idp.idp.issuer,
            "audience": ["jitkube"],
            "ca_bundle": str(idp.ca_bundle),
            "client_id": PUBLIC_CLIENT_ID,
            "agent_groups": ["agents"],
        },
        "clusters": [
            {
                "name": "prod",
                "region": "us-east-1",
                "endpoint": CLUSTER_ENDPOINT,
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
                "role_arn": "arn:aws:iam::123456789012:role/jitkube-viewer",
                "clusters": ["prod", "dev"],
                "requestable_by": ["engineers", "reviewers", "agents"],
                "max_ttl": "1h",
                "approval": {"min_approvals": 0},
            },
            {
                "name": "admin",
                "role_arn": "arn:aws:iam::123456789012:role/jitkube-admin",
                "cluster": "prod",
                "requestable_by": ["engineers", "reviewers"],
                "max_ttl": "2h",
                "approval": {
                    "approver_groups": ["reviewers"],
                    "min_approvals": 1,
                    "reason_required": True,
                },
            },
        ],
        "command_approver_groups": ["reviewers"],
        "storage": {"url": f"sqlite:///{directory / 'broker.db'}"},
        "aws": {"region": "us-east-1", "sts_endpoint_url": sts.url},
    }
    path = directory / "broker.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def start_broker(
    config: Path, sts: Any, directory: Path, *extra: str, verify: str | bool = True
) -> BrokerProcess:
    """`jitkube broker serve --port 0 EXTRA…` as an operator starts it; waits for /healthz."""
    key_id, secret = sts.create_access_key()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(directory / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "no-aws-credentials"),
        "JITKUBE_BROKER_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    log = (directory / "broker.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jitkube",
            "broker",
            "serve",
            "--config",
            str(config),
            "--port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith(READY_PREFIX):
        proc.kill()
        proc.wait(timeout=10)
        raise AssertionError(f"broker did not start: {(directory / 'broker.log').read_text()}")
    url = line.strip()[len(READY_PREFIX) :]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=2, verify=verify).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    return BrokerProcess(url, proc)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def envelope(self) -> dict[str, Any]:
        lines = self.stdout.splitlines()
        assert len(lines) == 1, self
        doc: dict[str, Any] = json.loads(lines[0])
        return doc


@dataclass
class User:
    """One person with a private HOME/XDG tree; `run` is the real CLI in a subprocess."""

    name: str
    home: Path
    env: dict[str, str]

    @property
    def state_home(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "jitkube"

    @property
    def cache_dir(self) -> Path:
        return Path(self.env["XDG_RUNTIME_DIR"]) / "jitkube" / "sessions"

    def cache_files(self) -> list[Path]:
        if not self.cache_dir.exists():
            return []
        return sorted(p for p in self.cache_dir.iterdir() if p.suffix == ".json")

    def cached(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in self.cache_files()]

    def run(
        self,
        *args: str,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 90,
        stdin: int | None = subprocess.DEVNULL,
    ) -> Result:
        env = {**self.env, **(extra_env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "jitkube", *args],
            stdin=stdin,
            capture_output=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout.decode(), done.stderr.decode())

    def start(
        self, *args: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = {**self.env, **(extra_env or {})}
        return subprocess.Popen(
            [sys.executable, "-m", "jitkube", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def access_tokens(self) -> list[str]:
        """Every token in this user's msal cache (access, refresh, id)."""
        cache = json.loads((self.state_home / "token-cache.json").read_text())
        return [
            entry["secret"]
            for section in ("AccessToken", "RefreshToken", "IdToken")
            for entry in cache.get(section, {}).values()
            if entry.get("secret")
        ]


def make_user(root: Path, name: str, idp: SandboxIdPInfo, broker: BrokerProcess) -> User:
    home = root / "home"
    dirs = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_STATE_HOME": home / ".local" / "state",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_RUNTIME_DIR": root / "run",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (root / "run").chmod(0o700)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JITKUBE_", "KUBE", "AWS_")) and k not in ("CI", "NO_COLOR")
    }
    env.update({k: str(v) for k, v in dirs.items()})
    env.update(
        {
            "KUBECACHEDIR": str(home / ".kube" / "cache"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "NO_COLOR": "1",
            "COLUMNS": "100",
            "JITKUBE_ISSUER": idp.idp.issuer,
            "JITKUBE_CLIENT_ID": PUBLIC_CLIENT_ID,
            "JITKUBE_SCOPES": f"openid offline_access email {API_SCOPE}",
            "JITKUBE_CA_BUNDLE": str(idp.ca_bundle),
            "JITKUBE_TOKEN_STORE": "file",
            "JITKUBE_BROKER_URL": broker.url,
        }
    )
    return User(name, home, env)


def login_user(root: Path, name: str, idp: SandboxIdPInfo, broker: BrokerProcess) -> Path:
    """A real `jitkube login` (device code approved at the sandbox IdP); returns the root.

    The state dir is left at root/state for tests to copy.
    """
    user = make_user(root, name, idp, broker)
    proc = user.start("login")
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + 30
    code = None
    while code is None and time.monotonic() < deadline:
        if not selector.select(timeout=0.5):
            continue
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        for word in seen.decode(errors="replace").split():
            if word.startswith("https://") and "user_code=" in word:
                code = parse_qs(urlsplit(word).query)["user_code"][0]
    assert code is not None, seen.decode(errors="replace")
    idp.idp.approve_device(code, name)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (seen + err).decode(errors="replace")
    shutil_copy_state(user.state_home, root / "state")
    return root


def shutil_copy_state(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target)


def assert_no_secrets(secrets: Iterable[str], *results: Result) -> None:
    """No token, nor a recognisable prefix of one, in any output."""
    found = [s for s in secrets if s]
    assert found, "no secrets to look for"
    for result in results:
        for secret in found:
            for text in (result.stdout, result.stderr):
                assert secret not in text
                assert secret[:20] not in text


def session_id_of(result: Result) -> str:
    """The request id `jitkube request --no-wait` prints alone on stdout."""
    text = result.stdout.strip()
    assert text.startswith("ses_"), result
    return text
