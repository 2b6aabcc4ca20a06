"""Attacks on the YAML masker's run fast path, against the masker just before it.

Commit e1f711c copies runs of plain `key: value` / `key:` lines in one piece
(`yaml_lines._plain_run`, with plans cached per shape in `_PLANS`) and computes
HMAC-SHA256 by hand (`digest.Digester`). Its parent is the baseline here: every input is
fed to both maskers in the same pieces, outputs and masked counts must be identical, and
the secrets planted where the baseline masks them must be gone from the new output.

The inputs are what someone who controls labels, annotations, ConfigMap data or names
would try: runs that start or end at a chunk boundary, secret-like keys and trigger
words (`AKIA`, `eyJ`, `Bearer`, `-----BEGIN`, `k8s-aws-v1`, `://`, `@`, `=`) in the
middle of a run, data held until a late `kind: Secret`, `env` lists, `items:` lists,
`---` streams, continuation lines, CRLF, and one shape in several contexts with the plan
cache full or just cleared. Secrets are made at run time (nothing key-like committed).

The baseline is commit BASE_COMMIT's `src`, from git history, or the directory named by
`JITKUBE_MASK_RUNS_BASELINE`; without either the differential tests are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import re
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.baseline import baseline_src, load_masker
from jitkube.masking import Masker
from jitkube.masking.digest import Digester
from jitkube.masking.patterns import VALUE_TRIGGER
from jitkube.masking.yaml_lines import _PLANS, _PLANS_MAX, _RUN_VALUE

# e1f711c^: the masker before runs of plain lines and the hand-made HMAC.
BASE_COMMIT = "c70decec91e166f6e790bb953382eb1b62247c30"
BASELINE = baseline_src(
    BASE_COMMIT, "JITKUBE_MASK_RUNS_BASELINE", "jitkube/masking/stream.py", "mask-runs"
)
needs_baseline = pytest.mark.skipif(
    not BASELINE,
    reason=f"no baseline masker: JITKUBE_MASK_RUNS_BASELINE unset and commit "
    f"{BASE_COMMIT[:12]} not in this checkout's git history",
)

MakeMasker = Callable[..., Masker]


_BASE: MakeMasker | None = load_masker(BASELINE) if BASELINE else None


def _feed(make: MakeMasker, pieces: Sequence[bytes], **kw: object) -> tuple[bytes, int]:
    m = make("yaml", **kw)
    out = [m.feed(p) for p in pieces]
    out.append(m.close())
    return b"".join(out), m.masked_count


def _chunked(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """`data` cut in pieces of `sizes` (cycled); [data] for no sizes."""
    if not sizes:
        return [data]
    pieces: list[bytes] = []
    pos = 0
    for n in itertools.cycle(sizes):
        if pos >= len(data):
            return pieces
        pieces.append(data[pos : pos + n])
        pos += n
    raise AssertionError("unreachable")


def _same(pieces: Sequence[bytes], **kw: object) -> bytes:
    """The new masker's output for `pieces`, after checking it equals the baseline's."""
    assert _BASE is not None
    got = _feed(Masker, pieces, **kw)
    want = _feed(_BASE, pieces, **kw)
    if got != want:  # a short message: the inputs hold (made-up) secrets
        n = next(
            (i for i, (a, b) in enumerate(zip(got[0], want[0], strict=False)) if a != b),
            min(len(got[0]), len(want[0])),
        )
        pytest.fail(
            f"{kw} pieces={[len(p) for p in pieces][:12]}: output differs at byte {n} "
            f"(lengths {len(got[0])}/{len(want[0])}, counts {got[1]}/{want[1]})"
        )
    return got[0]


CHUNKINGS: tuple[tuple[int, ...], ...] = ((), (1,), (2,), (3,), (7,), (13, 5), (64,), (4093,))


def _same_everywhere(data: bytes, splits: bool = True, **kw: object) -> list[bytes]:
    """`_same` in the usual chunkings and, for short inputs, cut in two at every byte
    (a run then starts or ends at each possible boundary). Returns every output."""
    outs = [_same(_chunked(data, sizes), **kw) for sizes in CHUNKINGS]
    if splits and len(data) <= 1500:
        outs += [_same([data[:i], data[i:]], **kw) for i in range(1, len(data))]
    return outs


def _secret(n: int = 15) -> str:
    """A made-up secret, random per run (base32: no trigger word, no `=`)."""
    return base64.b32encode(os.urandom(n)).decode().rstrip("=").lower()


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# -- the attack documents: (what the attacker tries, document, planted secrets)

_META_RUN = "  annotations:\n    a: b\n    team: x-1\n  labels:\n    app: web\n    tier: 1:2\n"


def _attacks() -> list[tuple[str, str, list[str]]]:
    s = [_secret() for _ in range(8)]
    jwt = "eyJ" + _secret(9) + "." + _secret(9) + "." + _secret(9)
    aws = [p + _secret(10).upper()[:16] for p in ("AKIA", "ASIA", "ABIA", "ACCA")]
    pem = "-----BEGIN PRIVATE KEY-----\n      " + _b64(s[5]) + "\n      -----END PRIVATE KEY-----"
    return [
        (
            "data held until a late kind: Secret, plain runs before and after",
            f"apiVersion: v1\ndata:\n  password: {_b64(s[0])}\n  user: {_b64(s[1])}\n"
            f"kind: Secret\nmetadata:\n{_META_RUN}  name: db\n  namespace: prod\ntype: Opaque\n",
            [_b64(s[0]), _b64(s[1])],
        ),
        (
            "stringData after a run in an object whose kind came first",
            f"apiVersion: v1\nkind: Secret\nmetadata:\n{_META_RUN}  name: db\n"
            f"stringData:\n  password: {s[0]}\n  url: {s[1]}\ntype: Opaque\n",
            [s[0], s[1]],
        ),
        (
            "a secret-like annotation key in the middle of a run",
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations:\n    a: b\n"
            f"    db-password: {s[0]}\n    c: d\n    clientSecret: {s[1]}\n    e: f\n"
            f"    x.io/api-key: {s[2]}\n  name: x\n",
            [s[0], s[1], s[2]],
        ),
        (
            "last-applied-configuration between plain annotations",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  annotations:\n    a: b\n"
            "    kubectl.kubernetes.io/last-applied-configuration: "
            f'{{"stringData":{{"password":"{s[0]}"}}}}\n    z: y\n  name: x\n',
            [s[0]],
        ),
        (
            "env values with secret-like names after a run of container fields",
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: nginx\n"
            "    imagePullPolicy: Always\n    name: web\n    resources:\n      limits:\n"
            f"        cpu: 1\n    env:\n    - name: DB_PASSWORD\n      value: {s[0]}\n"
            f"    - name: HOME\n      value: /root\n    - name: API_TOKEN\n      value: {s[1]}\n"
            "    workingDir: /\n",
            [s[0], s[1]],
        ),
        (
            "kind: Secret inside a run (after `immutable: true`), its stringData after one",
            f"apiVersion: v1\nimmutable: true\nkind: Secret\nmetadata:\n{_META_RUN}  name: db\n"
            f"stringData:\n  a: {s[0]}\ntype: Opaque\n---\napiVersion: v1\nitems:\n"
            f"- apiVersion: v1\n  immutable: true\n  kind: Secret\n  metadata:\n    name: x\n"
            f"  stringData:\n    b: {s[1]}\nkind: List\n",
            [s[0], s[1]],
        ),
        (
            "continuation lines of a plain value that look like plain keys, then `auth: x`",
            "kind: ConfigMap\nmetadata:\n  labels:\n    a: b\n  description: one two\n"
            f"    x: y\n    auth: {s[0]}\n    z: w\n    cookie: {s[1]}\n  uid: u\n",
            [s[0], s[1]],
        ),
        (
            "a folded plain value whose continuation line looks like `token: x`",
            "kind: ConfigMap\nmetadata:\n  labels:\n    a: b\n  description: one two\n"
            f"    token: {s[0]}\n    auth: {s[1]}\n  uid: u\n",
            [s[0], s[1]],
        ),
        (
            "credential shapes in annotations, each where a run would start",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  annotations:\n    a: b\n"
            + "".join(  # each right after a quiet line: where a run would start
                f"    q{i}: 1:2\n    {line}\n"
                for i, line in enumerate(
                    [
                        f"jwt: {jwt}",
                        f"aws: {aws[0]}",
                        f"h: x-{aws[1]}",
                        f"i: x {aws[2]}",
                        f"j: {aws[3]}",
                        f"auth: Bearer {s[0]}",
                        f"dsn: pg://u:{s[1]}@h/db",
                        f"eks: k8s-aws-v1.{s[2]}",
                        f"key.pem: {pem}",
                    ]
                )
            )
            + "    z: y\n  name: x\n",
            [jwt, *aws, s[0], s[1], s[2], _b64(s[5])],
        ),
        (
            "a List with a Secret among ConfigMaps (items at the key's indent)",
            "apiVersion: v1\nitems:\n- apiVersion: v1\n  data:\n    a: b\n  kind: ConfigMap\n"
            f"  metadata:\n    name: c\n    uid: u\n- apiVersion: v1\n  data:\n"
            f"    password: {_b64(s[0])}\n    x: {_b64(s[1])}\n  kind: Secret\n  metadata:\n"
            f"    labels:\n      a: b\n    name: s\n  stringData:\n    token: {s[2]}\n"
            "kind: List\nmetadata:\n  resourceVersion: ''\n",
            [_b64(s[0]), _b64(s[1]), s[2]],
        ),
        (
            "get -w: documents separated by ---, the Secret's data before its kind",
            f"apiVersion: v1\ndata:\n  a: {_b64(s[0])}\nkind: Secret\nmetadata:\n  name: a\n"
            f"---\napiVersion: v1\ndata:\n  b: {_b64(s[1])}\nmetadata:\n  name: b\n  uid: u\n"
            "kind: Secret\n"
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
            [_b64(s[0]), _b64(s[1])],
        ),
        (
            "labels spelling trigger words across the run's guard, then a secret key",
            "kind: ConfigMap\nmetadata:\n  labels:\n    a: AKIx\n    b: ey-J\n    c: eJ\n"
            "    d: Beare\n    e: bEARER\n    f: k8s-aws\n    g: 1:/\n    h: A-K-I-A\n"
            f"    i: BEGI\n    j: ----BEGIN\n  name: x\n  token: {s[0]}\n",
            [s[0]],
        ),
        (
            "a nested data: key under a run (held for the outer object)",
            "apiVersion: v1\nspec:\n  template:\n    metadata:\n      a: b\n    data:\n"
            f"      password: {s[0]}\n    z: y\n",
            [s[0]],
        ),
        (
            "a run that drops below its mapping into a stray item with a token",
            "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n"
            f"    name: a\n    uid: b\nkind: List\nmetadata:\n  c: d\n- stray: item\n"
            f"  token: {s[0]}\n",
            [s[0]],
        ),
        (
            "kubeconfig-like users: secret keys after plain runs",
            "apiVersion: v1\nclusters:\n- cluster:\n    server: https://k\n  name: c\nusers:\n"
            f"- name: u\n  user:\n    a: b\n    client-key-data: {_b64(s[0])}\n    c: d\n"
            f"    token: {s[1]}\n    id-token: {s[2]}\n",
            [_b64(s[0]), s[1], s[2]],
        ),
    ]


ATTACKS = _attacks()


@needs_baseline
@pytest.mark.parametrize(
    ("doc", "secrets"),
    [pytest.param(doc, secrets, id=why) for why, doc, secrets in ATTACKS],
)
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_attack_documents_are_masked_as_before_at_every_boundary(
    doc: str, secrets: list[str], crlf: bool
) -> None:
    data = doc.replace("\n", "\r\n").encode() if crlf else doc.encode()
    # The baseline masked each planted secret: the attack is about losing that.
    assert _BASE is not None
    before = _feed(_BASE, [data], assume_secret=False)[0]
    assert not [s for s in secrets if s.encode() in before]
    for kw in ({"assume_secret": False}, {"assume_secret": True, "key": b"k" * 20}):
        for out in _same_everywhere(data, splits=not crlf, **kw):
            assert not [s for s in secrets if s.encode() in out]


# -- one shape, many contexts: the plan cache

_SHAPE = "{p}a: v1\n{p}b:\n{p}  c: w\n{p}  d: x\n{p}e: y\n"


def _contexts(secret: str) -> list[str]:
    """The same run shape (`_SHAPE` at indent 4) where its lines mean different things."""
    run = _SHAPE.format(p="    ")
    return [
        f"kind: ConfigMap\nmetadata:\n  labels:\n    z: z\n{run}",  # plain: the plan applies
        f"kind: Secret\nmetadata:\n  name: s\nstringData:\n  x:\n    z: z\n{run}"
        f"    token: {secret}\n",  # inside a Secret's data: every value masked
        f"apiVersion: v1\ndata:\n  x:\n    z: z\n{run}kind: Secret\n",  # held, then Secret
        f"spec:\n  env:\n  - name: A_TOKEN\n    q: r\n{run}    value: {secret}\n",  # env item
        f"metadata:\n  note: one\n{run}",  # continuation lines of `note`
        f"metadata:\n  labels:\n    z: z\n  password: {secret}\n{run}",
    ]


@needs_baseline
@pytest.mark.parametrize("clear", [False, True], ids=["cache-warm", "cache-cleared-between"])
def test_one_shape_in_every_context_is_masked_as_before(clear: bool) -> None:
    secret = _secret()
    docs = _contexts(secret)
    filler = "".join(  # as many distinct shapes as the cache holds: it clears on the way
        f"---\nkind: ConfigMap\nmetadata:\n  n: x\n  m{i}: y\n  o: z\n"
        for i in range(_PLANS_MAX + 3)
    )
    stream = ("---\n" + filler if clear else "---\n").join(docs) + "---\n" + "".join(docs)
    for out in _same_everywhere(stream.encode(), splits=False):
        assert secret.encode() not in out
    # Each context alone, with the plan for the shape already cached (or not).
    for doc in docs:
        if clear:
            _PLANS.clear()
        for out in _same_everywhere(doc.encode()):
            assert secret.encode() not in out


# -- generated attacks

_KEYS = st.sampled_from(
    [
        "a", "b", "name", "value", "kind", "data", "stringData", "binaryData", "env", "labels",
        "annotations", "metadata", "items", "password", "token", "apiKey", "clientSecret",
        "db-password", "auth", "x.io/y", "kubectl.kubernetes.io/last-applied-configuration",
        "spec", "k8s", "eyJ", "AKIA", "Bearer", "data0", "envFrom",
    ]
)  # fmt: skip
# Value pieces: the run alphabet, the letters it guards and the words they may start.
_VALUE_PIECE = st.one_of(
    st.sampled_from(
        [
            "A", "B", "J", "b", "k", "e", "y", "ey", "KIA", "SIA", "BIA", "CCA", "EGIN", "earer",
            "EARER", "8s-aws-v1", "-----", "1", "1:", ":", "/", "//", "@", "=", " ", "'", '"',
            "#", "|", ">", "x", "-", ".", "\t", "é", "Secret", "v1", "{", "[",
        ]
    ),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
)  # fmt: skip
_VALUE = st.lists(_VALUE_PIECE, min_size=1, max_size=8).map("".join)
_PREFIXES = [
    "kind: ConfigMap\nmetadata:\n  labels:\n    z: z\n",
    "kind: Secret\nmetadata:\n  name: s\nstringData:\n  z: z\n",
    "apiVersion: v1\ndata:\n  z: z\n",  # held: the kind comes (or not) at the end
    "spec:\n  env:\n  - name: DB_PASSWORD\n    z: z\n",
    "apiVersion: v1\nitems:\n- apiVersion: v1\n  metadata:\n    z: z\n",
    "metadata:\n  note: one two\n",
    "metadata:\n  labels:\n    z: z\n    cert: -----BEGIN CERTIFICATE-----\n",
]
_SUFFIXES = ["", "kind: Secret\n", "kind: ConfigMap\n", "---\n", "    -----END CERTIFICATE-----\n"]


@st.composite
def _runs(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """Plain-looking lines at wandering indents after a context, a secret or two planted
    under secret-like keys, fed in arbitrary pieces."""
    secrets = [_secret(), _secret()]
    lines = []
    indent = 4
    for _ in range(draw(st.integers(1, 24))):
        step = draw(st.sampled_from([0, 0, 0, 2, -2, -4, 1]))
        indent = max(0, indent + step)
        key = draw(_KEYS)
        how = draw(st.integers(0, 9))
        if how == 0:
            lines.append(f"{' ' * indent}{key}:")
        elif how == 1:
            lines.append(f"{' ' * indent}- {key}: {draw(_VALUE)}")
        elif how == 2:
            lines.append(f"{' ' * indent}password: {secrets[0]}")
        elif how == 3:
            lines.append(f"{' ' * indent}{key}: {secrets[1]}")
        else:
            lines.append(f"{' ' * indent}{key}: {draw(_VALUE)}")
    doc = draw(st.sampled_from(_PREFIXES)) + "\n".join(lines) + "\n"
    doc += draw(st.sampled_from(_SUFFIXES))
    return doc.encode(), secrets


@needs_baseline
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    doc=_runs(),
    sizes=st.lists(st.integers(1, 120), max_size=4),
    assume_secret=st.booleans(),
    crlf=st.integers(0, 5),
)
def test_generated_runs_are_masked_as_before(
    doc: tuple[bytes, list[str]], sizes: list[int], assume_secret: bool, crlf: int
) -> None:
    data, secrets = doc
    if crlf == 0:
        data = data.replace(b"\n", b"\r\n")
    elif crlf == 1:
        data = data.replace(b"\n", b"\r\n", 2)  # mixed line ends
    kw = {"assume_secret": assume_secret}
    before = _feed(_BASE, [data], **kw)[0] if _BASE else b""
    masked = [s.encode() for s in secrets if s.encode() not in before]
    for pieces in (_chunked(data, sizes), [data]):
        out = _same(pieces, **kw)
        assert not [s for s in masked if s in out]


@needs_baseline
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=_runs(), cut=st.integers(0, 10_000))
def test_generated_runs_cut_in_two_anywhere_are_masked_as_before(
    doc: tuple[bytes, list[str]], cut: int
) -> None:
    data = doc[0]
    i = cut % (len(data) + 1)
    _same([data[:i], data[i:]], assume_secret=True)


# -- what a run may copy: never a value VALUE_TRIGGER would send to the text rules

RUN_VALUE = re.compile(_RUN_VALUE)
_SMALL_ALPHABET = "AKISBCJeyEGNbarkw8s-v1:/@= x\t\"'"


def test_no_short_run_value_over_the_trigger_letters_holds_a_trigger() -> None:
    """Every string of up to 4 characters over the trigger words' letters."""
    leaks = []
    for n in range(1, 5):
        for chars in itertools.product(_SMALL_ALPHABET, repeat=n):
            value = "".join(chars).encode()
            if RUN_VALUE.fullmatch(value) and VALUE_TRIGGER.search(value):
                leaks.append(value)
    assert leaks == []


