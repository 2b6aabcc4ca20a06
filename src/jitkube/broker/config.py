"""The broker's configuration file (`broker.yaml`, `version: 1`), parsed and validated.

`parse_config(data)` turns a plain mapping into frozen dataclasses or raises
`ConfigError` whose message names the offending field (`roles[1].max_ttl: ...`), so an
operator can fix the file without reading code. Unknown keys are errors too: a typo in a
security setting must not silently fall back to a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jitkube.errors import ConfigError

SUPPORTED_VERSION = 1
MIN_SESSION_TTL = 15 * 60  # STS refuses DurationSeconds < 900; shorter sessions make no sense
MAX_SESSION_TTL = 12 * 3600  # STS's own ceiling for AssumeRole
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_DURATION_RE = re.compile(r"^(\d+)\s*(s|m|h|d)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,128}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")

Delivery = Literal["token", "credentials"]


@dataclass(frozen=True)
class OidcSettings:
    """Which access tokens the broker accepts, and what it tells clients about login."""

    issuer: str
    audience: tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256",)
    groups_claim: str = "groups"
    jwks_uri: str | None = None  # None: from the issuer's discovery document
    ca_bundle: str | None = None  # PEM file trusted for issuer/JWKS HTTPS (private CAs)
    leeway_seconds: int = 30
    jwks_min_refresh_seconds: float = 30.0  # rate limit for refetches on unknown kid
    jwks_cache_seconds: float = 600.0
    client_id: str = ""  # served at /v1/client-config for `jitkube login`
    scopes: tuple[str, ...] = ("openid", "profile", "email", "offline_access")
    authority: str | None = None  # Entra ID style authority; None: issuer
    agent_groups: tuple[str, ...] = ()  # members are always treated as agents


@dataclass(frozen=True)
class ClusterSettings:
    name: str
    region: str
    endpoint: str | None  # None: from EKS DescribeCluster (see clusters.py)
    certificate_authority: str | None  # base64 PEM as EKS reports it; None: DescribeCluster
    eks_cluster_name: str  # the x-k8s-aws-id the token is bound to (EKS name)

    @property
    def discovered(self) -> bool:
        """Whether the broker asks EKS DescribeCluster for the endpoint or the CA."""
        return self.endpoint is None or self.certificate_authority is None


@dataclass(frozen=True)
class ApprovalRule:
    approver_groups: tuple[str, ...] = ()
    min_approvals: int = 1
    auto_approve_groups: tuple[str, ...] = ()
    agent_allowed: bool = True
    reason_required: bool = False
    break_glass: bool = False
    break_glass_groups: tuple[str, ...] = ()  # empty: anyone who may request the role
    request_expiry_seconds: int = 3600


@dataclass(frozen=True)
class RoleSettings:
    name: str
    role_arn: str
    clusters: tuple[str, ...]
    requestable_by: tuple[str, ...]
    max_ttl_seconds: int
    approval: ApprovalRule
    delivery: Delivery = "token"
    session_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    format: Literal["slack", "json"] = "slack"
    events: tuple[str, ...] = ()  # empty: all events
    timeout_seconds: float = 5.0
    max_attempts: int = 5


@dataclass(frozen=True)
class StorageSettings:
    url: str = "sqlite:///jitkube-broker.db"
    encryption_key_env: str = "JITKUBE_BROKER_ENCRYPTION_KEY"
    encryption_key_file: str | None = None


@dataclass(frozen=True)
class AwsSettings:
    region: str = "us-east-1"
    sts_endpoint_url: str | None = None  # VPC endpoint, or an emulator in tests
    # EKS API for DescribeCluster. Not derived from sts_endpoint_url: a VPC endpoint serves
    # one service only. None: boto3's regional default.
    eks_endpoint_url: str | None = None


@dataclass(frozen=True)
class LimitSettings:
    max_body_bytes: int = 1_048_576
    requests_per_minute: int = 600  # per identity, per replica
    audit_batch_max: int = 500
    long_poll_max_seconds: int = 30
    command_approval_ttl_seconds: int = 600


@dataclass(frozen=True)
class BrokerConfig:
    """The whole validated `broker.yaml`."""

    oidc: OidcSettings
    clusters: Mapping[str, ClusterSettings]
    roles: Mapping[str, RoleSettings]
    policy: Mapping[str, Any] | None = None  # raw policy document; None: jitkube's default
    policy_file: str | None = None
    admin_groups: tuple[str, ...] = ()  # may revoke and read any session
    auditor_groups: tuple[str, ...] = ()  # may read and export audit events
    # Review per-command approvals of every role (besides each role's approver groups).
    command_approver_groups: tuple[str, ...] = ()
    webhooks: tuple[WebhookSettings, ...] = ()
    # Delivered (and given-up) notifications are deleted from the outbox after this long.
    notification_retention_seconds: int = 7 * 86400
    storage: StorageSettings = field(default_factory=StorageSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)


class _Reader:
    """Typed access to one mapping that reports errors with the field path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path or 'broker config'}: must be a mapping")
        self.data: Mapping[str, Any] = data
        self.path = path
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.raw(key)
        if value is None:
            if required or default is None:
                raise ConfigError(f"{self.where(key)}: required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.where(key)}: must be a non-empty string")
        return value.strip()

    def opt_str(self, key: str) -> str | None:
        return self.text(key) if self.raw(key) is not None else None

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where(key)}: must be true or false")
        return value

    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.where(key)}: must be an integer")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{self.where(key)}: must be {bound}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(f"{self.where(key)}: must be a number >= {minimum}")
        return float(value)

    def strings(self, key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return tuple(default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.where(key)}: must be a list of non-empty strings")
        return tuple(value)

    def duration(self, key: str, default: int | None = None) -> int:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self.where(key)}: required")
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{self.where(key)}: {exc}") from None

    def child(self, key: str, *, required: bool = False) -> _Reader | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise ConfigError(f"{self.where(key)}: required")
            return None
        return _Reader(value, self.where(key))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.where(unknown[0])}: unknown field")


