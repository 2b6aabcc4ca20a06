"""Which AI agent (if any) runs jitkube, for the audit record.

Precedence: an explicit name (`--agent` / `JITKUBE_AGENT`, resolved by the caller), then
the session's agent name, then well-known environment markers that agent tools set for
the commands they run. Markers (checked in this order; researched from the tools' own
docs and from detectors such as @vercel/detect-agent and aws-cdk's `guessAgent`):

| variable | agent |
|---|---|
| `AI_AGENT` (value is the name) | proposed cross-tool standard |
| `CLAUDECODE`, `CLAUDE_CODE` | Claude Code |
| `CURSOR_AGENT` | Cursor agent / cursor-agent CLI |
| `CODEX_SANDBOX`, `CODEX_THREAD_ID`, `CODEX_SANDBOX_NETWORK_DISABLED` | OpenAI Codex CLI |
| `GEMINI_CLI` | Gemini CLI |
| `AWS_EXECUTION_ENV` containing `amazonq` | Amazon Q Developer |

Deliberately not markers: `CURSOR_TRACE_ID` and `VSCODE_*` (set in the editor's terminal,
where a human types too) and `REPL_ID`. A marker can only make jitkube *more* careful:
it is not a security boundary (any process can unset it); the broker's agent groups are.
"""

from __future__ import annotations

from collections.abc import Mapping

from jitkube.dataclass_lite import dataclass

_MARKERS: tuple[tuple[str, str], ...] = (
    ("CLAUDECODE", "claude-code"),
    ("CLAUDE_CODE", "claude-code"),
    ("CURSOR_AGENT", "cursor-agent"),
    ("CODEX_SANDBOX", "codex"),
    ("CODEX_THREAD_ID", "codex"),
    ("CODEX_SANDBOX_NETWORK_DISABLED", "codex"),
    ("GEMINI_CLI", "gemini-cli"),
)
_MAX_NAME = 128


@dataclass(frozen=True, slots=True)  # dataclass_lite: no exec at import (hot path)
class AgentInfo:
    """An agent name and where it was learnt (`flag`, `env`, `session`, `marker:VAR`)."""

    name: str
    source: str


def _clean(name: str) -> str:
    # Agent names come from the environment: keep them printable and bounded.
    return "".join(c for c in name.strip() if c.isprintable())[:_MAX_NAME]


def detect_agent(environ: Mapping[str, str]) -> AgentInfo | None:
    """The agent named by a well-known environment marker, or None."""
    custom = environ.get("AI_AGENT", "").strip()
    if custom:
        return AgentInfo(_clean(custom), "marker:AI_AGENT")
    for var, name in _MARKERS:
        value = environ.get(var, "").strip()
        if value and value.lower() not in ("0", "false", "no"):
            return AgentInfo(name, f"marker:{var}")
    if "amazonq" in environ.get("AWS_EXECUTION_ENV", "").lower():
        return AgentInfo("amazon-q", "marker:AWS_EXECUTION_ENV")
    return None


def resolve_agent(
    explicit: str | None,
    explicit_source: str,
    session_agent: str | None,
    environ: Mapping[str, str],
) -> AgentInfo | None:
    """Explicit name (flag/env) > session's agent name > environment marker > None."""
    if explicit:
        return AgentInfo(_clean(explicit), explicit_source)
    if session_agent:
        return AgentInfo(_clean(session_agent), "session")
    return detect_agent(environ)
