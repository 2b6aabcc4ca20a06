"""`Masker`: the streaming filter the runner puts between kubectl and the caller.

Bytes in, bytes out, line by line: every complete line is masked and released at once
(so `logs -f` and `get -w` stay live); only a partial last line waits. A partial line
longer than `max_line` (1 MiB) is not kept. Free text: it is released up to its last
separator and the rest continues as a fragment (tokens stay whole; a single token longer
than 64 KiB becomes one placeholder, hashed as it streams). YAML/JSON: the oversized
value is masked whole, hashed as it streams — also when such a line arrives complete, so
the result does not depend on chunking. Memory is therefore bounded by `max_line` plus
the structured hold (`structured.HOLD_LIMIT`, 4 MiB), whatever the input.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from jitkube.masking.digest import Digester, _Hash
from jitkube.masking.json_lines import JsonMasker
from jitkube.masking.objects import ObjectMasker
from jitkube.masking.patterns import TextMasker
from jitkube.masking.yaml_lines import YamlMasker

Mode = Literal["yaml", "json", "values", "text", "raw"]
MODES: tuple[Mode, ...] = ("yaml", "json", "values", "text", "raw")
MAX_LINE = 1 << 20
MAX_TOKEN = 64 << 10
_SEPARATOR = re.compile(rb"[\s\"',;{}\[\]]")

# values mode: keep keys (a token followed by ':' or '=', possibly after a closing
# quote), punctuation, placeholders and a few structural words; mask every other token.
_VALUE_TOKEN = re.compile(
    rb"<masked:[a-z0-9-]+:[0-9a-f]{8}>|[^\s{}\[\]\",:='\\]+(?:=+(?![^\s{}\[\]\",:='\\]))?"
)
_KEY_FOLLOWS = re.compile(rb"(?:\\?[\"'])?[:=]")
_KEEP_WORDS = frozenset(
    {b"map", b"true", b"false", b"null", b"<nil>", b"<none>", b"<no", b"value>", b"-"}
)
_BODY = re.compile(rb'((?:Request|Response) Body"? body=)"((?:[^"\\]|\\.)*)"')
_BODY_TRIGGER = b" body="


class Masker:
    """Streaming masker for one output stream (stdout or stderr) of one kubectl run.

    `feed(chunk)` returns what may be released now; `close()` returns the rest.
    `masked_count` counts placeholders written (for the audit record).
    """

    def __init__(
        self,
        mode: Mode = "text",
        *,
        key: bytes | None = None,
        assume_secret: bool = True,
        keep: frozenset[bytes] = frozenset(),
        max_line: int = MAX_LINE,
        columns: tuple[bytes, ...] = (),
        safe_columns: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown masking mode {mode!r}")
        self.mode = mode
        self._d = Digester(key)
        self._text = TextMasker(self._d)
        self._keep = keep | _KEEP_WORDS
        # values mode for custom-columns: the header names, and how many leading columns
        # print only metadata (kept as they are). Their width comes from the header line.
        self._columns = columns
        self._safe_columns = safe_columns if columns else 0
        self._col_width: int | None = None
        self._assume_secret = assume_secret
        self._structured: YamlMasker | JsonMasker | None = None
        if mode == "yaml":
            self._structured = YamlMasker(self._d, self._text, assume_secret)
        elif mode == "json":
            self._structured = JsonMasker(self._d, self._text, assume_secret)
        self._objects = ObjectMasker(self._d, self._text, assume_secret)
        self._max_line = max_line
        self._pending = b""
        self._fragment = False  # the pending bytes continue an already released line
        self._swallow: _Hash | None = None  # hashing one oversized token
        self._big: _Hash | None = None  # hashing an oversized structured value
        self._big_tail = b""
        self._own_count = 0
        self._out: list[bytes] = []
        self._closed = False

    @property
    def masked_count(self) -> int:
        """Values replaced by a placeholder so far."""
        s = self._structured
        return self._text.count + self._objects.count + self._own_count + (s.count if s else 0)

    # -- framing

    def feed(self, chunk: bytes) -> bytes:
        """Mask what can be masked now; returns bytes to write to the caller."""
        if self._closed:
            raise ValueError("feed() after close()")
        if not chunk:
            return b""
        if self._swallow is not None:
            chunk = self._swallowing(chunk)
            if not chunk:
                return self._take()
        data = self._pending + chunk if self._pending else chunk
        last = data.rfind(b"\n")
        if last < 0:
            self._pending = data
        else:
            self._pending = data[last + 1 :]
            start = 0  # the complete lines are data[start:last], split at b"\n"
            if self._fragment:
                self._fragment = False
                start = data.index(b"\n") + 1
                self._emit_fragment(data[: start - 1], b"\n")
            s = self._structured
            if s is not None and last <= self._max_line and b"\r" not in data:
                if start <= last:
                    s.scan(data, start, last, b"\n")  # one call for all: the hot path
            else:
                lines = data[start:last].split(b"\n") if start <= last else []
                fn = s.line if s is not None else self._line
                if s is not None and last > self._max_line:
                    fn = self._structured_line  # may hold lines longer than max_line
                if b"\r" not in data:
                    for line in lines:
                        fn(line, b"\n")
                else:
                    for line in lines:
                        if line[-1:] == b"\r":
                            fn(line[:-1], b"\r\n")
                        else:
                            fn(line, b"\n")
        if len(self._pending) > self._max_line:
            self._overflow()
        return self._take()

    def close(self) -> bytes:
        """Flush the last partial line and anything held; the masker is then spent."""
        if self._closed:
            return b""
        if self._swallow is not None:
            self._end_swallow()
        if self._fragment and not self._pending and self._big is not None:
            self._emit_fragment(b"", b"")
        if self._pending:
            tail, self._pending = self._pending, b""
            if self._fragment:
                self._emit_fragment(tail, b"")
            else:
                cr = tail[-1:] == b"\r"
                self._line(tail[:-1] if cr else tail, b"\r" if cr else b"")
        s = self._structured
        if s is not None:
            s.finish()
            self._out.append(s.out.take())
        tail_pem = self._text.finish()
        if tail_pem:
            self._out.append(tail_pem)
        self._closed = True
        return self._take()

    def _take(self) -> bytes:
        s = self._structured
        if s is not None:
            self._out.append(s.out.take())
        out = b"".join(self._out)
        self._out = []
        return out

    def _overflow(self) -> None:
        """The partial line passed `max_line`: release it up to its last separator."""
        data = self._pending
        if self._structured is not None:
            # Structured: the oversized value is masked whole, hashed as it streams.
            self._emit_fragment(data, b"", closing=False)
            self._pending = b""
            self._fragment = True
            return
        cut = -1
        for m in _SEPARATOR.finditer(data, max(0, len(data) - MAX_TOKEN)):
            cut = m.end()
        if cut < 0:
            head, token = data[: len(data) - MAX_TOKEN], data[len(data) - MAX_TOKEN :]
            # Find where the oversized token starts: the last separator before it.
            starts = [m.end() for m in _SEPARATOR.finditer(head)]
            start = starts[-1] if starts else 0
            head, token = data[:start], data[start:]
            self._emit_fragment(head, b"", closing=False)
            self._swallow = self._d.new()
            self._swallow.update(token)
            self._pending = b""
        else:
            self._emit_fragment(data[:cut], b"", closing=False)
            self._pending = data[cut:]
        self._fragment = True

    def _swallowing(self, chunk: bytes) -> bytes:
        assert self._swallow is not None
        m = _SEPARATOR.search(chunk)
        if m is None:
            self._swallow.update(chunk)
            return b""
        self._swallow.update(chunk[: m.start()])
        self._end_swallow()
        return chunk[m.start() :]

    def _end_swallow(self) -> None:
        assert self._swallow is not None
        self._own_count += 1
        self._out.append(self._d.finish(self._swallow))
        self._swallow = None

    def _emit_fragment(self, data: bytes, eol: bytes, *, closing: bool = True) -> None:
        """Part of an oversized line. Free text: the rules run on each piece (cut at a
        separator, so tokens stay whole). Structured: the value is masked whole (the
        conservative choice: a >1 MiB scalar is no longer something to read)."""
        s = self._structured
        if s is None:
            masked = self._values(data) if self.mode == "values" else self._text.line(data)
            self._out.append((masked or b"") + eol)
            return
        if self._big is None:
            head = data[: _head_len(data)]
            self._out.append(s.out.take())
            s.register(head + b"x")  # structure only; its output is replaced below
            self._out.append(s.out.take())
            self._out.append(head)
            self._big = self._d.new()
            self._big.update(data[len(head) :])
            self._big_tail = data[-2:]
        else:
            self._big.update(data)
            self._big_tail = (self._big_tail + data)[-2:]
        if closing:
            self._own_count += 1
            placeholder = self._d.finish(self._big)
            if self.mode == "json":  # keep the document valid: a quoted string, its comma
                comma = b"," if self._big_tail.rstrip().endswith(b",") else b""
                placeholder = b'"' + placeholder + b'"' + comma
            self._out.append(placeholder + eol)
            self._big = None

    # -- one line

    def _structured_line(self, content: bytes, eol: bytes) -> None:
        """A structured line from a big chunk: one longer than `max_line` is masked whole,
        as it would be had it arrived in pieces."""
        assert self._structured is not None
        if len(content) > self._max_line:
            self._emit_fragment(content, eol)
        else:
            self._structured.line(content, eol)

    def _line(self, content: bytes, eol: bytes) -> None:
        s = self._structured
        if s is not None:
            s.line(content, eol)
            return
        if _BODY_TRIGGER in content:
            content = _BODY.sub(self._body, content)
        if self.mode == "values":
            if self._safe_columns:
                self._columns_line(content, eol)
                return
            t = self._text.line(content)
            if t is not None:
                self._out.append(self._values(t) + eol)
            return
        if self.mode == "raw" and content[:1] in (b"{", b"["):
            self._out.append(self._json_doc(content) + eol)
            return
        t = self._text.line(content)
        if t is not None:
            self._out.append(t + eol)

    def _columns_line(self, content: bytes, eol: bytes) -> None:
        """custom-columns: keep the leading metadata columns, mask the others' tokens.

        kubectl aligns columns with a tabwriter (padding 3), so the first unsafe column
        starts where its header does. A row is trusted only if its kept part ends in
        three spaces: a value that began further left would show there, so a misaligned
        row (a later flush, wide Unicode) is masked whole instead.
        """
        if self._col_width is None:
            self._col_width = _column_start(content, self._columns, self._safe_columns)
            t = self._text.line(content)
            if t is not None:
                self._out.append(self._values(t) + eol)
            return
        w = self._col_width
        if w and len(content) > w and content[:w].endswith(b"   "):
            head = self._text.line(content[:w])
            tail = self._text.line(content[w:])
            if head is not None and tail is not None:
                self._out.append(head + self._values(tail) + eol)
                return
        t = self._text.line(content)
        if t is not None:
            self._out.append(self._values(t) + eol)

    def _values(self, line: bytes) -> bytes:
        keep = self._keep

        def repl(m: re.Match[bytes]) -> bytes:
            token = m.group(0)
            if token in keep or token[:8] == b"<masked:":
                return token
            if _KEY_FOLLOWS.match(line, m.end()):
                return token
            self._own_count += 1
            return self._d.placeholder(token)

        return _VALUE_TOKEN.sub(repl, line)

    def _json_doc(self, line: bytes) -> bytes:
        try:
            doc = json.loads(line)
        except ValueError:
            return self._values(line)
        masked = self._objects.mask(doc)
        return json.dumps(masked, separators=(",", ":"), ensure_ascii=False).encode()

    def _body(self, m: re.Match[bytes]) -> bytes:
        """A -v>=8 request/response body: JSON inside a Go-quoted string."""
        try:
            text = json.loads(b'"' + m.group(2) + b'"')
            doc = json.loads(text)
        except ValueError:
            return m.group(1) + b'"' + self._values(m.group(2)) + b'"'
        masked = json.dumps(self._objects.mask(doc), ensure_ascii=False)
        return m.group(1) + json.dumps(masked, ensure_ascii=False).encode()


def _column_start(header: bytes, columns: tuple[bytes, ...], index: int) -> int:
    """Byte offset of column `index` in a custom-columns header line (0: not found)."""
    pos = 0
    for i, name in enumerate(columns):
        at = header.find(name, pos)
        if at < 0 or (i and not header[:at].endswith(b"   ")):
            return 0
        if i == index:
            return at
        pos = at + len(name)
    return 0


def _head_len(data: bytes) -> int:
    """Length of an oversized structured line's `indent key: ` prefix."""
    head = data[:4096]
    for sep in (b'": ', b": "):
        i = head.find(sep)
        if i >= 0:
            return i + len(sep)
    return 0
