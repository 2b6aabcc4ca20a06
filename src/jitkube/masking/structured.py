"""Structure-aware maskers for kubectl's YAML and pretty-printed JSON, line by line.

kubectl prints YAML with sorted keys, two-space indents, sequences at their key's
indent and multi-line strings as folded/quoted continuation lines or `|` blocks; JSON
with one key per line (strings never span lines). Tracking indentation (YAML) or
brackets (JSON) is therefore enough to know the path of every value, without a parser.
Measured on a `get secrets -A -o yaml` stream of small secrets (CPU time, an AMD EPYC
core; `benchmarks/masking_throughput.py --no-helm`): this masker ≈ 100 MB/s (≈ 130 MB/s
with Helm release blobs in the mix) against PyYAML's C loader 6.5 MB/s for `load` alone
and 4.3 MB/s for load + dump; a parser would also have to see a whole document before
writing anything (no live `get -w`, no bounded memory).

What is masked (structurally; free-text patterns run over everything else):
- every value under `data`/`stringData`/`binaryData` of a `kind: Secret` object. Keys are
  sorted, so `data` arrives before `kind`: the lines are held (bounded) until the
  object's kind is known; an object that ends without a kind counts as a Secret when
  the plan says the command may print Secrets (`assume_secret`);
- the `kubectl.kubernetes.io/last-applied-configuration` annotation, whole, for every
  kind (it repeats the object as applied, Secret stringData included);
- `value` of an `env` item whose `name` looks secret-like (PASSWORD, TOKEN, KEY, …);
- values of keys that name a credential: `token`, `password`, `client-key-data`,
  `client-secret`, `id-token`, `refresh-token`, `*Secret`, `*Token`, `*Password`…
  (booleans and kubectl's own `REDACTED`/`DATA+OMITTED` stay). `certificate-authority-
  data` and `client-certificate-data` are public certificates and stay visible.
"""

from __future__ import annotations

import re

from jitkube.masking.digest import Digester
from jitkube.masking.patterns import (
    SECRET_NAME,
    TextMasker,
    b64_or_raw,
    is_trivial,
    unquote,
)

LAST_APPLIED = b"kubectl.kubernetes.io/last-applied-configuration"
_DATA_KEYS = frozenset({b"data", b"stringData", b"binaryData"})
_SECRET_KEY = re.compile(  # matched against the lowercased key
    rb"(?:password|passwd|passphrase|secret|token|credentials?|api[-_]?key|"
    rb"secret[-_]?key|access[-_]?key(?:[-_]?id)?|private[-_]?key|client-key-data)$"
)
_SECRET_FLAG = re.compile(
    rb"--?[a-z0-9-]*(?:password|passwd|token|secret|api-key|access-key|private-key|client-key)"
)
_KEY_CACHE: dict[bytes, bool] = {}


def secret_key(key: bytes) -> bool:
    """True when a mapping key names a credential (`token`, `clientSecret`, …)."""
    hit = _KEY_CACHE.get(key)
    if hit is None:
        hit = _SECRET_KEY.search(key.lower()) is not None
        if len(_KEY_CACHE) > 4096:
            _KEY_CACHE.clear()
        _KEY_CACHE[key] = hit
    return hit


HOLD_LIMIT = 4 << 20  # bytes held while waiting for an object's kind

NO, YES, HELD = 0, 1, 2


class _Frame:
    """One open mapping (or sequence) and what its position implies for its values."""

    __slots__ = (
        "b64", "col", "env", "env_name", "flag", "is_seq", "key", "kind", "last_key", "owner",
        "secret",
    )  # fmt: skip

    def __init__(self, col: int, is_seq: bool, key: bytes | None) -> None:
        self.col = col
        self.is_seq = is_seq
        self.key = key  # the key this node is the value of (a sequence's key for items)
        self.kind: bytes | None = None
        self.last_key: bytes | None = None
        self.secret = NO  # NO / YES / HELD (secret if the owner turns out to be one)
        self.owner: _Frame | None = None  # the object whose kind decides HELD
        self.b64 = False  # values are base64 (Secret `data`)
        self.env = False  # an item of an `env` list
        self.env_name: bytes | None = None
        self.flag = False  # a sequence whose last item was `--password`-like: mask the next


