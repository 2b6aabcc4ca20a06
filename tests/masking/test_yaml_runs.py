"""The YAML masker's fast paths: runs of plain lines taken in one piece, and placeholders.

A run (`yaml_lines._plain_run`) copies plain `key: value` / `key:` lines as they stand.
It must take exactly the lines the line-by-line loop would write unchanged. Feeding a
document one byte at a time never forms a run (each call holds a single line), so
whole-document output is checked against it, and secrets are checked to be gone.
"""

from __future__ import annotations

import base64
import hmac
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitkube.masking import Masker
from jitkube.masking.digest import Digester
from jitkube.masking.patterns import VALUE_TRIGGER
from jitkube.masking.yaml_lines import _PLANS, _PLANS_MAX, _RUN_CHARS, _RUN_VALUE, _SHAPE_MAX

RUN_VALUE = re.compile(_RUN_VALUE)


def _token(n: int = 18) -> str:
    """A made-up secret (random per run: nothing key-like is committed)."""
    return base64.b32encode(os.urandom(n)).decode().rstrip("=")


def _masked(data: bytes, chunk: int = 0, **kw: object) -> tuple[bytes, int]:
    m = Masker("yaml", **kw)  # type: ignore[arg-type]
    if chunk <= 0:
        out = [m.feed(data)]
    else:
        out = [m.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    out.append(m.close())
    return b"".join(out), m.masked_count


def _same_as_line_by_line(data: bytes, **kw: object) -> bytes:
    """Output fed whole (runs) and in 4093-byte chunks, equal to one byte at a time."""
    want = _masked(data, 1, **kw)
    assert _masked(data, 0, **kw) == want
    assert _masked(data, 4093, **kw) == want
    return want[0]


# -- what a run value may hold


def _trigger_words() -> list[str]:
    """The literal words among VALUE_TRIGGER's branches (`[Bb]earer` spelt out)."""
    words = []
    for branch in VALUE_TRIGGER.pattern.decode().split("|"):
        m = re.fullmatch(r"\[(\w)(\w)\](\w+)", branch)
        if m:
            words += [m[1] + m[3], m[2] + m[3]]
        elif re.fullmatch(r"[\w-]+", branch):
            words.append(branch)
    return words


def test_the_trigger_words_are_found() -> None:
    assert {"eyJ", "AKIA", "-----BEGIN", "k8s-aws-v1", "Bearer", "bearer"} <= set(_trigger_words())


@pytest.mark.parametrize("word", _trigger_words())
@pytest.mark.parametrize("around", [("", ""), ("x", ""), ("", "x"), ("1 ", " 2"), ("-", ".")])
def test_no_run_value_spells_a_trigger_word(word: str, around: tuple[str, str]) -> None:
    value = (around[0] + word + around[1]).encode()
    assert VALUE_TRIGGER.search(value) is not None
    assert RUN_VALUE.fullmatch(value) is None


def test_the_run_alphabet_is_printable_ascii_but_the_guarded_bytes() -> None:
    chars = re.compile(_RUN_CHARS.removesuffix(b"*"))
    got = {b for b in range(256) if chars.fullmatch(bytes([b]))}
    assert got == set(range(0x20, 0x7F)) - set(b":=@ABJbk")


_PIECES = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from([*_trigger_words(), "://", "1:2", "a:", "x =", "@", "\t", "é", "|", ">"]),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_a_run_value_never_holds_what_value_trigger_looks_for(text: str) -> None:
    value = text.encode()
    if RUN_VALUE.fullmatch(value) is not None:
        assert VALUE_TRIGGER.search(value) is None
        assert value[:1] not in (b" ", b"|", b">")


# -- runs in documents


def test_a_secret_named_key_among_metadata_lines_is_masked() -> None:
    secret = _token()
    doc = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations:\n    team: a\n"
        f"    db-password: {secret}\n    owner: b\n  name: x\n  namespace: y\n"
    ).encode()
    out = _same_as_line_by_line(doc)
    assert secret.encode() not in out
    assert b"    team: a\n" in out
    assert b"  namespace: y\n" in out


@pytest.mark.parametrize("before", ["", "  name: x\n", "  labels:\n    a: b\n"])
@pytest.mark.parametrize("key", ["token", "auth", "session-cookie"])
def test_a_deeper_line_after_a_plain_value_continues_it_and_gets_the_text_rules(
    before: str, key: str
) -> None:
    """`auth` or `session-cookie` is no secret key to the structure, but the free-text
    rules mask the value on a continuation line."""
    secret = _token()
    doc = (
        f"kind: ConfigMap\nmetadata:\n{before}  description: one two\n"
        f"    {key}: {secret}\n  uid: u\n"
    ).encode()
    out = _same_as_line_by_line(doc)
    assert secret.encode() not in out


def test_plain_looking_lines_in_a_secret_data_block_are_masked() -> None:
    user, password = _token(6), _token()
    doc = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: y\n"
        f"data:\n  username: {user}\n  password: {password}\n  other: plain\n"
        "type: Opaque\n"
    ).encode()
    for assume_secret in (True, False):
        out = _same_as_line_by_line(doc, assume_secret=assume_secret)
        assert user.encode() not in out
        assert password.encode() not in out
        assert b"plain" not in out
        assert b"  namespace: y\n" in out
        assert b"type: Opaque\n" in out


