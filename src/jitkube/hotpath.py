"""`jitkube kubectl ARGS…`: the command an agent types instead of `kubectl`.

Stdlib and jitkube core only (tests/test_hot_path_imports.py enforces it):
parse → judge with the session's policy → (confirm on /dev/tty | per-command approval at
the broker) → next EKS token if due → private kubeconfig → real kubectl, masked where
the output may carry secrets → one audit record, whatever happened → background flush.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence

from jitkube import config as config_module
from jitkube.dataclass_lite import dataclass, field
from jitkube.environment import Environment
from jitkube.errors import (
    ApprovalPendingError,
    ApprovalRefusedError,
    DeniedError,
    JitkubeError,
    SessionRequiredError,
)
from jitkube.judge import Judgement, judge, judgement_data
from jitkube.policy import Action, DecisionContext, Policy, default_policy, policy_from_dict
from jitkube.session_cache import CachedSession
from jitkube.session_cache import load as load_session

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

    from jitkube.runner import Masker


@dataclass
class _Record:
    """What the audit record of this invocation will say; filled in as we go."""

    argv: Sequence[str]
    started: float = field(default_factory=time.time)
    outcome: str = "failed"
    fields: dict[str, Any] = field(default_factory=dict)


def _policy_for(session: CachedSession | None) -> Policy:
    if session is not None and session.policy:
        return policy_from_dict(dict(session.policy), f"policy of session {session.session_id}")
    return default_policy()


def _audit(record: _Record, env: Environment, session: CachedSession | None, agent: Any) -> None:
    """Append the invocation to the local chain; never hides the command's own result."""
    from jitkube.audit import AuditEntry, record_invocation

    entry = AuditEntry(
        argv=list(record.argv),
        outcome=record.outcome,
        started_at=record.started,
        duration_ms=(time.time() - record.started) * 1000,
        agent=agent.name if agent else None,
        agent_source=agent.source if agent else "flag",
        session_id=session.session_id if session else None,
        cluster=session.cluster if session else None,
        role=session.role if session else None,
        sub=(session.owner_sub or None) if session else None,
        email=(session.owner or None) if session else None,
        groups=list(session.owner_groups) if session else [],
        **record.fields,
    )
    try:
        record_invocation(entry, env.environ)
    except Exception as exc:  # the audit must never turn a finished command into a crash
        env.stderr.write(f"jitkube: warning: could not write the audit record ({exc})\n")


# jitkube's own options, and the variable that does the same where they cannot go
# before `kubectl` (an agent's `kubectl` shim).
_OWN_OPTIONS = {
    "--no-wait": "JITKUBE_NO_WAIT=1",
    "--agent": "JITKUBE_AGENT=NAME",
    "--reason": "JITKUBE_REASON=TEXT",
    "--approval-timeout": "JITKUBE_APPROVAL_TIMEOUT=15m",
    "--unmask": "",
}


def _misplaced_option(argv: Sequence[str]) -> str | None:
    """A jitkube option typed among kubectl's arguments, as the hint for it."""
    for arg in argv:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if name in _OWN_OPTIONS:
            variable = _OWN_OPTIONS[name]
            return (
                f"{name} is jitkube's option, not kubectl's: write `jitkube {name} kubectl …`"
                + (f", or set {variable} (the way through the kubectl shim)" if variable else "")
            )
    return None


def _refusal_hint(j: Judgement) -> str:
    if j.assessment.risk.label == "unknown":
        misplaced = _misplaced_option(j.invocation.argv)
        if misplaced is not None:
            return misplaced
    if j.assessment.risk.label == "bypass":
        return (
            "jitkube chooses the cluster and identity: drop flags such as --kubeconfig, "
            "--context, --server, --token or --as; do not look for other ways around it"
        )
    if j.assessment.risk.label == "unknown":
        return (
            "jitkube could not establish what this command does, so it will not run it; "
            "ask a human (plugins and unreadable manifests are refused on purpose)"
        )
    return "ask a human to run it, or to change the policy rule named above"


def _namespace(j: Judgement) -> str:
    return j.invocation.namespace or ""


def _confirm(j: Judgement, env: Environment) -> bool | None:
    from jitkube.prompt import confirm_on_tty

    reasons = "\n".join(f"  - {r.text}" for r in j.assessment.reasons)
    question = (
        f"jitkube: kubectl {' '.join(j.invocation.argv)}\n"
        f"  class: {j.assessment.risk.label}\n{reasons}\nRun it?"
    )
    return confirm_on_tty(question)


