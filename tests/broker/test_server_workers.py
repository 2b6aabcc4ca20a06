"""`jitkube broker serve --workers N`: several real uvicorn processes on one socket.

What must hold across worker processes: one database, one credential key (even an
ephemeral one: credentials sealed by one worker open in another, without a new AssumeRole),
and `/metrics` that adds up every worker, also the ones that died and were replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from broker_harness import (
    StsHandle,
    broker_aws_env,
    broker_config_dict,
    child_pids,
    loopback_broker_config,
    stop_supervisor,
)

from fixtures.broker_process import spawn_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Supervisor:
    url: str
    proc: subprocess.Popen[bytes]

    def workers(self) -> set[int]:
        """Pids of the live worker processes (uvicorn spawns them with multiprocessing)."""
        found = set()
        for pid in child_pids(self.proc.pid):
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(pid)
        return found

    def stop(self) -> None:
        stop_supervisor(self.proc)


@pytest.fixture
def supervisor(tmp_path: Path, sandbox_idp: Any, broker_sts: StsHandle) -> Iterator[Supervisor]:
    config = loopback_broker_config(tmp_path, sandbox_idp, broker_sts)
    env = {  # no encryption key: the supervisor makes an ephemeral one for all workers
        k: v
        for k, v in os.environ.items()
        if k not in ("JITKUBE_BROKER_ENCRYPTION_KEY", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(broker_aws_env(tmp_path, broker_sts), TMPDIR=str(tmp_path))  # metrics dir here
    # The socket listens before the announcement: the wait is for a worker to answer.
    proc, url = spawn_broker(config, env, tmp_path / "broker.log", "--workers", "2", timeout=60)
    running = Supervisor(url, proc)
    try:
        yield running
    finally:
        running.stop()
    assert not list(tmp_path.glob("jitkube-broker-metrics-*")), "metrics directory left behind"


def _wait_for_new_workers(supervisor: Supervisor, old: set[int], count: int) -> set[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = supervisor.workers()
        if len(now) == count and not now & old:
            return now
        time.sleep(0.1)
    raise AssertionError(f"the supervisor did not replace workers {old}")


def test_replaced_workers_serve_sessions_of_the_old_ones_with_the_shared_ephemeral_key(
    supervisor: Supervisor, sandbox_idp: Any, broker_sts: StsHandle
) -> None:
    first = supervisor.workers()
    assert len(first) == 2
    auth = {"Authorization": f"Bearer {sandbox_idp.ci_token()}"}
    body = {"role": "deployer", "cluster": "prod", "ttl": "15m", "reason": "workers"}
    created = []
    for _ in range(4):
        answer = requests.post(supervisor.url + "/v1/sessions", json=body, headers=auth, timeout=30)
        assert answer.status_code == 201, answer.text
        created.append(answer.json())
    ours = {f"jitkube-{c['session']['id']}" for c in created}
    assumed = [c for c in broker_sts.emulator.assume_role_calls if c.role_session_name in ours]
    assert len(assumed) == 4

    # Every worker that created those sessions dies; new processes take over.
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    _wait_for_new_workers(supervisor, first, 2)

    for c in created:
        token = requests.post(
            f"{supervisor.url}/v1/sessions/{c['session']['id']}/eks-token",
            headers={"Authorization": f"Bearer {c['session_token']}"},
            timeout=30,
        )
        assert token.status_code == 200, token.text
        assert token.json()["token"].startswith("k8s-aws-v1.")
    # The new workers opened the sealed credentials: same key, no second AssumeRole.
    again = [c for c in broker_sts.emulator.assume_role_calls if c.role_session_name in ours]
    assert len(again) == 4

    metrics = requests.get(supervisor.url + "/metrics", timeout=30).text
    # Counted by the dead workers and by the new ones, added up.
    assert 'jitkube_broker_sessions_total{outcome="active"} 4.0' in metrics
    assert "jitkube_broker_eks_tokens_total 4.0" in metrics
    assert 'jitkube_broker_assume_role_total{result="ok"} 4.0' in metrics


def test_workers_stop_when_their_supervisor_is_killed(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    """SIGKILL leaves the supervisor no chance to stop its workers: they notice on their
    own and stop, instead of serving on (and holding the port) without it. (Nor can it
    remove its metrics directory: that is left in TMPDIR, removed below.)"""
    workers = supervisor.workers()
    assert len(workers) == 2
    supervisor.proc.send_signal(signal.SIGKILL)
    supervisor.proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    for pid in alive:  # leave nothing behind, even when the assertion fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert alive == [], "workers outlived their supervisor"
    with pytest.raises(requests.ConnectionError):  # nothing answers on the port any more
        requests.get(supervisor.url + "/healthz", timeout=5)
    for leftover in tmp_path.glob("jitkube-broker-metrics-*"):
        shutil.rmtree(leftover)


def test_workers_must_be_a_sane_number(tmp_path: Path) -> None:
    from jitkube.broker.server import ServeOptions, serve
    from jitkube.errors import ConfigError

    config = tmp_path / "broker.yaml"
    config.write_text(yaml.safe_dump(broker_config_dict()), encoding="utf-8")
    for workers in (0, 65):
        with pytest.raises(ConfigError, match="--workers must be between 1 and 64"):
            serve(ServeOptions(config, port=0, workers=workers))
