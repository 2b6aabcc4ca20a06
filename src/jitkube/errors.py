"""One error base and the documented exit codes.

kubectl's own exit codes pass through unchanged on the `jitkube kubectl` path; jitkube's
own outcomes use the block 64-79 (kubectl itself only uses 0, 1 and 2 here), so a caller
can always tell who ended the command.
"""

from __future__ import annotations

from enum import IntEnum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any


class ExitCode(IntEnum):
    """Exit codes of jitkube's own outcomes. Documented in README.md and docs/exit-codes.md."""

    OK = 0
    USAGE = 64  # bad arguments, bad config file, bad policy file
    DENIED = 65  # refused by policy (including bypass/unknown commands)
    APPROVAL_REQUIRED = 66  # approval pending (kubectl path) / would need approval (check)
    APPROVAL_REFUSED = 67  # a reviewer denied, or the approval expired
    LOGIN_REQUIRED = 68  # no usable identity; run `jitkube login`
    SESSION_REQUIRED = 69  # no active session for this cluster/role; run `jitkube request`
    BROKER_UNREACHABLE = 70  # the broker did not answer
    INTERNAL = 71  # a bug in jitkube; please report it with --debug output
    AUDIT_INVALID = 72  # `jitkube audit --verify` found edited, missing or reordered records
    INTERRUPTED = 130  # Ctrl-C, like a shell


class JitkubeError(Exception):
    """Base of every error jitkube reports to the user.

    The message is one line shown on stderr; it must never contain a secret.
    """

    exit_code: ExitCode = ExitCode.INTERNAL
    code: str = "internal"  # stable machine-readable code for the JSON envelope

    def __init__(
        self, message: str, *, hint: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Machine-readable detail for the JSON envelope (a judgement, an approval id…).
        self.data = data


class UsageError(JitkubeError):
    exit_code = ExitCode.USAGE
    code = "usage"


class ConfigError(JitkubeError):
    exit_code = ExitCode.USAGE
    code = "config"


class PolicyError(ConfigError):
    """A policy file that cannot be used; nothing of it is applied."""

    code = "policy_invalid"


class DeniedError(JitkubeError):
    exit_code = ExitCode.DENIED
    code = "denied"


class ApprovalPendingError(JitkubeError):
    exit_code = ExitCode.APPROVAL_REQUIRED
    code = "approval_pending"


class ApprovalRefusedError(JitkubeError):
    exit_code = ExitCode.APPROVAL_REFUSED
    code = "approval_refused"


class LoginRequiredError(JitkubeError):
    exit_code = ExitCode.LOGIN_REQUIRED
    code = "login_required"


class SessionRequiredError(JitkubeError):
    exit_code = ExitCode.SESSION_REQUIRED
    code = "session_required"


class BrokerUnreachableError(JitkubeError):
    exit_code = ExitCode.BROKER_UNREACHABLE
    code = "broker_unreachable"


class ManifestError(JitkubeError):
    """A -f/-k manifest that cannot be read safely; the command is judged `unknown`."""

    exit_code = ExitCode.DENIED
    code = "manifest_unreadable"