def _approve(
    j: Judgement, session: CachedSession, env: Environment, record: _Record
) -> tuple[str, str]:
    """File a per-command approval, wait for it, consume it; returns (id, approver)."""
    from jitkube import command_approval
    from jitkube.broker.fingerprint import command_fingerprint

    digest = j.manifests.digest if j.manifests is not None else ""
    fingerprint = command_fingerprint(
        j.invocation.argv, session.cluster, _namespace(j), digest, unmask=env.unmask
    )
    # An unmasked run is remembered apart: an approval for the masked command is not one
    # for seeing its values.
    memory_key = fingerprint + ("-unmask" if env.unmask else "")
    approval = None
    known = command_approval.recall(env.environ, session, memory_key)
    if known is not None:  # filed by an earlier run of this same command (--no-wait)
        try:
            approval = command_approval.find(session, known)
        except JitkubeError:
            approval = None
        if approval is not None and approval.fingerprint != fingerprint:
            approval = None
        if approval is None or approval.status in ("expired", "consumed"):
            command_approval.forget(env.environ, memory_key)
            approval = None
    if approval is None:
        blobs = list(j.manifests.blobs) if j.manifests is not None else []
        reason = env.reason
        if env.unmask:
            reason = "UNMASK: secret values will be shown unmasked. " + reason
        approval = command_approval.submit(
            session,
            j.invocation.argv,
            _namespace(j),
            blobs,
            reason,
            unmask=env.unmask,
            agent=env.agent or "",
        )
        if approval.status == "pending":
            command_approval.remember(env.environ, session, memory_key, approval.id)
    record.fields["approval_id"] = approval.id
    if approval.status == "pending":
        if env.no_wait:
            record.outcome = "pending"
            raise ApprovalPendingError(
                f"approval {approval.id} is pending: a reviewer must approve this command",
                hint=f"`jitkube approvals status {approval.id}`; run the same command again "
                "once it is approved (it will use this approval)",
                data={**judgement_data(j), "approval_id": approval.id},
            )
        env.stderr.write(
            f"jitkube: waiting for a reviewer to approve {approval.id} "
            f"(`jitkube approve {approval.id}`; Ctrl-C to stop)\n"
        )
        approval = command_approval.wait(session, approval.id, env.approval_timeout)
    if approval.status != "approved":
        record.outcome = "refused"
        if approval.status == "pending":
            raise ApprovalPendingError(
                f"approval {approval.id} is still pending after {int(env.approval_timeout)} s",
                hint=f"`jitkube approvals status {approval.id}`; run the command again later",
                data={**judgement_data(j), "approval_id": approval.id},
            )
        command_approval.forget(env.environ, memory_key)
        message, hint = approval.refusal
        raise ApprovalRefusedError(
            message, hint=hint, data={**judgement_data(j), "approval_id": approval.id}
        )
    command_approval.forget(env.environ, memory_key)
    command_approval.consume(session, approval.id, fingerprint)
    return approval.id, approval.approver


def kubectl_main(args: Sequence[str], env: Environment) -> int:
    from jitkube.audit import resolve_agent

    record = _Record(args)
    config = config_module.load(env.environ)
    session = load_session(env.environ, cluster=config.cluster, role=config.role)
    session_agent = None
    if session is not None and (session.agent_name or session.agent):
        session_agent = session.agent_name or "agent"  # the broker says the owner is one
    agent = resolve_agent(
        env.agent or config.agent,
        "flag" if env.agent else "env",
        session_agent,
        env.environ,
    )
    if agent is not None and not env.agent:
        env.agent = agent.name
    context = DecisionContext(
        agent=agent is not None,
        interactive=env.interactive and agent is None,
        cluster=session.cluster if session else (config.cluster or ""),
        role=session.role if session else (config.role or ""),
    )
    try:
        try:
            from jitkube.runner import check_kubectl_setting

            kubectl = config.kubectl or "kubectl"
            check_kubectl_setting(kubectl)
            j = judge(
                args,
                context,
                _policy_for(session),
                read_stdin=env.stdin.read,
                kubectl_path=kubectl,
            )
        except JitkubeError as exc:
            record.fields["error"] = exc.code
            raise
        from jitkube.audit import judgement_fields

        record.fields.update(judgement_fields(j))
        return _run(j, env, session, config, record)
    except JitkubeError as exc:
        record.fields.setdefault("error", exc.code)
        raise
    except KeyboardInterrupt:
        record.outcome = "interrupted"
        raise
    finally:
        _audit(record, env, session, agent)
        if session is not None:
            from jitkube.audit import flush_after_command

            flush_after_command(
                env.environ,
                session.broker_url,
                f"Bearer {session.session_token}",
                session.ca_bundle,
            )


