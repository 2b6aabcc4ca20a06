"""Line masker for kubectl's YAML output (rules: `jitkube.masking.structured`)."""

from __future__ import annotations

from jitkube.masking.digest import Digester, _Hash
from jitkube.masking.patterns import VALUE_TRIGGER, TextMasker, unquote
from jitkube.masking.structured import (
    _DATA_KEYS,
    HELD,
    LAST_APPLIED,
    NO,
    YES,
    _Frame,
    _Structured,
    secret_key,
)


class YamlMasker(_Structured):
    """Line masker for kubectl YAML (documents separated by `---`, e.g. `get -w`)."""

    def __init__(self, digester: Digester, text: TextMasker, assume_secret: bool) -> None:
        super().__init__(digester, text, assume_secret)
        # An open scalar whose continuation lines may follow (indent > cont_col).
        self.cont_col = -1
        self.cont_secret = NO
        self.cont_b64 = False
        self.cont_prefix = b""
        self.cont_eol = b""
        self.cont_hash: _Hash | None = None
        self.cont_first = b""
        self.cont_parts: list[bytes] = []
        self.cont_plain: list[tuple[bytes, bytes]] = []

    def drop_open_value(self) -> None:
        if self.cont_secret:
            self.cont_secret = NO
            self.cont_parts = []
            self.cont_plain = []

    def _end_cont(self) -> None:
        if self.cont_secret:
            if self.cont_parts:
                value = unquote(self.cont_first + b" " + b" ".join(self.cont_parts))
            else:
                value = unquote(self.cont_first)
            ph = self.placeholder(value, self.cont_b64)
            masked = self.cont_prefix + ph + self.cont_eol
            if self.cont_secret == HELD and self.out.held is not None:
                self.out.emit(masked, self.cont_plain)
            else:
                self.out.emit(masked)
        self.cont_col = -1
        self.cont_secret = NO
        self.cont_parts = []
        self.cont_plain = []

    def _pop(self, col: int, seq_item: bool) -> None:
        stack = self.stack
        while stack:
            top = stack[-1]
            if top.col > col or (top.col == col and (top.is_seq != seq_item)):
                if top.col == col and not top.is_seq and seq_item:
                    break  # `key:` then `- item` at the key's own indent
                stack.pop()
                self.closed(top)
            else:
                break

    def line(self, content: bytes, eol: bytes) -> None:
        stripped = content.lstrip(b" ")
        col = len(content) - len(stripped)
        if self.cont_col >= 0:
            if col > self.cont_col or not stripped.strip():
                if self.cont_secret:
                    self.cont_parts.append(stripped.rstrip())
                    if self.cont_secret == HELD:
                        self.cont_plain.append((content, eol))
                    if len(self.cont_parts) > 100_000:
                        self._end_cont()
                else:
                    t = self.text_line(content)
                    if t is not None:
                        self.out.emit(t + eol)
                return
            if self.cont_secret:
                self._end_cont()
            else:
                self.cont_col = -1
        if not stripped or stripped[:1] == b"#":
            t = self.text_line(content)
            if t is not None:
                self.out.emit(t + eol)
            return
        if col == 0 and (stripped == b"---" or stripped.startswith(b"--- ") or stripped == b"..."):
            self._pop(-1, False)
            self.out.emit(content + eol)
            return
        stack = self.stack
        if stack and stripped[:1] != b"-":
            # Fast path: `key: value` in a plain mapping, nothing to mask by structure.
            while stack[-1].col > col:
                self.closed(stack.pop())
                if not stack:
                    break
            top = stack[-1] if stack else None
            if (
                top is not None
                and top.secret
                and top.col == col
                and not top.is_seq
                and stripped[:1] not in (b'"', b"'", b"{", b"[")
            ):
                # Fast path: the next value of a Secret's data (masked whole).
                i = stripped.find(b": ")
                if i > 0:
                    after = stripped[i + 2 :]
                    value = after.lstrip(b" ")
                    if value and value[:1] not in (b"|", b">"):
                        secret = top.secret
                        if secret == HELD and top.owner is not self.hold_owner:
                            secret = YES
                        top.last_key = stripped[:i]
                        self.cont_col = col
                        self.cont_secret = secret
                        self.cont_b64 = top.b64
                        self.cont_prefix = content[: len(content) - len(value)]
                        self.cont_eol = eol
                        self.cont_first = value.rstrip()
                        self.cont_parts = []
                        if secret == HELD:
                            self.cont_plain = [(content, eol)]
                            self.check_hold_size()
                        return
            if top is not None and not top.is_seq and not top.secret and not top.env:
                if top.col < col and top.last_key not in _DATA_KEYS and top.last_key != b"env":
                    frame = _Frame(col, False, top.last_key)
                    stack.append(frame)
                    top = frame
                i = stripped.find(b": ")
                c = stripped[:1]
                if (
                    i < 0
                    and top.col == col
                    and stripped[-1:] == b":"
                    and c not in (b'"', b"'", b"{", b"[")
                    and b" " not in stripped
                    and not self.text.in_block
                ):
                    # `key:` — a nested node follows; its frame decides what it holds.
                    top.last_key = stripped[:-1]
                    self.cont_col = -1
                    self.out.emit(content + eol)
                    return
                if top.col == col and i > 0 and c not in (b'"', b"'", b"{", b"["):
                    fkey = stripped[:i]
                    fvalue = stripped[i + 2 :].lstrip(b" ")
                    if fkey == b"kind" and fvalue:
                        self.set_kind(top, fvalue)
                    if (
                        fvalue
                        and fkey != LAST_APPLIED
                        and not secret_key(fkey)
                        and fvalue[:1] not in (b"|", b">")
                        and VALUE_TRIGGER.search(fvalue) is None
                        and not self.text.in_block
                    ):
                        top.last_key = fkey
                        self.cont_col = col
                        self.cont_secret = NO
                        out = self.out
                        if out.held is None:
                            out.parts.append(content + eol)
                        else:
                            out.emit(content + eol)
                        return
        item = False
        rest = stripped
        while rest[:2] == b"- " or rest == b"-":
            self._pop(col, True)
            top = self.stack[-1] if self.stack else None
            if top is None or not (top.is_seq and top.col == col):
                seq = _Frame(col, True, top.last_key if top is not None else None)
                if top is not None:
                    self.child_secret(top, seq.key, seq)
                self.stack.append(seq)
            if rest == b"-":
                self.out.emit(content + eol)
                return
            after = rest[2:]
            rest = after.lstrip(b" ")
            col += 2 + len(after) - len(rest)
            item = True
        # key: value ?
        key, value, vstart = _split_key(rest)
        if key is None:
            self._scalar(content, eol, col, item, None, rest, len(content) - len(rest))
            return
        self._pop(col, False)
        top = self.stack[-1] if self.stack else None
        if top is not None and not top.is_seq and top.col == col and not item:
            frame = top
        else:
            frame = _Frame(
                col,
                False,
                top.key
                if top is not None and top.is_seq
                else (top.last_key if top is not None else None),
            )
            if top is not None:
                self.child_secret(top, top.last_key if not top.is_seq else top.key, frame)
                if top.is_seq and top.key == b"env" and not top.secret:
                    frame.env = True
            self.stack.append(frame)
        frame.last_key = key
        if not value:
            self.out.emit(content + eol)  # a nested node follows
            return
        if key == b"kind":
            self.set_kind(frame, value)
        self._scalar(content, eol, col, False, key, value, len(content) - len(rest) + vstart, frame)

    def _scalar(
        self,
        content: bytes,
        eol: bytes,
        col: int,
        item: bool,
        key: bytes | None,
        value: bytes,
        vpos: int,
        frame: _Frame | None = None,
    ) -> None:
        if frame is None:
            frame = self.stack[-1] if self.stack else None
        secret = self.value_secret(frame, key, value)
        # A block scalar (`|`, `>-`…) has its content on the deeper lines that follow.
        first = b"" if value[:1] in (b"|", b">") and len(value) <= 4 else value.rstrip()
        self.cont_col = col if not item else col - 2
        if key is None and frame is not None and frame.is_seq:
            self.cont_col = frame.col
        if not secret:
            if VALUE_TRIGGER.search(value) is None and not self.text.in_block:
                self.out.emit(content + eol)
            else:
                t = self.text_line(content)
                if t is not None:
                    self.out.emit(t + eol)
            self.cont_secret = NO
            return
        self.cont_secret = secret
        self.cont_b64 = frame.b64 if frame is not None else False
        self.cont_prefix = content[:vpos]
        self.cont_eol = eol
        self.cont_first = first
        self.cont_parts = []
        if secret == HELD:
            self.cont_plain = [(content, eol)]
        self.check_hold_size()

    def finish(self) -> None:
        if self.cont_col >= 0:
            self._end_cont()
        self._pop(-1, False)
        if self.hold_owner is not None:
            self.resolve_hold(self.assume_secret)


