"""Line masker for kubectl's indented JSON output (rules: `jitkube.masking.structured`)."""

from __future__ import annotations

import re

from jitkube.masking.patterns import VALUE_TRIGGER, unquote
from jitkube.masking.structured import HELD, _Frame, _Structured

_JSON_KEY = re.compile(rb'"((?:[^"\\]|\\.)*)":\s*(.*?)(,?)\s*$')


class JsonMasker(_Structured):
    """Line masker for kubectl's indented JSON (`-o json`, `get -w -o json`, dumps).

    Lines outside any object (log sections of `cluster-info dump`, messages) and lines
    that do not look like indented JSON get the free-text rules.
    """

    def line(self, content: bytes, eol: bytes) -> None:
        s = content.strip()
        stack = self.stack
        if not stack and s not in (b"{", b"["):
            t = self.text_line(content)
            if t is not None:
                self.out.emit(t + eol)
            return
        c = s[:1]
        if s in (b"}", b"},", b"]", b"],"):
            if stack:
                self.closed(stack.pop())
            self.out.emit(content + eol)
            return
        top = stack[-1] if stack else None
        if s in (b"{", b"["):
            frame = _Frame(len(stack), s == b"[", top.key if top is not None else None)
            if top is not None:
                self.child_secret(top, top.key, frame)
                if top.is_seq and top.key == b"env" and not top.secret:
                    frame.env = True
            stack.append(frame)
            self.out.emit(content + eol)
            return
        if c == b'"' and top is not None and not top.is_seq:
            # `"key": value,` — split by hand (3× faster than the regex); keys with
            # escapes take the regex.
            i = s.find(b'": ', 1)
            if i > 0 and b"\\" not in s[1:i]:
                key = s[1:i]
                value = s[i + 3 :]
                comma = b"," if value.endswith(b",") else b""
                if comma:
                    value = value[:-1]
            else:
                m = _JSON_KEY.match(s)
                if m is None:
                    key = None
                else:
                    key, value, comma = m.group(1), m.group(2), m.group(3)
            if key is not None:
                top.last_key = key
                if value in (b"{", b"["):
                    frame = _Frame(len(stack), value == b"[", key)
                    self.child_secret(top, key, frame)
                    stack.append(frame)
                    self.out.emit(content + eol)
                    return
                if key == b"kind":
                    self.set_kind(top, value)
                if value in (b"{}", b"[]"):
                    self.out.emit(content + eol)
                    return
                self._scalar(content, eol, top, key, value, comma)
                return
        if top is not None and top.is_seq and (c == b'"' or c[:1].isalnum() or c == b"-"):
            value = s[:-1] if s.endswith(b",") else s
            self._scalar(content, eol, top, None, value, b"," if s.endswith(b",") else b"")
            return
        t = self.text_line(content)  # not indented JSON after all
        if t is not None:
            self.out.emit(t + eol)

    def _scalar(
        self,
        content: bytes,
        eol: bytes,
        frame: _Frame,
        key: bytes | None,
        value: bytes,
        comma: bytes,
    ) -> None:
        secret = self.value_secret(frame, key, value)
        if not secret:
            if VALUE_TRIGGER.search(value) is None and not self.text.in_block:
                self.out.emit(content + eol)
                return
            t = self.text_line(content)
            if t is not None:
                self.out.emit(t + eol)
            return
        vpos = content.rfind(value)
        raw = unquote(value) if value[:1] == b'"' else value
        masked = content[:vpos] + b'"' + self.placeholder(raw, frame.b64) + b'"' + comma + eol
        if secret == HELD:
            self.out.emit(masked, [(content, eol)])
            self.check_hold_size()
        else:
            self.out.emit(masked)

    def finish(self) -> None:
        while self.stack:
            self.closed(self.stack.pop())
        if self.hold_owner is not None:
            self.resolve_hold(self.assume_secret)
