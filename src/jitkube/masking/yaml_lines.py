"""Line masker for kubectl's YAML output (rules: `jitkube.masking.structured`)."""

from __future__ import annotations

import re
from binascii import Error as BinasciiError
from binascii import a2b_base64
from itertools import islice

from jitkube.masking.digest import Digester, _Hash
from jitkube.masking.patterns import VALUE_TRIGGER, TextMasker, unquote
from jitkube.masking.structured import (
    _DATA_KEYS,
    _KEY_CACHE,
    HELD,
    HOLD_LIMIT,
    LAST_APPLIED,
    NO,
    YES,
    _Frame,
    _Structured,
    secret_key,
)

_TRIGGER = VALUE_TRIGGER.search
# Short values with no free-text trigger (VALUE_TRIGGER.search is None): they repeat
# (apiVersion, kind, type, namespace, labels) and the search is a plain line's main cost.
# Only values written out as they are (no secret, no PEM block open, no trigger): nothing
# masked is ever kept here.
_QUIET: dict[bytes, bool] = {}
_QUIET_MAX = 4096  # entries (of at most _QUIET_LEN bytes): bounded memory
_QUIET_LEN = 64


def _quiet(value: bytes) -> bool:
    """`VALUE_TRIGGER.search(value) is None`, remembered for short quiet values."""
    quiet = _TRIGGER(value) is None
    if quiet and len(value) <= _QUIET_LEN:
        if len(_QUIET) >= _QUIET_MAX:
            _QUIET.clear()
        _QUIET[value] = quiet
    return quiet


# A run of plain lines (`_plain_run`): `key: value` or `key:`, one per line, each ending
# in `\n`. The key's alphabet keeps out sequence items, quotes, flow collections,
# comments and document markers. The value's keeps out all that `VALUE_TRIGGER` finds:
# no `=`, `@` or `:/`; a `:` only after a digit (never after a letter, quote or blank);
# its words (`eyJ`, `AKIA`, `-----BEGIN`, `bearer`, `k8s-aws-v1`…) cannot be spelt, as
# each letter that starts one (`J` ends `eyJ`) passes only when the rest does not
# follow. No control or non-ASCII byte either, and no blank, `|` or `>` first.
_RUN_KEY = rb"[A-Za-z0-9_][A-Za-z0-9_./-]*"
_RUN_CHARS = rb"[ -9;<>?C-IK-ac-jl-~]*"  # printable ASCII but : = @ A B J b k
_RUN_GUARDED = (
    rb"A(?!KIA|SIA|BIA|CCA)|B(?!EGIN|earer|EARER)|(?<!ey)J|b(?!earer)|k(?!8s-aws-v1)"
    rb"|(?<=[0-9]):(?!/)"
)
_RUN_VALUE = (
    rb"(?=[!-=?-{}~])" + _RUN_CHARS + rb"(?:(?:" + _RUN_GUARDED + rb")" + _RUN_CHARS + rb")*"
)
_RUN = re.compile(
    rb"(?: *" + _RUN_KEY + rb":(?: " + _RUN_VALUE + rb")?\n)+"  # one or more plain lines
).match
# The lines of a run: (line, indent, key, " " if it has a value).
_RUN_LINE = re.compile(rb"(( *)([^:\n]+):( ?)[^\n]*\n)").findall
# A run's shape: its lines with their values cut away (`key: ` or `key:`). What the loop
# does with a run depends on its shape alone; `_PLANS` keeps that per shape.
_RUN_SHAPE = re.compile(rb": [^\n]+").sub
_SHAPE_MAX = 4096  # bytes of run looked up by shape; longer ones take the loop
# (lines taken, indent, last_key, cont_col, open frames (col, key, last_key), all taken)
_Plan = tuple[int, int, bytes | None, int, tuple[tuple[int, bytes | None, bytes | None], ...], bool]
_PLANS: dict[bytes, _Plan] = {}
_PLANS_MAX = 128  # shapes kept (each under _SHAPE_MAX bytes): bounded memory

