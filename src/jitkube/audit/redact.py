"""Remove secret values from a kubectl argv before it is written to the audit trail.

Pure and stdlib only (runs on every `jitkube kubectl`). Over-redaction is preferred to a
leak: an audit reader needs to see *what* was done, never the secret that travelled with
it. Paths are kept (`--from-file=key=path`, `--from-env-file=path`, `--client-key=path`):
they name where a secret lives, not the secret.

The argv has two parts, judged differently:

**kubectl's own arguments** (up to `--`). Which flags carry secrets is known from
kubectl's grammar: every value flag whose name looks secret-like is listed below as a
secret, a `KEY=VALUE`, a literal or a body flag, or as carrying a path or a plain
setting (tests/audit/test_redact_positions.py fails when the generated grammar gains one
that is not classified).

1. Whole-value secret flags: `--token`, `--password`, `--docker-password`.
2. `KEY=VALUE` flags: `--from-literal` always hides VALUE; `--auth-provider-arg`,
   `--exec-env`, `--env`/`-e` hide VALUE when KEY looks secret.
3. Bodies: `-p/--patch` (of `kubectl patch`) and `--overrides` are JSON walked for
   `data`/`stringData`/`binaryData`, secret-looking keys, `{"name": SECRETISH, "value": …}`
   env entries and JSON-patch ops whose path points into secret data. A body that is not
   JSON is hidden whole when it mentions secret data or a secret-looking word.
4. `kubectl config set PROPERTY VALUE` hides VALUE when PROPERTY looks secret.

**A container's command** (after `--`: `exec`, `run`, `debug`, `create job … -- cmd`).
Its programs are unknown, so the rules are generic, plus a few well-known password
options; an element holding whitespace (`sh -c '…'`) is split into words first:

5. `--NAME=VALUE`, `--NAME VALUE`, `-NAME VALUE` (`-password`, `-passin`) where NAME
   looks secret-like; `--user`/`-u user:PASSWORD` (curl) hide what follows the colon.
6. Password options of well-known clients once their name has been seen: `mysql
   -pPASSWORD` (and mysqldump, mariadb, …), `redis-cli -a`, `mongosh -p`, `sshpass -p`.
7. JSON arguments are walked like bodies (rule 3).

**Everywhere:**

8. `NAME=VALUE` where NAME looks secret (`set env`, `env X=…`, `-Dx.password=…`, URL
   query parameters `?access_token=…`): VALUE is hidden (a whole element `NAME=VALUE` to
   its end, else up to whitespace, `&`, `;` or a quote).
9. Credential shapes: the output masker's own text rules (`jitkube.masking.patterns`:
   PEM blocks, JWTs, `k8s-aws-v1.` tokens, AWS key ids, URL passwords, `Authorization:`
   and bearer values), loaded only for an element that hints at one of them (importing
   the masking engine costs ≈ 5 to 30 ms, so a plain `get pods` never does), and shapes the
   masker does not know: jitkube session tokens (`jks.…`), GitHub and Slack tokens.

`RedactedArgv.hidden` lists the values taken out; `jitkube.audit.event` scrubs them from
the record's other fields (a parser problem may quote the element it could not read).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from jitkube.dataclass_lite import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

REDACTED = "<redacted>"

# -- kubectl's flags (classified against the generated grammar by the tests) -----------
SECRET_VALUE_FLAGS = frozenset({"token", "password", "docker-password"})
LITERAL_FLAGS = frozenset({"from-literal"})  # KEY=VALUE, VALUE always hidden
KV_FLAGS = frozenset({"auth-provider-arg", "exec-env", "env"})  # VALUE hidden if KEY secret
BODY_FLAGS = frozenset({"patch", "overrides"})  # `patch` only of `kubectl patch`
# Value flags whose names look secret-like but whose value is a path or a plain setting.
NOT_SECRET_FLAGS = frozenset(
    {"certificate-authority", "client-key", "key", "auth-provider", "session-affinity"}
)
_KUBECTL_SHORT_KV = "e"  # -e of `set env` / `kustomize` (= --env)
# Flags whose value is a path (kept as given, `key=path` included; shapes still apply).
PATH_FLAGS = frozenset(
    {"from-file", "from-env-file", "filename", "patch-file", "kustomize"} | NOT_SECRET_FLAGS
)

# -- well-known clients' password options (container commands) ------------------------
# program -> (option letters, whether the value may also be the next argument). mysql's
# `-p VALUE` prompts for the password and VALUE is the database: only `-pVALUE` hides.
_MYSQL = ("p", False)
_CLIENT_SHORT: dict[str, tuple[str, bool]] = {
    "mysql": _MYSQL,
    "mysqldump": _MYSQL,
    "mysqladmin": _MYSQL,
    "mysqlimport": _MYSQL,
    "mysqlcheck": _MYSQL,
    "mysqlsh": _MYSQL,
    "mariadb": _MYSQL,
    "mariadb-dump": _MYSQL,
    "redis-cli": ("a", True),
    "valkey-cli": ("a", True),
    "sshpass": ("p", True),
    "mongo": ("p", True),
    "mongosh": ("p", True),
    "mongodump": ("p", True),
    "mongorestore": ("p", True),
    "mongoexport": ("p", True),
    "mongoimport": ("p", True),
}
# user:password options: what follows the first colon is hidden.
_USERPASS_SHORT: dict[str, str] = {"curl": "uU"}
_USERPASS_LONG = frozenset({"user", "proxy-user"})

# Patterns stay strings: `re` compiles each on first use and caches it, so a plain
# `get pods` (the common case) pays for none of them at import time.
_SENSITIVE_NAME = (
    r"pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential"
    r"|auth|pwd|key[_-]?data|(^|[_.-])key$|cookie|session|signature|dsn|conn(ection)?[_-]?str"
)
_WHOLE_ASSIGNMENT = r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$"
_ASSIGNMENT = r"([A-Za-z_][A-Za-z0-9_.-]*)=('[^']*'|\"[^\"]*\"|[^\s&;'\"]*)"
_SECRET_CONTAINERS = frozenset({"data", "stringData", "binaryData"})
_BODY_HINT = r"\b(data|stringData|binaryData)\s*:|pass(word|wd)|secret|token|private[_-]?key"

# An element with none of these (lowercased) cannot match the masker's credential shapes;
# a URL password needs "://" and "@" as well.
_SHAPE_HINTS = (
    "-----begin",
    "eyj",
    "k8s-aws-v1",
    "akia",
    "asia",
    "abia",
    "acca",
    "bearer",
    "authorization",
)
# Shapes the output masker does not cover here: (pattern, lowercased hint, flags). A PEM
# block inside one argument is hidden whole, to its END line or the argument's end (the
# masker reads a stream line by line and keeps a BEGIN line's prefix, which an argument
# like `echo '-----BEGIN …` would defeat).
_LOCAL_SHAPES: tuple[tuple[str, str, int], ...] = (
    (r"-----BEGIN ([A-Z0-9 ]{1,64})-----.*?(-----END \1-----|$)", "-----begin", re.DOTALL),
    (r"\bjks\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", "jks.", 0),
    (r"\bgh[pousr]_[A-Za-z0-9]{30,}", "gh", 0),
    (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "xox", 0),
)


@dataclass(frozen=True, slots=True)  # dataclass_lite: no exec at import (hot path)
class RedactedArgv:
    """The argv as it may be stored, how many values were hidden, and which (never stored)."""

    argv: tuple[str, ...]
    redactions: int
    hidden: tuple[str, ...] = field(default=(), repr=False, compare=False)


def is_secret_name(name: str) -> bool:
    """True when a key/variable/property name suggests its value is a secret."""
    return re.search(_SENSITIVE_NAME, name, re.IGNORECASE) is not None


_masker_digester: Any = None


def _masker_string(text: str, hidden: list[str]) -> tuple[str, int]:
    """The masking engine's text rules over `text`, with `<redacted>` for every value."""
    global _masker_digester
    from jitkube.masking.patterns import TextMasker

    if _masker_digester is None:
        from jitkube.masking.digest import Digester

        class _Redacting(Digester):
            """Placeholders without a digest: an audit reader gets no handle on the value."""

            __slots__ = ("seen",)

            def __init__(self) -> None:
                super().__init__()
                self.seen: list[bytes] = []

            def placeholder(self, value: bytes) -> bytes:
                self.seen.append(value)
                return REDACTED.encode()

            def finish(self, h: Any) -> bytes:
                return REDACTED.encode()

        _masker_digester = _Redacting()
    digester = _masker_digester
    digester.seen = []
    masker = TextMasker(digester)
    out = masker.string(text.encode("utf-8", "surrogateescape"))
    hidden.extend(v.decode("utf-8", "surrogateescape") for v in digester.seen)
    return out.decode("utf-8", "surrogateescape"), masker.count