_TRIGGER_WORDS = ["eyJ", "AKIA", "ASIA", "ABIA", "ACCA", "-----BEGIN", "k8s-aws-v1", "Bearer"]


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    before=st.text(alphabet=_SMALL_ALPHABET + "0123456789", max_size=6),
    word=st.sampled_from(
        [*_TRIGGER_WORDS, "bearer", "BEARER", "://", "@", "x=", "a:", "_ :", "'\t="]
    ),
    after=st.text(alphabet=_SMALL_ALPHABET + "0123456789", max_size=6),
)
def test_a_run_value_never_holds_a_trigger_word_whatever_surrounds_it(
    before: str, word: str, after: str
) -> None:
    value = (before + word + after).encode()
    assert VALUE_TRIGGER.search(value) is not None
    assert RUN_VALUE.fullmatch(value) is None


# -- placeholders: the hand-made HMAC


def test_hand_made_hmac_equals_hmac_digest_for_every_key_length_up_to_300() -> None:
    values = (b"", b"x", os.urandom(55), os.urandom(64), os.urandom(200))
    for n in range(301):
        for key in (os.urandom(n), b"\x36" * n, b"\x5c" * n):
            d = Digester(key)
            for value in values:
                if key:
                    want = b"hmac-sha256:" + hmac.digest(key, value, "sha256")[:4].hex().encode()
                else:  # an empty key: plain SHA-256, as before
                    want = b"sha256:" + hashlib.sha256(value).hexdigest()[:8].encode()
                assert d.placeholder(value) == b"<masked:" + want + b">", n
                h = d.new()
                h.update(value)
                assert d.finish(h) == b"<masked:" + want + b">", n
