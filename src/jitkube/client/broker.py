"""A small HTTP client for the broker API (docs/broker-config.md), for non-hot commands.

Every call passes `verify=` explicitly (the configured CA bundle, else requests' default):
`REQUESTS_CA_BUNDLE` would otherwise override it. Redirects are not followed, so a bearer
token is never resent elsewhere. Broker problem codes become jitkube errors with the
documented exit codes; the broker's `code` is kept in the error (and so in the envelope).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from jitkube.errors import (
    ApprovalRefusedError,
    BrokerUnreachableError,
    ConfigError,
    DeniedError,
    JitkubeError,
    LoginRequiredError,
    SessionRequiredError,
    UsageError,
)

DEFAULT_TIMEOUT = 15.0
_MAX_PAGES = 50

# Broker problem code -> jitkube error class (see docs/broker-config.md "Problem codes").
_BY_CODE: dict[str, type[JitkubeError]] = {
    "forbidden": DeniedError,
    "not_requestable": DeniedError,
    "agent_not_allowed": DeniedError,
    "self_approval": DeniedError,
    "not_a_reviewer": DeniedError,
    "denied_by_policy": DeniedError,
    "credentials_not_delivered": DeniedError,
    "not_found": UsageError,
    "method_not_allowed": UsageError,
    "conflict": UsageError,
    "already_decided": UsageError,
    "session_not_active": SessionRequiredError,
    "approval_not_usable": ApprovalRefusedError,
    "payload_too_large": UsageError,
    "unsupported_media_type": UsageError,
    "validation": UsageError,
    "rate_limited": BrokerUnreachableError,
    "internal": BrokerUnreachableError,
    "sts_unavailable": BrokerUnreachableError,
    "unavailable": BrokerUnreachableError,
}


def _clean(text: Any, limit: int = 300) -> str:
    """One printable line (the broker's detail is for people, but still untrusted)."""
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return " ".join(flat.split())[:limit]


def problem_error(status: int, body: Any, *, session_auth: bool = False) -> JitkubeError:
    """The jitkube error for a broker problem answer (RFC 9457 with a stable `code`)."""
    problem = body if isinstance(body, Mapping) else {}
    code = str(problem.get("code") or "")
    detail = _clean(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    if status == 401 or code == "unauthorized":
        if session_auth:
            error: JitkubeError = SessionRequiredError(
                f"the broker refused the session token: {detail}",
                hint="run `jitkube request` for a new session",
            )
        elif problem.get("reason") in ("audience", "issuer"):
            # A fresh login gets the same kind of token: the broker and the identity
            # provider disagree, which only its operator can change.
            error = LoginRequiredError(
                f"the broker refused your login: {detail}",
                hint="the broker's oidc.issuer/oidc.audience (broker.yaml) must match the "
                "tokens your identity provider issues for the scopes in "
                "/v1/client-config; ask the broker's operator",
            )
        else:
            error = LoginRequiredError(
                f"the broker refused your login: {detail}", hint="run `jitkube login`"
            )
        error.code = "unauthorized"
        return error
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = BrokerUnreachableError if status >= 500 or status == 429 else UsageError
    message = f"broker: {detail}"
    if code == "denied_by_policy":
        reasons = problem.get("reasons")
        if isinstance(reasons, list) and reasons:
            message += " (" + "; ".join(_clean(r, 120) for r in reasons[:3]) + ")"
    error = cls(message)
    if code:
        error.code = code
    return error


@dataclass(frozen=True)
class Created:
    """`POST /v1/sessions`: the session and its token (returned this once only)."""

    session: dict[str, Any]
    session_token: str
    active: bool

    def __repr__(self) -> str:
        return f"Created(session_id={self.session.get('id')!r}, active={self.active!r})"


class BrokerClient:
    """Calls to one broker with one bearer credential (OIDC access token or session token)."""

    def __init__(
        self,
        base_url: str,
        bearer: str | None,
        ca_bundle: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        session_auth: bool = False,
    ) -> None:
        if ca_bundle is not None:
            try:
                with open(ca_bundle, "rb"):
                    pass
            except OSError as exc:
                raise ConfigError(f"ca_bundle {ca_bundle} cannot be read: {exc.strerror}") from None
        self.base_url = base_url.rstrip("/")
        self._bearer = bearer
        self.verify: str | bool = ca_bundle if ca_bundle is not None else True
        self.timeout = timeout
        self.session_auth = session_auth
        self._http = requests.Session()
        self._http.trust_env = True  # proxies as usual; verify is passed per call anyway

    def __repr__(self) -> str:  # no token
        return f"BrokerClient({self.base_url!r})"

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def with_bearer(self, bearer: str, *, session_auth: bool) -> BrokerClient:
        """A client for the same broker with another credential."""
        other = BrokerClient(self.base_url, bearer, None, timeout=self.timeout)
        other.verify = self.verify
        other.session_auth = session_auth
        return other

    # -- transport ----------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        timeout: float | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        """One request; returns (status, JSON) for 2xx and raises the mapped error otherwise."""
        headers = {"Accept": "application/json", "User-Agent": "jitkube"}
        if auth and self._bearer:
            headers["Authorization"] = f"Bearer {self._bearer}"
        url = self.base_url + path
        try:
            resp = self._http.request(
                method,
                url,
                json=json,
                params=params,
                headers=headers,
                verify=self.verify,
                timeout=timeout or self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            raise BrokerUnreachableError(
                f"TLS verification failed for the broker at {self.base_url}",
                hint="set ca_bundle (JITKUBE_CA_BUNDLE) to the PEM bundle of its CA",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise BrokerUnreachableError(
                f"cannot reach the broker at {self.base_url} ({type(exc).__name__})",
                hint="check broker_url and the network",
            ) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if 200 <= resp.status_code < 300:
            if body is None:
                raise BrokerUnreachableError(
                    f"the broker at {self.base_url} did not answer JSON for {method} {path}"
                )
            return resp.status_code, body
        if 300 <= resp.status_code < 400:
            raise BrokerUnreachableError(
                f"the broker at {self.base_url} redirected {method} {path}; not following",
                hint="set broker_url to the broker's final address",
            )
        raise problem_error(resp.status_code, body, session_auth=self.session_auth)

    def _pages(self, path: str, params: list[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            query = [*params, ("limit", 200)] + ([("cursor", cursor)] if cursor else [])
            _, body = self.call("GET", path, params=query)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise BrokerUnreachableError(f"the broker's answer for {path} has no items")
            yield from (i for i in items if isinstance(i, dict))
            cursor = body.get("next_cursor")
            if not cursor:
                return

    # -- API ----------------------------------------------------------------------------

    def client_config(self) -> dict[str, Any]:
        _, body = self.call("GET", "/v1/client-config", auth=False)
        return body if isinstance(body, dict) else {}

    def create_session(
        self,
        *,
        role: str,
        cluster: str,
        ttl_seconds: int,
        reason: str = "",
        agent: bool = False,
        agent_name: str = "",
        break_glass: bool = False,
    ) -> Created:
        _, body = self.call(
            "POST",
            "/v1/sessions",
            json={
                "role": role,
                "cluster": cluster,
                "ttl": ttl_seconds,
                "reason": reason,
                "agent": agent,
                "agent_name": agent_name,
                "break_glass": break_glass,
            },
        )
        session, token = body.get("session"), body.get("session_token")
        if not isinstance(session, dict) or not isinstance(token, str):
            raise BrokerUnreachableError("the broker's session answer is incomplete")
        return Created(session, token, active=session.get("status") == "active")

    def get_session(self, session_id: str, *, wait: int = 0) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        _, body = self.call(
            "GET", f"/v1/sessions/{_id(session_id)}", params=params, timeout=self.timeout + wait
        )
        return dict(body)

    def list_sessions(
        self, *, scope: str = "mine", statuses: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        params = [("scope", scope), *(("status", s) for s in statuses)]
        return list(self._pages("/v1/sessions", params))

    def revoke_session(self, session_id: str) -> dict[str, Any]:
        _, body = self.call("DELETE", f"/v1/sessions/{_id(session_id)}")
        return dict(body)

    def review_session(self, session_id: str, decision: str, comment: str) -> dict[str, Any]:
        _, body = self.call(
            "POST",
            f"/v1/sessions/{_id(session_id)}/approvals",
            json={"decision": decision, "comment": comment},
        )
        return dict(body)

    def eks_token(self, session_id: str) -> dict[str, Any]:
        _, body = self.call("POST", f"/v1/sessions/{_id(session_id)}/eks-token")
        return dict(body)

    def list_commands(self, statuses: Sequence[str] = ("pending",)) -> list[dict[str, Any]]:
        return list(self._pages("/v1/commands", [("status", s) for s in statuses]))

    def get_command(self, command_id: str, *, wait: int = 0) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        _, body = self.call(
            "GET", f"/v1/commands/{_id(command_id)}", params=params, timeout=self.timeout + wait
        )
        return dict(body)

    def review_command(self, command_id: str, decision: str, comment: str) -> dict[str, Any]:
        _, body = self.call(
            "POST",
            f"/v1/commands/{_id(command_id)}/approvals",
            json={"decision": decision, "comment": comment},
        )
        return dict(body)


def _id(value: str) -> str:
    """An id as a single path segment: anything else is a usage error, not a new URL."""
    if not value or not all(ch.isalnum() or ch in "_-." for ch in value) or value in (".", ".."):
        raise UsageError(f"{value!r} is not a jitkube request id")
    return value
