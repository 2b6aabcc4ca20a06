"""Sample objects of the simulated cluster, with fake credentials made up at start.

Nothing key-like is committed: every password, AWS key, JWT and PEM body is random per
cluster instance, and exposed as `FakeCredentials` so masking tests know what must never
reach the screen.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass

from jitkube.kubectl.resources import BUILTIN_RESOURCES, ResourceType

Obj = dict[str, object]

_UPPER_DIGITS = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def _rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class FakeCredentials:
    """Secret-looking values planted in pods, secrets and logs (random per instance)."""

    db_password: str
    aws_access_key_id: str
    aws_secret_access_key: str
    api_token: str
    jwt: str
    pem_private_key: str

    @classmethod
    def generate(cls) -> FakeCredentials:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps({"sub": "svc-api", "n": secrets.token_hex(4)}).encode())
        body = base64.b64encode(secrets.token_bytes(96)).decode()
        pem = "\n".join(
            [
                "-----BEGIN " + "PRIVATE KEY-----",
                body[:64],
                body[64:],
                "-----END " + "PRIVATE KEY-----",
            ]
        )
        return cls(
            db_password=_rand(string.ascii_letters + string.digits, 20),
            aws_access_key_id="AKIA" + _rand(_UPPER_DIGITS, 16),
            aws_secret_access_key=_rand(_SECRET_ALPHABET, 40),
            api_token=secrets.token_hex(20),
            jwt=f"{header}.{payload}.{_b64url(secrets.token_bytes(32))}",
            pem_private_key=pem,
        )

    def values(self) -> tuple[str, ...]:
        """Every planted secret value (for "never in output" assertions)."""
        return (
            self.db_password,
            self.aws_access_key_id,
            self.aws_secret_access_key,
            self.api_token,
            self.jwt,
            self.pem_private_key,
        )


def resource(group: str, plural: str) -> ResourceType:
    """The resource type for (group, plural); the sandbox serves exactly the built-in table."""
    for rt in BUILTIN_RESOURCES:
        if rt.group == group and rt.plural == plural:
            return rt
    raise KeyError(f"{plural}.{group}")


def _meta(name: str, namespace: str | None = None, **labels: str) -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _pod(name: str, namespace: str, app: str, image: str, env: list[Obj]) -> Obj:
    return {
        "metadata": _meta(name, namespace, app=app),
        "spec": {
            "containers": [{"name": app, "image": image, "env": env}],
            "nodeName": "ip-10-0-1-23.ec2.internal",
            "serviceAccountName": "default",
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.1.42",
            "containerStatuses": [
                {"name": app, "ready": True, "restartCount": 0, "image": image, "started": True}
            ],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def _deployment(name: str, namespace: str, image: str, replicas: int) -> Obj:
    return {
        "metadata": _meta(name, namespace, app=name),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
        "status": {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "updatedReplicas": replicas,
            "observedGeneration": 1,
        },
    }


def seed_objects(creds: FakeCredentials) -> Iterator[tuple[ResourceType, Obj]]:
    """The starting state: namespaces, pods, secrets, configmaps, deployments, RBAC."""
    ns, pods, secrets_rt = resource("", "namespaces"), resource("", "pods"), resource("", "secrets")
    for name in ("default", "kube-system", "prod"):
        yield ns, {"metadata": _meta(name), "status": {"phase": "Active"}}
        yield resource("", "serviceaccounts"), {"metadata": _meta("default", name)}
    yield pods, _pod("web-7d4b9c6f5-abcde", "default", "web", "nginx:1.27", [])
    yield (
        pods,
        _pod(
            "api-5c8d7f9b4-x2k9p",
            "prod",
            "api",
            "example.com/api:2.3.1",
            [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "DB_PASSWORD", "value": creds.db_password},
                {"name": "AWS_ACCESS_KEY_ID", "value": creds.aws_access_key_id},
                {"name": "AWS_SECRET_ACCESS_KEY", "value": creds.aws_secret_access_key},
                {
                    "name": "API_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}},
                },
            ],
        ),
    )
    yield pods, _pod("worker-0", "prod", "worker", "example.com/worker:1.0", [])
    yield pods, _pod("coredns-6b9f8d7c5-q1w2e", "kube-system", "coredns", "coredns:1.11", [])
    string_data = {"username": "app", "password": creds.db_password}
    last_applied = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db-credentials", "namespace": "prod"},
        "stringData": string_data,
        "type": "Opaque",
    }
    yield (
        secrets_rt,
        {
            "metadata": {
                **_meta("db-credentials", "prod", app="api"),
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": json.dumps(last_applied)
                },
            },
            "type": "Opaque",
            "data": {k: _b64(v) for k, v in string_data.items()},
        },
    )
    yield (
        secrets_rt,
        {
            "metadata": _meta("api-token", "prod", app="api"),
            "type": "Opaque",
            "data": {"token": _b64(creds.api_token), "jwt": _b64(creds.jwt)},
        },
    )
    yield (
        secrets_rt,
        {
            "metadata": _meta("aws-credentials", "prod"),
            "type": "Opaque",
            "data": {
                "aws_access_key_id": _b64(creds.aws_access_key_id),
                "aws_secret_access_key": _b64(creds.aws_secret_access_key),
            },
        },
    )
    yield (
        secrets_rt,
        {
            "metadata": _meta("tls-cert", "default"),
            "type": "kubernetes.io/tls",
            "data": {"tls.key": _b64(creds.pem_private_key), "tls.crt": _b64("not a certificate")},
        },
    )
    cm = resource("", "configmaps")
    yield (
        cm,
        {
            "metadata": _meta("app-config", "prod", app="api"),
            "data": {"LOG_LEVEL": "info", "FEATURE_FLAGS": "search,checkout"},
        },
    )
    yield cm, {"metadata": _meta("kube-root-ca.crt", "default"), "data": {"ca.crt": "(sandbox)"}}
    deploy = resource("apps", "deployments")
    yield deploy, _deployment("api", "prod", "example.com/api:2.3.1", 2)
    yield deploy, _deployment("web", "default", "nginx:1.27", 1)
    yield deploy, _deployment("coredns", "kube-system", "coredns:1.11", 2)
    rbac = "rbac.authorization.k8s.io"
    yield (
        resource(rbac, "clusterroles"),
        {
            "metadata": _meta("view"),
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
        },
    )
    yield (
        resource(rbac, "clusterrolebindings"),
        {
            "metadata": _meta("jitkube-view"),
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": rbac, "kind": "Group", "name": "view"}],
        },
    )
    yield (
        resource(rbac, "roles"),
        {
            "metadata": _meta("api-reader", "prod"),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
    )
    yield (
        resource(rbac, "rolebindings"),
        {
            "metadata": _meta("api-reader", "prod"),
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "api-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "prod"}],
        },
    )


def pod_log(creds: FakeCredentials, namespace: str, pod: str, container: str) -> list[str]:
    """Log lines of a pod: ordinary lines with fake credentials mixed in."""
    return [
        f"2026-01-01T00:00:00Z INFO starting {container} in {namespace}/{pod}",
        "2026-01-01T00:00:01Z INFO connecting to "
        f"postgres://app:{creds.db_password}@db.{namespace}.svc:5432/app",
        f"2026-01-01T00:00:02Z DEBUG env AWS_ACCESS_KEY_ID={creds.aws_access_key_id}",
        f"2026-01-01T00:00:02Z DEBUG env AWS_SECRET_ACCESS_KEY={creds.aws_secret_access_key}",
        f"2026-01-01T00:00:03Z DEBUG outgoing Authorization: Bearer {creds.jwt}",
        "2026-01-01T00:00:04Z WARN loaded key:",
        *creds.pem_private_key.splitlines(),
        "2026-01-01T00:00:05Z INFO ready",
    ]