class _Redactor:
    """Applies the rules to one argv; collects the hidden values."""

    __slots__ = ("count", "hidden", "pending", "program")

    def __init__(self) -> None:
        self.count = 0
        self.hidden: list[str] = []
        self.pending: str | None = None  # how to treat the next word (a flag's value)
        self.program = ""  # the well-known client last named in a container command

    def hide(self, value: str) -> str:
        if value == REDACTED or not value:
            return value
        self.count += 1
        self.hidden.append(value)
        return REDACTED

    # -- values --------------------------------------------------------------------

    def kv(self, value: str, always: bool) -> str:
        key, eq, rest = value.partition("=")
        if not eq:
            # `--from-literal=justavalue` is invalid for kubectl; hide it anyway.
            return self.hide(value) if always or is_secret_name(key) else value
        if always or is_secret_name(key):
            return f"{key}={self.hide(rest)}"
        return value

    def userpass(self, value: str) -> str:
        user, colon, password = value.partition(":")
        return f"{user}:{self.hide(password)}" if colon and password else value

    def walk(self, node: Any, hide: bool) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            op_path = node.get("path") if isinstance(node.get("path"), str) else None
            env_name = node.get("name") if isinstance(node.get("name"), str) else None
            for key, value in node.items():
                secret = hide or key in _SECRET_CONTAINERS or is_secret_name(str(key))
                if key == "value" and (
                    (op_path is not None and _secret_path(op_path))
                    or (env_name is not None and is_secret_name(env_name))
                ):
                    secret = True
                out[key] = self.walk(value, secret)
            return out
        if isinstance(node, list):
            return [self.walk(v, hide) for v in node]
        if hide and node is not None and not isinstance(node, bool):
            if isinstance(node, str):
                return self.hide(node)
            self.hidden.append(json.dumps(node))
            self.count += 1
            return REDACTED
        return node

    def body(self, body: str) -> str:
        """A patch/overrides body with secret values hidden (JSON walked; else all or nothing)."""
        try:
            parsed = json.loads(body)
        except ValueError:
            if re.search(_BODY_HINT, body, re.IGNORECASE):
                return self.hide(body)
            return self.text(body)
        if not isinstance(parsed, dict | list):
            return self.text(body)
        before = self.count
        cleaned = self.walk(parsed, False)
        if self.count == before:
            return self.text(body)
        return json.dumps(cleaned, separators=(",", ":"), sort_keys=False)

    def text(self, text: str, whole_element: bool = True) -> str:
        """Rules 8 and 9: secret-named assignments and credential shapes, anywhere.

        `whole_element`: `text` is a whole argument, so `NAME=VALUE` runs to its end (a
        word of a shell script ends at `;`/`&` instead)."""
        if "=" in text:
            whole = re.match(_WHOLE_ASSIGNMENT, text, re.DOTALL) if whole_element else None
            if whole is not None and is_secret_name(whole.group(1)):
                return f"{whole.group(1)}={self.hide(whole.group(2))}"
            text = re.sub(_ASSIGNMENT, self._assignment, text)
        return self.shapes_only(text)

    def _assignment(self, m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2)
        if not value or not is_secret_name(name):
            return m.group(0)
        quote = value[0] if value[0] in "'\"" and value[-1] == value[0] and len(value) > 1 else ""
        inner = value[1:-1] if quote else value
        return f"{name}={quote}{self.hide(inner)}{quote}"

    # -- a container's command (after `--`) ------------------------------------------

    def foreign(self, arg: str) -> str:
        if any(c.isspace() for c in arg) and not arg.lstrip().startswith(("{", "[")):
            # A shell snippet (`sh -c '…'`): shapes over the whole (they may span words),
            # then the word rules word by word; whitespace is kept as it was.
            arg = self.shapes_only(arg)
            parts = re.split(r"(\s+)", arg)
            return "".join(p if not p or p.isspace() else self.word(p, False) for p in parts)
        return self.word(arg)

    def shapes_only(self, text: str) -> str:
        """Rule 9 alone: credential shapes."""
        lowered = text.lower()
        for pattern, hint, flags in _LOCAL_SHAPES:
            if hint in lowered:
                text = re.sub(pattern, lambda m: self.hide(m.group(0)), text, flags=flags)
        lowered = text.lower()
        if any(hint in lowered for hint in _SHAPE_HINTS) or ("://" in text and "@" in text):
            text, n = _masker_string(text, self.hidden)
            self.count += n
        return text

    def word(self, word: str, whole_element: bool = True) -> str:
        pending, self.pending = self.pending, None
        if pending == "secret" and not word.startswith("-"):
            return self.hide(word)
        if pending == "userpass":
            return self.userpass(word)
        if word.startswith(("{", "[")):
            return self.body(word)
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            if is_secret_name(name):
                if not eq:
                    self.pending = "secret"
                    return word
                return f"--{name}={self.hide(value)}"
            if name in _USERPASS_LONG:
                if not eq:
                    self.pending = "userpass"
                    return word
                return f"--{name}={self.userpass(value)}"
            return f"--{name}={self.text(value, whole_element)}" if eq else word
        if word.startswith("-") and len(word) > 1:
            letters, separate = _CLIENT_SHORT.get(self.program, ("", False))
            if word[1] in letters:
                if len(word) > 2:
                    return word[:2] + self.hide(word[2:])
                if separate:
                    self.pending = "secret"
                return word
            if word[1] in _USERPASS_SHORT.get(self.program, ""):
                if len(word) > 2:
                    return word[:2] + self.userpass(word[2:])
                self.pending = "userpass"
                return word
            name, eq, value = word[1:].partition("=")
            if len(name) > 1 and not name.startswith("D") and is_secret_name(name):
                if not eq:
                    self.pending = "secret"  # -password X, -passin pass:X
                    return word
                return f"-{name}={self.hide(value)}"
            return self.text(word, whole_element)
        program = word.rsplit("/", 1)[-1]
        if program in _CLIENT_SHORT or program in _USERPASS_SHORT:
            self.program = program
        return self.text(word, whole_element)