class _Out:
    """Output list with an optional hold: while holding, each piece has a masked and a
    plain variant; resolving picks one variant for all of them."""

    __slots__ = ("held", "held_size", "parts", "text")

    def __init__(self, text: TextMasker) -> None:
        self.parts: list[bytes] = []
        # (masked, plain): plain is bytes, or raw (line, eol) pairs that get the free-text
        # rules only if needed (they cost more than the structure itself on long lines).
        self.held: list[tuple[bytes, bytes | list[tuple[bytes, bytes]]]] | None = None
        self.held_size = 0
        self.text = text

    def emit(self, masked: bytes, plain: bytes | list[tuple[bytes, bytes]] | None = None) -> None:
        if self.held is None:
            self.parts.append(masked)
        else:
            self.held.append((masked, masked if plain is None else plain))
            self.held_size += 2 * len(masked)

    def resolve(self, secret: bool) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            for masked, plain in held:
                if secret:
                    self.parts.append(masked)
                elif isinstance(plain, bytes):
                    self.parts.append(plain)
                else:
                    for content, eol in plain:
                        t = self.text.line(content)
                        if t is not None:
                            self.parts.append(t + eol)
            self.held_size = 0

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


class _Structured:
    """Shared rules of the YAML and JSON line maskers."""

    def __init__(self, digester: Digester, text: TextMasker, assume_secret: bool) -> None:
        self.d = digester
        self.text = text
        self.assume_secret = assume_secret
        self.out = _Out(text)
        self.stack: list[_Frame] = []
        self.hold_owner: _Frame | None = None
        self.count = 0

    # -- decisions

    def child_secret(self, parent: _Frame, key: bytes | None, child: _Frame) -> None:
        """Set what a node opened under `parent`'s `key` inherits or starts."""
        if parent.secret:
            child.secret, child.owner, child.b64 = parent.secret, parent.owner, parent.b64
            return
        if key in _DATA_KEYS and not parent.is_seq:
            if parent.kind == b"Secret":
                child.secret = YES
            elif parent.kind is None:
                if self.hold_owner is None:
                    self.hold_owner = parent
                    self.out.held = []
                    child.secret, child.owner = HELD, parent
                else:  # already holding for an outer object: assume the worst
                    child.secret = YES
            child.b64 = key == b"data"

    def value_secret(self, frame: _Frame | None, key: bytes | None, value: bytes) -> int:
        """Whether a scalar at `key` in `frame` is a secret value: NO, YES or HELD."""
        if frame is not None:
            if frame.secret:
                if frame.secret == HELD and frame.owner is not self.hold_owner:
                    return YES  # the hold was resolved early (too large): secret
                return frame.secret
            if frame.env:
                if key == b"name":
                    frame.env_name = unquote(value)
                elif key == b"value":
                    name = frame.env_name
                    if name is None or SECRET_NAME.search(name) is not None:
                        return NO if is_trivial(value) else YES
                    return NO
        if key is None:
            if frame is not None and frame.is_seq:
                # args: ["--token", "xyz"] — the value follows its flag.
                raw = unquote(value)
                if frame.flag:
                    frame.flag = False
                    return NO if is_trivial(raw) else YES
                frame.flag = _SECRET_FLAG.fullmatch(raw.lower()) is not None
            return NO
        if key == LAST_APPLIED:
            return YES
        if secret_key(key) and not is_trivial(unquote(value)):
            return YES
        return NO

    def set_kind(self, frame: _Frame, value: bytes) -> None:
        frame.kind = unquote(value.strip())
        if frame is self.hold_owner:
            self.resolve_hold(frame.kind == b"Secret")

    def resolve_hold(self, secret: bool) -> None:
        self.out.resolve(secret)
        self.hold_owner = None

    def closed(self, frame: _Frame) -> None:
        if frame is self.hold_owner:
            self.resolve_hold(self.assume_secret)

    def check_hold_size(self) -> None:
        if self.hold_owner is not None and self.out.held_size > HOLD_LIMIT:
            self.resolve_hold(True)  # too big to wait for: mask

    def placeholder(self, raw: bytes, b64: bool) -> bytes:
        self.count += 1
        return self.d.placeholder(b64_or_raw(raw) if b64 else raw)

    def text_line(self, content: bytes) -> bytes | None:
        return self.text.line(content)

    def register(self, content: bytes) -> None:
        """Track the structure of a line whose output the caller writes itself (the
        head of an oversized line). Anything held is resolved as secret first."""
        if self.hold_owner is not None:
            self.resolve_hold(True)
        before = self.out.take()
        self.line(content, b"")
        if self.hold_owner is not None:  # this line started one: nothing may wait now
            self.resolve_hold(True)
        self.out.parts = [before]
        self.drop_open_value()

    def line(self, content: bytes, eol: bytes) -> None:
        raise NotImplementedError

    def lines(self, lines: list[bytes], eol: bytes) -> None:
        """`line` for each of `lines` (all ending in `eol`)."""
        line = self.line
        for content in lines:
            line(content, eol)

    def scan(self, data: bytes, pos: int, end: int, eol: bytes) -> None:
        """`lines` for the lines of `data[pos:end]` (separated by `\\n`)."""
        self.lines(data[pos:end].split(b"\n"), eol)

    def drop_open_value(self) -> None:
        """Forget a masked scalar that is still open (its output is the caller's)."""
