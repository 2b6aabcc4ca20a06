"""Remove secret values from a kubectl argv before it is written to the audit trail.

Pure and stdlib only (runs on every `jitkube kubectl`). Over-redaction is preferred to a
leak: an audit reader needs to see *what* was done, never the secret that travelled with
it. Paths are kept (`--from-file=key=path`, `--from-env-file=path`, `--client-key=path`):
they name where a secret lives, not the secret.

Rules, in order, applied to every element (also after `--`, where container commands
carry their own flags):

1. Flags whose whole value is a secret: `--token`, `--password`, `--docker-password`
   (`--flag=v` and `--flag v`).
2. `KEY=VALUE` flags: `--from-literal` always hides VALUE; `--auth-provider-arg`,
   `--exec-env`, `--env` hide VALUE when KEY looks secret.
3. Bodies: `-p/--patch` (of `kubectl patch`) and `--overrides` are JSON walked for
   `data`/`stringData`/`binaryData`, secret-looking keys, `{"name": SECRETISH, "value": …}`
   env entries and JSON-patch ops whose path points into secret data. A body that is not
   JSON is hidden whole when it mentions secret data or a secret-looking word.
4. `kubectl config set PROPERTY VALUE` hides VALUE when PROPERTY looks secret.
5. Positional `NAME=VALUE` (`set env`, container commands) hides VALUE when NAME looks
   secret.
6. Everywhere: bearer/JWT/EKS/session tokens, AWS key ids, PEM private keys, URL
   passwords and `Authorization: …` headers are replaced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from jitkube.dataclass_lite import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

REDACTED = "<redacted>"

# Flags whose entire value is a credential.
_SECRET_VALUE_FLAGS = frozenset({"token", "password", "docker-password"})
# KEY=VALUE flags: VALUE always hidden.
_LITERAL_FLAGS = frozenset({"from-literal"})
# KEY=VALUE flags: VALUE hidden when KEY looks secret.
_KV_FLAGS = frozenset({"auth-provider-arg", "exec-env", "env"})
# Flags carrying a JSON/YAML body that may embed secret values.
_BODY_FLAGS = frozenset({"patch", "overrides"})

# Patterns stay strings: `re` compiles each on first use and caches it, so a plain
# `get pods` (the common case) pays for none of them at import time.
_SENSITIVE_NAME = (
    r"pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential"
    r"|auth|pwd|key[_-]?data|(^|[_.-])key$|cookie|session|signature|dsn|conn(ection)?[_-]?str"
)
_ENV_ASSIGNMENT = r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$"
_SECRET_CONTAINERS = frozenset({"data", "stringData", "binaryData"})
_BODY_HINT = r"\b(data|stringData|binaryData)\s*:|pass(word|wd)|secret|token|private[_-]?key"

# Credential shapes recognised anywhere in an element: (pattern, flags, replacement).
_PATTERNS: tuple[tuple[str, int, str], ...] = (
    (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
        re.DOTALL,
        REDACTED,
    ),
    (
        r"((?:authorization|x-api-key|api-key)\s*[:=]\s*)[^\s'\"]+(\s+[^\s'\"]+)?",
        re.IGNORECASE,
        r"\1" + REDACTED,
    ),
    (r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE, r"\1" + REDACTED),
    (r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", 0, REDACTED),
    (r"k8s-aws-v1\.[A-Za-z0-9_-]+", 0, REDACTED),
    (r"\bjks\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", 0, REDACTED),
    (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", 0, REDACTED),
    (r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,})", 0, REDACTED),
    (r"(://[^/:@\s]*:)[^@/\s]+@", 0, r"\1" + REDACTED + "@"),
)
# Cheap pre-check: an element containing none of these cannot match any pattern above.
_PATTERN_HINTS = (
    "private key",
    "authorization",
    "api-key",
    "bearer",
    "eyj",
    "k8s-aws-v1.",
    "jks.",
    "akia",
    "asia",
    "gh",
    "xox",
    "://",
)


@dataclass(frozen=True, slots=True)  # dataclass_lite: no exec at import (hot path)
class RedactedArgv:
    """The argv as it may be stored, and how many values were hidden."""

    argv: tuple[str, ...]
    redactions: int


def is_secret_name(name: str) -> bool:
    """True when a key/variable/property name suggests its value is a secret."""
    return re.search(_SENSITIVE_NAME, name, re.IGNORECASE) is not None


def _patterns(text: str) -> tuple[str, int]:
    lowered = text.lower()
    if not any(hint in lowered for hint in _PATTERN_HINTS):
        return text, 0
    total = 0
    for pattern, flags, replacement in _PATTERNS:
        text, n = re.subn(pattern, replacement, text, flags=flags)
        total += n
    return text, total


def _kv(value: str, always: bool) -> tuple[str, int]:
    key, eq, _ = value.partition("=")
    if not eq:
        # `--from-literal=justavalue` is invalid for kubectl; hide it anyway.
        return (REDACTED, 1) if always or is_secret_name(key) else (value, 0)
    if always or is_secret_name(key):
        return f"{key}={REDACTED}", 1
    return value, 0


def _walk(node: Any, hide: bool) -> tuple[Any, int]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        count = 0
        op_path = node.get("path") if isinstance(node.get("path"), str) else None
        env_name = node.get("name") if isinstance(node.get("name"), str) else None
        for key, value in node.items():
            secret = hide or key in _SECRET_CONTAINERS or is_secret_name(str(key))
            if key == "value" and (
                (op_path is not None and _secret_path(op_path))
                or (env_name is not None and is_secret_name(env_name))
            ):
                secret = True
            out[key], n = _walk(value, secret)
            count += n
        return out, count
    if isinstance(node, list):
        items = [_walk(v, hide) for v in node]
        return [v for v, _ in items], sum(n for _, n in items)
    if hide and node is not None and not isinstance(node, bool):
        return REDACTED, 1
    return node, 0


def _secret_path(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    return any(p in _SECRET_CONTAINERS or is_secret_name(p) for p in parts)


def redact_body(body: str) -> tuple[str, int]:
    """A patch/overrides body with secret values hidden (JSON walked; else all or nothing)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        if re.search(_BODY_HINT, body, re.IGNORECASE):
            return REDACTED, 1
        return _patterns(body)
    if not isinstance(parsed, dict | list):
        return _patterns(body)
    cleaned, count = _walk(parsed, False)
    if count == 0:
        return _patterns(body)
    return json.dumps(cleaned, separators=(",", ":"), sort_keys=False), count