_OPENERS = b"\"'{["  # a quoted key or a flow collection: not the plain fast path
_ITEM_OPENERS = b"\"'{[- "  # after `- `: quoted, flow, nested item or wider indent
_BLOCK = b"|>"  # a block scalar's indicator
_QUOTES = b"\"'"
_SPACE = b"\t\n\x0b\x0c\r"  # what `isspace` counts besides " " (already stripped)


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
        secret = self.cont_secret
        if secret:
            first = self.cont_first
            if self.cont_parts:
                value = unquote(first + b" " + b" ".join(self.cont_parts))
                self.cont_parts = []
            elif first and first[0] not in _QUOTES:
                value = first  # what `unquote` would return
            else:
                value = unquote(first)
            self.count += 1  # `placeholder`, inline
            if self.cont_b64:  # `b64_or_raw`, inline
                try:  # noqa: SIM105 - `contextlib.suppress` costs a context manager per value
                    value = a2b_base64(value, strict_mode=True)
                except (BinasciiError, ValueError):
                    pass
            masked = self.cont_prefix + self.d.placeholder(value) + self.cont_eol
            out = self.out
            held = out.held  # `out.emit`, inline
            if held is None:
                out.parts.append(masked)
            else:
                held.append((masked, self.cont_plain if secret == HELD else masked))
                out.held_size += 2 * len(masked)
            if self.cont_plain:  # (it may be held now: a new list, not a cleared one)
                self.cont_plain = []
            self.cont_secret = NO
        self.cont_col = -1

    def _open_secret(
        self, frame: _Frame, col: int, content: bytes, eol: bytes, value: bytes, vpos: int
    ) -> int:
        """Start a masked scalar of `frame` at `value` (which starts at `vpos`); its
        continuation lines follow. Returns how it is masked (YES, or HELD while the
        object's kind is unknown)."""
        secret = frame.secret
        if secret == HELD and frame.owner is not self.hold_owner:
            secret = YES
        self.cont_col = col
        self.cont_secret = secret
        self.cont_b64 = frame.b64
        self.cont_prefix = content[:vpos]
        self.cont_eol = eol
        self.cont_first = value.rstrip()
        if self.cont_parts:
            self.cont_parts = []
        if secret == HELD:
            self.cont_plain = [(content, eol)]
        return secret

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
        self.scan(content, 0, len(content), eol)

    def lines(self, lines: list[bytes], eol: bytes) -> None:
        if lines:
            joined = b"\n".join(lines)
            self.scan(joined, 0, len(joined), eol)

    def scan(self, data: bytes, pos: int, end: int, eol: bytes) -> None:
        """Mask the lines of `data[pos:end]` (separated by `\\n`), each written with `eol`.

        One loop: this is the hot path. Where a line leaves a plain mapping behind, the
        run of plain lines that follows is taken in one piece (`_plain_run`).
        """
        stack = self.stack
        out = self.out
        text = self.text
        key_cache = _KEY_CACHE
        quiet_cache = _QUIET
        runs = eol == b"\n"  # a run is copied as it stands: its lines end in `\\n`
        it = iter(data[pos:end].split(b"\n"))
        for content in it:
            pos += len(content) + 1  # where the next line starts (for `_plain_run`)
            stripped = content.lstrip(b" ")
            col = len(content) - len(stripped)
            cont_col = self.cont_col
            if cont_col >= 0:
                if col > cont_col or not stripped or (stripped[0] in _SPACE and stripped.isspace()):
                    if self.cont_secret:
                        self.cont_parts.append(stripped.rstrip())
                        if self.cont_secret == HELD:
                            self.cont_plain.append((content, eol))
                        if len(self.cont_parts) > 100_000:
                            self._end_cont()
                    else:
                        t = text.line(content)
                        if t is not None:
                            out.emit(t + eol)
                    continue
                if self.cont_secret:
                    self._end_cont()
                else:
                    self.cont_col = -1
            if not stripped or (c0 := stripped[0]) == 35:  # `#`
                t = text.line(content)
                if t is not None:
                    out.emit(t + eol)
                continue
            if col == 0 and (
                stripped == b"---" or stripped.startswith(b"--- ") or stripped == b"..."
            ):
                self._pop(-1, False)
                out.emit(content + eol)
                continue
            if stack and c0 != 45:  # not `-`
                # Fast path: `key: value` in a plain mapping, nothing to mask by structure.
                while stack[-1].col > col:
                    popped = stack.pop()
                    if popped is self.hold_owner:
                        self.resolve_hold(self.assume_secret)
                    if not stack:
                        break
                top = stack[-1] if stack else None
                if top is not None:
                    if top.secret:
                        if top.col == col and not top.is_seq and c0 not in _OPENERS:
                            # Fast path: the next value of a Secret's data (masked whole).
                            i = stripped.find(b": ")
                            if i > 0:
                                value = stripped[i + 2 :].lstrip(b" ")
                                if value and value[0] not in _BLOCK:
                                    top.last_key = stripped[:i]
                                    vpos = len(content) - len(value)
                                    if (
                                        self._open_secret(top, col, content, eol, value, vpos)
                                        == HELD
                                        and self.hold_owner is not None
                                        and out.held_size > HOLD_LIMIT
                                    ):
                                        self.resolve_hold(True)  # `check_hold_size`, inline
                                    continue
                    elif not top.is_seq and not top.env:
                        if top.col < col:
                            last = top.last_key
                            if last not in _DATA_KEYS and last != b"env":
                                frame = _Frame(col, False, last)
                                stack.append(frame)
                                top = frame
                            elif last != b"env" and c0 not in _OPENERS:
                                # Fast path: the first `key: value` under `data:` and co.
                                # (as `_structure` would take it, short of its detours).
                                i = stripped.find(b": ")
                                if i > 0 and b" #" not in stripped[:i]:
                                    key = stripped[:i]
                                    value = stripped[i + 2 :].lstrip(b" ")
                                    if value and value[0] not in _BLOCK and key != b"kind":
                                        frame = _Frame(col, False, last)
                                        self.child_secret(top, last, frame)
                                        stack.append(frame)
                                        frame.last_key = key
                                        vpos = len(content) - len(value)
                                        if not frame.secret:
                                            self._scalar(
                                                content, eol, col, False, key, value, vpos, frame
                                            )
                                            continue
                                        self._open_secret(frame, col, content, eol, value, vpos)
                                        if (
                                            self.hold_owner is not None
                                            and out.held_size > HOLD_LIMIT
                                        ):
                                            self.resolve_hold(True)  # `check_hold_size`, inline
                                        continue
                        i = stripped.find(b": ")
                        if top.col == col and c0 not in _OPENERS:
                            if i > 0:
                                fkey = stripped[:i]
                                fvalue = stripped[i + 2 :].lstrip(b" ")
                                if fvalue:
                                    if fkey == b"kind":
                                        self.set_kind(top, fvalue)
                                    by_key = key_cache.get(fkey)
                                    if by_key is None:
                                        by_key = secret_key(fkey)
                                    if (
                                        not by_key
                                        and fkey != LAST_APPLIED
                                        and fvalue[0] not in _BLOCK
                                        and text._pem is None  # not `in_block` (no property call)
                                    ):
                                        quiet = quiet_cache.get(fvalue)
                                        if quiet is None:
                                            quiet = _quiet(fvalue)
                                        if quiet:
                                            top.last_key = fkey
                                            self.cont_col = col
                                            self.cont_secret = NO
                                            if out.held is None:
                                                out.parts.append(content + eol)
                                                if runs and pos < end:
                                                    after = self._plain_run(data, pos, end)
                                                    if after > pos:  # skip the lines it took
                                                        next(
                                                            islice(
                                                                it,
                                                                data.count(b"\n", pos, after) - 1,
                                                                None,
                                                            )
                                                        )
                                                        pos = after
                                            else:
                                                out.emit(content + eol)
                                            continue
                            elif (
                                i < 0
                                and stripped[-1] == 58  # `:`
                                and b" " not in stripped
                                and text._pem is None  # not `in_block` (no property call)
                            ):
                                # `key:` — a nested node follows; its frame decides what
                                # it holds.
                                key = top.last_key = stripped[:-1]
                                self.cont_col = -1
                                if out.held is None:
                                    out.parts.append(content + eol)
                                    if (
                                        runs
                                        and pos < end
                                        and key not in _DATA_KEYS
                                        and key != b"env"
                                    ):
                                        after = self._plain_run(data, pos, end)
                                        if after > pos:  # skip the lines it took
                                            next(
                                                islice(it, data.count(b"\n", pos, after) - 1, None)
                                            )
                                            pos = after
                                else:
                                    out.emit(content + eol)
                                continue
            elif c0 == 45 and stripped[1:2] == b" ":
                # Fast path: `- key: value`, a mapping item of a list (`items:` of a List).
                rest = stripped[2:]
                i = rest.find(b": ")
                if i > 0 and rest[0] not in _ITEM_OPENERS and b" #" not in rest[:i]:
                    value = rest[i + 2 :].lstrip(b" ")
                    if value:
                        self._item(content, eol, col, rest[:i], value)
                        continue
            self._structure(content, eol, stripped, col)

    def _plain_run(self, data: bytes, pos: int, end: int) -> int:
        """Take the plain lines from `pos` (a line start) as the loop in `scan` would,
        in one piece; returns where the first line not taken starts.

        Only `key: value` lines with a quiet value (see `_RUN_VALUE`) and `key:` lines,
        in plain mappings, with nothing held, no masked scalar open and no PEM block:
        the loop would write each of them as it stands, and only the stack, the frames'
        `last_key` and `cont_col` change. Any other line ends the run before it is
        touched (bar popping frames, which the loop then finds done), so the loop takes
        it as usual.
        """
        if self.cont_secret or self.hold_owner is not None or self.text._pem is not None:
            return pos
        m = _RUN(data, pos, end)
        if m is None:
            return pos
        stop = m.end()
        stack = self.stack
        if stack and stop - pos <= _SHAPE_MAX:
            # A run that starts at the open mapping's indent (or opens a mapping under
            # it) never looks below that mapping: what it does follows from its shape.
            top = stack[-1]
            shape = _RUN_SHAPE(b": ", data[pos:stop])
            plan = _PLANS.get(shape) or _plan_run(shape)
            taken, col, last_key, cont, frames, whole = plan
            if (
                taken
                and top.col <= col
                and not (top.secret or top.is_seq or top.env)
                and not 0 <= self.cont_col < col
            ):
                if top.col < col:  # the first line opens a mapping under `top.last_key`
                    last = top.last_key
                    if last in _DATA_KEYS or last == b"env":
                        return pos
                    top = _Frame(col, False, last)
                    stack.append(top)
                top.last_key = last_key
                for fcol, fkey, flast in frames:
                    frame = _Frame(fcol, False, fkey)
                    frame.last_key = flast
                    stack.append(frame)
                self.cont_col = cont
                if not whole:
                    stop = pos
                    for _ in range(taken):
                        stop = data.index(b"\n", stop) + 1
                self.out.parts.append(data[pos:stop])
                return stop
        return self._plain_lines(data, pos, stop)

    def _plain_lines(self, data: bytes, pos: int, stop: int) -> int:
        """`_plain_run` line by line, for the plain lines in `data[pos:stop]`."""
        stack = self.stack
        key_cache = _KEY_CACHE
        cont = self.cont_col
        at = pos
        for line, indent, key, value in _RUN_LINE(data, pos, stop):
            col = len(indent)
            if 0 <= cont < col:
                break  # a continuation line of the scalar above
            while stack and stack[-1].col > col:
                stack.pop()  # nothing held: `closed` has nothing to resolve
            if not stack:
                break
            top = stack[-1]
            if top.secret or top.is_seq or top.env:
                break
            if value:
                if key == b"kind" or key == LAST_APPLIED:
                    break
                by_key = key_cache.get(key)
                if by_key is None:
                    by_key = secret_key(key)
                if by_key:
                    break
            if top.col < col:
                last = top.last_key
                if last in _DATA_KEYS or last == b"env":
                    break
                top = _Frame(col, False, last)
                stack.append(top)
            top.last_key = key
            cont = col if value else -1
            at += len(line)
        if at > pos:
            self.cont_col = cont
            self.out.parts.append(data[pos:at])
        return at

    def _item(self, content: bytes, eol: bytes, col: int, key: bytes, value: bytes) -> None:
        """`- key: value` at `col`, as `_structure` takes it (without its detours)."""
        stack = self.stack
        while stack and stack[-1].col > col:  # `_pop(col, True)`, inline
            popped = stack.pop()
            if popped is self.hold_owner:  # `closed`, inline
                self.resolve_hold(self.assume_secret)
        top = stack[-1] if stack else None
        if top is None or not (top.is_seq and top.col == col):
            seq = _Frame(col, True, top.last_key if top is not None else None)
            if top is not None:
                self.child_secret(top, seq.key, seq)
            stack.append(seq)
            top = seq
        col += 2
        frame = _Frame(col, False, top.key)
        if top.secret:  # `child_secret` (under a sequence only this)
            frame.secret, frame.owner, frame.b64 = top.secret, top.owner, top.b64
        elif top.key == b"env":
            frame.env = True
        stack.append(frame)
        frame.last_key = key
        if key == b"kind":
            self.set_kind(frame, value)
        if frame.secret or frame.env or key == LAST_APPLIED:
            self._scalar(content, eol, col, False, key, value, len(content) - len(value), frame)
            return
        by_key = _KEY_CACHE.get(key)
        if by_key is None:
            by_key = secret_key(key)
        if by_key:
            self._scalar(content, eol, col, False, key, value, len(content) - len(value), frame)
            return
        # `_scalar` for a value that is not secret (`value_secret` is NO), inline
        self.cont_col = col
        self.cont_secret = NO
        if self.text._pem is None and (_QUIET.get(value) or _quiet(value)):
            self.out.emit(content + eol)
        else:
            t = self.text_line(content)
            if t is not None:
                self.out.emit(t + eol)

    def _structure(self, content: bytes, eol: bytes, stripped: bytes, col: int) -> None:
        """A line off the fast paths: sequence items, quoted keys, secrets by key."""
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
            quiet = False
            if not self.text.in_block:
                quiet = _QUIET.get(value) or _quiet(value)
            if quiet:
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