def _run(
    j: Judgement,
    env: Environment,
    session: CachedSession | None,
    config: config_module.Config,
    record: _Record,
) -> int:
    action = j.decision.action
    if action is Action.DENY:
        record.outcome = "denied"
        reasons = [r.text for r in j.assessment.reasons] + list(j.decision.reasons)
        raise DeniedError(
            f"denied by policy rule {j.decision.rule!r} ({j.assessment.risk.label}): "
            + "; ".join(reasons[:3]),
            hint=_refusal_hint(j),
            data=judgement_data(j),
        )
    if j.invocation.help:
        # kubectl only prints help: nothing reaches a cluster, no session is needed.
        return _exec(j, env, None, config, record)
    if session is not None:
        _ensure_auditable(env)
    if session is None:
        record.outcome = "refused"
        raise SessionRequiredError(
            "no active jitkube session"
            + (f" for cluster {config.cluster}" if config.cluster else ""),
            hint="run `jitkube request --role ROLE --ttl 15m` (after `jitkube login`)",
            data=judgement_data(j),
        )
    if env.unmask:
        # Values unmasked: at least what the policy's `unmask` says (approve by default),
        # with the same floors (agents never confirm; no terminal means approve).
        floor = _policy_for(session).unmask
        if floor is Action.DENY:
            record.outcome = "denied"
            raise DeniedError(
                "the policy does not let this session see unmasked output (unmask: deny)",
                hint="run the command without --unmask; values are then masked",
                data=judgement_data(j),
            )
        action = max(action, floor)
        if action is Action.CONFIRM and (env.agent or not env.interactive):
            action = Action.APPROVE
        record.fields["invocation"] = {**record.fields.get("invocation", {}), "unmasked": True}
    if action is Action.CONFIRM:
        answer = _confirm(j, env) if env.interactive and not env.agent else None
        if answer is False:
            record.outcome = "refused"
            raise ApprovalRefusedError("not confirmed at the prompt; nothing was run")
        if answer is None:
            action = Action.APPROVE
        else:
            record.fields["approver"] = "confirmed-at-terminal"
    if action is Action.APPROVE:
        approval_id, approver = _approve(j, session, env, record)
        record.fields["approval_id"] = approval_id
        record.fields["approver"] = approver
        record.outcome = "approved"
    return _exec(j, env, session, config, record)


def _ensure_auditable(env: Environment) -> None:
    """Refuse to run what could not be recorded (e.g. XDG_STATE_HOME pointed at /proc)."""
    import os

    from jitkube.audit import audit_dir
    from jitkube.errors import ConfigError

    directory = audit_dir(env.environ)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        writable = os.access(directory, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if not writable:
        raise ConfigError(
            f"cannot write the audit trail in {directory}: refusing to run unrecorded",
            hint="check XDG_STATE_HOME and the permissions of that directory",
        )


def _manifests_unchanged(j: Judgement, kubectl: str) -> None:
    """kubectl reads -f files (and renders -k) itself: make sure they are still the bytes
    that were judged and approved (a reviewer may have taken minutes)."""
    if j.manifests is None:
        return  # nothing was read: no -f, -k or --patch-file
    only_stdin = all(f.kind == "stdin" for f in j.invocation.files)
    if only_stdin and not j.invocation.flags.get("patch-file"):
        return  # stdin is handed to kubectl as the very bytes that were judged
    from jitkube.kubectl.manifests import read_manifests

    again = read_manifests(j.invocation, stdin=j.stdin, kubectl=kubectl)
    if again.digest != j.manifests.digest:
        raise DeniedError(
            "a manifest changed after it was judged; nothing was run",
            hint="run the command again so the current files are judged (and approved)",
            data=judgement_data(j),
        )


def _exec(
    j: Judgement,
    env: Environment,
    session: CachedSession | None,
    config: config_module.Config,
    record: _Record,
) -> int:
    from jitkube.masking import plan_masking
    from jitkube.runner import (
        Target,
        default_cache_dir,
        default_run_base,
        run_kubectl,
    )
    from jitkube.session_cache import fresh_eks_token

    if session is not None:
        _manifests_unchanged(j, config.kubectl or "kubectl")
        session = fresh_eks_token(session)
        target = Target(
            session.cluster_endpoint,
            base64.b64decode(session.cluster_ca),
            session.eks_token,
            cluster_name=session.cluster,
        )
    else:  # help only: a kubeconfig that points nowhere
        target = Target("https://127.0.0.1:9", b"", "", cluster_name="none")
    plan = None if env.unmask else plan_masking(j.invocation, j.assessment)
    maskers: tuple[Callable[[], Masker], Callable[[], Masker]] | None = None
    if plan is not None and not plan.interactive:
        from jitkube.masking.key import load_or_create_key

        # Keyed placeholders: equal values still compare equal, but nobody who sees the
        # output can test guesses for short secrets offline.
        key = load_or_create_key(config_module.state_dir(env.environ) / "mask.key")
        active = plan
        maskers = (lambda: active.stdout_masker(key), lambda: active.stderr_masker(key))
    result = run_kubectl(
        config.kubectl or "kubectl",
        j.invocation.argv,
        target,
        environ=env.environ,
        run_base=default_run_base(env.environ),
        cache_dir=default_cache_dir(env.environ),
        stdin_bytes=j.stdin,
        maskers=maskers,
    )
    if record.outcome == "failed":
        record.outcome = "allowed"
    record.fields.update(
        exit_code=result.exit_code,
        stdout_bytes=result.stdout_bytes,
        stderr_bytes=result.stderr_bytes,
        masked=result.masked_count,
    )
    return result.exit_code
