"""Secrets in an argv never reach the audit trail, wherever in the command they sit.

Positions: kubectl's secret-bearing flags (classified against the generated grammar),
`KEY=VALUE` with a secret-looking key, patch/overrides bodies, a container's command
after `--` (client password options, `--token=…`, `env X=…`, URLs, `sh -c` scripts),
and credential shapes the output masker knows. The property test places a random
secret-like value in each position and serializes the real audit record (judged by the
real pipeline, written to the real chain); the broker test follows the same records to
a real broker.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from audit_harness import BrokerProcess, broker_events
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fixtures.env import IsolatedEnv
from jitkube.audit import AuditEntry, AuditSpool, audit_dir, judgement_fields, record_invocation
from jitkube.audit.redact import (
    BODY_FLAGS,
    KV_FLAGS,
    LITERAL_FLAGS,
    NOT_SECRET_FLAGS,
    REDACTED,
    SECRET_VALUE_FLAGS,
    is_secret_name,
    redact_argv,
)
from jitkube.judge import judge
from jitkube.kubectl import _grammar_data as grammar
from jitkube.masking.digest import Digester
from jitkube.masking.patterns import TextMasker
from jitkube.policy import DecisionContext, default_policy

R = REDACTED
S = "{S}"  # where the secret goes

# Every position the redaction covers; `{S}` is replaced by the secret.
POSITIONS: list[list[str]] = [
    ["exec", "web-0", "--", "mysql", "-uroot", "-p{S}", "app"],
    ["exec", "web-0", "--", "mysqldump", "--password={S}", "app"],
    ["exec", "web-0", "--", "psql", "postgresql://app:{S}@db:5432/app"],
    ["exec", "web-0", "--", "env", "PASSWORD={S}", "./migrate"],
    ["exec", "web-0", "--", "app", "--token={S}"],
    ["exec", "web-0", "--", "app", "--password", "{S}"],
    ["exec", "web-0", "--", "app", "--api-key", "{S}"],
    ["exec", "web-0", "--", "app", "-password", "{S}"],
    ["exec", "web-0", "--", "curl", "-u", "admin:{S}", "http://svc"],
    ["exec", "web-0", "--", "curl", "--user=admin:{S}", "http://svc"],
    ["exec", "web-0", "--", "curl", "https://svc/x?access_token={S}&a=1"],
    ["exec", "web-0", "--", "curl", "-H", "Authorization: Bearer {S}", "http://svc"],
    ["exec", "web-0", "--", "redis-cli", "-a", "{S}", "ping"],
    ["exec", "web-0", "--", "mongosh", "-u", "app", "-p", "{S}"],
    ["exec", "web-0", "--", "java", "-Ddb.password={S}", "-jar", "app.jar"],
    ["exec", "web-0", "--", "curl", "-d", '{"user":"a","password":"{S}"}', "http://svc"],
    ["exec", "web-0", "--", "sh", "-c", "mysql -uroot -p{S} app < dump.sql"],
    ["exec", "web-0", "--", "sh", "-c", "PGPASSWORD={S} psql -h db"],
    ["exec", "web-0", "--", "sh", "-c", "curl -u admin:{S} http://svc"],
    ["exec", "web-0", "--", "sh", "-c", "export API_TOKEN={S}; ./run"],
    ["run", "tmp", "--image=busybox", "--", "app", "--db-password={S}"],
    ["set", "env", "deploy/web", "DB_PASSWORD={S}"],
    ["set", "env", "deploy/web", "-e", "API_TOKEN={S}"],
    ["set", "env", "deploy/web", "--env=API_TOKEN={S}"],
    [
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-server=r.example",
        "--docker-username=u",
        "--docker-password={S}",
    ],
    ["create", "secret", "docker-registry", "reg", "--docker-password", "{S}"],
    ["create", "secret", "generic", "db", "--from-literal=password={S}"],
    ["create", "configmap", "c", "--from-literal", "key={S}"],
    ["patch", "secret", "db", "-p", '{"data":{"password":"{S}"}}'],
    ["patch", "secret", "db", "--patch", '{"stringData":{"token":"{S}"}}'],
    [
        "patch",
        "secret",
        "db",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/data/password","value":"{S}"}]',
    ],
    [
        "patch",
        "deploy",
        "web",
        '-p={"spec":{"template":{"spec":{"containers":[{"name":"c","env":'
        '[{"name":"DB_PASS","value":"{S}"}]}]}}}}',
    ],
    [
        "run",
        "tmp",
        "--image=busybox",
        '--overrides={"spec":{"containers":[{"name":"c","env":[{"name":"API_KEY","value":"{S}"}]}]}}',
    ],
    ["run", "tmp", "--image=busybox", "--env=DB_PASSWORD={S}"],
    ["config", "set-credentials", "me", "--token={S}"],
    ["config", "set-credentials", "me", "--password", "{S}"],
    ["config", "set-credentials", "me", "--auth-provider-arg=client-secret={S}"],
    ["config", "set", "users.me.token", "{S}"],
    ["--token={S}", "get", "pods"],
    ["get", "pods", "--password", "{S}"],
    # The parser quotes this argument in its problem (and so in the reasons): the record
    # scrubs the hidden value from every field.
    ["--password={S}", "frob"],
]

_SECRET_CHARS = string.ascii_letters + string.digits + "-_.~+!*$%"
secrets_st = (
    st.text(alphabet=_SECRET_CHARS, min_size=10, max_size=40)
    .filter(lambda s: not s.startswith("-"))
    .filter(lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s))
    .filter(lambda s: "redacted" not in s.lower())
)


def _place(template: list[str], secret: str) -> list[str]:
    return [arg.replace(S, secret) for arg in template]


def _serialized_record(argv: list[str], directory: Path) -> str:
    """Judge `argv` with the real pipeline, record it, return every byte written."""
    j = judge(argv, DecisionContext(agent=True), default_policy())
    record_invocation(
        AuditEntry(argv=argv, outcome="denied", sub="alice", **judgement_fields(j)),
        {},
        directory=directory,
    )
    written = "".join(
        p.read_text(encoding="utf-8", errors="replace") for p in directory.rglob("*") if p.is_file()
    )
    pending = json.dumps(AuditSpool(directory).pending())
    return written + pending


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=st.sampled_from(POSITIONS), secret=secrets_st)
def test_a_secret_in_any_position_never_reaches_the_serialized_record(
    template: list[str], secret: str
) -> None:
    assume(secret not in " ".join(template))
    argv = _place(template, secret)
    with tempfile.TemporaryDirectory(prefix="jitkube-redact-") as tmp:
        blob = _serialized_record(argv, Path(tmp))
    assert secret not in blob, argv
    assert R in blob


@pytest.mark.parametrize("template", POSITIONS, ids=[" ".join(t)[:60] for t in POSITIONS])
def test_each_position_is_redacted_and_counted(template: list[str]) -> None:
    secret = "s3cr3t-Value-9"
    result = redact_argv(_place(template, secret))
    assert secret not in "\x00".join(result.argv)
    assert result.redactions >= 1
    assert secret in result.hidden
    assert secret not in repr(result)


# (argv, expected) — the record keeps everything but the secret.
EXPECTED: list[tuple[list[str], list[str]]] = [
    (["exec", "p", "--", "mysql", "-pSECRET9"], ["exec", "p", "--", "mysql", f"-p{R}"]),
    (
        ["exec", "p", "--", "mysql", "-p", "appdb"],  # -p VALUE prompts; VALUE is the db
        ["exec", "p", "--", "mysql", "-p", "appdb"],
    ),
    (
        ["exec", "p", "--", "psql", "postgresql://u:SECRET9@h/db"],
        ["exec", "p", "--", "psql", f"postgresql://u:{R}@h/db"],
    ),
    (
        ["exec", "p", "--", "env", "PASSWORD=SECRET9", "cmd"],
        ["exec", "p", "--", "env", f"PASSWORD={R}", "cmd"],
    ),
    (
        ["exec", "p", "--", "app", "--token", "SECRET9", "--verbose"],
        ["exec", "p", "--", "app", "--token", R, "--verbose"],
    ),
    (
        ["exec", "p", "--", "sh", "-c", "mysql -pSECRET9 db && echo ok"],
        ["exec", "p", "--", "sh", "-c", f"mysql -p{R} db && echo ok"],
    ),
    (
        ["exec", "p", "--", "curl", "-u", "admin:SECRET9", "https://x/?page=2&api_key=K9"],
        ["exec", "p", "--", "curl", "-u", f"admin:{R}", f"https://x/?page=2&api_key={R}"],
    ),
    (
        ["set", "env", "deploy/x", "DB_PASSWORD=SECRET9"],
        ["set", "env", "deploy/x", f"DB_PASSWORD={R}"],
    ),
    (
        ["create", "secret", "docker-registry", "r", "--docker-password=SECRET9"],
        ["create", "secret", "docker-registry", "r", f"--docker-password={R}"],
    ),
    (
        ["patch", "secret", "x", "-p", '{"data":{"k":"SECRET9"}}'],
        ["patch", "secret", "x", "-p", f'{{"data":{{"k":"{R}"}}}}'],
    ),
    # Not secrets: files, annotations, labels, plain container commands.
    (
        ["create", "secret", "tls", "t", "--cert=tls.crt", "--key=tls.key"],
        ["create", "secret", "tls", "t", "--cert=tls.crt", "--key=tls.key"],
    ),
    (
        ["create", "secret", "generic", "g", "--from-file=password=./pw.txt"],
        ["create", "secret", "generic", "g", "--from-file=password=./pw.txt"],
    ),
    (
        ["annotate", "deploy", "x", "owner=team-a", "description=nightly job"],
        ["annotate", "deploy", "x", "owner=team-a", "description=nightly job"],
    ),
    (["label", "pods", "x", "app=web"], ["label", "pods", "x", "app=web"]),
    (
        ["exec", "p", "--", "sh", "-c", "ls -la /tmp && cat /etc/hosts"],
        ["exec", "p", "--", "sh", "-c", "ls -la /tmp && cat /etc/hosts"],
    ),
    (["exec", "p", "--", "nc", "-p", "8080", "h"], ["exec", "p", "--", "nc", "-p", "8080", "h"]),
    (
        ["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
        ["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
    ),
]


@pytest.mark.parametrize(("argv", "expected"), EXPECTED)
def test_the_record_keeps_everything_but_the_secret(argv: list[str], expected: list[str]) -> None:
    result = redact_argv(argv)
    assert list(result.argv) == expected
    assert (result.redactions > 0) == (argv != expected)


# -- kubectl's grammar ----------------------------------------------------------------


def _grammar_value_flags() -> dict[str, set[str]]:
    """Every value-taking kubectl flag name -> the commands that have it."""
    found: dict[str, set[str]] = {}
    for name, spec in grammar.GLOBAL_FLAGS.items():
        if spec[1] != "bool":
            found.setdefault(name, set()).add("(global)")
    for path, node in grammar.COMMANDS.items():
        assert isinstance(node, dict)
        flags = node["flags"]
        assert isinstance(flags, dict)
        for name, spec in flags.items():
            if spec[1] != "bool":
                found.setdefault(name, set()).add(" ".join(path))
    return found


def test_every_secret_looking_kubectl_flag_is_classified() -> None:
    classified = SECRET_VALUE_FLAGS | LITERAL_FLAGS | KV_FLAGS | BODY_FLAGS | NOT_SECRET_FLAGS
    flags = _grammar_value_flags()
    unclassified = {n: sorted(c) for n, c in flags.items() if is_secret_name(n)}
    unclassified = {n: c for n, c in unclassified.items() if n not in classified}
    assert not unclassified, "classify these kubectl flags in jitkube/audit/redact.py"
    # and the tables name real kubectl flags only
    assert classified <= set(flags)


@pytest.mark.parametrize("flag", sorted(SECRET_VALUE_FLAGS))
def test_every_secret_value_flag_is_hidden_in_both_forms(flag: str) -> None:
    for argv in (["get", "pods", f"--{flag}=v4lue-X"], ["get", "pods", f"--{flag}", "v4lue-X"]):
        assert "v4lue-X" not in "".join(redact_argv(argv).argv)


# -- credential shapes: the output masker's rules, reused --------------------------------


def _shapes() -> dict[str, str]:
    kind = "RSA PRIVATE KEY"  # assembled at run time: no key-shaped literal in the repo
    return {
        "jwt": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZTEyMyJ9.c2lnbmF0dXJlX3Zh",
        "eks": "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9u",
        "aws_key_id": "AKIA" + "Q3EXAMPLE7XYZ123",
        "pem": f"-----BEGIN {kind}-----\nMIIEowIBAAKCAQEAx9\n-----END {kind}-----",
        "url_password": "https://admin:Pw0rd-77@db.internal/x",
    }


@pytest.mark.parametrize("name", sorted(_shapes()))
def test_the_masker_and_the_audit_hide_the_same_credential_shapes(name: str) -> None:
    sample = _shapes()[name]
    secret_part = {"url_password": "Pw0rd-77", "pem": "MIIEowIBAAKCAQEAx9"}.get(name, sample)
    masked = TextMasker(Digester()).string(sample.encode()).decode()
    assert secret_part not in masked  # the output masker's own rule ...
    for argv in (  # ... hides it in every position of an argv too
        ["exec", "p", "--", "echo", sample],
        ["exec", "p", "--", "sh", "-c", f"echo {sample} | app"],
        ["annotate", "pod", "x", f"note={sample}"],
        ["get", "pods", f"--selector=a={sample}"],
    ):
        result = redact_argv(argv)
        assert secret_part not in "\x00".join(result.argv), argv


def test_a_plain_command_does_not_load_the_masking_engine() -> None:
    code = (
        "import sys; from jitkube.audit.redact import redact_argv; "
        "redact_argv(['get', 'secrets', '-n', 'prod', '-o', 'wide']); "
        "redact_argv(['set', 'env', 'deploy/x', 'DB_PASSWORD=x']); "
        "print('jitkube.masking.patterns' in sys.modules, 'typing' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


# -- what reaches the broker ------------------------------------------------------------

BROKER_SECRET = "Br0ker-s3cret-X"


@pytest.mark.integration
def test_local_chain_spool_and_broker_hold_the_same_redacted_argv(
    isolated_env: IsolatedEnv, running_broker: BrokerProcess, ci_token: str, auditor_token: str
) -> None:
    environ = isolated_env.env
    for template in POSITIONS:
        argv = _place(template, BROKER_SECRET)
        j = judge(argv, DecisionContext(agent=True), default_policy())
        record_invocation(
            AuditEntry(argv=argv, outcome="denied", sub="jitkube-ci", **judgement_fields(j)),
            environ,
        )
    spool = AuditSpool(audit_dir(environ))
    local = {r["id"]: r for r in spool.log.records()}
    pending = {r["id"]: r for r in spool.pending()}
    assert pending == local  # the spool is the chain
    result = spool.flush(running_broker.url, f"Bearer {ci_token}")
    assert (result.delivered, result.error) == (len(POSITIONS), None)
    remote = broker_events(running_broker.url, auditor_token, spool.client_id())
    assert len(remote) == len(POSITIONS)
    for event in remote:
        mine = local[event["id"]]
        assert (event["argv"], event["reasons"], event["hash"]) == (
            mine["argv"],
            mine["reasons"],
            mine["hash"],
        )
    for blob in (json.dumps(remote), json.dumps(list(local.values()))):
        assert BROKER_SECRET not in blob