def test_data_of_an_object_whose_kind_comes_later_is_held_across_a_run() -> None:
    secret = _token()
    item = f"- apiVersion: v1\n  data:\n    k: {secret}\n  kind: KIND\n  metadata:\n    name: n\n"
    for kind, hidden in (("Secret", True), ("ConfigMap", False)):
        doc = (
            "apiVersion: v1\nitems:\n" + item.replace("KIND", kind) * 3 + "kind: List\n"
        ).encode()
        out = _same_as_line_by_line(doc)
        assert (secret.encode() not in out) is hidden


@pytest.mark.parametrize(
    "value",
    [
        "Bearer {t}",
        "https://user:{t}@example.com",
        "x=y {t}",
        "eyJ{t}.eyJ{t}.{t}",
        "AKIA{t}",
        "a: {t}",
        "'it''s' {t}",
    ],
)
def test_a_value_the_text_rules_may_need_ends_the_run(value: str) -> None:
    """Values with a trigger are left to the loop: they go through the free-text rules."""
    t = _token()
    doc = (
        f"kind: Pod\nmetadata:\n  labels:\n    app: a\n  note: {value.format(t=t)}\n"
        "  name: x\nspec:\n  nodeName: n\n"
    ).encode()
    _same_as_line_by_line(doc)


def test_structure_keys_inside_a_run_keep_their_meaning() -> None:
    env_secret, applied, nested = _token(), _token(), _token()
    doc = (
        "kind: Deployment\nmetadata:\n  annotations:\n"
        f"    kubectl.kubernetes.io/last-applied-configuration: {applied}\n"
        "  name: x\nspec:\n  template:\n    spec:\n      env:\n"
        f"        name: DB_PASSWORD\n        value: {env_secret}\n"
        "      volumes:\n        data:\n"
        f"          password: {nested}\n"
        "        kind: Secret\n"
    ).encode()
    out = _same_as_line_by_line(doc)
    assert applied.encode() not in out
    assert nested.encode() not in out


def test_a_run_that_falls_below_its_mapping_stops_there() -> None:
    secret = _token()
    doc = (
        "apiVersion: v1\nitems:\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: a\n    uid: b\n"
        "kind: List\nmetadata:\n  resourceVersion: r\n"
        f"- stray: item\n  token: {secret}\n"
    ).encode()
    out = _same_as_line_by_line(doc)
    assert secret.encode() not in out


def test_long_runs_and_many_shapes_take_the_loop_and_a_bounded_plan_cache() -> None:
    secret, folded = _token(), _token()
    long_run = "".join(f"    k{i}: v{i}\n" for i in range(_SHAPE_MAX // 8))
    long_run += f"    note: one two\n      auth: {folded}\n" + long_run
    shapes = "".join(
        f"- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    n{i}: x\n    m{i}:\n      o: p\n"
        for i in range(_PLANS_MAX + 20)
    )
    doc = (
        "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n"
        + long_run
        + f"    password: {secret}\n"
        + long_run
        + shapes
        + "kind: List\n"
    ).encode()
    out = _same_as_line_by_line(doc)
    assert secret.encode() not in out
    assert folded.encode() not in out
    assert len(_PLANS) <= _PLANS_MAX


_KEYS = st.sampled_from(
    ["name", "uid", "labels", "app", "data", "kind", "env", "token", "apiKey", "spec", "x.y/z"]
)
_VALUES = st.sampled_from(
    ["v1", "Secret", "plain words", "2026-01-01T00:00:00Z", '"1000"', "a: b", "|", "Bearer x"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 4), _KEYS, st.one_of(st.none(), _VALUES)), min_size=1, max_size=30
    ),
    chunk=st.integers(1, 64),
)
def test_indent_soup_gives_the_same_output_fed_whole_or_by_the_byte(
    rows: list[tuple[int, str, str | None]], chunk: int
) -> None:
    text = "".join(
        f"{'  ' * n}{key}:{'' if value is None else ' ' + value}\n" for n, key, value in rows
    )
    data = ("kind: ConfigMap\nmetadata:\n" + text).encode()
    want = _masked(data, 1)
    assert _masked(data, 0) == want
    assert _masked(data, chunk) == want


# -- placeholders


@pytest.mark.parametrize("key_len", [1, 13, 32, 63, 64, 65, 200])
def test_placeholders_are_hmac_sha256_for_any_key_length(key_len: int) -> None:
    key = os.urandom(key_len)
    d = Digester(key)
    for value in (b"", b"x", os.urandom(55), os.urandom(64), os.urandom(5000)):
        want = b"<masked:hmac-sha256:" + hmac.digest(key, value, "sha256")[:4].hex().encode()
        assert d.placeholder(value) == want + b">"
        h = d.new()
        h.update(value)
        assert d.finish(h) == want + b">"
