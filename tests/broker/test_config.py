"""broker.yaml: the documented example loads, and every mistake names its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from broker_harness import broker_config_dict

from jitkube.broker.approvals import load_broker_policy
from jitkube.broker.config import load_config, parse_config, parse_duration
from jitkube.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "broker.yaml"


def test_documented_example_is_valid_and_complete() -> None:
    config = load_config(EXAMPLE)
    assert config.oidc.issuer == "https://login.example.com/realms/platform"
    assert set(config.roles) == {"viewer", "admin", "deployer"}
    assert config.roles["admin"].approval.break_glass
    assert config.roles["deployer"].clusters == ("staging",)
    assert not config.clusters["prod"].discovered
    assert config.clusters["staging"].discovered  # endpoint and CA from EKS DescribeCluster
    assert config.roles["viewer"].max_ttl_seconds == 4 * 3600
    assert config.webhooks[0].format == "slack"
    assert config.limits.command_approval_ttl_seconds == 600
    policy = load_broker_policy(config)
    assert [r.name for r in policy.rules] == ["reads-are-fine", "no-secret-dumps-for-agents"]


def test_every_top_level_field_of_the_example_is_documented() -> None:
    doc = (REPO / "docs" / "broker-config.md").read_text(encoding="utf-8")
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for key in data:
        assert f"`{key}`" in doc, f"docs/broker-config.md does not describe `{key}`"


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(broker_config_dict())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", 2, "version: must be 1"),
        ("oidc.issuer", "http://insecure.test", "oidc.issuer: must be an https:// URL"),
        ("oidc.issuer", _DELETE, "oidc.issuer: required"),
        ("oidc.audience", [], "oidc.audience: required"),
        ("oidc.algorithms", ["HS256"], "oidc.algorithms: HS256 is refused"),
        ("oidc.algorithms", ["none"], "oidc.algorithms: none is refused"),
        ("oidc.algorithms", ["RS257"], "oidc.algorithms: unknown algorithm"),
        ("oidc.leeway_seconds", 3600, "oidc.leeway_seconds: must be between 0 and 300"),
        ("oidc.grups_claim", "groups", "oidc.grups_claim: unknown field"),
        ("clusters.0.region", "mars-1", "clusters[0].region: not an AWS region"),
        ("clusters.0.endpoint", "http://x", "clusters[0].endpoint: must be an https:// URL"),
        ("clusters.1.name", "prod", "clusters[1].name: duplicate cluster"),
        ("roles.0.role_arn", "arn:aws:iam::1:role/x", "roles[0].role_arn: not an IAM role ARN"),
        ("roles.0.clusters", ["nowhere"], "roles[0].clusters: unknown cluster 'nowhere'"),
        ("roles.0.requestable_by", [], "roles[0].requestable_by: required"),
        ("roles.0.max_ttl", "5m", "roles[0].max_ttl: must be between 15m and 12h"),
        ("roles.0.max_ttl", "forever", "roles[0].max_ttl: must be a duration"),
        ("roles.0.delivery", "email", "roles[0].delivery: must be 'token' or 'credentials'"),
        ("roles.1.approval.min_approvals", -1, "roles[1].approval.min_approvals: must be"),
        ("roles.1.approval.approver_groups", [], "roles[1].approval.approver_groups: required"),
        ("roles.1.approval.break_glass", "yes", "roles[1].approval.break_glass: must be true"),
        ("roles.2.session_tags", {"a": 1}, "roles[2].session_tags: must map strings"),
        ("storage", {"url": "mysql://x"}, "storage.url: must be a sqlite"),
        ("limits", {"max_body_bytes": 10}, "limits.max_body_bytes: must be >= 1024"),
        ("notifications", {"webhooks": [{"url": "ftp://x"}]}, "notifications.webhooks[0].url"),
        ("policy", "allow-all", "policy: must be a policy document"),
        ("admin_grups", ["x"], "admin_grups: unknown field"),
    ],
)
def test_invalid_config_is_refused_naming_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(_with(path, value))
    assert message in excinfo.value.message


def test_an_invalid_inline_policy_is_refused_with_its_field() -> None:
    config = parse_config(_with("policy", {"version": 1, "rules": [{"name": "x"}]}))
    with pytest.raises(ConfigError, match=r"^policy: .*rules\[0\]"):
        load_broker_policy(config)


def test_a_policy_file_is_resolved_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\ndefault: deny\nrules:\n  - name: all\n    match: {}\n    action: allow\n",
        encoding="utf-8",
    )
    data = broker_config_dict(policy={"file": "policy.yaml"})
    (tmp_path / "broker.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    config = load_config(tmp_path / "broker.yaml")
    assert config.policy_file == str(tmp_path / "policy.yaml")
    assert [r.name for r in load_broker_policy(config).rules] == ["all"]


def test_without_a_policy_the_broker_uses_jitkubes_default() -> None:
    from jitkube.policy import default_policy

    assert load_broker_policy(parse_config(broker_config_dict())) == default_policy()


def test_unreadable_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read broker config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    ("text", "seconds"), [(900, 900), ("45s", 45), ("15m", 900), ("2h", 7200), ("1d", 86400)]
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1w", "-5", True, 1.5, "15 minutes"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(text)
