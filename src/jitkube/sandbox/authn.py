"""Authentication and authorization of the simulated EKS API server.

Authentication is aws-iam-authenticator's: the bearer token's structure is checked
(`decode_eks_token`), then the presigned GetCallerIdentity is sent to STS (here: the
emulator) with the original `Host` and this cluster's `x-k8s-aws-id`; STS's answer names
the caller. The assumed-role ARN is canonicalised to the role ARN and looked up in the
cluster's access entries (role ARN -> username + groups). No entry, no access (401).

Authorization is a small RBAC stand-in keyed on groups: `view` reads everything but
Secrets, `edit` writes everything but RBAC, `admin`/`system:masters` may do anything.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from jitkube.eks_token import EksTokenError, decode_eks_token

_ASSUMED_ROLE_RE = re.compile(
    r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/(?:.*/)?([^/]+)/([^/]+)$"
)
_READ_VERBS = frozenset({"get", "list", "watch"})
# Subresources a viewer may read (as Kubernetes' `view` role: logs yes, exec no).
_VIEW_SUBRESOURCES = frozenset({"", "log", "status", "scale"})
ADMIN_GROUPS = frozenset({"system:masters", "admin", "cluster-admin"})


@dataclass(frozen=True)
class AccessEntry:
    """EKS access entry: which Kubernetes user and groups an IAM role becomes.

    `username` may use `{{SessionName}}` and `{{AccountID}}`, as EKS access entries do.
    """

    principal_arn: str
    username: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class UserInfo:
    """The authenticated Kubernetes user."""

    username: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthFailure:
    """Why a token was refused (kept server-side; the client only sees 401)."""

    reason: str


@dataclass(frozen=True)
class RequestAttributes:
    """What RBAC looks at: verb, API group, resource, subresource, namespace, name."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    non_resource_path: str = ""


def canonical_role_arn(arn: str) -> str | None:
    """`arn:aws:sts::A:assumed-role/R/S` -> `arn:aws:iam::A:role/R` (path dropped, like EKS)."""
    m = _ASSUMED_ROLE_RE.match(arn)
    if not m:
        return None
    return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"


def default_access_entries(account_id: str) -> tuple[AccessEntry, ...]:
    """The sandbox's roles: jitkube-view, jitkube-edit, jitkube-admin."""
    return tuple(
        AccessEntry(
            principal_arn=f"arn:aws:iam::{account_id}:role/jitkube-{level}",
            username=f"arn:aws:sts::{account_id}:assumed-role/jitkube-{level}/{{{{SessionName}}}}",
            groups=groups,
        )
        for level, groups in (
            ("view", ("view",)),
            ("edit", ("edit",)),
            ("admin", ("system:masters",)),
        )
    )


class TokenAuthenticator:
    """Validates `k8s-aws-v1.` bearer tokens against STS and maps them to users."""

    def __init__(
        self,
        cluster_name: str,
        sts_url: str,
        access_entries: Sequence[AccessEntry],
        timeout: float = 5.0,
    ) -> None:
        self.cluster_name = cluster_name
        self._sts = urlsplit(sts_url)
        self._entries = {e.principal_arn: e for e in access_entries}
        self._timeout = timeout

    def set_access_entries(self, entries: Sequence[AccessEntry]) -> None:
        self._entries = {e.principal_arn: e for e in entries}

    def authenticate(self, authorization: str | None) -> UserInfo | AuthFailure:
        """Authenticate an `Authorization` header value."""
        if not authorization:
            return AuthFailure("no bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return AuthFailure("not a bearer token")
        try:
            presigned = decode_eks_token(token.strip(), self.cluster_name)
        except EksTokenError as exc:
            return AuthFailure(f"malformed token: {exc}")
        target = urlsplit(presigned.url)
        conn_cls = (
            http.client.HTTPSConnection
            if self._sts.scheme == "https"
            else http.client.HTTPConnection
        )
        conn = conn_cls(self._sts.hostname or "127.0.0.1", self._sts.port, timeout=self._timeout)
        try:
            # The original Host is kept: the signature covers it.
            conn.putrequest("GET", f"{target.path}?{target.query}", skip_host=True)
            for name, value in presigned.headers.items():
                conn.putheader(name, value)
            conn.putheader("Accept", "application/json")
            conn.endheaders()
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            return AuthFailure(f"STS unreachable: {exc.__class__.__name__}")
        finally:
            conn.close()
        if response.status != 200:
            return AuthFailure(f"STS refused the token ({response.status})")
        try:
            result = json.loads(body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
            arn, account = str(result["Arn"]), str(result["Account"])
        except (ValueError, KeyError, TypeError):
            return AuthFailure("STS answer is not understood")
        role_arn = canonical_role_arn(arn)
        entry = self._entries.get(role_arn or arn)
        if entry is None:
            return AuthFailure("ARN is not mapped by any access entry")
        session = arn.rsplit("/", 1)[-1] if role_arn else ""
        username = entry.username.replace("{{SessionName}}", session).replace(
            "{{AccountID}}", account
        )
        return UserInfo(
            username=username,
            groups=(*entry.groups, "system:authenticated"),
            uid=f"aws-iam-authenticator:{account}:{result.get('UserId', '')}",
            extra={
                "arn": [arn],
                "canonicalArn": [role_arn or arn],
                "sessionName": [session],
                "accessKeyId": [presigned.access_key_id],
            },
        )


def authorize(user: UserInfo, attrs: RequestAttributes) -> bool:
    """The sandbox's RBAC: view < edit < admin, decided by group membership."""
    groups = set(user.groups)
    if groups & ADMIN_GROUPS:
        return True
    if attrs.non_resource_path:
        return attrs.verb == "get"  # discovery, /version, /openapi: every authenticated user
    if attrs.group == "authorization.k8s.io" and attrs.resource.startswith("selfsubject"):
        return attrs.verb == "create"
    if attrs.group == "authentication.k8s.io" and attrs.resource == "selfsubjectreviews":
        return attrs.verb == "create"
    if "edit" in groups:
        if attrs.group == "rbac.authorization.k8s.io":
            return attrs.verb in _READ_VERBS
        return attrs.verb != "impersonate"
    if "view" in groups:
        return (
            attrs.verb in _READ_VERBS
            and attrs.resource != "secrets"
            and attrs.subresource in _VIEW_SUBRESOURCES
        )
    return False
