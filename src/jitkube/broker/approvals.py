"""Per-command approvals: re-judged with the broker's policy, single-use, short-lived.

The CLI asks for an approval when its local policy says `approve`; the broker does not
take that on trust. It parses the argv itself, judges the risk (with the manifests the
CLI read, sent as bytes so the digest is recomputed here) and applies its own policy:
`deny` is refused outright, `allow` is granted without a reviewer, `confirm`/`approve`
wait for reviewers of the session's role. A request to see the output unmasked
(`unmask`, from `jitkube kubectl --unmask`) is raised to at least the policy's `unmask`
action. An approval is bound to a fingerprint of the exact command (unmask included) and
to the session, and can be consumed exactly once within 10 minutes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitkube.audit.redact import redact_argv
from jitkube.broker.auth import Identity
from jitkube.broker.config import BrokerConfig
from jitkube.broker.errors import BrokerError
from jitkube.broker.fingerprint import command_fingerprint
from jitkube.broker.metrics import BrokerMetrics
from jitkube.broker.notify import Notifier, Outbox
from jitkube.broker.sessions import iso
from jitkube.broker.store import DuplicateVote, Row, Store
from jitkube.errors import ConfigError, PolicyError
from jitkube.kubectl.invocation import FileSource
from jitkube.kubectl.manifests import ManifestSet, read_manifests
from jitkube.kubectl.parser import parse
from jitkube.policy import (
    Action,
    Decision,
    DecisionContext,
    Policy,
    decide,
    default_policy,
    load_policy_file,
    policy_from_dict,
)
from jitkube.risk import Assessment, assess

Clock = Callable[[], float]
MAX_MANIFESTS = 64


def load_broker_policy(config: BrokerConfig) -> Policy:
    """The policy from broker.yaml (inline or file), else jitkube's shipped default."""
    try:
        if config.policy is not None:
            return policy_from_dict(dict(config.policy), "broker.yaml policy")
        if config.policy_file is not None:
            return load_policy_file(Path(config.policy_file))
    except PolicyError as exc:
        raise ConfigError(f"policy: {exc.message}") from None
    return default_policy()


@dataclass(frozen=True)
class CommandRequest:
    argv: tuple[str, ...]
    namespace: str = ""
    manifests: tuple[str, ...] = ()  # base64 of each manifest source, in the order read
    reason: str = ""
    unmask: bool = False  # output shown without masking: the policy's `unmask` rule applies
    agent: str = ""  # the agent the client says runs it ("" for a person)


def manifests_from_blobs(blobs: Sequence[bytes]) -> ManifestSet:
    """A ManifestSet as the CLI read it: same bytes in the same order, so the same digest."""
    with tempfile.TemporaryDirectory(prefix="jitkube-broker-") as tmp:
        sources = []
        for i, blob in enumerate(blobs):
            path = Path(tmp) / f"manifest-{i}.yaml"
            path.write_bytes(blob)
            sources.append(FileSource(path=str(path), kind="file"))
        return read_manifests(sources)


