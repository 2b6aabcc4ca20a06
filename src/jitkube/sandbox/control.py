"""Start, stop and inspect the background sandbox (`jitkube sandbox up|down|status|env`).

The daemon (jitkube.sandbox.daemon) owns the services; this module only spawns it,
waits for its state file, and signals it. Liveness is judged by the daemon's lock on
`sandbox.lock`, never by a pid alone (pids are reused).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitkube.config import state_dir
from jitkube.errors import ConfigError, JitkubeError, UsageError
from jitkube.sandbox.daemon import EXIT_IN_USE, LOCK_FILE, SECRETS_FILE, STATE_FILE

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class SandboxError(JitkubeError):
    code = "sandbox"


def default_dir(environ: Mapping[str, str]) -> Path:
    return state_dir(environ) / "sandbox"


@dataclass(frozen=True)
class SandboxStatus:
    directory: Path
    running: bool
    state: dict[str, Any]


def _lock_held(directory: Path) -> bool:
    """True when a live daemon holds the directory's lock."""
    path = directory / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _read_state(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def status(directory: Path) -> SandboxStatus:
    running = _lock_held(directory)
    state = _read_state(directory) if running else {}
    return SandboxStatus(directory, running and bool(state), state)


def up(directory: Path, *, auto_approve: str | None = None) -> tuple[SandboxStatus, bool]:
    """Start the sandbox unless it runs already. Returns (status, started_now)."""
    current = status(directory)
    if current.running:
        return current, False
    if _lock_held(directory):
        raise SandboxError(
            f"the sandbox in {directory} is still starting or stopping; try again shortly"
        )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / STATE_FILE).unlink(missing_ok=True)
    log = directory / "sandbox.log"
    cmd = [sys.executable, "-P", "-m", "jitkube.sandbox.daemon", "--dir", str(directory)]
    if auto_approve:
        cmd += ["--auto-approve", auto_approve]
    with open(log, "wb") as log_fh:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI and its terminal's Ctrl-C
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if (directory / STATE_FILE).exists():
            current = status(directory)
            if current.running:
                return current, True
        code = proc.poll()
        if code is not None:
            if code == EXIT_IN_USE:
                raise SandboxError(f"sandbox directory {directory} is in use by another sandbox")
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise SandboxError(
                f"the sandbox failed to start (exit {code}): " + " | ".join(tail),
                hint=f"full log: {log}",
            )
        time.sleep(0.05)
    proc.terminate()
    raise SandboxError(
        f"the sandbox did not become ready within {START_TIMEOUT:.0f} s", hint=f"log: {log}"
    )


def down(directory: Path) -> bool:
    """Stop the sandbox. Returns False when it was not running."""
    if not _lock_held(directory):
        (directory / STATE_FILE).unlink(missing_ok=True)
        return False
    try:
        pid = int((directory / LOCK_FILE).read_text().strip())
    except (OSError, ValueError) as exc:
        raise SandboxError(f"cannot read the sandbox pid from {directory / LOCK_FILE}") from exc
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _lock_held(directory):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return True


def env_lines(current: SandboxStatus) -> list[str]:
    """Shell lines that point jitkube at the sandbox: `eval "$(jitkube sandbox env)"`."""
    if not current.running:
        raise SandboxError("the sandbox is not running", hint="start it with `jitkube sandbox up`")
    return [
        f"export JITKUBE_CONFIG={shlex.quote(current.state['config'])}",
        f"export JITKUBE_SANDBOX_DIR={shlex.quote(str(current.directory))}",
    ]


def approve_device(
    current: SandboxStatus, user_code: str, user: str, *, deny: bool = False
) -> None:
    """Approve (or deny) a pending device login in the sandbox identity provider."""
    if not current.running:
        raise SandboxError("the sandbox is not running", hint="start it with `jitkube sandbox up`")
    if not user_code.strip():
        raise UsageError("a user code is required")
    secrets = json.loads((current.directory / SECRETS_FILE).read_text())
    body = json.dumps(
        {"user_code": user_code, "action": "deny" if deny else "approve", "user": user}
    ).encode()
    url = str(current.state["idp_admin_url"])
    if not url.startswith("https://"):
        raise SandboxError(f"unexpected identity provider admin URL {url!r}")
    request = urllib.request.Request(  # noqa: S310 - https checked above
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {secrets['idp_admin_secret']}",
        },
    )
    context = ssl.create_default_context(cafile=current.state["ca_bundle"])
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error_description") or exc.reason
        except ValueError:
            detail = exc.reason
        raise ConfigError(f"the identity provider refused: {detail}") from None
    except OSError as exc:
        raise SandboxError(f"cannot reach the sandbox identity provider: {exc}") from None