def _value_rule(flag: str, is_patch_command: bool) -> str | None:
    """How the value of long flag `flag` is treated; None: not a value we inspect."""
    if flag in _SECRET_VALUE_FLAGS:
        return "secret"
    if flag in _LITERAL_FLAGS:
        return "literal"
    if flag in _KV_FLAGS:
        return "kv"
    if flag == "overrides" or (flag == "patch" and is_patch_command):
        return "body"
    return None


def _apply(rule: str, value: str) -> tuple[str, int]:
    if rule == "secret":
        return REDACTED, 1
    if rule == "literal":
        return _kv(value, True)
    if rule == "kv":
        return _kv(value, False)
    return redact_body(value)


def redact_argv(argv: Sequence[str]) -> RedactedArgv:
    """Return `argv` (kubectl's arguments, without `kubectl`) with secret values hidden."""
    words = [a for a in argv if not a.startswith("-")]
    is_patch = "patch" in words
    config_set = "config" in words and "set" in words
    out: list[str] = []
    count = 0
    pending: str | None = None  # rule for the next element (value of a `--flag value` pair)
    config_property: str | None = None
    seen_config_set = False
    for arg in argv:
        if pending is not None:
            value, n = _apply(pending, arg)
            value, m = _patterns(value)
            out.append(value)
            count += n + m
            pending = None
            continue
        rule: str | None = None
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            rule = _value_rule(name, is_patch)
            if rule is not None:
                if not eq:
                    pending = rule
                    out.append(arg)
                    continue
                value, n = _apply(rule, value)
                value, m = _patterns(value)
                out.append(f"--{name}={value}")
                count += n + m
                continue
        elif is_patch and arg.startswith("-p") and not arg.startswith("--"):
            rest = arg[2:]
            if not rest:
                pending = "body"
                out.append(arg)
                continue
            body = rest[1:] if rest.startswith("=") else rest
            value, n = redact_body(body)
            out.append("-p" + ("=" if rest.startswith("=") else "") + value)
            count += n
            continue
        elif config_set and not arg.startswith("-"):
            if not seen_config_set:
                if arg == "set":
                    seen_config_set = True
            elif config_property is None:
                config_property = arg
            elif is_secret_name(config_property.rsplit(".", 1)[-1]):
                out.append(REDACTED)
                count += 1
                config_property = ""
                continue
        if not arg.startswith("-"):
            match = re.match(_ENV_ASSIGNMENT, arg, re.DOTALL) if "=" in arg else None
            if match and is_secret_name(match.group(1)):
                out.append(f"{match.group(1)}={REDACTED}")
                count += 1
                continue
        value, n = _patterns(arg)
        out.append(value)
        count += n
    return RedactedArgv(tuple(out), count)
