"""Output masking: structured YAML/JSON, value-only templates, free-text patterns,
streaming (chunk boundaries, bounded lines), placeholders, the plan, and real kubectl
output from the sandbox cluster."""

from __future__ import annotations

import base64
import json
import re
import stat
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fixtures.cluster import KubeSession
from jitkube.kubectl.parser import parse
from jitkube.masking import (
    PLACEHOLDER_RE,
    Masker,
    load_or_create_key,
    plan_masking,
    template_is_safe,
)
from jitkube.risk import assess
from jitkube.sandbox.cluster_seed import FakeCredentials

PH = re.compile(rb"<masked:(?:sha256|hmac-sha256):[0-9a-f]{8}>")
CREDS = FakeCredentials.generate()  # random per run: nothing key-like is committed
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def mask(data: bytes | str, mode: str = "text", **kw: object) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    m = Masker(mode, **kw)  # type: ignore[arg-type]
    return m.feed(raw) + m.close()


def mask_chunks(data: bytes, sizes: Iterable[int], mode: str = "text", **kw: object) -> bytes:
    m = Masker(mode, **kw)  # type: ignore[arg-type]
    out, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(m.feed(data[pos : pos + size]))
        pos += size
    out.append(m.feed(data[pos:]))
    out.append(m.close())
    return b"".join(out)


def assert_hidden(out: bytes, *values: str) -> None:
    for value in values:
        for form in (value, b64(value)):
            for line in form.splitlines():
                assert line.encode() not in out, f"{line[:12]}… leaked"


# --------------------------------------------------------------------------- samples

SECRET_YAML = f"""apiVersion: v1
data:
  password: {b64(CREDS.db_password)}
  username: {b64("app")}
kind: Secret
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{{"apiVersion": "v1", "kind":
      "Secret", "metadata": {{"name": "db-credentials", "namespace": "prod"}}, "stringData":
      {{"username": "app", "password": "{CREDS.db_password}"}}, "type": "Opaque"}}'
  creationTimestamp: "2026-11-29T02:22:10Z"
  labels:
    app: api
  name: db-credentials
  namespace: prod
type: Opaque
"""

CONFIGMAP_YAML = """apiVersion: v1
data:
  LOG_LEVEL: info
  app.properties: |
    db.host=db.prod.svc
    db.password=correct-horse-battery
kind: ConfigMap
metadata:
  name: app-config
  namespace: prod
"""

POD_YAML = f"""apiVersion: v1
kind: Pod
metadata:
  name: api-0
  namespace: prod
spec:
  containers:
  - env:
    - name: LOG_LEVEL
      value: info
    - name: DB_PASSWORD
      value: {CREDS.db_password}
    - name: AWS_SECRET_ACCESS_KEY
      value: {CREDS.aws_secret_access_key}
    - name: API_TOKEN
      valueFrom:
        secretKeyRef:
          key: token
          name: api-token
    image: example.com/api:2.3.1
    name: api
  automountServiceAccountToken: true
"""


def secret_json(name: str, value: str, indent: int = 4) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "data": {"token": b64(value)},
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "prod"},
            "type": "Opaque",
        },
        indent=indent,
    )


LOG = "\n".join(
    [
        "2026-01-01T00:00:00Z INFO starting api in prod/api-0",
        f"connecting to postgres://app:{CREDS.db_password}@db.prod.svc:5432/app",
        f"env AWS_ACCESS_KEY_ID={CREDS.aws_access_key_id}",
        f"creds {CREDS.aws_access_key_id} {CREDS.aws_secret_access_key}",
        f"outgoing Authorization: Bearer {CREDS.jwt}",
        f"token={CREDS.api_token}&user=bob",
        f'{{"level":"debug","password":"{CREDS.db_password}","msg":"login ok"}}',
        "eks k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5",
        "loaded key:",
        *CREDS.pem_private_key.splitlines(),
        "2026-01-01T00:00:05Z INFO ready",
        "",
    ]
)


# --------------------------------------------------------------------------- structured


def test_yaml_secret_data_and_last_applied_are_masked_and_metadata_stays() -> None:
    out = mask(SECRET_YAML, "yaml")
    assert_hidden(out, CREDS.db_password, "YXBw")
    for kept in (b"name: db-credentials", b"namespace: prod", b"kind: Secret", b"app: api"):
        assert kept in out
    assert re.search(rb"\n  password: <masked:sha256:[0-9a-f]{8}>\n", out)
    last_applied = rb"    kubectl.kubernetes.io/last-applied-configuration: <masked:sha256:\w{8}>\n"
    assert re.search(last_applied + rb"  creationTimestamp", out), out.decode()


