"""Validation of OIDC access tokens (JWT) against the configured issuer's JWKS.

The broker trusts nothing in a token until its signature verifies with a key from the
issuer's JWKS, with an algorithm from the allow-list (never `none`, never HMAC: an HMAC
"signature" with the RSA public key as secret is the classic confusion attack), and
`iss`, `aud`, `exp` and `nbf` check out. The JWKS is cached; an unknown `kid` triggers a
refetch (key rotation) at most once per `jwks_min_refresh_seconds`, so garbage tokens
cannot make the broker hammer the IdP.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from jitkube.broker.config import FORBIDDEN_ALGORITHMS, OidcSettings

# RFC 9068 access tokens say `at+jwt`; many providers say `JWT`. Anything else (an
# id_token is `JWT` too, sadly; a logout token is `logout+jwt`) is refused.
_ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/at+jwt"})
_MAX_TOKEN_BYTES = 16_384
_MAX_JWKS_BYTES = 1_048_576


class AuthError(Exception):
    """The token is not acceptable. The message is safe to show; it never holds the token.

    `reason` tells a client what would help: "audience" and "issuer" mean the broker and
    the identity provider disagree (logging in again yields the same kind of token)."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who is calling, from a validated token."""

    sub: str
    email: str = ""
    name: str = ""
    groups: frozenset[str] = frozenset()
    is_agent: bool = False
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def display(self) -> str:
        return self.email or self.sub

    def in_any(self, groups: tuple[str, ...] | frozenset[str]) -> bool:
        return bool(self.groups & set(groups))


Fetch = Callable[[str], bytes]


def https_fetcher(ca_bundle: str | None, timeout: float = 5.0) -> Fetch:
    """GET a URL over verified HTTPS (optionally with a private CA) and return the body."""
    context = ssl.create_default_context(cafile=ca_bundle)

    def fetch(url: str) -> bytes:
        if not url.startswith("https://"):
            raise AuthError("refusing to fetch OIDC metadata over plain http")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            body: bytes = response.read(_MAX_JWKS_BYTES + 1)
        if len(body) > _MAX_JWKS_BYTES:
            raise AuthError("OIDC metadata document is too large")
        return body

    return fetch


class JwksCache:
    """The issuer's signing keys by kid, refreshed on expiry or (rate-limited) on a miss."""

    def __init__(
        self,
        settings: OidcSettings,
        fetch: Fetch,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._fetch = fetch
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._anonymous: list[jwt.PyJWK] = []  # keys without kid
        self._fetched_at: float | None = None
        self._jwks_uri = settings.jwks_uri
        self.fetches = 0  # observable for tests and metrics

    def _discover(self) -> str:
        if self._jwks_uri is None:
            url = self._settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = json.loads(self._fetch(url))
            if document.get("issuer") != self._settings.issuer:
                raise AuthError("the discovery document names a different issuer")
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
                raise AuthError("the discovery document has no https jwks_uri")
            self._jwks_uri = jwks_uri
        return self._jwks_uri

    def _refresh(self) -> None:
        self.fetches += 1
        self._fetched_at = self._monotonic()
        document = json.loads(self._fetch(self._discover()))
        keys: dict[str, jwt.PyJWK] = {}
        anonymous: list[jwt.PyJWK] = []
        for raw in document.get("keys", []):
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
                continue
            if raw.get("kty") == "oct":  # symmetric keys never verify access tokens here
                continue
            try:
                key = jwt.PyJWK(raw)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue
            if isinstance(raw.get("kid"), str):
                keys[raw["kid"]] = key
            else:
                anonymous.append(key)
        self._keys, self._anonymous = keys, anonymous

    def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The key for `kid`; refetches once per rate-limit window when it is unknown."""
        with self._lock:
            now = self._monotonic()
            stale = (
                self._fetched_at is None
                or now - self._fetched_at >= self._settings.jwks_cache_seconds
            )
            if stale:
                self._safe_refresh()
            key = self._lookup(kid)
            if key is None and self._fetched_at is not None:
                recent = now - self._fetched_at < self._settings.jwks_min_refresh_seconds
                if not recent:
                    self._safe_refresh()
                    key = self._lookup(kid)
            if key is None:
                raise AuthError("token signed with an unknown key")
            return key

    def _safe_refresh(self) -> None:
        try:
            self._refresh()
        except AuthError:
            raise
        except Exception as exc:  # network, JSON: keep the old keys, report a safe message
            if not self._keys and not self._anonymous:
                raise AuthError(
                    f"cannot fetch the issuer's keys ({exc.__class__.__name__})"
                ) from None

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        candidates = self._anonymous or list(self._keys.values())
        return candidates[0] if len(candidates) == 1 else None


class TokenValidator:
    """Turns a bearer token into an Identity or raises AuthError."""

    def __init__(
        self,
        settings: OidcSettings,
        jwks: JwksCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._jwks = jwks
        self._clock = clock
        self._algorithms = [a for a in settings.algorithms if a not in FORBIDDEN_ALGORITHMS]

    def validate(self, token: str) -> Identity:
        if not token or len(token) > _MAX_TOKEN_BYTES:
            raise AuthError("missing or oversized bearer token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthError(f"token algorithm {alg!r} is not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP):
            raise AuthError(f"token type {typ!r} is not an access token")
        if "crit" in header:
            raise AuthError("token has critical header extensions the broker does not know")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("malformed key id")
        key = self._jwks.key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=list(self._settings.audience),
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                # Times are checked below with the broker's injected clock.
                options={
                    "require": ["exp", "iss", "sub", "aud"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise AuthError("token is for another audience", "audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token is from another issuer", "issuer") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token ({exc.__class__.__name__})") from None
        self._check_times(claims)
        return self._identity(claims)

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        leeway = self._settings.leeway_seconds
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or now > exp + leeway:
            raise AuthError("token has expired")
        if nbf is not None and (not isinstance(nbf, int | float) or now + leeway < nbf):
            raise AuthError("token is not valid yet")

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("token has no subject")
        raw_groups = claims.get(self._settings.groups_claim, [])
        if isinstance(raw_groups, str):
            raw_groups = [raw_groups]
        if not isinstance(raw_groups, list):
            raise AuthError(f"claim {self._settings.groups_claim!r} is not a list")
        groups = frozenset(g for g in raw_groups if isinstance(g, str))
        email = claims.get("email")
        name = claims.get("name")
        return Identity(
            sub=sub,
            email=email if isinstance(email, str) else "",
            name=name if isinstance(name, str) else "",
            groups=groups,
            is_agent=bool(groups & set(self._settings.agent_groups)),
            claims=dict(claims),
        )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
