"""Who a token says its bearer is: unverified JWT claims, for display and routing only.

The broker validates every token (signature, iss, aud, exp); the client only reads the
claims to show `whoami` and to know when to refresh. Stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS, or None when `token` is not a JWT (opaque token)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


@dataclass(frozen=True)
class Identity:
    """The caller as a token describes it, plus where the credential came from."""

    sub: str
    email: str | None
    groups: tuple[str, ...]
    issuer: str | None
    expires_at: float | None  # epoch seconds of the access token's `exp`
    source: str  # device_code | client_credentials | github_actions | id_token_file | id_token_env
    token_store: str  # keyring | file | memory | none (CI credentials are never stored)
    client_id: str | None = None
    is_agent: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-able view for the envelope; never contains a token."""
        return {
            "sub": self.sub,
            "email": self.email,
            "groups": list(self.groups),
            "issuer": self.issuer,
            "client_id": self.client_id,
            "expires_at": int(self.expires_at) if self.expires_at is not None else None,
            "source": self.source,
            "token_store": self.token_store,
            "agent": self.is_agent,
        }


def identity_from_claims(
    claims: Mapping[str, Any],
    *,
    source: str,
    token_store: str,
    groups_claim: str = "groups",
    client_id: str | None = None,
) -> Identity:
    """Build an `Identity` from access-token claims (groups are read from the access token:
    providers may drop scope-bound claims from refreshed id tokens)."""
    raw_groups = claims.get(groups_claim, [])
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    groups = (
        tuple(g for g in raw_groups if isinstance(g, str)) if isinstance(raw_groups, list) else ()
    )
    email = next(
        (
            v
            for k in ("email", "preferred_username", "upn")
            if isinstance(v := claims.get(k), str) and v
        ),
        None,
    )
    exp = claims.get("exp")
    sub = claims.get("sub")
    return Identity(
        sub=sub if isinstance(sub, str) else "",
        email=email,
        groups=groups,
        issuer=claims.get("iss") if isinstance(claims.get("iss"), str) else None,
        expires_at=float(exp) if isinstance(exp, int | float) else None,
        source=source,
        token_store=token_store,
        client_id=client_id
        or next(
            (v for k in ("client_id", "azp", "appid") if isinstance(v := claims.get(k), str)), None
        ),
        is_agent=claims.get("agent") is True,
    )