def _split_key(rest: bytes) -> tuple[bytes | None, bytes, int]:
    """(key, value, value offset in rest) of `key: value` / `key:`; key None if not one."""
    c = rest[:1]
    if c == b'"' or c == b"'":
        q = _closing_quote(rest)
        if q < 0 or rest[q + 1 : q + 2] != b":":
            return None, rest, 0
        after = rest[q + 2 :]
        if after and after[:1] != b" ":
            return None, rest, 0
        value = after.lstrip(b" ")
        return unquote(rest[: q + 1]), value, len(rest) - len(value)
    i = rest.find(b": ")
    if i < 0:
        if rest.endswith(b":") and b" " not in rest and c not in (b"{", b"[", b"<"):
            return rest[:-1], b"", len(rest)
        return None, rest, 0
    if c in (b"{", b"[") or b" #" in rest[:i]:
        return None, rest, 0
    value = rest[i + 2 :].lstrip(b" ")
    return rest[:i], value, len(rest) - len(value)


def _closing_quote(s: bytes) -> int:
    q = s[:1]
    i = 1
    n = len(s)
    while i < n:
        c = s[i : i + 1]
        if q == b'"' and c == b"\\":
            i += 2
            continue
        if c == q:
            if q == b"'" and s[i + 1 : i + 2] == b"'":
                i += 2
                continue
            return i
        i += 1
    return -1