def _secret_path(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    return any(p in _SECRET_CONTAINERS or is_secret_name(p) for p in parts)


def redact_body(body: str) -> tuple[str, int]:
    """A patch/overrides body with secret values hidden (JSON walked; else all or nothing)."""
    r = _Redactor()
    return r.body(body), r.count


def _value_rule(flag: str, is_patch_command: bool) -> str | None:
    """How the value of long flag `flag` is treated; None: not a value we inspect."""
    if flag in SECRET_VALUE_FLAGS:
        return "secret"
    if flag in LITERAL_FLAGS:
        return "literal"
    if flag in KV_FLAGS:
        return "kv"
    if flag == "overrides" or (flag == "patch" and is_patch_command):
        return "body"
    return None


def _apply(r: _Redactor, rule: str, value: str) -> str:
    if rule == "path":
        return r.shapes_only(value)
    if rule == "secret":
        return r.hide(value)
    if rule == "literal":
        return r.kv(value, True)
    if rule == "kv":
        return r.text(r.kv(value, False))
    return r.body(value)


def redact_argv(argv: Sequence[str]) -> RedactedArgv:
    """Return `argv` (kubectl's arguments, without `kubectl`) with secret values hidden."""
    r = _Redactor()
    end = argv.index("--") if "--" in argv else len(argv)
    words = [a for a in argv[:end] if not a.startswith("-")]
    is_patch = "patch" in words
    config_set = "config" in words and "set" in words
    out: list[str] = []
    pending: str | None = None  # rule for the next element (value of a `--flag value` pair)
    config_property: str | None = None
    seen_config_set = False
    for index, arg in enumerate(argv):
        if index > end:
            out.append(r.foreign(arg))
            continue
        if pending is not None:
            out.append(_apply(r, pending, arg))
            pending = None
            continue
        if index == end:
            out.append(arg)
            continue
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            rule = _value_rule(name, is_patch)
            if rule is not None:
                if not eq:
                    pending = rule
                    out.append(arg)
                    continue
                out.append(f"--{name}={_apply(r, rule, value)}")
                continue
            if eq:
                value = r.shapes_only(value) if name in PATH_FLAGS else r.text(value)
                out.append(f"--{name}={value}")
            else:
                out.append(arg)
                if name in PATH_FLAGS:
                    pending = "path"
            continue
        if arg.startswith("-") and len(arg) > 1:
            short = arg[1]
            rule = "body" if (is_patch and short == "p") else None
            if short == _KUBECTL_SHORT_KV:
                rule = "kv"
            if rule is not None and len(arg) == 2:
                pending = rule
                out.append(arg)
                continue
            if rule is not None:
                rest = arg[2:]
                eq = "=" if rest.startswith("=") else ""
                out.append(f"-{short}{eq}{_apply(r, rule, rest[len(eq) :])}")
                continue
            out.append(r.text(arg))
            continue
        if config_set:
            if not seen_config_set:
                seen_config_set = arg == "set"
            elif config_property is None:
                config_property = arg
            elif config_property and is_secret_name(config_property.rsplit(".", 1)[-1]):
                out.append(r.hide(arg))
                config_property = ""
                continue
        out.append(r.text(arg))
    return RedactedArgv(tuple(out), r.count, tuple(dict.fromkeys(r.hidden)))