class CommandApprovalService:
    def __init__(
        self,
        config: BrokerConfig,
        store: Store,
        clock: Clock,
        policy: Policy,
        notifier: Notifier,
        metrics: BrokerMetrics,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.policy = policy
        self.notifier = notifier
        self.metrics = metrics

    def request(self, session: Row, request: CommandRequest) -> Row:
        """Re-judge the command; store it approved (policy allows), pending, or refuse it."""
        argv = list(request.argv)
        if argv and argv[0] == "kubectl":
            argv = argv[1:]
        if not argv:
            raise BrokerError("validation", "argv is empty", extra={"field": "argv"})
        if len(request.manifests) > MAX_MANIFESTS:
            raise BrokerError("validation", "too many manifests", extra={"field": "manifests"})
        try:
            blobs = [base64.b64decode(m, validate=True) for m in request.manifests]
        except (binascii.Error, ValueError):
            raise BrokerError(
                "validation", "manifests must be base64", extra={"field": "manifests"}
            ) from None
        invocation = parse(argv)
        manifests: ManifestSet | None = None
        digest = ""
        if invocation.files:
            # Without the bytes the broker cannot judge what -f applies: assess() then
            # sees a problem and the command is unknown, hence denied (fail closed).
            manifests = (
                manifests_from_blobs(blobs)
                if blobs
                else ManifestSet(problems=("manifests were not sent to the broker",))
            )
            digest = manifests.digest
        assessment = assess(invocation, manifests)
        claimed = "".join(c for c in request.agent if c.isprintable()).strip()[:128]
        as_agent = bool(session["agent"]) or bool(claimed)
        decision = self._decide(assessment, session, request, invocation.command, as_agent)
        if claimed and not session["agent"]:
            # An agent in a person's session: judged as an agent's, but a client's claim
            # can only add care, never make a policy more lenient than for the person.
            human = self._decide(assessment, session, request, invocation.command, False)
            if human.action > decision.action:
                decision = human
        action, rule = decision.action, decision.rule
        reasons = [*assessment.texts, *decision.reasons]
        if request.unmask:
            # The output is shown without masking: at least the policy's `unmask` action
            # (nobody answers a prompt here, so `confirm` waits for a reviewer as well).
            reasons.append("unmask: secret values will be shown unmasked")
            if self.policy.unmask > action:
                action, rule = self.policy.unmask, "unmask"
                reasons.append(f"the policy's unmask rule requires {action.label}")
        self.metrics.commands.labels(action.label).inc()
        if request.reason.strip():
            # What the requester says (e.g. UNMASK from `jitkube --unmask`), shown to the
            # reviewers with the judgement's own reasons.
            reasons.append(f"requester: {request.reason.strip()[:300]}")
        if action is Action.DENY:
            raise BrokerError(
                "denied_by_policy",
                "the broker's policy refuses this command"
                + (" with unmasked output" if rule == "unmask" else ""),
                extra={
                    "risk": assessment.risk.label,
                    "rule": rule,
                    "reasons": reasons,
                },
            )
        role = self.config.roles.get(session["role"])
        min_approvals = max(1, role.approval.min_approvals) if role else 1
        now = self.clock()
        approved = action is Action.ALLOW
        row: dict[str, Any] = {
            "id": "cmd_" + secrets.token_hex(10),
            "session_id": session["id"],
            "requester_sub": session["owner_sub"],
            "fingerprint": command_fingerprint(
                argv, session["cluster"], request.namespace, digest, unmask=request.unmask
            ),
            "argv": argv,
            "cluster": session["cluster"],
            "namespace": request.namespace,
            "manifest_digest": digest,
            "risk": assessment.risk.label,
            "reasons": reasons,
            "decision": action.label,
            "rule": rule[:128],
            "unmask": request.unmask,
            "agent": claimed or (session["agent_name"] or "agent" if session["agent"] else ""),
            "status": "approved" if approved else "pending",
            "min_approvals": 0 if approved else min_approvals,
            "created_at": now,
            "expires_at": now + self.config.limits.command_approval_ttl_seconds,
        }
        outbox: Outbox = []
        if not approved:
            outbox = self.notifier.outbox(
                "command.requested",
                {
                    "id": row["id"],
                    "requester": session["owner_email"] or session["owner_sub"],
                    # Chat webhooks get the audit trail's redacted argv, never secrets.
                    "command": (
                        " ".join(["kubectl", *redact_argv(argv).argv])
                        + (" [--unmask: output NOT masked]" if request.unmask else "")
                    )[:500],
                    "risk": row["risk"],
                    "cluster": row["cluster"],
                    "role": session["role"],
                    "reason": request.reason[:300],
                    "unmask": request.unmask,
                    "agent": row["agent"],
                },
            )
        self.store.create_command(row, notifications=outbox)
        self.notifier.stored(outbox)
        return row

    def _decide(
        self,
        assessment: Assessment,
        session: Row,
        request: CommandRequest,
        command: tuple[str, ...],
        agent: bool,
    ) -> Decision:
        context = DecisionContext(
            agent=agent,
            interactive=False,
            cluster=session["cluster"],
            role=session["role"],
            namespace_default=request.namespace or "default",
        )
        return decide(assessment, context, self.policy, command=command)

    def get(self, command_id: str) -> Row:
        row = self.store.get_command(command_id)
        if row is None:
            raise BrokerError("not_found", "no such command approval")
        now = self.clock()
        if row["status"] in ("pending", "approved") and row["expires_at"] <= now:
            self.store.transition_command(command_id, [row["status"]], {"status": "expired"})
            row = self.store.get_command(command_id)
            assert row is not None
        return row

    def expire_due(self) -> None:
        """Expire every approval past its time (lists would otherwise show them pending)."""
        self.store.expire_commands(self.clock())

    def approver_groups(self, row: Row, session: Row | None = None) -> list[str]:
        """Who may decide this command: the role's approver groups, then the broker-wide
        command approver groups (each group once, in that order)."""
        session = session or self.store.get_session(row["session_id"])
        role = self.config.roles.get(session["role"]) if session else None
        groups = [
            *(role.approval.approver_groups if role else ()),
            *self.config.command_approver_groups,
        ]
        return list(dict.fromkeys(groups))

    def can_review(self, reviewer: Identity, row: Row) -> bool:
        """Approvers of the session's role, and the broker-wide command approvers."""
        return reviewer.in_any(tuple(self.approver_groups(row)))

    def review(self, command_id: str, reviewer: Identity, decision: str, comment: str) -> Row:
        row = self.get(command_id)
        if reviewer.sub == row["requester_sub"]:
            raise BrokerError("self_approval", "you cannot approve your own command")
        if not self.can_review(reviewer, row):
            raise BrokerError("not_a_reviewer", "you may not review commands of this role")
        if row["status"] != "pending":
            raise BrokerError("already_decided", f"command approval is {row['status']}")
        now = self.clock()
        try:
            votes = self.store.add_command_vote(
                command_id, reviewer.sub, reviewer.email, decision, comment[:1024], now
            )
        except DuplicateVote as exc:
            raise BrokerError("already_decided", str(exc)) from None
        payload = {"id": command_id, "reviewer": reviewer.display}
        if decision == "deny":
            outbox = self.notifier.outbox("command.denied", payload)
            if self.store.transition_command(
                command_id, ["pending"], {"status": "denied"}, notifications=outbox
            ):
                self.notifier.stored(outbox)
        elif sum(1 for v in votes if v["decision"] == "approve") >= row["min_approvals"]:
            outbox = self.notifier.outbox("command.approved", payload)
            if self.store.transition_command(
                command_id,
                ["pending"],
                {"status": "approved"},
                not_expired_at=now,
                notifications=outbox,
            ):
                self.notifier.stored(outbox)
        return self.get(command_id)

    def consume(self, command_id: str, session: Row, fingerprint: str) -> Row:
        """Use an approval once: only for its session and its exact command, before expiry."""
        now = self.clock()
        if not self.store.transition_command(
            command_id,
            ["approved"],
            {"status": "consumed", "consumed_at": now},
            not_expired_at=now,
            session_id=session["id"],
            fingerprint=fingerprint,
        ):
            row = self.get(command_id)
            why = (
                "it belongs to another session or command"
                if row["status"] == "approved"
                else f"it is {row['status']}"
            )
            raise BrokerError(
                "approval_not_usable",
                f"approval cannot be used: {why}",
                extra={"approval_status": row["status"]},
            )
        return self.get(command_id)

    def view(self, row: Row) -> dict[str, Any]:
        """The public JSON form of a command approval; `approver_groups` says who was asked."""
        session = self.store.get_session(row["session_id"])
        return {
            "id": row["id"],
            "session_id": row["session_id"],
            "status": row["status"],
            "requester": row["requester_sub"],
            "requester_email": session["owner_email"] if session else "",
            "role": session["role"] if session else "",
            "agent": row.get("agent") or "",
            "argv": row["argv"],
            "cluster": row["cluster"],
            "namespace": row["namespace"],
            "manifest_digest": row["manifest_digest"],
            "unmask": bool(row.get("unmask")),
            "fingerprint": row["fingerprint"],
            "risk": row["risk"],
            "reasons": row["reasons"],
            "broker_decision": row["decision"],
            "rule": row["rule"],
            "approvals_required": row["min_approvals"],
            "approver_groups": self.approver_groups(row, session),
            "approvals": [
                {
                    "reviewer": v["reviewer_email"] or v["reviewer_sub"],
                    "decision": v["decision"],
                    "comment": v["comment"],
                    "at": iso(v["created_at"]),
                }
                for v in self.store.command_votes(row["id"])
            ],
            "created_at": iso(row["created_at"]),
            "expires_at": iso(row["expires_at"]),
            "consumed_at": iso(row.get("consumed_at")),
        }