def _plan_run(shape: bytes) -> _Plan:
    """What `_plain_lines` does with a run of this shape, from a plain mapping (the top
    frame, or one the first line opens) at the first line's indent: (lines taken, that
    indent, the mapping's `last_key` after them, `cont_col` after them, the frames they
    leave open above it as (col, key, last_key), whether all lines were taken). A line
    below the first one's indent is not taken (it closes the mapping, as the loop then
    does)."""
    rows = shape.split(b"\n")
    rows.pop()  # the shape ends in \n
    # The open frames: [0] is the mapping the run starts in, the others its own.
    cols: list[int] = []
    keys: list[bytes | None] = []
    lasts: list[bytes | None] = []
    cont = -1
    plan: _Plan = (0, -1, None, -1, (), False)
    for taken, row in enumerate(rows, 1):
        stripped = row.lstrip(b" ")
        col = len(row) - len(stripped)
        value = stripped.endswith(b": ")
        key = stripped[:-2] if value else stripped[:-1]
        if not cols:
            cols.append(col)
            keys.append(None)
            lasts.append(None)
        elif 0 <= cont < col or col < cols[0]:
            break
        while cols[-1] > col:
            cols.pop()
            keys.pop()
            lasts.pop()
        if value and (key == b"kind" or key == LAST_APPLIED or secret_key(key)):
            break
        if cols[-1] < col:
            last = lasts[-1]
            if last in _DATA_KEYS or last == b"env":
                break
            cols.append(col)
            keys.append(last)
            lasts.append(None)
        lasts[-1] = key
        cont = col if value else -1
        frames = tuple(zip(cols[1:], keys[1:], lasts[1:], strict=True))
        plan = (taken, cols[0], lasts[0], cont, frames, taken == len(rows))
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[shape] = plan
    return plan


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
