"""Hardening of the guarded path found by review: what an agent controls cannot widen it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.sessions_harness import User
from jitkube.kubectl.resources import resolve_type

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CONFIGMAPS = resolve_type("configmaps")

HARMLESS = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "swapped", "namespace": "prod"},
    "data": {"k": "v"},
}
DANGEROUS = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "swapped"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "cluster-admin",
    },
    "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "prod"}],
}


def _request_admin(user: User) -> None:
    result = user.run("request", "--role", "admin", "--ttl", "15m")
    assert result.returncode == 0, result


def test_a_manifest_swapped_while_waiting_for_approval_is_not_applied(
    alice: User, bob: User, sandbox: Any, tmp_path: Path
) -> None:
    _request_admin(alice)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(HARMLESS))
    proc = alice.start(
        "kubectl", "apply", "-f", str(manifest), extra_env={"JITKUBE_AGENT": "claude"}
    )
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 60
    while b"cmd_" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read1(4096)  # type: ignore[attr-defined]
    words = [w.strip(b"`();,.") for w in seen.split()]
    approval = next(w.decode() for w in words if w.startswith(b"cmd_"))
    manifest.write_text(json.dumps(DANGEROUS))  # swapped after judging, before approval
    assert bob.run("approve", approval).returncode == 0
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 65, (seen + err).decode()
    assert b"changed after it was judged" in err
    assert not sandbox.cluster.store.exists(CONFIGMAPS, "prod", "swapped")
    assert not any(r.method in ("POST", "PATCH", "PUT") for r in sandbox.cluster.requests)


def test_an_unwritable_audit_trail_refuses_to_run(alice: User, sandbox: Any) -> None:
    _request_admin(alice)
    before = len(sandbox.cluster.requests)
    result = alice.run(
        "kubectl", "get", "pods", "-n", "prod", extra_env={"XDG_STATE_HOME": "/proc/self"}
    )
    assert result.returncode == 64, result
    assert "refusing to run unrecorded" in result.stderr
    assert len(sandbox.cluster.requests) == before


@pytest.mark.parametrize("program", ["/bin/sh", "/usr/bin/env"])
def test_the_kubectl_setting_cannot_name_another_program(
    alice: User, sandbox: Any, program: str
) -> None:
    _request_admin(alice)
    result = alice.run("kubectl", "get", "pods", extra_env={"JITKUBE_KUBECTL": program})
    assert result.returncode == 64, result
    assert "does not name a kubectl binary" in result.stderr
    assert sandbox.cluster.requests == []