def test_yaml_configmap_data_is_kept_but_credentials_inside_it_are_masked() -> None:
    out = mask(CONFIGMAP_YAML, "yaml")
    assert b"LOG_LEVEL: info" in out
    assert b"db.host=db.prod.svc" in out
    assert b"correct-horse-battery" not in out
    assert b"db.password=<masked:" in out


def test_yaml_object_without_kind_counts_as_a_secret_only_when_the_plan_says_so() -> None:
    doc = f"data:\n  note: {b64('hunter2hunter2')}\nmetadata:\n  name: x\n"
    assert b64("hunter2hunter2").encode() not in mask(doc, "yaml", assume_secret=True)
    assert b64("hunter2hunter2").encode() in mask(doc, "yaml", assume_secret=False)


def test_yaml_env_values_with_secret_like_names_are_masked() -> None:
    out = mask(POD_YAML, "yaml")
    assert_hidden(out, CREDS.db_password, CREDS.aws_secret_access_key)
    assert b"value: info" in out
    assert b"name: DB_PASSWORD" in out
    assert b"name: api-token" in out
    assert b"key: token" in out
    assert b"automountServiceAccountToken: true" in out


def test_yaml_block_scalars_and_folded_values_are_masked_whole() -> None:
    doc = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n"
        "  config: |\n    user=admin\n    pass=opensesame\n  note: plain\n"
        "type: Opaque\n"
    )
    out = mask(doc, "yaml")
    assert b"opensesame" not in out
    assert b"user=admin" not in out
    assert re.search(rb"  config: <masked:sha256:\w{8}>\n  note: <masked", out), out.decode()
    assert out.endswith(b"type: Opaque\n")


def test_json_secret_and_configmap() -> None:
    out = mask(secret_json("api-token", CREDS.api_token), "json")
    assert_hidden(out, CREDS.api_token)
    assert json.loads(out)["metadata"]["name"] == "api-token"
    assert PH.fullmatch(json.loads(out)["data"]["token"].encode())
    cm = json.dumps(
        {"apiVersion": "v1", "data": {"token_ttl": "300"}, "kind": "ConfigMap"}, indent=4
    )
    assert json.loads(mask(cm, "json"))["data"]["token_ttl"] == "300"


def test_json_pod_env_and_last_applied() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"x": 1})
            },
            "name": "api-0",
        },
        "spec": {
            "containers": [
                {
                    "env": [
                        {"name": "DB_PASSWORD", "value": CREDS.db_password},
                        {"name": "LOG_LEVEL", "value": "info"},
                    ],
                    "name": "api",
                }
            ]
        },
    }
    out = json.loads(mask(json.dumps(pod, indent=4), "json"))
    env = out["spec"]["containers"][0]["env"]
    assert PH.fullmatch(env[0]["value"].encode())
    assert env[1]["value"] == "info"
    annotations = out["metadata"]["annotations"]
    assert PH.fullmatch(annotations["kubectl.kubernetes.io/last-applied-configuration"].encode())


def test_kubeconfig_credentials_are_masked_and_public_certificates_kept() -> None:
    config = f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    server: https://example.eks.amazonaws.com
  name: prod
users:
- name: admin
  user:
    client-key-data: {b64(CREDS.pem_private_key)}
    token: {CREDS.api_token}
- name: oidc
  user:
    auth-provider:
      config:
        client-secret: {CREDS.db_password}
        id-token: {CREDS.jwt}
- name: redacted
  user:
    token: REDACTED