def parse_duration(value: object) -> int:
    """Seconds from `900`, `"45s"`, `"15m"`, `"1h"`, `"1d"`."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 15m or 1h")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str):
        match = _DURATION_RE.match(value.strip())
        if match:
            return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError("must be a duration like 15m or 1h")


def _url(reader: _Reader, key: str, *, required: bool, https_only: bool) -> str | None:
    value = reader.text(key) if required else reader.opt_str(key)
    if value is None:
        return None
    allowed = ("https://",) if https_only else ("https://", "http://")
    if not value.startswith(allowed):
        raise ConfigError(f"{reader.where(key)}: must be an {' or '.join(allowed)} URL")
    return value


def _oidc(reader: _Reader) -> OidcSettings:
    issuer = _url(reader, "issuer", required=True, https_only=True)
    assert issuer is not None
    audience = reader.strings("audience")
    if not audience:
        raise ConfigError(f"{reader.where('audience')}: required")
    algorithms = reader.strings("algorithms", ("RS256",))
    for alg in algorithms:
        if alg in FORBIDDEN_ALGORITHMS or alg.upper() == "NONE":
            raise ConfigError(
                f"{reader.where('algorithms')}: {alg} is refused "
                "(only asymmetric signatures: the broker never shares a secret with the IdP)"
            )
        if alg not in ALLOWED_ALGORITHMS:
            raise ConfigError(f"{reader.where('algorithms')}: unknown algorithm {alg}")
    settings = OidcSettings(
        issuer=issuer,
        audience=audience,
        algorithms=algorithms,
        groups_claim=reader.text("groups_claim", "groups"),
        jwks_uri=_url(reader, "jwks_uri", required=False, https_only=True),
        ca_bundle=reader.opt_str("ca_bundle"),
        leeway_seconds=reader.integer("leeway_seconds", 30, maximum=300),
        jwks_min_refresh_seconds=reader.number("jwks_min_refresh_seconds", 30.0),
        jwks_cache_seconds=reader.number("jwks_cache_seconds", 600.0),
        client_id=reader.text("client_id", ""),
        scopes=reader.strings("scopes", OidcSettings.scopes),
        authority=_url(reader, "authority", required=False, https_only=True),
        agent_groups=reader.strings("agent_groups"),
    )
    reader.done()
    return settings


def _cluster(reader: _Reader) -> ClusterSettings:
    name = reader.text("name", required=True)
    if not _NAME_RE.match(name):
        raise ConfigError(f"{reader.where('name')}: letters, digits, '.', '_', '-' only")
    region = reader.text("region", required=True)
    if not _REGION_RE.match(region):
        raise ConfigError(f"{reader.where('region')}: not an AWS region")
    # Each one left out is filled in from EKS DescribeCluster (clusters.py).
    settings = ClusterSettings(
        name=name,
        region=region,
        endpoint=_url(reader, "endpoint", required=False, https_only=True),
        certificate_authority=reader.opt_str("certificate_authority"),
        eks_cluster_name=reader.text("eks_cluster_name", name),
    )
    reader.done()
    return settings


def _approval(reader: _Reader | None) -> ApprovalRule:
    if reader is None:
        return ApprovalRule()
    rule = ApprovalRule(
        approver_groups=reader.strings("approver_groups"),
        min_approvals=reader.integer("min_approvals", 1, maximum=10),
        auto_approve_groups=reader.strings("auto_approve_groups"),
        agent_allowed=reader.flag("agent_allowed", True),
        reason_required=reader.flag("reason_required", False),
        break_glass=reader.flag("break_glass", False),
        break_glass_groups=reader.strings("break_glass_groups"),
        request_expiry_seconds=reader.duration("request_expiry", 3600),
    )
    if rule.min_approvals > 0 and not rule.approver_groups:
        raise ConfigError(
            f"{reader.where('approver_groups')}: required when min_approvals > 0 "
            "(nobody could approve)"
        )
    reader.done()
    return rule


def _role(reader: _Reader, clusters: Mapping[str, ClusterSettings]) -> RoleSettings:
    name = reader.text("name", required=True)
    if not _NAME_RE.match(name):
        raise ConfigError(f"{reader.where('name')}: letters, digits, '.', '_', '-' only")
    role_arn = reader.text("role_arn", required=True)
    if not _ROLE_ARN_RE.match(role_arn):
        raise ConfigError(f"{reader.where('role_arn')}: not an IAM role ARN")
    names = reader.strings("clusters")
    if reader.has("cluster"):
        names = (*names, reader.text("cluster"))
    if not names:
        raise ConfigError(f"{reader.where('clusters')}: required (at least one cluster)")
    for cluster in names:
        if cluster not in clusters:
            raise ConfigError(f"{reader.where('clusters')}: unknown cluster {cluster!r}")
    requestable_by = reader.strings("requestable_by")
    if not requestable_by:
        raise ConfigError(f"{reader.where('requestable_by')}: required (at least one group)")
    max_ttl = reader.duration("max_ttl", 3600)
    if not MIN_SESSION_TTL <= max_ttl <= MAX_SESSION_TTL:
        raise ConfigError(f"{reader.where('max_ttl')}: must be between 15m and 12h")
    delivery = reader.text("delivery", "token")
    if delivery not in ("token", "credentials"):
        raise ConfigError(f"{reader.where('delivery')}: must be 'token' or 'credentials'")
    tags_raw = reader.raw("session_tags") or {}
    if not isinstance(tags_raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags_raw.items()
    ):
        raise ConfigError(f"{reader.where('session_tags')}: must map strings to strings")
    settings = RoleSettings(
        name=name,
        role_arn=role_arn,
        clusters=names,
        requestable_by=requestable_by,
        max_ttl_seconds=max_ttl,
        approval=_approval(reader.child("approval")),
        delivery="credentials" if delivery == "credentials" else "token",
        session_tags=dict(tags_raw),
    )
    reader.done()
    return settings


def _webhook(reader: _Reader) -> WebhookSettings:
    url = _url(reader, "url", required=True, https_only=False)
    assert url is not None
    fmt = reader.text("format", "slack")
    if fmt not in ("slack", "json"):
        raise ConfigError(f"{reader.where('format')}: must be 'slack' or 'json'")
    settings = WebhookSettings(
        url=url,
        format="slack" if fmt == "slack" else "json",
        events=reader.strings("events"),
        timeout_seconds=reader.number("timeout_seconds", 5.0, minimum=0.1),
        max_attempts=reader.integer("max_attempts", 5, minimum=1, maximum=20),
    )
    reader.done()
    return settings


def _items(reader: _Reader, key: str) -> list[_Reader]:
    value = reader.raw(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{reader.where(key)}: must be a list")
    return [_Reader(item, f"{reader.where(key)}[{i}]") for i, item in enumerate(value)]


def parse_config(data: Any, *, base_dir: Path | None = None) -> BrokerConfig:
    """Validate a loaded YAML document; raise ConfigError naming the first bad field.

    `base_dir` resolves relative file paths (policy file, CA bundle, key file).
    """
    root = _Reader(data, "")
    version = root.raw("version")
    if version != SUPPORTED_VERSION:
        raise ConfigError(f"version: must be {SUPPORTED_VERSION} (got {version!r})")
    oidc_reader = root.child("oidc", required=True)
    assert oidc_reader is not None
    oidc = _oidc(oidc_reader)

    clusters: dict[str, ClusterSettings] = {}
    for item in _items(root, "clusters"):
        cluster = _cluster(item)
        if cluster.name in clusters:
            raise ConfigError(f"{item.where('name')}: duplicate cluster {cluster.name!r}")
        clusters[cluster.name] = cluster
    if not clusters:
        raise ConfigError("clusters: required (at least one cluster)")

    roles: dict[str, RoleSettings] = {}
    for item in _items(root, "roles"):
        role = _role(item, clusters)
        if role.name in roles:
            raise ConfigError(f"{item.where('name')}: duplicate role {role.name!r}")
        roles[role.name] = role
    if not roles:
        raise ConfigError("roles: required (at least one role)")

    def resolve(path: str | None) -> str | None:
        if path is None or base_dir is None or Path(path).is_absolute():
            return path
        return str(base_dir / path)

    policy_inline: Mapping[str, Any] | None = None
    policy_file: str | None = None
    policy_raw = root.raw("policy")
    if isinstance(policy_raw, Mapping) and set(policy_raw) == {"file"}:
        policy_file = resolve(_Reader(policy_raw, "policy").text("file"))
    elif isinstance(policy_raw, Mapping):
        policy_inline = dict(policy_raw)
    elif policy_raw is not None:
        raise ConfigError("policy: must be a policy document or {file: PATH}")

    storage = StorageSettings()
    storage_reader = root.child("storage")
    if storage_reader is not None:
        storage = StorageSettings(
            url=storage_reader.text("url", StorageSettings.url),
            encryption_key_env=storage_reader.text(
                "encryption_key_env", StorageSettings.encryption_key_env
            ),
            encryption_key_file=resolve(storage_reader.opt_str("encryption_key_file")),
        )
        if not storage.url.startswith(("sqlite", "postgresql")):
            raise ConfigError("storage.url: must be a sqlite:// or postgresql:// URL")
        storage_reader.done()

    aws = AwsSettings()
    aws_reader = root.child("aws")
    if aws_reader is not None:
        aws = AwsSettings(
            region=aws_reader.text("region", "us-east-1"),
            sts_endpoint_url=_url(aws_reader, "sts_endpoint_url", required=False, https_only=False),
            eks_endpoint_url=_url(aws_reader, "eks_endpoint_url", required=False, https_only=False),
        )
        aws_reader.done()

    limits = LimitSettings()
    limits_reader = root.child("limits")
    if limits_reader is not None:
        limits = LimitSettings(
            max_body_bytes=limits_reader.integer(
                "max_body_bytes", limits.max_body_bytes, minimum=1024
            ),
            requests_per_minute=limits_reader.integer(
                "requests_per_minute", limits.requests_per_minute, minimum=1
            ),
            audit_batch_max=limits_reader.integer(
                "audit_batch_max", limits.audit_batch_max, minimum=1, maximum=10_000
            ),
            long_poll_max_seconds=limits_reader.integer(
                "long_poll_max_seconds", limits.long_poll_max_seconds, minimum=0, maximum=300
            ),
            command_approval_ttl_seconds=limits_reader.duration(
                "command_approval_ttl", limits.command_approval_ttl_seconds
            ),
        )
        limits_reader.done()

    notifications = root.child("notifications")
    webhooks: tuple[WebhookSettings, ...] = ()
    retention = BrokerConfig.notification_retention_seconds
    if notifications is not None:
        webhooks = tuple(_webhook(item) for item in _items(notifications, "webhooks"))
        retention = notifications.duration("retention", retention)
        notifications.done()

    ca_bundle = resolve(oidc.ca_bundle)
    if ca_bundle != oidc.ca_bundle:
        oidc = _replace_ca(oidc, ca_bundle)

    config = BrokerConfig(
        oidc=oidc,
        clusters=clusters,
        roles=roles,
        policy=policy_inline,
        policy_file=policy_file,
        admin_groups=root.strings("admin_groups"),
        auditor_groups=root.strings("auditor_groups"),
        command_approver_groups=root.strings("command_approver_groups"),
        webhooks=webhooks,
        notification_retention_seconds=retention,
        storage=storage,
        aws=aws,
        limits=limits,
    )
    root.done()
    return config


def _replace_ca(oidc: OidcSettings, ca_bundle: str | None) -> OidcSettings:
    from dataclasses import replace

    return replace(oidc, ca_bundle=ca_bundle)


def load_config(path: str | Path) -> BrokerConfig:
    """Read and validate a broker.yaml file."""
    import yaml  # lazily: only the broker reads YAML config

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read broker config {file}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc.__class__.__name__})") from None
    try:
        return parse_config(data, base_dir=file.parent)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc.message}") from None
