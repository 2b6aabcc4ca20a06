"""Differential test: the masker against a baseline copy of itself, byte for byte.

The baseline is the masker as it was before its batch-of-lines rewrite (BASE_COMMIT),
taken from git history (`git archive`), or the `src` directory named by
`JITKUBE_MASK_BASELINE` (for later optimisation work: `git archive HEAD src | tar -x -C
/tmp/mask-base`, then `JITKUBE_MASK_BASELINE=/tmp/mask-base/src`). Every input below is
fed to both maskers in the same chunkings; outputs and masked counts must be identical.
When masking changes on purpose, move BASE_COMMIT to that change. Without git history
(an sdist, a shallow clone) and without the variable, the module is skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.baseline import baseline_src, load_masker
from jitkube.masking import Masker

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
# The masker before the batch-of-lines rewrite of yaml_lines.py / stream.py.
BASE_COMMIT = "0b739d606b04ab596fba0a479279c92e0cf70e30"


BASELINE = baseline_src(BASE_COMMIT, "JITKUBE_MASK_BASELINE", "jitkube/masking/stream.py", "mask")

pytestmark = pytest.mark.skipif(
    not BASELINE,
    reason=f"no baseline masker: JITKUBE_MASK_BASELINE unset and commit {BASE_COMMIT[:12]} "
    "not in this checkout's git history",
)

MakeMasker = Callable[..., Masker]


_BASE: MakeMasker | None = load_masker(BASELINE) if BASELINE else None

CHUNKS = (1, 7, 64 << 10, 0)  # 0: the whole input in one feed


def _run(make: MakeMasker, data: bytes, chunk: int, mode: str, **kw: object) -> tuple[bytes, int]:
    m = make(mode, **kw)
    out = []
    if chunk <= 0:
        out.append(m.feed(data))
    else:
        for i in range(0, len(data), chunk):
            out.append(m.feed(data[i : i + chunk]))
    out.append(m.close())
    return b"".join(out), m.masked_count


def _run_sizes(
    make: MakeMasker, data: bytes, sizes: list[int], mode: str, **kw: object
) -> tuple[bytes, int]:
    m = make(mode, **kw)
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append(m.feed(data[pos : pos + n]))
        pos += n
        i += 1
    out.append(m.close())
    return b"".join(out), m.masked_count


def same(data: bytes, mode: str, chunks: tuple[int, ...] = CHUNKS, **kw: object) -> None:
    assert _BASE is not None
    for chunk in chunks:
        got = _run(Masker, data, chunk, mode, **kw)
        want = _run(_BASE, data, chunk, mode, **kw)
        if got != want:  # a short message: the inputs hold (made-up) secrets
            n = next(
                (i for i, (a, b) in enumerate(zip(got[0], want[0], strict=False)) if a != b),
                min(len(got[0]), len(want[0])),
            )
            line = data[:n].count(b"\n") + 1
            pytest.fail(
                f"mode={mode} chunk={chunk} {kw}: output differs at byte {n} "
                f"(lengths {len(got[0])}/{len(want[0])}, counts {got[1]}/{want[1]}); "
                f"near input line {line} (if the input was fed whole)"
            )


# -- the benchmark stream


def _bench_stream(total: int, mode: str, helm: bool) -> bytes:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import masking_throughput
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return b"".join(masking_throughput.stream(total, mode, helm))


@pytest.mark.parametrize("mode", ["yaml", "json"])
@pytest.mark.parametrize("helm", [True, False])
def test_benchmark_stream_is_masked_identically(mode: str, helm: bool) -> None:
    big = _bench_stream(4 << 20, mode, helm)
    same(big, mode, (64 << 10, 0), key=b"benchmark-key")
    same(big, mode, (4093,))
    small = _bench_stream(200 << 10, mode, helm)
    same(small, mode, (1, 7), key=b"benchmark-key")


@pytest.mark.parametrize("mode", ["yaml", "json"])
def test_benchmark_stream_with_small_max_line(mode: str) -> None:
    data = _bench_stream(1 << 20, mode, True)
    same(data, mode, (7, 4096, 0), max_line=8192)
    same(data, mode, (64 << 10,), assume_secret=False, max_line=1024)


# -- fixtures of the masking suite and the manifests under tests/data


def _fixtures() -> Iterator[tuple[str, bytes]]:
    import test_masking as tm

    yield "SECRET_YAML", tm.SECRET_YAML.encode()
    yield "CONFIGMAP_YAML", tm.CONFIGMAP_YAML.encode()
    yield "POD_YAML", tm.POD_YAML.encode()
    yield "LOG", tm.LOG.encode()
    yield "secret_json", (tm.secret_json("a", "x" * 12) + tm.secret_json("b", "y", 2)).encode()
    for name, data in tm.SAMPLES.items():
        yield f"SAMPLES[{name}]", data
    for path in sorted((TESTS / "data").rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".json", ".txt"):
            yield str(path.relative_to(TESTS)), path.read_bytes()


FIXTURES = dict(_fixtures()) if BASELINE else {}


@pytest.mark.parametrize("name", sorted(FIXTURES))
@pytest.mark.parametrize("mode", ["yaml", "json", "text", "values", "raw"])
def test_fixtures_are_masked_identically(name: str, mode: str) -> None:
    data = FIXTURES[name]
    same(data, mode)
    same(data, mode, (1, 0), assume_secret=False, key=b"k")
    same(data.replace(b"\n", b"\r\n"), mode, (1, 7, 0))
    same(data, mode, (3, 0), max_line=64)


# -- generated YAML-ish documents

_WORD = st.sampled_from(
    [
        "apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations",
        "data", "stringData", "binaryData", "type", "spec", "containers", "env", "value",
        "valueFrom", "args", "command", "items", "token", "password", "clientSecret",
        "client-key-data", "certificate-authority-data", "id-token", "apiKey", "uid",
        "resourceVersion", "tls.crt", "tls.key", ".dockerconfigjson", "release", "x",
        "kubectl.kubernetes.io/last-applied-configuration", "refreshToken", "users",
    ]
)  # fmt: skip
# An AWS-key-shaped value built at run time (no key-like literal in the repository).
_FAKE_AWS_KEY_ID = "AKIA" + "".join(chr(ord("A") + (7 * i) % 26) for i in range(16))
_SCALAR = st.one_of(
    st.sampled_from(
        [
            "v1", "Secret", "ConfigMap", "Pod", "List", "Opaque", "true", "false", "null",
            "REDACTED", "DATA+OMITTED", '""', "''", "--token", "--password=x", "-",
            "PASSWORD", "DB_PASSWORD", "API_TOKEN", "HOME", "c2VjcmV0LXZhbHVl",
            "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "|", "|-", ">",
            ">-", "|2", '{"a":"b"}', "[1, 2]", "{}", "[]", "a: b", "x #y", "'it''s'",
            '"q\\"uote"', _FAKE_AWS_KEY_ID, "ghp_" + "a" * 36, "- x", "#c", "...",
            "---", "key:", '"k": v',
        ]
    ),
    st.text(alphabet="abcxyzAB019+/=:-# '\"|>{}[]é\t", max_size=30),
    st.text(alphabet="abcdefXYZ0123456789+/", min_size=40, max_size=400),
)  # fmt: skip


@st.composite
def _node(draw: st.DrawFn, indent: int, depth: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.integers(0, 9 if depth < 4 else 3))
        key = draw(_WORD)
        if draw(st.integers(0, 15)) == 0:
            key = f'"{key}"'
        if kind <= 3:
            lines.append(f"{pad}{key}: {draw(_SCALAR)}".rstrip(" ") if kind else f"{pad}{key}:")
        elif kind == 4:  # block scalar
            lines.append(f"{pad}{key}: {draw(st.sampled_from(['|', '|-', '>', '>-', '|+']))}")
            for text in draw(st.lists(_SCALAR, min_size=0, max_size=4)):
                lines.append(f"{pad}  {text}".rstrip(" ") if text != "" else "")
        elif kind == 5:  # folded plain / quoted continuation
            lines.append(f"{pad}{key}: {draw(_SCALAR)}")
            for text in draw(st.lists(_SCALAR, min_size=1, max_size=3)):
                lines.append(f"{pad}  {text}")
        elif kind == 6:  # sequence at the key's indent (kubectl style) or deeper
            lines.append(f"{pad}{key}:")
            sub = indent + draw(st.sampled_from([0, 2]))
            for _ in range(draw(st.integers(1, 3))):
                if draw(st.booleans()):
                    lines.append(f"{' ' * sub}- {draw(_SCALAR)}".rstrip(" "))
                else:
                    body = draw(_node(sub + 2, depth + 1))
                    lines.append(" " * sub + "- " + body[0].lstrip(" "))
                    lines.extend(body[1:])
        elif kind == 7:  # env list
            lines.append(f"{pad}env:")
            for _ in range(draw(st.integers(1, 3))):
                name = draw(st.sampled_from(["DB_PASSWORD", "HOME", "API_TOKEN", "X", "KEY"]))
                lines.append(f"{pad}- name: {name}")
                if draw(st.booleans()):
                    lines.append(f"{pad}  value: {draw(_SCALAR)}")
                else:
                    lines.append(f"{pad}  valueFrom:")
                    lines.append(f"{pad}    secretKeyRef:")
                    lines.append(f"{pad}      key: {draw(_SCALAR)}")
        else:  # nested mapping
            lines.append(f"{pad}{key}:")
            lines.extend(draw(_node(indent + 2, depth + 1)))
    return lines


@st.composite
def _document(draw: st.DrawFn) -> list[str]:
    lines = []
    if draw(st.booleans()):
        lines.append("apiVersion: v1")
    if draw(st.booleans()):
        lines.append("data:")
        for _ in range(draw(st.integers(0, 4))):
            lines.append(f"  {draw(_WORD)}: {draw(_SCALAR)}".rstrip(" "))
    if draw(st.booleans()):
        lines.append(f"kind: {draw(st.sampled_from(['Secret', 'ConfigMap', 'List', 'Pod']))}")
    if draw(st.booleans()):  # not sorted: the kind is known before the data
        lines.append(f"{draw(st.sampled_from(['data', 'stringData', 'binaryData']))}:")
        for _ in range(draw(st.integers(0, 4))):
            lines.append(f"  {draw(_WORD)}: {draw(_SCALAR)}".rstrip(" "))
    lines.append("metadata:")
    if draw(st.booleans()):
        lines.append("  annotations:")
        lines.append(
            "    kubectl.kubernetes.io/last-applied-configuration: |\n"
            '      {"apiVersion":"v1","kind":"Secret","stringData":{"password":"hunter2hunter2"}}'
        )
    lines.append(f"  name: {draw(_SCALAR)}")
    lines.extend(draw(_node(0, 0)))
    return lines


@st.composite
def _yaml_stream(draw: st.DrawFn) -> bytes:
    docs = draw(st.lists(_document(), min_size=1, max_size=3))
    sep = draw(st.sampled_from(["---", "--- ", "...\n---"]))
    text = ("\n" + sep + "\n").join("\n".join(d) for d in docs)
    if draw(st.booleans()):  # as a List: every document an item
        items = ["apiVersion: v1", "items:"]
        for d in docs:
            items.append("- " + d[0])
            items.extend("  " + line if line else "" for line in d[1:])
        items += ["kind: List", "metadata:", '  resourceVersion: ""']
        text = "\n".join(items)
    if draw(st.booleans()):
        text += "\n"
    if draw(st.integers(0, 4)) == 0:
        text = text.replace("\n", "\r\n")
    return text.encode()


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=_yaml_stream(),
    sizes=st.lists(st.integers(1, 200), min_size=1, max_size=8),
    assume_secret=st.booleans(),
    key=st.sampled_from([None, b"k"]),
)
def test_generated_yaml_is_masked_identically(
    data: bytes, sizes: list[int], assume_secret: bool, key: bytes | None
) -> None:
    same(data, "yaml", CHUNKS, assume_secret=assume_secret, key=key)
    assert _BASE is not None
    kw: dict[str, object] = {"assume_secret": assume_secret}
    assert _run_sizes(Masker, data, sizes, "yaml", **kw) == _run_sizes(
        _BASE, data, sizes, "yaml", **kw
    )


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    lines=st.lists(
        st.tuples(st.integers(0, 8), st.sampled_from(["", "- ", "- - "]), _WORD, _SCALAR),
        max_size=40,
    ),
    assume_secret=st.booleans(),
    max_line=st.sampled_from([1 << 20, 64]),
)
def test_line_soup_is_masked_identically(
    lines: list[tuple[int, str, str, str]], assume_secret: bool, max_line: int
) -> None:
    """Lines in random order at random indents: states no well-formed document reaches."""
    text = "\n".join(
        f"{' ' * n}{dash}{key}: {value}" if value != "---" else value
        for n, dash, key, value in lines
    )
    for mode in ("yaml", "json"):
        same(text.encode(), mode, (1, 5, 0), assume_secret=assume_secret, max_line=max_line)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 4),
            st.sampled_from(["", "- "]),
            _WORD,
            st.one_of(st.none(), _SCALAR, st.sampled_from(["v1", "Secret", "x-1", '"10"'])),
        ),
        min_size=1,
        max_size=40,
    ),
    listed=st.booleans(),
    assume_secret=st.booleans(),
)
def test_runs_of_plain_lines_are_masked_identically(
    rows: list[tuple[int, str, str, str | None]], listed: bool, assume_secret: bool
) -> None:
    """Mostly `key: value` and `key:` lines at wandering indents (the YAML masker takes
    runs of them in one piece), with the odd item, secret key or trigger among them."""
    text = "".join(
        f"{'  ' * n}{dash}{key}:{'' if value is None else ' ' + value}\n"
        for n, dash, key, value in rows
    )
    if listed:
        text = "apiVersion: v1\nitems:\n- kind: Secret\n" + "".join(
            "  " + line + "\n" for line in text.splitlines()
        )
    same(text.encode(), "yaml", (1, 64 << 10, 0), assume_secret=assume_secret)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=_yaml_stream(),
    long=st.integers(1000, 150_000),
)
def test_long_lines_are_masked_identically(data: bytes, long: int) -> None:
    filler = b"QUJD" * (long // 4)
    text = data.replace(b"c2VjcmV0LXZhbHVl", filler)
    text += b"\nkind: Secret\ndata:\n  big: " + filler + b"\n  b: x\n"
    same(text, "yaml", (4096, 0), max_line=65536)
    same(text, "yaml", (64 << 10,))


@pytest.mark.parametrize("kind", [b"Secret", b"ConfigMap", None])
def test_a_hold_past_its_limit_is_masked_identically(kind: bytes | None) -> None:
    """Secret-like data before `kind` beyond the 4 MiB hold, in a List and alone."""
    # The hold counts the placeholders' lines twice: 60,000 of them pass 4 MiB.
    data = b"".join(b"    k%d: QUJD\n" % i for i in range(60_000))
    kind_line = b"  kind: " + kind + b"\n" if kind else b""
    item = b"- apiVersion: v1\n  data:\n" + data + kind_line + b"  metadata:\n    name: x\n"
    listed = b"apiVersion: v1\nitems:\n" + item * 2 + b"kind: List\n"
    alone = item.replace(b"\n  ", b"\n")[2:]
    for assume_secret in (True, False):
        same(listed, "yaml", (64 << 10, 0), assume_secret=assume_secret)
        same(alone, "yaml", (4093,), assume_secret=assume_secret)
