"""Helpers for identity tests: run the real CLI while it waits for a device login."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fixtures.env import IsolatedEnv
from fixtures.idp import API_SCOPE, OIDCProvider

HERE = Path(__file__).resolve().parent


def provider_env(provider: OIDCProvider, store: str | None = "file") -> dict[str, str]:
    """JITKUBE_* settings that point the CLI at `provider` (public client)."""
    env = {
        "JITKUBE_ISSUER": provider.issuer,
        "JITKUBE_CLIENT_ID": provider.public_client_id,
        "JITKUBE_SCOPES": f"openid offline_access email {API_SCOPE}",
        "JITKUBE_CA_BUNDLE": str(provider.ca_bundle),
    }
    if store is not None:
        env["JITKUBE_TOKEN_STORE"] = store
    return env


def state_dir(iso: IsolatedEnv) -> Path:
    return Path(iso.env["XDG_STATE_HOME"]) / "jitkube"


def keyring_env(iso: IsolatedEnv) -> dict[str, str]:
    """Select the test keyring backend (a JSON file) in a subprocess."""
    return {
        "PYTHON_KEYRING_BACKEND": "file_keyring.FileKeyring",
        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), iso.env.get("PYTHONPATH", "")) if p),
        "JITKUBE_TEST_KEYRING_FILE": str(iso.home / "test-keyring.json"),
    }


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class RunningCli:
    """A jitkube subprocess whose stderr is read while it runs."""

    proc: subprocess.Popen[bytes]
    _err: list[bytes] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start_reading(self) -> None:
        def read() -> None:
            assert self.proc.stderr is not None
            for line in iter(self.proc.stderr.readline, b""):
                self._err.append(line)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()

    @property
    def stderr_so_far(self) -> str:
        return b"".join(self._err).decode(errors="replace")

    def wait_for(self, predicate: Callable[[str], str | None], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self.stderr_so_far)
            if found is not None:
                return found
            if self.proc.poll() is not None:
                time.sleep(0.1)
                found = predicate(self.stderr_so_far)
                if found is not None:
                    return found
                raise AssertionError(f"jitkube exited early: {self.stderr_so_far}")
            time.sleep(0.05)
        raise AssertionError(f"timed out; stderr so far: {self.stderr_so_far}")

    def wait_for_prompt(self) -> dict[str, str]:
        """The device flow the CLI shows: verification_uri_complete and user_code."""
        url = self.wait_for(_complete_url)
        code = parse_qs(urlsplit(url).query)["user_code"][0]
        return {"verification_uri_complete": url, "user_code": code}

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 60) -> Result:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return Result(self.proc.returncode, out.decode(), self.stderr_so_far)


def _complete_url(text: str) -> str | None:
    for line in text.splitlines():
        for word in line.split():
            if word.startswith("https://") and "user_code=" in word:
                return word
    return None


def start_cli(
    iso: IsolatedEnv, *args: str, extra_env: Mapping[str, str] | None = None
) -> RunningCli:
    env = dict(iso.env)
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "jitkube", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    running = RunningCli(proc)
    running.start_reading()
    return running


def run(iso: IsolatedEnv, *args: str, extra_env: Mapping[str, str] | None = None) -> Result:
    done = iso.run(*args, extra_env=extra_env)
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def device_login(
    iso: IsolatedEnv,
    provider: OIDCProvider,
    user: str,
    *args: str,
    extra_env: Mapping[str, str] | None = None,
) -> Result:
    """`jitkube login ARGS` in a subprocess, approved as `user` once the code shows."""
    running = start_cli(iso, "login", *args, extra_env=extra_env)
    flow = running.wait_for_prompt()
    provider.approve(flow, user)
    return running.finish()


def envelope(result: Result) -> dict[str, Any]:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result
    doc: dict[str, Any] = json.loads(lines[0])
    return doc


def cached_secrets(blob: str) -> list[str]:
    """Every token in an msal serialized cache (access, refresh, id tokens)."""
    cache = json.loads(blob)
    return [
        entry["secret"]
        for section in ("AccessToken", "RefreshToken", "IdToken")
        for entry in cache.get(section, {}).values()
        if entry.get("secret")
    ]


def assert_no_secret(secrets: list[str], *results: Result) -> None:
    assert secrets, "no secrets to look for"
    for result in results:
        for secret in secrets:
            for text in (result.stdout, result.stderr):
                assert secret not in text
                assert secret[:24] not in text  # not even a prefix


@contextmanager
def json_stub(
    routes: Mapping[str, Callable[[BaseHTTPRequestHandler], tuple[int, Any]]],
) -> Iterator[str]:
    """A plain-HTTP JSON server on 127.0.0.1:0; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            handler = routes.get(urlsplit(self.path).path)
            status, body = handler(self) if handler else (404, {"error": "not found"})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
