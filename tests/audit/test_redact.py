"""Secret values never reach the audit trail; paths and ordinary arguments do."""

from __future__ import annotations

import pytest

from jitkube.audit import REDACTED, redact_argv
from jitkube.audit.redact import redact_body

R = REDACTED
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

# (argv, expected redacted argv, secrets that must not survive)
CASES: list[tuple[list[str], list[str], list[str]]] = [
    (
        ["create", "secret", "generic", "db", "--from-literal=password=hunter2"],
        ["create", "secret", "generic", "db", f"--from-literal=password={R}"],
        ["hunter2"],
    ),
    (
        ["create", "secret", "generic", "db", "--from-literal", "user=admin-name"],
        ["create", "secret", "generic", "db", "--from-literal", f"user={R}"],
        ["admin-name"],
    ),
    (
        ["create", "secret", "generic", "db", "--from-literal=k=v=with=equals"],
        ["create", "secret", "generic", "db", f"--from-literal=k={R}"],
        ["v=with=equals"],
    ),
    (["--token=s3cr3t-token", "get", "pods"], [f"--token={R}", "get", "pods"], ["s3cr3t-token"]),
    (["get", "pods", "--token", "s3cr3t-token"], ["get", "pods", "--token", R], ["s3cr3t-token"]),
    (
        ["get", "pods", "--username=bob", "--password=pa55word"],
        ["get", "pods", "--username=bob", f"--password={R}"],
        ["pa55word"],
    ),
    (
        [
            "create",
            "secret",
            "docker-registry",
            "r",
            "--docker-password=regpw",
            "--docker-username=u",
        ],
        [
            "create",
            "secret",
            "docker-registry",
            "r",
            f"--docker-password={R}",
            "--docker-username=u",
        ],
        ["regpw"],
    ),
    (
        ["create", "secret", "docker-registry", "r", "--docker-password", "regpw"],
        ["create", "secret", "docker-registry", "r", "--docker-password", R],
        ["regpw"],
    ),
    (
        ["patch", "secret", "s", "-p", '{"data":{"password":"aHVudGVyMg=="}}'],
        ["patch", "secret", "s", "-p", f'{{"data":{{"password":"{R}"}}}}'],
        ["aHVudGVyMg=="],
    ),
    (
        ["patch", "secret", "s", '-p={"stringData":{"token":"plain-tok"}}'],
        ["patch", "secret", "s", f'-p={{"stringData":{{"token":"{R}"}}}}'],
        ["plain-tok"],
    ),
    (
        ["patch", "secret", "s", '-p{"stringData":{"a":"attached"}}'],
        ["patch", "secret", "s", f'-p{{"stringData":{{"a":"{R}"}}}}'],
        ["attached"],
    ),
    (
        ["patch", "secret", "s", "--patch", '{"data":{"x":"eHl6"}}'],
        ["patch", "secret", "s", "--patch", f'{{"data":{{"x":"{R}"}}}}'],
        ["eHl6"],
    ),
    (
        [
            "patch",
            "secret",
            "s",
            "--type=json",
            "-p",
            '[{"op":"replace","path":"/data/password","value":"bmV3"}]',
        ],
        [
            "patch",
            "secret",
            "s",
            "--type=json",
            "-p",
            f'[{{"op":"replace","path":"/data/password","value":"{R}"}}]',
        ],
        ["bmV3"],
    ),
    (
        ["patch", "secret", "s", "-p", "stringData:\n  password: yamlsecret"],
        ["patch", "secret", "s", "-p", R],
        ["yamlsecret"],
    ),
    (
        ["create", "secret", "generic", "x", "--from-file=key=/home/a/k.pem"],
        ["create", "secret", "generic", "x", "--from-file=key=/home/a/k.pem"],
        [],
    ),
    (
        ["create", "secret", "generic", "x", "--from-env-file=/home/a/.env"],
        ["create", "secret", "generic", "x", "--from-env-file=/home/a/.env"],
        [],
    ),
    (
        ["create", "secret", "tls", "t", "--cert=/c.pem", "--key=/k.pem"],
        ["create", "secret", "tls", "t", "--cert=/c.pem", "--key=/k.pem"],
        [],
    ),
    (
        ["set", "env", "deploy/api", "DB_PASSWORD=pg-pass", "LOG_LEVEL=debug"],
        ["set", "env", "deploy/api", f"DB_PASSWORD={R}", "LOG_LEVEL=debug"],
        ["pg-pass"],
    ),
    (
        ["run", "x", "--image=nginx", "--env=API_KEY=k-123", "--env=MODE=prod"],
        ["run", "x", "--image=nginx", f"--env=API_KEY={R}", "--env=MODE=prod"],
        ["k-123"],
    ),
    (
        [
            "run",
            "x",
            "--image=nginx",
            "--overrides",
            '{"spec":{"containers":[{"name":"x","env":[{"name":"SECRET_KEY","value":"ov"}]}]}}',
        ],
        [
            "run",
            "x",
            "--image=nginx",
            "--overrides",
            '{"spec":{"containers":[{"name":"x","env":[{"name":"SECRET_KEY","value":"'
            + R
            + '"}]}]}}',
        ],
        ['"ov"'],
    ),
    (
        ["config", "set", "users.alice.token", "cfg-token"],
        ["config", "set", "users.alice.token", R],
        ["cfg-token"],
    ),
    (
        ["config", "set-credentials", "alice", "--auth-provider-arg=client-secret=cs-1"],
        ["config", "set-credentials", "alice", f"--auth-provider-arg=client-secret={R}"],
        ["cs-1"],
    ),
    (
        ["exec", "p", "--", "curl", "-H", "Authorization: Bearer abc.def.ghi", "http://svc"],
        ["exec", "p", "--", "curl", "-H", f"Authorization: Bearer {R}", "http://svc"],
        ["abc.def.ghi"],
    ),
    (
        ["exec", "p", "--", "sh", "-c", f"curl -H 'x: y' --oauth2-bearer {JWT}"],
        ["exec", "p", "--", "sh", "-c", f"curl -H 'x: y' --oauth2-bearer {R}"],
        [JWT],
    ),
    (
        ["get", "pods", "--server=https://admin:urlpass@10.0.0.1:6443"],
        ["get", "pods", f"--server=https://admin:{R}@10.0.0.1:6443"],
        ["urlpass"],
    ),
    (
        [
            "exec",
            "p",
            "--",
            "env",
            "AWS_SECRET_ACCESS_KEY=wJalr",
            "AWS_ACCESS_KEY_ID=ASIAABCDEFGHIJKLMNOP",
        ],
        ["exec", "p", "--", "env", f"AWS_SECRET_ACCESS_KEY={R}", f"AWS_ACCESS_KEY_ID={R}"],
        ["wJalr", "ASIAABCDEFGHIJKLMNOP"],
    ),
    (
        ["get", "pods", "--token=k8s-aws-v1.aHR0cHM6Ly9zdHM"],
        ["get", "pods", f"--token={R}"],
        ["k8s-aws-v1.aHR0cHM6Ly9zdHM"],
    ),
    (
        ["exec", "p", "--", "echo", "jks.sess123.Zm9vYmFyYmF6"],
        ["exec", "p", "--", "echo", R],
        ["Zm9vYmFyYmF6"],
    ),
]


