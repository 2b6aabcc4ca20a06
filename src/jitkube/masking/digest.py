"""Placeholders that stand for a masked value: `<masked:sha256:1a2b3c4d>`.

The 8 hex digits are the first 32 bits of SHA-256 over the raw value, so equal values
get equal placeholders and can be compared without being shown. Plain SHA-256 lets
anyone who sees the placeholder test guesses offline: a low-entropy value ("admin",
"app", a 6-digit PIN) falls to a dictionary in milliseconds. So the runner should pass
the installation's masking key: the digest is then HMAC-SHA256 under that key and the
label says so (`<masked:hmac-sha256:…>`); equality still holds within one installation,
guessing needs the key. The key is the caller's business (this module reads no files):
see `jitkube.masking.key.load_or_create_key`. 32 bits collide by chance at ~65,000
distinct values in one output: good enough for "are these two equal", never proof.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from binascii import hexlify
from typing import Protocol

# HMAC (RFC 2104) over SHA-256 by hand: the key's inner and outer hashes are made once
# and copied per value. `hmac.digest` looks the digest up by name on every call, which
# costs more than hashing a short value (~2 µs against ~1 µs per value).
_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))

PLACEHOLDER_RE = re.compile(rb"<masked:(?:sha256|hmac-sha256):[0-9a-f]{8}>")
PLACEHOLDER_RE_TEXT = re.compile(r"<masked:(?:sha256|hmac-sha256):[0-9a-f]{8}>")


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class Digester:
    """Turns raw values into placeholders; keyed (HMAC) when given a key."""

    __slots__ = ("_inner", "_key", "_label", "_outer", "_prefix")

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key
        self._label = b"hmac-sha256" if key else b"sha256"
        self._prefix = b"<masked:" + self._label + b":"
        self._inner: hashlib._Hash | None = None
        self._outer = hashlib.sha256()
        if key:
            block = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(
                _BLOCK, b"\0"
            )
            self._inner = hashlib.sha256(block.translate(_IPAD))
            self._outer = hashlib.sha256(block.translate(_OPAD))

    def new(self) -> _Hash:
        """An incremental hash for values that arrive in pieces (multi-line, huge)."""
        if self._key:
            return hmac.new(self._key, digestmod=hashlib.sha256)
        return hashlib.sha256()

    def finish(self, h: _Hash) -> bytes:
        return b"<masked:" + self._label + b":" + h.hexdigest()[:8].encode() + b">"

    def placeholder(self, value: bytes) -> bytes:
        """The placeholder for one complete value."""
        inner = self._inner
        if inner is None:
            digest = hashlib.sha256(value).digest()
        else:  # HMAC-SHA256: H(key ^ opad, H(key ^ ipad, value))
            h = inner.copy()
            h.update(value)
            o = self._outer.copy()
            o.update(h.digest())
            digest = o.digest()
        return self._prefix + hexlify(digest[:4]) + b">"
