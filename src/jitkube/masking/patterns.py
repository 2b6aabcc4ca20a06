"""Credential patterns in free text (logs, exec output, describe, -v>=8 stderr).

`TextMasker.line(content)` masks one line (without its end-of-line) and keeps the state
that spans lines: PEM blocks (BEGIN … END over many lines, streamed) and a
`name: X` / `value: Y` pair where X looks like a secret name. A cheap trigger search
skips the rules entirely for lines that cannot match (most log lines).

Decisions: every PEM block is masked, certificates included (they identify clients and
are rarely needed by an agent; the digest still lets two be compared). Secret-looking
assignments are masked by the *name* (`password=`, `API_TOKEN:`, `client-secret:`),
credentials by *shape* (AWS key ids, `k8s-aws-v1.` tokens, JWTs, URL passwords,
`Authorization:` values). kubectl's own redactions (`REDACTED`, `DATA+OMITTED`,
`<masked>`) and booleans are left as they are.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable

from jitkube.masking.digest import PLACEHOLDER_RE, Digester, _Hash

# Lines without any of these substrings cannot match a rule. Searched in the lowercased
# line: an (?i) alternation costs 9 µs per 100-byte line, lower() + this 1.5 µs.
_TRIGGER = re.compile(
    rb"pass|pwd|secret|token|key|credential|auth|bearer|session|signature|cookie|"
    rb"akia|asia|abia|acca|eyj|-----begin|://|k8s-aws-v1|dsn"
)
# A structured scalar (the key is judged by structure) needs the rules only when its
# value could hold a credential shape: 0.3 µs per line.
VALUE_TRIGGER = re.compile(
    rb"://|[A-Za-z_\"'][ \t]*[:=]|@|eyJ|AKIA|ASIA|ABIA|ACCA|-----BEGIN|k8s-aws-v1|[Bb]earer|BEARER"
)

_PEM_ONE_LINE = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----.*?-----END \1-----")
_PEM_BEGIN = re.compile(rb"-----BEGIN [A-Z0-9 ]{1,64}-----")
_PEM_END = re.compile(rb"-----END [A-Z0-9 ]{1,64}-----")
_PEM_BODY = re.compile(rb"[ \t]*(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: .*|)[ \t]*")
# Body lines of a PEM block whose BEGIN line had a prefix (`logs --timestamps`,
# `logs --prefix`): the prefix repeats, the base64 is the last token.
_PEM_BODY_PREFIXED = re.compile(rb".*[ \t\]](?:[A-Za-z0-9+/=]{4,}|[A-Za-z-]+: .*)?[ \t]*")
_PEM_MAX_LINES = 4096
_EKS_TOKEN = re.compile(rb"k8s-aws-v1\.[A-Za-z0-9_-]+")
_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_AWS_KEY_ID = re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z0-9]{16}(?![A-Z0-9])")
_AWS_SECRET = re.compile(rb"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_URL_PASSWORD = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s:/@\"'<>]*:)([^\s@/\"'<>]+)(@)")
_AUTHORIZATION = re.compile(
    rb"(?i)((?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?"
    rb"(?:(?:bearer|basic|token|digest|negotiate|aws4-hmac-sha256)[ \t]+)?)([^\s\"',]+)"
)
_BEARER = re.compile(rb"(?i)(\bbearer[ \t]+)([A-Za-z0-9._~+/=-]{8,})")
# name ends in a secret word, then `:` or `=` (quotes allowed around the name).
_ASSIGNMENT = re.compile(  # matched against the lowercased line
    rb"((?:pass(?:word|wd|phrase)?|secret|token|credentials?|auth|"
    rb"(?:api|access|secret|private|client|signing|encryption|master|session)[_-]?key"
    rb"(?:[_-]?(?:id|data|base))?)[\"']?[ \t]*[:=][ \t]*)"
    rb"(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s\"',;&\]}]+)"
)
_ENV_NAME_LINE = re.compile(rb"[ \t]*(?:-[ \t]+)?[\"']?name[\"']?[ \t]*:[ \t]*[\"']?([\w.-]+)")
_ENV_VALUE_LINE = re.compile(rb"([ \t]*[\"']?value[\"']?[ \t]*:[ \t]*)(.+?)(,?[ \t]*)$")
# `  NAME:   value` (describe's Environment) and `NAME=value` (set env --list, env):
# the whole value, when NAME looks secret-like.
_ENV_LINE = re.compile(
    rb"^(?:([ \t]+[A-Za-z_][A-Za-z0-9_.-]*:[ \t]+)|([A-Z_][A-Z0-9_]*=))(\S.*?)([ \t]*)$"
)
_B64_BLOB = re.compile(rb"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40,}={0,2}(?![A-Za-z0-9/+=])")
_SECRET_CONTEXT = re.compile(rb"(?i)secret")

# Env var / describe names that look secret-like (liberal: a masked harmless value costs
# little, a leaked password a lot).
SECRET_NAME = re.compile(
    rb"(?i)pass|pwd|secret|token|credential|creds|auth|cookie|signature|dsn|private|"
    rb"(?:^|[_.-])(?:[a-z]*)key(?:s|[_.-]|$)|apikey|accesskey|connection[_-]?string"
)
TRIVIAL = frozenset(
    {
        b"", b"true", b"false", b"null", b"~", b"none", b"yes", b"no", b'""', b"''",
        b"{}", b"[]", b"REDACTED", b"DATA+OMITTED", b"<masked>", b"<none>", b"<unset>",
    }
)  # fmt: skip


def unquote(value: bytes) -> bytes:
    """The scalar a YAML/JSON-quoted token stands for (best effort, for digests)."""
    if len(value) >= 2 and value[:1] == b"'" and value[-1:] == b"'":
        return value[1:-1].replace(b"''", b"'")
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
        inner = value[1:-1]
        if b"\\" not in inner:
            return inner
        try:
            decoded = json.loads(value.decode("utf-8", "surrogateescape"))
            if isinstance(decoded, str):
                return decoded.encode("utf-8", "surrogateescape")
        except (ValueError, UnicodeError):
            pass
        return inner
    return value


def is_trivial(value: bytes) -> bool:
    v = value.strip()
    return v in TRIVIAL or v.lower() in TRIVIAL or PLACEHOLDER_RE.fullmatch(v) is not None


def b64_or_raw(value: bytes) -> bytes:
    """Secret `data` values are base64: digest the decoded bytes, so `data.x`,
    `stringData.x` and an env var holding the same value compare equal."""
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return value


class TextMasker:
    """Stateful line-by-line pattern masker; counts what it masks in `count`."""

    __slots__ = (
        "_d", "_describe", "_env_pending", "_pem", "_pem_lines", "_pem_prefix", "count",
    )  # fmt: skip

    def __init__(self, digester: Digester) -> None:
        self._d = digester
        self.count = 0
        self._pem: _Hash | None = None
        self._pem_prefix = b""
        self._pem_lines = 0
        self._env_pending = False
        self._describe = 0  # describe configmap: 1 after `NAME:`, 2 after its `----`

    # -- helpers

    def _ph(self, value: bytes) -> bytes:
        self.count += 1
        return self._d.placeholder(value)

    def _sub(self, group: int) -> Callable[[re.Match[bytes]], bytes]:
        def repl(m: re.Match[bytes]) -> bytes:
            value = m.group(group)
            if is_trivial(value) or value.startswith(b"<") or set(value) <= {42}:  # '*'
                return m.group(0)
            start, end = m.span(group)
            whole = m.group(0)
            base = m.start(0)
            q = 1 if value[:1] in (b'"', b"'") and value[-1:] == value[:1] else 0
            return whole[: start - base + q] + self._ph(unquote(value)) + whole[end - base - q :]

        return repl

    @property
    def in_block(self) -> bool:
        """True while a multi-line PEM block is being swallowed."""
        return self._pem is not None

    def finish(self) -> bytes:
        """Output owed at end of stream (an unterminated PEM block's placeholder)."""
        if self._pem is None:
            return b""
        out = self._pem_prefix + self._d.finish(self._pem)
        self._pem = None
        self.count += 1
        return out

    # -- the rules

    def line(self, content: bytes) -> bytes | None:
        """Mask one line (no end-of-line); None means the line is swallowed."""
        if self._pem is not None:
            end = _PEM_END.search(content)
            if end is not None:
                self._pem.update(b"\n" + content[: end.end()].strip())
                out = self._pem_prefix + self._d.finish(self._pem)
                self._pem = None
                self.count += 1
                rest = content[end.end() :]
                return out + (self.line(rest) or b"") if rest.strip() else out
            # After a prefixed BEGIN line the body may carry the same prefix (log
            # timestamps) or none (`loaded key: -----BEGIN …` then bare base64 lines).
            is_body = _PEM_BODY.fullmatch(content) is not None or (
                bool(self._pem_prefix.strip()) and _PEM_BODY_PREFIXED.fullmatch(content) is not None
            )
            if is_body and self._pem_lines < _PEM_MAX_LINES:
                self._pem.update(b"\n" + content.strip())
                self._pem_lines += 1
                return None
            # Not a PEM body line: the block was cut short; mask what we have.
            head = self.finish()
            body = self.line(content)
            return head + b"\n" + body if body is not None else head
        if self._describe:
            # `describe configmap` prints `KEY:`, `----`, the value's lines, a blank line.
            if self._describe == 2:
                if not content.strip():
                    self._describe = 0
                    return content
                return self._ph(content)
            if content.strip() == b"----":
                self._describe = 2
                return content
            self._describe = 0
        if (
            content[-1:] == b":"
            and b" " not in content
            and SECRET_NAME.search(content[:-1]) is not None
        ):
            self._describe = 1
        if self._env_pending:
            self._env_pending = False
            m = _ENV_VALUE_LINE.match(content)
            if m is not None and not is_trivial(m.group(2)) and not m.group(2).startswith(b"<"):
                return m.group(1) + self._ph(unquote(m.group(2))) + m.group(3)
        if _TRIGGER.search(content.lower()) is None:
            return content
        return self._rules(content)

    def _rules(self, s: bytes) -> bytes | None:
        if b"-----BEGIN " in s:
            s = _PEM_ONE_LINE.sub(lambda m: self._ph(m.group(0)), s)
            begin = _PEM_BEGIN.search(s)
            if begin is not None:
                if b"\\n" in s[begin.end() :]:
                    # An escaped PEM inside one string whose END is missing: mask to the
                    # end of the string.
                    q = s.find(b'"', begin.end())
                    q = len(s) if q < 0 else q
                    s = s[: begin.start()] + self._ph(s[begin.start() : q]) + s[q:]
                else:
                    prefix = self.line(s[: begin.start()]) if begin.start() else b""
                    self._pem = self._d.new()
                    self._pem.update(s[begin.start() :].strip())
                    self._pem_prefix = prefix or b""
                    self._pem_lines = 0
                    return None
        if b"k8s-aws-v1." in s:
            s = _EKS_TOKEN.sub(lambda m: self._ph(m.group(0)), s)
        if b"eyJ" in s:
            s = _JWT.sub(lambda m: self._ph(m.group(0)), s)
        if _AWS_KEY_ID.search(s) is not None:
            s = _AWS_KEY_ID.sub(lambda m: self._ph(m.group(0)), s)
            s = _AWS_SECRET.sub(lambda m: self._ph(m.group(0)), s)
        if b"://" in s:
            s = _URL_PASSWORD.sub(self._sub(2), s)
        low = s.lower()
        if b"authorization" in low:
            s = _AUTHORIZATION.sub(self._sub(2), s)
        if b"bearer" in low:
            s = _BEARER.sub(self._sub(2), s)
        env = _ENV_LINE.match(s)
        if env is not None:
            prefix = env.group(1) or env.group(2)
            name = prefix.strip().rstrip(b":=")
            value = env.group(3)
            if (
                SECRET_NAME.search(name) is not None
                and not is_trivial(value)
                and not value.startswith(b"<")
            ):
                return prefix + self._ph(value) + env.group(4)
        if b":" in s or b"=" in s:
            s = self._assignments(s)
        if b"secret" in low:
            s = _B64_BLOB.sub(self._blob, s)
        m = _ENV_NAME_LINE.match(s)
        if m is not None and SECRET_NAME.search(m.group(1)) is not None:
            self._env_pending = True
        return s

    def _blob(self, m: re.Match[bytes]) -> bytes:
        """A long base64 run near the word "secret" — unless it is a path or a word."""
        blob = m.group(0)
        if blob.count(b"/") > 2 or blob.isalpha() or blob.islower() or blob.isupper():
            return blob
        if not any(48 <= c <= 57 for c in blob):
            return blob
        return self._ph(b64_or_raw(blob))

    def _assignments(self, s: bytes) -> bytes:
        out: list[bytes] = []
        pos = 0
        for m in _ASSIGNMENT.finditer(s.lower()):
            if m.start() < pos:
                continue
            vstart, vend = m.span(2)
            value = s[vstart:vend]
            # describe-style `  DB_PASSWORD:   two words`: the name starts the line, so
            # the value is the whole rest of it.
            start = s[: m.start()].strip(b" \t")
            if not start or (start.endswith((b"_", b"-", b".")) and b" " not in start):
                rest = s[vstart:].rstrip()
                if b":" in s[m.start(1) : m.end(1)] and not rest.startswith((b'"', b"'")):
                    value, vend = rest, vstart + len(rest)
            if is_trivial(value) or value.startswith(b"<") or set(value) <= {42}:
                continue
            q = 1 if value[:1] in (b'"', b"'") and value[-1:] == value[:1] else 0
            out.append(s[pos : vstart + q])
            out.append(self._ph(unquote(value)))
            pos = vend - q
        if not out:
            return s
        out.append(s[pos:])
        return b"".join(out)

    def string(self, text: bytes) -> bytes:
        """Mask one self-contained string (no cross-line state kept)."""
        saved = (self._pem, self._pem_prefix, self._pem_lines, self._env_pending, self._describe)
        self._pem, self._env_pending, self._describe = None, False, 0
        lines = []
        for part in text.split(b"\n"):
            r = self.line(part)
            if r is not None:
                lines.append(r)
        tail = self.finish()
        if tail:
            lines.append(tail)
        self._pem, self._pem_prefix, self._pem_lines, self._env_pending, self._describe = saved
        return b"\n".join(lines)