@pytest.mark.parametrize(("argv", "expected", "secrets"), CASES)
def test_secret_bearing_argv_is_redacted(
    argv: list[str], expected: list[str], secrets: list[str]
) -> None:
    result = redact_argv(argv)
    assert list(result.argv) == expected
    joined = "\x00".join(result.argv)
    for secret in secrets:
        assert secret not in joined
    assert (result.redactions > 0) == bool(secrets)


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "pods", "-n", "prod", "-o", "jsonpath={.items[*].metadata.name}"],
        ["patch", "deploy", "api", "-p", '{"spec":{"replicas":3}}'],
        ["patch", "deploy", "api", "-p", "spec:\n  replicas: 3"],
        ["exec", "-p", "mypod", "--", "ls"],  # -p outside `patch` is not a body
        ["label", "pods", "x", "app=web", "tier=frontend"],
        ["apply", "-f", "deploy.yaml", "--server-side"],
        ["logs", "deploy/api", "--since=1h", "-c", "app"],
    ],
)
def test_ordinary_argv_is_kept_verbatim(argv: list[str]) -> None:
    result = redact_argv(argv)
    assert list(result.argv) == argv
    assert result.redactions == 0


def test_pem_private_key_in_an_argument_is_hidden() -> None:
    kind = "RSA PRIVATE KEY"  # assembled at run time: no key-shaped literal in the repo
    pem = f"-----BEGIN {kind}-----\nMIIEowIBAAKCAQEA\n-----END {kind}-----"
    result = redact_argv(["exec", "p", "--", "sh", "-c", f"echo '{pem}' > /k"])
    assert "MIIEowIBAAKCAQEA" not in result.argv[-1]


def test_a_non_json_patch_mentioning_secret_data_is_hidden_whole() -> None:
    assert redact_body("data:\n  password: eA==") == (R, 1)
    assert redact_body("spec:\n  replicas: 2") == ("spec:\n  replicas: 2", 0)
