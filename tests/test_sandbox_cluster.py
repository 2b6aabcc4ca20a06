"""The simulated EKS API server, driven by the real kubectl with EKS tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import string
import subprocess
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from fixtures.cluster import KubeSession
from jitkube.eks_token import TOKEN_PREFIX, mint_eks_token
from jitkube.sandbox.cluster_seed import resource
from jitkube.sandbox.cluster_store import (
    ObjectStore,
    StoreError,
    json_patch,
    label_matcher,
    labels_match,
    merge_patch,
)
from jitkube.sandbox.world import Sandbox

pytestmark = pytest.mark.integration

Login = Callable[..., KubeSession]
ADMIN = "arn:aws:sts::123456789012:assumed-role/jitkube-admin/tester"
VIEWER = "arn:aws:sts::123456789012:assumed-role/jitkube-view/tester"
PODS = resource("", "pods")


def _url(token: str) -> str:
    body = token[len(TOKEN_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def _token(url: str) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def test_get_pods_with_a_valid_token_lists_seeded_pods_as_the_assumed_role(
    sandbox: Sandbox, kube_login: Login
) -> None:
    result = kube_login("jitkube-admin").run("get", "pods", "-n", "prod")

    assert result.returncode == 0, result.stderr
    assert "api-5c8d7f9b4-x2k9p" in result.stdout
    assert "worker-0" in result.stdout
    records = sandbox.cluster.requests
    assert records, "kubectl reached the server"
    assert {r.user for r in records} == {ADMIN}
    assert all("system:masters" in r.groups for r in records)
    listing = [r for r in records if r.path == "/api/v1/namespaces/prod/pods"]
    assert [(r.method, r.verb, r.status) for r in listing] == [("GET", "list", 200)]


def test_get_secret_as_yaml_returns_data_and_last_applied_string_data(
    sandbox: Sandbox, kube_login: Login
) -> None:
    result = kube_login("jitkube-admin").run(
        "get", "secret", "db-credentials", "-n", "prod", "-o", "json"
    )

    assert result.returncode == 0, result.stderr
    secret = json.loads(result.stdout)
    password = sandbox.cluster.credentials.db_password
    assert base64.b64decode(secret["data"]["password"]).decode() == password
    last_applied = secret["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ]
    assert json.loads(last_applied)["stringData"]["password"] == password


def test_get_secret_output_yaml_works(kube_login: Login) -> None:
    result = kube_login("jitkube-admin").run(
        "get", "secret", "db-credentials", "-n", "prod", "-o", "yaml"
    )
    assert result.returncode == 0, result.stderr
    assert "kind: Secret" in result.stdout
    assert "password:" in result.stdout


def test_delete_pod_removes_it_and_later_gets_answer_404(
    sandbox: Sandbox, kube_login: Login
) -> None:
    session = kube_login("jitkube-admin")

    result = session.run("delete", "pod", "worker-0", "-n", "prod")

    assert result.returncode == 0, result.stderr
    assert 'pod "worker-0" deleted' in result.stdout
    assert not sandbox.cluster.store.exists(PODS, "prod", "worker-0")
    deletes = [r for r in sandbox.cluster.requests if r.method == "DELETE"]
    assert [(r.path, r.user, r.status) for r in deletes] == [
        ("/api/v1/namespaces/prod/pods/worker-0", ADMIN, 200)
    ]
    again = session.run("get", "pod", "worker-0", "-n", "prod")
    assert again.returncode == 1
    assert 'pods "worker-0" not found' in again.stderr


def test_reset_restores_deleted_objects_and_clears_the_log(
    sandbox: Sandbox, kube_login: Login
) -> None:
    kube_login("jitkube-admin").run("delete", "pod", "worker-0", "-n", "prod")
    sandbox.cluster.reset()
    assert sandbox.cluster.store.exists(PODS, "prod", "worker-0")
    assert sandbox.cluster.requests == []


def _admin_creds(sandbox: Sandbox):  # type: ignore[no-untyped-def]
    return sandbox.assume_role("jitkube-admin", "tester")


def _mint(sandbox: Sandbox, **overrides: object) -> str:
    creds = _admin_creds(sandbox)
    args: dict[str, object] = {
        "access_key": creds.access_key_id,
        "secret_key": creds.secret_access_key,
        "session_token": creds.session_token,
        "cluster_name": sandbox.cluster.name,
        "region": "us-east-1",
    }
    args.update(overrides)
    return mint_eks_token(**args).token  # type: ignore[arg-type]


def _tamper_signature(sandbox: Sandbox) -> str:
    url = _url(_mint(sandbox))
    head, sig = url.rsplit("X-Amz-Signature=", 1)
    return _token(head + "X-Amz-Signature=" + sig[::-1])


def _alter_date(sandbox: Sandbox) -> str:
    url = _url(_mint(sandbox))
    query = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    old = query["X-Amz-Date"]
    new = (dt.datetime.strptime(old, "%Y%m%dT%H%M%SZ") - dt.timedelta(seconds=30)).strftime(
        "%Y%m%dT%H%M%SZ"
    )
    return _token(url.replace(old, new))


def _foreign_host(sandbox: Sandbox) -> str:
    url = _url(_mint(sandbox))
    return _token(url.replace("sts.us-east-1.amazonaws.com", "sts.us-east-1.attacker.example", 1))


def _wrong_session_token(sandbox: Sandbox) -> str:
    other = sandbox.assume_role("jitkube-admin", "someone-else")
    return _mint(sandbox, session_token=other.session_token)


def _unknown_key(sandbox: Sandbox) -> str:
    key = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
    return _mint(sandbox, access_key=key, secret_key=secrets.token_urlsafe(30))


# case -> (token builder, where the authenticator must stop it)
_STRUCTURE = "malformed token"  # decode_eks_token refuses it; STS is never asked
_STS = "STS refused the token (403)"
_BAD_TOKENS: dict[str, tuple[Callable[[Sandbox], str], str]] = {
    "expired (signed 16 min ago)": (
        lambda s: _mint(s, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)),
        _STRUCTURE,
    ),
    "signature tampered": (_tamper_signature, _STS),
    "query parameter altered": (_alter_date, _STS),
    "minted for another cluster": (lambda s: _mint(s, cluster_name="some-other-cluster"), _STS),
    "non-STS host": (_foreign_host, _STRUCTURE),
    "wrong session token": (_wrong_session_token, _STS),
    "unknown access key": (_unknown_key, _STS),
    "not an EKS token": (lambda s: "k8s-aws-v1.bm90LWEtdXJs", _STRUCTURE),
}


@pytest.mark.parametrize("case", sorted(_BAD_TOKENS))
def test_bad_tokens_get_401_and_nothing_reaches_the_store(
    sandbox: Sandbox, kube_login: Login, case: str
) -> None:
    build, stopped_by = _BAD_TOKENS[case]
    token = build(sandbox)
    before = sandbox.cluster.store.snapshot()

    result = kube_login(token=token).run("delete", "pod", "worker-0", "-n", "prod", timeout=30)

    assert result.returncode == 1
    assert "You must be logged in to the server" in result.stderr
    records = sandbox.cluster.requests
    assert records, "kubectl did reach the server"
    assert {(r.status, r.user) for r in records} == {(401, None)}
    assert all(r.detail.startswith(stopped_by) for r in records), records[0].detail
    assert sandbox.cluster.store.snapshot() == before


def test_role_without_access_entry_is_not_logged_in(sandbox: Sandbox, kube_login: Login) -> None:
    sandbox.sts.ensure_role("jitkube-unmapped")
    result = kube_login("jitkube-unmapped").run("get", "pods", timeout=30)
    assert result.returncode == 1
    assert "You must be logged in to the server" in result.stderr


def test_view_role_gets_403_on_delete_and_the_pod_survives(
    sandbox: Sandbox, kube_login: Login
) -> None:
    session = kube_login("jitkube-view")
    assert session.run("get", "pods", "-n", "prod").returncode == 0

    result = session.run("delete", "pod", "worker-0", "-n", "prod")

    assert result.returncode == 1
    assert "Error from server (Forbidden)" in result.stderr
    assert f'User "{VIEWER}" cannot delete resource "pods"' in result.stderr
    assert sandbox.cluster.store.exists(PODS, "prod", "worker-0")
    delete = [r for r in sandbox.cluster.requests if r.method == "DELETE"]
    assert [(r.user, r.status) for r in delete] == [(VIEWER, 403)]


@pytest.mark.parametrize(
    ("role", "args", "allowed"),
    [
        ("jitkube-view", ("get", "secret", "db-credentials", "-n", "prod"), False),
        ("jitkube-view", ("logs", "api-5c8d7f9b4-x2k9p", "-n", "prod"), True),
        ("jitkube-edit", ("get", "secret", "db-credentials", "-n", "prod"), True),
        ("jitkube-edit", ("delete", "rolebinding", "api-reader", "-n", "prod"), False),
        ("jitkube-admin", ("delete", "rolebinding", "api-reader", "-n", "prod"), True),
    ],
)
def test_rbac_levels(kube_login: Login, role: str, args: tuple[str, ...], allowed: bool) -> None:
    result = kube_login(role).run(*args)
    assert (result.returncode == 0) == allowed, result.stderr
    if not allowed:
        assert "(Forbidden)" in result.stderr


def test_pod_logs_contain_the_planted_fake_credentials(sandbox: Sandbox, kube_login: Login) -> None:
    result = kube_login("jitkube-admin").run("logs", "api-5c8d7f9b4-x2k9p", "-n", "prod")
    assert result.returncode == 0, result.stderr
    creds = sandbox.cluster.credentials
    for value in (creds.db_password, creds.aws_access_key_id, creds.aws_secret_access_key):
        assert value in result.stdout


def test_pod_env_carries_secret_like_values(sandbox: Sandbox, kube_login: Login) -> None:
    result = kube_login("jitkube-admin").run(
        "get", "pod", "api-5c8d7f9b4-x2k9p", "-n", "prod", "-o", "json"
    )
    env = {
        e["name"]: e.get("value") for e in json.loads(result.stdout)["spec"]["containers"][0]["env"]
    }
    assert env["DB_PASSWORD"] == sandbox.cluster.credentials.db_password
    assert env["AWS_SECRET_ACCESS_KEY"] == sandbox.cluster.credentials.aws_secret_access_key


def test_writes_round_trip_through_apply_patch_label_and_scale(
    sandbox: Sandbox, kube_login: Login
) -> None:
    session = kube_login("jitkube-edit")
    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "feature", "namespace": "prod"},
            "data": {"mode": "a"},
        }
    )
    steps = [
        (("apply", "-f", "-"), manifest),
        (("apply", "-f", "-"), manifest.replace('"a"', '"b"')),
        (("label", "cm", "feature", "-n", "prod", "team=payments"), None),
        (("patch", "deploy", "api", "-n", "prod", "-p", '{"spec":{"replicas":3}}'), None),
        (("scale", "deploy", "api", "-n", "prod", "--replicas", "4"), None),
        (("set", "image", "deploy/api", "-n", "prod", "api=example.com/api:9"), None),
    ]
    for args, stdin in steps:
        result = session.run(*args, input=stdin)
        assert result.returncode == 0, (args, result.stderr)

    cm = sandbox.cluster.store.get(resource("", "configmaps"), "prod", "feature")
    assert cm["data"] == {"mode": "b"}
    assert cm["metadata"]["labels"] == {"team": "payments"}
    deploy = sandbox.cluster.store.get(resource("apps", "deployments"), "prod", "api")
    assert deploy["spec"]["replicas"] == 4
    assert deploy["spec"]["template"]["spec"]["containers"] == [
        {"name": "api", "image": "example.com/api:9"}
    ]
    selected = session.run("get", "cm", "-n", "prod", "-l", "team=payments", "-o", "name")
    assert selected.stdout.split() == ["configmap/feature"]


def test_get_watch_streams_a_deletion(sandbox: Sandbox, kube_login: Login) -> None:
    session = kube_login("jitkube-admin")
    env = {**session.env, "KUBECONFIG": str(session.kubeconfig)}
    watcher = subprocess.Popen(
        [str(session.kubectl), "get", "pods", "-n", "prod", "-w", "-o", "name"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            "watch=true" in r.query for r in sandbox.cluster.requests
        ):
            time.sleep(0.05)
        assert session.run("delete", "pod", "worker-0", "-n", "prod").returncode == 0
        time.sleep(0.5)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    # Listed once, then streamed again when deleted.
    assert out.split().count("pod/worker-0") == 2


def test_get_prints_the_server_side_table_columns(kube_login: Login) -> None:
    result = kube_login("jitkube-view").run("get", "pods", "-A", "-o", "wide")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "NAMESPACE",
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
    ]
    assert any(row.split()[:4] == ["prod", "worker-0", "1/1", "Running"] for row in rows)


def test_unsupported_protobuf_bodies_get_a_clear_415(kube_login: Login) -> None:
    # kubectl's typed generators (`create namespace`) send protobuf; the sandbox says so.
    result = kube_login("jitkube-admin").run("create", "namespace", "scratch")
    assert result.returncode == 1
    assert "UnsupportedMediaType" in result.stderr


# --- the store on its own (no HTTP) ------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "strategic", "expected"),
    [
        ({"a": 1, "b": 2}, {"b": None, "c": 3}, False, {"a": 1, "c": 3}),
        ({"a": {"x": 1}}, {"a": {"y": 2}}, False, {"a": {"x": 1, "y": 2}}),
        ({"l": [1, 2]}, {"l": [3]}, False, {"l": [3]}),
        (
            {"c": [{"name": "a", "image": "1", "env": []}, {"name": "b", "image": "1"}]},
            {"$setElementOrder/c": [{"name": "a"}], "c": [{"name": "a", "image": "2"}]},
            True,
            {"c": [{"name": "a", "image": "2", "env": []}, {"name": "b", "image": "1"}]},
        ),
        (
            {"c": [{"name": "a"}, {"name": "b"}]},
            {"c": [{"name": "b", "$patch": "delete"}]},
            True,
            {"c": [{"name": "a"}]},
        ),
    ],
)
def test_merge_patches(target: dict, patch: dict, strategic: bool, expected: dict) -> None:
    assert merge_patch(target, patch, strategic) == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "replace", "path": "/a", "value": 2}], {"a": 2, "l": [1]}),
        ([{"op": "add", "path": "/l/-", "value": 2}], {"a": 1, "l": [1, 2]}),
        ([{"op": "remove", "path": "/a"}], {"l": [1]}),
        ([{"op": "move", "from": "/a", "path": "/b"}], {"b": 1, "l": [1]}),
        ([{"op": "copy", "from": "/a", "path": "/m~1n"}], {"a": 1, "m/n": 1, "l": [1]}),
    ],
)
def test_json_patch_operations(ops: list, expected: dict) -> None:
    assert json_patch({"a": 1, "l": [1]}, ops) == expected


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "remove", "path": "/missing"}],
        [{"op": "test", "path": "/a", "value": 2}],
        [{"op": "replace", "path": "/l/5", "value": 0}],
        {"op": "add"},
    ],
)
def test_json_patch_refuses_impossible_operations(ops: object) -> None:
    with pytest.raises(StoreError):
        json_patch({"a": 1, "l": [1]}, ops)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("app=api", {"app": "api"}, True),
        ("app==api,tier!=web", {"app": "api", "tier": "db"}, True),
        ("app!=api", {"app": "api"}, False),
        ("app in (api, web)", {"app": "web"}, True),
        ("app notin (api,web)", {"app": "web"}, False),
        ("tier", {"app": "api"}, False),
        ("!tier", {"app": "api"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict, matches: bool) -> None:
    assert labels_match(labels, label_matcher(selector)) is matches


def test_store_create_conflict_and_missing_namespace() -> None:
    store = ObjectStore()
    ns, cm = resource("", "namespaces"), resource("", "configmaps")
    store.create(ns, "", {"metadata": {"name": "a"}})
    store.create(cm, "a", {"metadata": {"name": "x"}})
    with pytest.raises(StoreError) as exists:
        store.create(cm, "a", {"metadata": {"name": "x"}})
    assert exists.value.reason == "AlreadyExists"
    with pytest.raises(StoreError) as missing:
        store.create(cm, "nope", {"metadata": {"name": "x"}})
    assert missing.value.code == 404
    store.delete(ns, "", "a")
    assert not store.exists(cm, "a", "x")  # deleting a namespace deletes its contents


def test_exec_speaks_the_websocket_protocol_and_passes_exit_codes(kube_login: Login) -> None:
    session = kube_login("jitkube-admin")
    once = session.run("exec", "-n", "prod", "api-5c8d7f9b4-x2k9p", "--", "whoami")
    assert once.returncode == 0, once.stderr
    assert once.stdout == "root\n"
    shell = session.run(
        "exec", "-i", "-n", "prod", "api-5c8d7f9b4-x2k9p", "--", "sh",
        input="echo hello\ntty\nexit 3\n",
    )  # fmt: skip
    assert shell.returncode == 3, shell.stderr
    assert shell.stdout == "hello\nnot a tty\n"


def test_exec_is_refused_to_a_view_identity(kube_login: Login) -> None:
    denied = kube_login("jitkube-view").run("exec", "-n", "prod", "worker-0", "--", "whoami")
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()


def test_responses_are_not_held_back_by_nagle(sandbox: Sandbox, kube_login: Login) -> None:
    """Headers and body are two writes: with Nagle on, each answer waited ~40 ms for the
    client's delayed ACK (TCP_DELACK_MIN), doubling what `kubectl get pods` took."""
    import http.client
    import ssl

    token = kube_login("jitkube-admin").token
    context = ssl.create_default_context(cadata=sandbox.cluster.ca_pem.decode())
    url = urlsplit(sandbox.cluster.url)
    conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=context, timeout=10)
    samples = []
    try:
        for _ in range(16):
            start = time.perf_counter()
            conn.request(
                "GET", "/api/v1/namespaces/prod/pods", headers={"Authorization": f"Bearer {token}"}
            )
            response = conn.getresponse()
            assert response.status == 200
            assert b"worker-0" in response.read()
            samples.append(time.perf_counter() - start)
    finally:
        conn.close()
    samples = sorted(samples[1:])  # the first one pays for the TLS handshake
    assert samples[len(samples) // 2] < 0.030