"""
    out = mask(config, "yaml")
    assert_hidden(out, CREDS.api_token, CREDS.db_password, CREDS.jwt)
    assert b64(CREDS.pem_private_key).encode() not in out
    assert b"certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t" in out
    assert b"token: REDACTED" in out


@pytest.mark.parametrize("mode", ["yaml", "json"])
def test_watch_streams_of_several_documents_are_masked_document_by_document(mode: str) -> None:
    if mode == "yaml":
        docs = [
            f"apiVersion: v1\ndata:\n  note: {b64(v)}\nkind: Secret\nmetadata:\n  name: s{i}\n"
            for i, v in enumerate((CREDS.api_token, CREDS.db_password, "cm-value"))
        ]
        docs[2] = docs[2].replace("kind: Secret", "kind: ConfigMap")
        stream = "---\n".join(docs)
    else:
        stream = "\n".join(secret_json(f"s{i}", v) for i, v in enumerate(("a" * 9, "b" * 9)))
    m = Masker(mode)  # type: ignore[arg-type]
    first_doc = stream[: stream.index("\n", stream.index("s0")) + 1].encode()
    early = m.feed(first_doc)
    rest = m.feed(stream.encode()[len(first_doc) :]) + m.close()
    out = early + rest
    assert b"name: s0" in early or b'"name": "s0"' in early  # released before the stream ends
    assert_hidden(out, CREDS.api_token, CREDS.db_password, "a" * 9, "b" * 9)
    if mode == "yaml":
        assert b64("cm-value").encode() in out  # the ConfigMap's data is not a secret
        assert out.count(b"---\n") == 2


def test_raw_json_lines_are_parsed_and_masked() -> None:
    line = json.dumps(
        {"kind": "SecretList", "items": [{"kind": "Secret", "data": {"k": b64("v4lue!")}}]}
    )
    out = mask(line + "\n", "raw")
    assert b64("v4lue!").encode() not in out
    assert json.loads(out)["kind"] == "SecretList"


# --------------------------------------------------------------------------- values mode


@pytest.mark.parametrize(
    ("output", "keep"),
    [
        (f'{{"jwt":"{b64(CREDS.jwt)}","token":"{b64(CREDS.api_token)}"}}', [b'"jwt":"<masked']),
        (f"jwt={b64(CREDS.jwt)}\ntoken={b64(CREDS.api_token)}\n", [b"jwt=<masked", b"token="]),
        (
            f"NAME   DATA\napi-token   map[jwt:{b64(CREDS.jwt)} token:{b64(CREDS.api_token)}]\n",
            [b"NAME   DATA", b"api-token", b"map[jwt:<masked", b"]"],
        ),
    ],
    ids=["jsonpath", "go-template", "custom-columns"],
)
def test_values_mode_masks_every_token_but_keys(output: str, keep: list[bytes]) -> None:
    out = mask(output, "values", keep=frozenset({b"NAME", b"DATA", b"api-token"}))
    assert_hidden(out, CREDS.jwt, CREDS.api_token)
    for kept in keep:
        assert kept in out


def test_custom_columns_keep_leading_metadata_columns_and_mask_the_rest() -> None:
    argv = ["get", "secrets", "-A", "-o", "custom-columns=NAME:.metadata.name,DATA:.data"]
    inv = parse(argv)
    plan = plan_masking(inv, assess(inv))
    assert plan is not None
    assert plan.columns == (b"NAME", b"DATA")
    assert plan.safe_columns == 1
    rows = (
        "NAME              DATA\n"
        f"api-token         map[token:{b64(CREDS.api_token)}]\n"
        f"db-credentials    map[password:{b64(CREDS.db_password)} username:YXBw]\n"
        # misaligned (a later flush): the value starts left of DATA and must not leak
        f"x   map[token:{b64(CREDS.jwt)}]\n"
    )
    m = plan.stdout_masker()
    out = m.feed(rows.encode()) + m.close()
    assert_hidden(out, CREDS.api_token, CREDS.db_password, CREDS.jwt)
    assert b"api-token         map[token:<masked:" in out
    assert b"db-credentials    map[password:<masked:" in out
    assert b"YXBw" not in out


@pytest.mark.parametrize(
    ("expr", "safe"),
    [
        ("{.metadata.name}", True),
        ("{range .items[*]}{.metadata.name}{'\\n'}{end}", False),  # quoted literal: unsafe
        ('{range .items[*]}{.metadata.name}{"\\n"}{end}', True),
        ('{{range .items}}{{.metadata.name}}{{"\\n"}}{{end}}', True),
        ("NAME:.metadata.name,NS:.metadata.namespace", True),
        ("{.data}", False),
        ("{.data.password}", False),
        ("{.metadata.annotations}", False),
        ("{.metadata}", False),
        ("{.items[*]}", False),
        ("{..name}", False),
        ('{.items[?(@.data.x=="y")].metadata.name}', False),
        ("{{range $k, $v := .data}}{{$k}}{{end}}", False),
        ("{{.}}", False),
        ("{@}", False),
        ("{.spec.containers[*].env}", False),
        ("{.spec.containers[*].image}", True),
        ("NAME:.metadata.name,DATA:.data", False),
    ],
)
def test_template_safety(expr: str, safe: bool) -> None:
    assert template_is_safe(expr) is safe


# --------------------------------------------------------------------------- text


def test_log_credentials_are_masked_and_prose_stays() -> None:
    out = mask(LOG)
    assert_hidden(
        out,
        CREDS.db_password,
        CREDS.aws_access_key_id,
        CREDS.aws_secret_access_key,
        CREDS.jwt,
        CREDS.api_token,
        CREDS.pem_private_key,
    )
    assert b"aHR0cHM6Ly9zdHMuYW1hem9u" not in out
    for kept in (
        b"INFO starting api in prod/api-0",
        b"postgres://app:<masked:",
        b"@db.prod.svc:5432/app",
        b"&user=bob",
        b'"msg":"login ok"',
        b"INFO ready",
    ):
        assert kept in out
    # the PEM block becomes one placeholder line
    assert re.search(rb"loaded key:\n<masked:sha256:\w{8}>\n2026", out)


@pytest.mark.parametrize(
    "prefix", ["[pod/api-0/api] ", "2026-01-01T00:00:04.123456789Z ", "2026-01-01T00:00:04Z "]
)
def test_pem_blocks_in_prefixed_log_lines_are_masked(prefix: str) -> None:
    lines = ["loaded key:", *CREDS.pem_private_key.splitlines(), "INFO ready"]
    text = "\n".join(prefix + line for line in lines) + "\n"
    out = mask(text)
    assert_hidden(out, CREDS.pem_private_key)
    assert out.endswith(f"{prefix}INFO ready\n".encode())


@pytest.mark.parametrize("head", ["loaded key: ", "[pod/api-0/api] key=", "\t"])
def test_a_pem_block_that_starts_mid_line_is_masked_whole(head: str) -> None:
    """Text before BEGIN on its line, body lines at column 0: the body must not leak."""
    first, *rest = CREDS.pem_private_key.splitlines()
    text = "\n".join([head + first, *rest, "INFO ready"]) + "\n"
    for out in (mask(text), mask_chunks(text.encode(), [7, 1, 64, 3])):
        assert_hidden(out, CREDS.pem_private_key)
        for body in rest[1:-1]:
            assert body.encode() not in out
        assert out.endswith(b"INFO ready\n")


def test_describe_pod_environment_values_are_masked() -> None:
    text = (
        "    Environment:\n"
        "      LOG_LEVEL:              info\n"
        f"      DB_PASSWORD:            {CREDS.db_password}\n"
        "      SECRET_PHRASE:          open sesame now\n"
        "      API_TOKEN:              <set to the key 'token' in secret 'api-token'>"
        "  Optional: false\n"
    )
    out = mask(text)
    assert_hidden(out, CREDS.db_password, "open sesame now")
    assert b"LOG_LEVEL:              info" in out
    assert b"<set to the key 'token' in secret 'api-token'>" in out


def test_verbose_stderr_bodies_are_masked_structurally() -> None:
    body = json.dumps(
        {"kind": "Secret", "metadata": {"name": "x"}, "data": {"password": b64("pa55w0rd!")}}
    )
    line = f'I1129 helper.go:105] "Response Body" body={json.dumps(body)}\n'
    header = f"I1129 round_trippers.go:480]     Authorization: Bearer {CREDS.jwt}\n"
    masked_header = "I1129 round_trippers.go:480]     Authorization: Bearer <masked>\n"
    out = mask(line + header + masked_header)
    assert b64("pa55w0rd!").encode() not in out
    assert CREDS.jwt.encode() not in out
    assert b'\\"name\\": \\"x\\"' in out
    assert masked_header.encode() in out


def test_describe_configmap_values_of_secret_like_keys_are_masked() -> None:
    text = "Data\n====\nDB_PASSWORD:\n----\nhunter2\nline two\n\nLOG_LEVEL:\n----\ninfo\n\n"
    out = mask(text)
    assert b"hunter2" not in out
    assert b"line two" not in out
    assert b"LOG_LEVEL:\n----\ninfo\n" in out


@pytest.mark.parametrize("mode", ["yaml", "json"])
def test_secret_flag_arguments_mask_the_value_that_follows(mode: str) -> None:
    obj = {"kind": "Config", "args": ["--region", "eu-west-1", "--token", CREDS.api_token]}
    if mode == "yaml":
        doc = f"args:\n- --region\n- eu-west-1\n- --token\n- {CREDS.api_token}\nkind: Config\n"
    else:
        doc = json.dumps(obj, indent=4)
    out = mask(doc, mode)
    assert CREDS.api_token.encode() not in out
    assert b"eu-west-1" in out


def test_watch_events_wrapping_secrets_are_masked() -> None:
    doc = (
        "object:\n  apiVersion: v1\n  data:\n"
        f"    token: {b64(CREDS.api_token)}\n  kind: Secret\n  metadata:\n    name: t\n"
        "type: ADDED\n"
    )
    out = mask(doc, "yaml", assume_secret=False)
    assert b64(CREDS.api_token).encode() not in out
    assert out.endswith(b"    name: t\ntype: ADDED\n")


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("aws_secret_access_key = {v}", "v"),
        ("aws_session_token={v}", "v"),
        ("    client-key-data: {v}", "v"),
        ("    client-secret: {v}", "v"),
        ("    refresh-token: {v}", "v"),
        ('{{"auths":{{"r":{{"username":"u","password":"{v}","auth":"{v}"}}}}}}', "v"),
        ("DATABASE_URL=mysql://root:{v}@db:3306/app", "v"),
        ("curl -H 'Authorization: Basic {v}' https://x", "v"),
        ("X-Amz-Security-Token={v}&X-Amz-Signature=abc", "v"),
        ("{jwt}", "jwt"),
        ("export API_KEY={v}", "v"),
    ],
)
def test_credential_patterns_in_exec_output(line: str, secret: str) -> None:
    value = "Zq8" + CREDS.api_token[:17]
    text = line.format(v=value, jwt=CREDS.jwt)
    out = mask(text)  # no trailing newline: `exec -- cat file` output ends anyhow
    assert (value if secret == "v" else CREDS.jwt).encode() not in out
    assert PH.search(out)


def test_env_listing_from_set_env_and_exec_env() -> None:
    out = mask(f"DB_PASSWORD={CREDS.db_password}\nHOME=/root\nGITHUB_TOKEN=ghp_abcdef123456\n")
    assert_hidden(out, CREDS.db_password, "ghp_abcdef123456")
    assert b"HOME=/root" in out


# --------------------------------------------------------------------------- streaming


def test_pem_split_across_chunks_is_still_masked() -> None:
    data = LOG.encode()
    begin = data.index(b"-----BEGIN")
    for cut in range(begin - 3, begin + 40):
        out = mask_chunks(data, [cut, 7, 13])
        assert CREDS.pem_private_key.splitlines()[1].encode() not in out


SAMPLES = {
    "yaml": (SECRET_YAML + "---\n" + POD_YAML + "---\n" + CONFIGMAP_YAML).encode(),
    "json": (secret_json("a", "x" * 12) + "\n" + secret_json("b", "y" * 12, 2)).encode(),
    "text": LOG.encode(),
    "values": f"jwt={b64(CREDS.jwt)}\nmap[a:{b64('zz')}]\n".encode(),
}


@pytest.mark.parametrize("mode", list(SAMPLES))
def test_every_single_byte_boundary_gives_the_same_result(mode: str) -> None:
    data = SAMPLES[mode]
    whole = mask(data, mode)
    for cut in range(1, len(data)):
        assert mask_chunks(data, [cut], mode) == whole, cut


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(list(SAMPLES)),
    sizes=st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=60),
)
def test_masking_does_not_depend_on_chunking(mode: str, sizes: list[int]) -> None:
    data = SAMPLES[mode]
    assert mask_chunks(data, sizes, mode) == mask(data, mode)


_NOISE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
    max_size=30,
)
_SECRET_VALUE = st.text(
    alphabet="abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12, max_size=40
)
_FORMS = [
    "password={v}",
    "db_password: {v}",
    '"token": "{v}"',
    "postgres://user:{v}@db:5432/x",
    "Authorization: Bearer {v}",
    "API_KEY={v}",
    "client-secret: {v}",
]


@settings(max_examples=200, deadline=None)
@given(
    before=_NOISE,
    after=_NOISE,
    value=_SECRET_VALUE,
    form=st.sampled_from(_FORMS),
    sizes=st.lists(st.integers(1, 64), max_size=20),
)
def test_credentials_in_random_surroundings_never_leak(
    before: str, after: str, value: str, form: str, sizes: list[int]
) -> None:
    assume(value not in before and value not in after)
    line = f"{before} {form.format(v=value)} {after}\n".encode()
    out = mask_chunks(line, sizes)
    assert value.encode() not in out
    assert out.endswith(b"\n")


_YAML_VALUE = st.text(
    alphabet=st.sampled_from(list("abcXYZ019 :=\"'#-,{}[]|>!%&*\n\tü")), min_size=1, max_size=120
)
_DATA = st.dictionaries(
    st.text(alphabet=st.sampled_from(list("abcz._-019")), min_size=1, max_size=10),
    _YAML_VALUE,
    min_size=1,
    max_size=5,
)


def _render(obj: object, fmt: str) -> bytes:
    """Print like kubectl: sorted keys; YAML sequences at their key's indent."""
    if fmt == "yaml":
        return yaml.safe_dump(obj, sort_keys=True, allow_unicode=True).encode()
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=_DATA,
    string=st.booleans(),
    fmt=st.sampled_from(["yaml", "json"]),
    env=st.lists(st.tuples(st.sampled_from(["DB_PASSWORD", "API_TOKEN", "X_SECRET"]), _YAML_VALUE)),
    chunk=st.integers(1, 300),
)
def test_any_secret_or_env_value_becomes_a_placeholder_and_the_output_still_parses(
    data: dict[str, str], string: bool, fmt: str, env: list[tuple[str, str]], chunk: int
) -> None:
    field = "stringData" if string else "data"
    values = data if string else {k: b64(v) for k, v in data.items()}
    annotation = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(data)}
    secret = {"kind": "Secret", "metadata": {"name": "s", "annotations": annotation}}
    secret[field] = values
    container = {"name": "c", "env": [{"name": n, "value": v} for n, v in env]}
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}}
    raw = _render({"apiVersion": "v1", "kind": "List", "items": [secret, pod]}, fmt)
    out = mask_chunks(raw, [chunk] * (len(raw) // chunk + 1), fmt)
    parsed = yaml.safe_load(out) if fmt == "yaml" else json.loads(out)
    masked_secret, masked_pod = parsed["items"]
    assert masked_secret["metadata"]["name"] == "s"
    assert all(PH.fullmatch(str(v).encode()) for v in masked_secret[field].values())
    assert PH.fullmatch(str(masked_secret["metadata"]["annotations"][LAST_APPLIED]).encode())
    for item in masked_pod["spec"]["containers"][0]["env"]:
        assert PH.fullmatch(str(item["value"]).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=_DATA, fmt=st.sampled_from(["yaml", "json"]), chunk=st.integers(1, 300))
def test_configmaps_pass_through_byte_for_byte(data: dict[str, str], fmt: str, chunk: int) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}
    raw = _render({"apiVersion": "v1", "kind": "List", "items": [cm, cm]}, fmt)
    assert mask_chunks(raw, [chunk] * (len(raw) // chunk + 1), fmt) == raw


def test_lines_are_released_as_soon_as_they_are_complete() -> None:
    m = Masker("text")
    assert m.feed(b"first line\nsecond") == b"first line\n"
    assert m.feed(b" half\n") == b"second half\n"
    assert m.close() == b""


def test_a_huge_line_is_bounded_and_its_giant_token_masked() -> None:
    m = Masker("text", max_line=1 << 16)
    blob = base64.b64encode(bytes(range(256)) * 2048)  # ~700 kB, no separator
    released = []
    for i in range(0, len(blob), 4096):
        released.append(m.feed(blob[i : i + 4096]))
        assert len(m._pending) <= (1 << 16) + 4096  # memory stays bounded
    released.append(m.feed(b" tail\n"))
    released.append(m.close())
    out = b"".join(released)
    assert PH.match(out)
    assert out.endswith(b" tail\n")
    assert len(out) < 100
    assert m.masked_count == 1


def test_a_huge_structured_value_is_masked_whole() -> None:
    big = "A" * (3 << 20)
    doc = f"apiVersion: v1\ndata:\n  big: {big}\n  small: {b64('x')}\nkind: ConfigMap\n"
    out = mask_chunks(doc.encode(), [65536] * 100, "yaml")
    assert big[:100].encode() not in out
    assert re.search(rb"  big: <masked:sha256:\w{8}>\n", out), out[:200]
    assert b"kind: ConfigMap" in out


@pytest.mark.parametrize("mode", ["yaml", "json"])
def test_an_oversized_value_keeps_its_place_among_the_lines_around_it(mode: str) -> None:
    big = "Q" * 5000
    obj = {"kind": "ConfigMap", "metadata": {"annotations": {"big": big, "b": "x"}, "name": "cm"}}
    if mode == "yaml":
        doc = f"kind: ConfigMap\nmetadata:\n  annotations:\n    big: {big}\n    b: x\n  name: cm\n"
    else:
        doc = json.dumps(obj, indent=4) + "\n"
    out = mask(doc, mode, max_line=1024)
    assert big[:50].encode() not in out
    if mode == "yaml":
        expected = rb"kind: ConfigMap\nmetadata:\n  annotations:\n    big: <masked:sha256:\w{8}>\n"
        assert re.fullmatch(expected + rb"    b: x\n  name: cm\n", out), out
    else:
        annotations = json.loads(out)["metadata"]["annotations"]
        assert annotations["b"] == "x"
        assert PH.fullmatch(annotations["big"].encode())


def test_crlf_and_unicode_survive() -> None:
    data = (
        "apiVersion: v1\r\ndata:\r\n  pässwort: "
        + b64("geheimnis-ü")
        + "\r\nkind: Secret\r\nmetadata:\r\n  name: größe-ß\r\n"
    ).encode()
    out = mask(data, "yaml")
    assert b64("geheimnis-ü").encode() not in out
    assert "  name: größe-ß\r\n".encode() in out
    assert out.count(b"\r\n") == data.count(b"\r\n")
    text = mask(f"naïve ☃ password=ünïcødé-{CREDS.db_password}\r\n".encode())
    assert text.startswith("naïve ☃ password=<masked:".encode())
    assert text.endswith(b">\r\n")


def test_invalid_utf8_passes_through_untouched() -> None:
    data = b"\xff\xfe binary \x00 line\n"
    assert mask(data) == data


# --------------------------------------------------------------------------- placeholders


def test_equal_values_get_equal_placeholders_across_formats() -> None:
    yaml_out = mask(SECRET_YAML, "yaml")
    pod_out = mask(POD_YAML, "yaml")
    log_out = mask(f"password={CREDS.db_password}\n")
    in_secret = re.search(rb"password: (<masked:\S+>)", yaml_out)
    in_env = re.search(rb"DB_PASSWORD\n\s+value: (<masked:\S+>)", pod_out)
    in_log = re.search(rb"password=(<masked:\S+>)", log_out)
    assert in_secret
    assert in_env
    assert in_log
    assert in_secret.group(1) == in_env.group(1) == in_log.group(1)
    other = mask(f"password={CREDS.api_token}\n")
    assert in_log.group(1) not in other


def test_keyed_placeholders_differ_from_plain_sha256_and_between_keys() -> None:
    plain = mask("password=hunter2\n")
    keyed = mask("password=hunter2\n", key=b"k1")
    assert plain == b"password=<masked:sha256:f52fbd32>\n"  # sha256("hunter2")[:8]
    assert re.fullmatch(rb"password=<masked:hmac-sha256:[0-9a-f]{8}>\n", keyed)
    assert keyed != mask("password=hunter2\n", key=b"k2")


def test_masking_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "mask.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="too short"):
        load_or_create_key(path)


def test_bearer_tokens_inside_structured_values_are_masked() -> None:
    doc = f"kind: ConfigMap\nmetadata:\n  annotations:\n    hook: Bearer {CREDS.api_token}\n"
    assert CREDS.api_token.encode() not in mask(doc, "yaml")


def test_masked_count_counts_placeholders() -> None:
    m = Masker("yaml")
    out = m.feed(SECRET_YAML.encode()) + m.close()
    assert m.masked_count == len(PH.findall(out)) == 3


# --------------------------------------------------------------------------- plan


@pytest.mark.parametrize(
    ("argv", "stdout"),
    [
        ("get secret x -o yaml", "yaml"),
        ("get secrets -A -o json", "json"),
        ("get secret x -o jsonpath={.data}", "values"),
        ("get secret x -o jsonpath={.metadata.name}", "text"),
        ("get secrets -o custom-columns=NAME:.metadata.name,DATA:.data", "values"),
        ("get secret x --template={{.data}}", "values"),
        ("get pods -o yaml", "yaml"),
        ("get pods -o jsonpath={.items[*].metadata.name}", "text"),
        ("describe pod x", "text"),
        ("logs x", "text"),
        ("logs -f x", "text"),
        ("exec x -- env", "text"),
        ("apply view-last-applied secret/x", "yaml"),
        ("get --raw /api/v1/secrets", "raw"),
        ("get pods -v=8", "text"),
        ("config view", "yaml"),
        ("cluster-info dump", "json"),
        ("get configmaps -o yaml", "yaml"),
    ],
)
def test_plan_picks_the_mode_from_the_invocation(argv: str, stdout: str) -> None:
    inv = parse(argv.split())
    plan = plan_masking(inv, assess(inv))
    assert plan is not None
    assert plan.stdout == stdout
    assert plan.stderr == "text"


@pytest.mark.parametrize("argv", ["get pods", "get secrets", "get svc -o yaml", "delete pod x"])
def test_plan_is_none_where_output_carries_no_values(argv: str) -> None:
    inv = parse(argv.split())
    assert plan_masking(inv, assess(inv)) is None


@pytest.mark.parametrize(
    ("argv", "interactive"),
    [("exec -it x -- sh", True), ("exec -i x -- sh", False), ("edit secret x", True)],
)
def test_plan_flags_commands_that_need_the_terminal(argv: str, interactive: bool) -> None:
    inv = parse(argv.split())
    plan = plan_masking(inv, assess(inv))
    assert plan is not None
    assert plan.interactive is interactive


def test_plan_keeps_names_from_argv_and_custom_column_headers() -> None:
    inv = parse(
        ["get", "secret", "db", "-n", "prod", "-o", "custom-columns=N:.metadata.name,D:.data"]
    )
    plan = plan_masking(inv, assess(inv))
    assert plan is not None
    assert {b"db", b"prod", b"N", b"D"} <= plan.keep
    assert plan.assume_secret


# --------------------------------------------------------------------------- end to end

Login = Callable[..., KubeSession]


def _run_masked(session: KubeSession, *args: str, chunk: int = 997) -> tuple[bytes, bytes, int]:
    """Run the real kubectl, pass stdout/stderr through the planned maskers in chunks."""
    env = {**session.env, "KUBECONFIG": str(session.kubeconfig)}
    result = subprocess.run(
        [str(session.kubectl), *args], env=env, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    inv = parse(list(args))
    plan = plan_masking(inv, assess(inv))
    assert plan is not None, args
    out, err = plan.stdout_masker(b"installation-key"), plan.stderr_masker(b"installation-key")
    masked_out = mask_stream(out, result.stdout, chunk)
    masked_err = mask_stream(err, result.stderr, chunk)
    assert masked_out + masked_err != result.stdout + result.stderr
    return masked_out, masked_err, out.masked_count + err.masked_count


def mask_stream(masker: Masker, data: bytes, chunk: int) -> bytes:
    parts = [masker.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    return b"".join(parts) + masker.close()


E2E = [
    (("get", "secret", "db-credentials", "-n", "prod", "-o", "yaml"), [b"db-credentials"]),
    (("get", "secret", "db-credentials", "-n", "prod", "-o", "json"), [b'"kind": "Secret"']),
    (("get", "secrets", "-A", "-o", "yaml"), [b"aws-credentials", b"tls-cert", b"kind: List"]),
    (("get", "secrets", "-A", "-o", "json"), [b'"namespace": "default"']),
    (("get", "secret", "api-token", "-n", "prod", "-o", "jsonpath={.data}"), [b'"jwt":']),
    (
        ("get", "secret", "api-token", "-n", "prod", "-o",
         'go-template={{range $k, $v := .data}}{{$k}}={{$v}}{{"\\n"}}{{end}}'),
        [b"jwt=", b"token="],
    ),
    (
        ("get", "secrets", "-n", "prod", "-o", "custom-columns=NAME:.metadata.name,DATA:.data"),
        [b"NAME", b"DATA", b"map[password:", b"aws-credentials", b"db-credentials"],
    ),
    (
        ("get", "secret", "db-credentials", "-n", "prod", "-o",
         "jsonpath={.metadata.annotations}"),
        [b"kubectl.kubernetes.io/last-applied-configuration", b"db-credentials"],
    ),
    (("get", "pods", "-n", "prod", "-o", "yaml"), [b"name: DB_PASSWORD", b"worker-0"]),
    (("get", "pod", "api-5c8d7f9b4-x2k9p", "-n", "prod", "-o", "json"), [b'"LOG_LEVEL"']),
    (("describe", "pod", "api-5c8d7f9b4-x2k9p", "-n", "prod"), [b"Namespace:        prod"]),
    (("logs", "api-5c8d7f9b4-x2k9p", "-n", "prod"), [b"INFO starting api", b"INFO ready"]),
    (("apply", "view-last-applied", "secret/db-credentials", "-n", "prod"), [b"kind: Secret"]),
    (("get", "secret", "api-token", "-n", "prod", "-v=8"), [b"api-token", b"Response Body"]),
    (
        ("get", "secret", "db-credentials", "-n", "prod", "-o", "yaml", "-v=8"),
        [b"name: db-credentials", b"Response Body"],
    ),
    (("get", "--raw", "/api/v1/namespaces/prod/secrets"), [b'"SecretList"', b"aws-credentials"]),
]  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize(("args", "kept"), E2E, ids=[" ".join(a[:3]) for a, _ in E2E])
def test_real_kubectl_output_loses_every_planted_secret(
    sandbox: object, kube_login: Login, args: tuple[str, ...], kept: list[bytes]
) -> None:
    creds = sandbox.cluster.credentials  # type: ignore[attr-defined]
    out, err, count = _run_masked(kube_login("jitkube-admin"), *args)
    both = out + err
    for value in creds.values():
        for form in (value, b64(value), json.dumps(value)[1:-1]):
            for piece in form.splitlines():
                assert piece.encode() not in both, f"{args}: {piece[:10]}… leaked"
    for text in kept:
        assert text in both, f"{args}: lost {text!r}"
    assert count > 0
    assert PLACEHOLDER_RE.search(both)


@pytest.mark.integration
def test_real_kubectl_watch_stays_live_through_the_masker(
    sandbox: object, kube_login: Login
) -> None:
    session = kube_login("jitkube-admin")
    env = {**session.env, "KUBECONFIG": str(session.kubeconfig)}
    args = ["get", "secrets", "-n", "prod", "-w", "-o", "yaml"]
    inv = parse(args)
    plan = plan_masking(inv, assess(inv))
    assert plan is not None
    assert plan.stdout == "yaml"
    masker = plan.stdout_masker()
    proc = subprocess.Popen(
        [str(session.kubectl), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        released = b""
        # kubectl keeps watching; the masker must release the listed objects right away.
        while b"name: db-credentials" not in released:
            chunk = proc.stdout.read1(4096)
            assert chunk, "kubectl ended early"
            released += masker.feed(chunk)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    creds = sandbox.cluster.credentials  # type: ignore[attr-defined]
    for value in creds.values():
        assert b64(value).encode() not in released
