"""`jitkube kubectl --unmask` end to end: the approval is for seeing values, and only that.

Real CLI, real broker process, simulated EKS: an approval for the masked command cannot
be used to run it with `--unmask`, and the other way round; reviewers see which one they
are approving.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from fixtures.sessions_harness import User
from jitkube.broker.fingerprint import command_fingerprint
from jitkube.kubectl.resources import resolve_type

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PODS = resolve_type("pods")
assert PODS is not None
AGENT = {"JITKUBE_AGENT": "claude-test"}
ARGV = ("delete", "pod", "worker-0", "-n", "prod")


def _request_admin(user: User) -> dict[str, Any]:
    result = user.run("--output", "json", "request", "--role", "admin", "--ttl", "15m")
    assert result.returncode == 0, result
    return user.cached()[0]


def _pending_id(user: User, *flags: str) -> str:
    result = user.run("--output", "json", *flags, "--no-wait", "kubectl", *ARGV, extra_env=AGENT)
    assert result.returncode == 66, result
    approval_id: str = json.loads(result.stderr.splitlines()[0])["data"]["approval_id"]
    return approval_id


def _consume(user: User, session: dict[str, Any], approval_id: str, unmask: bool) -> Any:
    """What a client would send to use `approval_id` for the masked/unmasked command."""
    fingerprint = command_fingerprint(list(ARGV), session["cluster"], "prod", "", unmask=unmask)
    return requests.post(
        f"{session['broker_url'].rstrip('/')}/v1/commands/{approval_id}/consume",
        json={"fingerprint": fingerprint},
        headers={"Authorization": f"Bearer {session['session_token']}"},
        verify=user.env["JITKUBE_CA_BUNDLE"],
        timeout=10,
    )


def test_masked_and_unmasked_approvals_are_not_interchangeable(
    alice: User, bob: User, sandbox: Any
) -> None:
    session = _request_admin(alice)
    masked = _pending_id(alice)
    assert bob.run("approve", masked).returncode == 0

    # The masked approval does not run the command unmasked: a new request is filed.
    unmasked = _pending_id(alice, "--unmask")
    assert unmasked != masked
    assert sandbox.cluster.store.exists(PODS, "prod", "worker-0")

    # Reviewers see which request shows values.
    listed = bob.run("approvals")
    assert listed.returncode == 0, listed
    lines = {
        line.split(":", 1)[0]: line
        for line in listed.stdout.splitlines()
        if line.startswith("cmd_")
    }
    assert "UNMASKED" in lines[unmasked]
    status = bob.run("approvals", "status", unmasked)
    assert "UNMASKED" in status.stdout, status
    shown = bob.run("--output", "json", "approvals", "status", unmasked)
    assert shown.envelope["data"]["request"]["unmask"] is True
    assert bob.run("approve", unmasked).returncode == 0

    # The broker itself refuses each approval for the other form of the command.
    for approval_id, unmask in ((masked, True), (unmasked, False)):
        wrong = _consume(alice, session, approval_id, unmask)
        assert wrong.status_code == 409, wrong.text
        assert wrong.json()["code"] == "approval_not_usable"

    # The masked run uses the masked approval; the unmasked one stays unused.
    ran = alice.run("--no-wait", "kubectl", *ARGV, extra_env=AGENT)
    assert ran.returncode == 0, ran
    assert not sandbox.cluster.store.exists(PODS, "prod", "worker-0")
    records = json.loads(alice.run("--output", "json", "audit").stdout)["data"]["records"]
    assert records[-1]["approval_id"] == masked
    after = bob.run("--output", "json", "approvals", "status", unmasked)
    assert after.envelope["data"]["request"]["status"] == "approved"
