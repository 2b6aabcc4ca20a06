"""The protocol state of the sandbox identity provider, without any HTTP.

Device authorization (RFC 8628), refresh tokens that rotate and revoke their grant on
reuse (as oidc-provider does for public clients), client credentials, RS256 JWT access
tokens (RFC 9068 `at+jwt`) and id_tokens. Every method takes plain form parameters and
returns a JSON-able dict or raises `OAuthError`; the clock is injected so expiry is
testable without sleeping.

Why not authlib's server side: wiring `authlib.oauth2.AuthorizationServer` needs a
request adapter plus about 26 hook methods across server, grant and model mixins
(counted in authlib 1.9: server 7, ClientMixin 8, device credential 5, TokenMixin 6)
before anything runs, and the parts jitkube's tests care about are not in it:
consuming a device code once, refresh-token reuse revoking the whole grant, and the
`at+jwt` header. The endpoint logic below is smaller than that glue; signing uses PyJWT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_TOKEN_GRANT = "refresh_token"  # noqa: S105 - a grant type name, not a secret
CLIENT_CREDENTIALS_GRANT = "client_credentials"
OIDC_SCOPES = ("openid", "profile", "email", "offline_access", "groups")
# RFC 8628 §6.1: 20 consonants, no vowels (no words), no look-alikes.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"

Clock = Callable[[], float]


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response: `error` code, description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class User:
    """A person or agent identity the provider can log in."""

    sub: str
    email: str
    groups: tuple[str, ...] = ()
    name: str = ""
    is_agent: bool = False


@dataclass(frozen=True)
class Client:
    """An OAuth client. `secret=None` makes it public (token_endpoint_auth_method none)."""

    client_id: str
    grant_types: tuple[str, ...] = (DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT)
    secret: str | None = None
    # Identity of tokens minted by client_credentials (a CI pipeline has no user).
    groups: tuple[str, ...] = ()
    email: str | None = None

    @property
    def is_public(self) -> bool:
        return self.secret is None


DEFAULT_USERS: tuple[User, ...] = (
    User("alice", "alice@example.test", ("engineers",), "Alice Engineer"),
    User("bob", "bob@example.test", ("reviewers", "sre"), "Bob Reviewer"),
    User("carol", "carol@example.test", ("auditors",), "Carol Auditor"),
    User("agent-claude", "agent-claude@agents.example.test", ("agents",), "Claude", True),
    User("agent-cursor", "agent-cursor@agents.example.test", ("agents",), "Cursor", True),
)


def default_clients(ci_secret: str) -> tuple[Client, ...]:
    """The sandbox's clients: the public CLI (device flow) and a confidential CI client."""
    return (
        Client("jitkube-cli"),
        Client(
            "jitkube-ci",
            grant_types=(CLIENT_CREDENTIALS_GRANT,),
            secret=ci_secret,
            groups=("ci-deployers",),
        ),
    )


@dataclass(frozen=True)
class Lifetimes:
    """Token and code lifetimes in seconds, and the device polling interval."""

    access_token: int = 600
    id_token: int = 600
    refresh_token: int = 8 * 3600
    device_code: int = 300
    interval: int = 1


class SigningKeys:
    """RSA signing keys; the newest signs, all are published (so rotation can be tested)."""

    def __init__(self) -> None:
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self.rotate()

    def rotate(self) -> str:
        """Add a fresh RSA-2048 key that signs from now on; returns its kid."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = _thumbprint(_public_jwk(key))
        self._keys.append((kid, key))
        return kid

    @property
    def current_kid(self) -> str:
        return self._keys[-1][0]

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (RFC 7517)."""
        keys = [
            {**_public_jwk(k), "kid": kid, "use": "sig", "alg": "RS256"} for kid, k in self._keys
        ]
        return {"keys": keys}

    def sign(self, claims: Mapping[str, Any], typ: str) -> str:
        kid, key = self._keys[-1]
        return jwt.encode(dict(claims), key, algorithm="RS256", headers={"kid": kid, "typ": typ})


def _b64u_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    pub = key.public_key().public_numbers()
    return {"kty": "RSA", "n": _b64u_uint(pub.n), "e": _b64u_uint(pub.e)}


def _thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint, used as a stable kid."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def normalize_user_code(code: str) -> str:
    """Upper-case, without separators: what a person may type back."""
    return "".join(c for c in code.upper() if c.isalnum())


@dataclass
class _DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    interval: int
    last_poll: float | None = None
    status: str = "pending"  # pending | approved | denied | consumed
    user: User | None = None


@dataclass
class _Grant:
    grant_id: str
    client_id: str
    user: User
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class _RefreshToken:
    grant_id: str
    expires_at: float
    used: bool = False


@dataclass
class ProviderState:
    """Everything the provider remembers; guarded by one lock."""

    devices: dict[str, _DeviceCode] = field(default_factory=dict)
    by_user_code: dict[str, str] = field(default_factory=dict)
    grants: dict[str, _Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, _RefreshToken] = field(default_factory=dict)


class IdentityCore:
    """The provider's grants and token minting; transport-free and thread-safe."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        users: Sequence[User],
        clients: Sequence[Client],
        lifetimes: Lifetimes,
        keys: SigningKeys,
        clock: Clock = time.time,
        auto_approve: str | None = None,
        resource_scopes: Sequence[str] = (),
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.users = {u.sub: u for u in users}
        self.clients = {c.client_id: c for c in clients}
        self.lifetimes = lifetimes
        self.keys = keys
        self.clock = clock
        self.auto_approve = auto_approve
        # Scopes naming this API; msal needs at least one non-OIDC scope to cache tokens.
        self.resource_scopes = tuple(resource_scopes) or (audience,)
        self._state = ProviderState()
        self._lock = threading.Lock()
        if auto_approve is not None and auto_approve not in self.users:
            raise ValueError(f"auto_approve names an unknown user: {auto_approve!r}")

    @property
    def supported_scopes(self) -> tuple[str, ...]:
        return (*OIDC_SCOPES, *self.resource_scopes)

    def user(self, sub: str) -> User:
        """The configured user `sub`, or `OAuthError` when unknown."""
        try:
            return self.users[sub]
        except KeyError:
            raise OAuthError("invalid_request", f"unknown user {sub!r}") from None

    # -- client authentication -------------------------------------------------

    def authenticate(self, params: Mapping[str, str], basic: tuple[str, str] | None) -> Client:
        """RFC 6749 §2.3: secret via HTTP Basic or form, or a public client by id."""
        if basic is not None and "client_secret" in params:
            raise OAuthError("invalid_request", "use one client authentication method")
        client_id, secret = (
            basic
            if basic is not None
            else (
                params.get("client_id", ""),
                params.get("client_secret"),
            )
        )
        if basic is not None and params.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id differs from the authenticated one")
        if not client_id:
            raise OAuthError("invalid_request", "client_id is required")
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "client authentication failed", 401)
        if client.secret is None:
            if secret:
                raise OAuthError("invalid_client", "public clients have no secret", 401)
            return client
        if secret is None or not secrets.compare_digest(secret.encode(), client.secret.encode()):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    def _scopes(self, requested: str | None, client: Client) -> tuple[str, ...]:
        """Granted scopes: the known ones requested, in order. Unknown scopes are dropped
        (RFC 6749 §3.3 lets the server narrow them; oidc-provider does the same)."""
        if requested is not None and any(ord(c) < 0x21 and c != " " for c in requested):
            raise OAuthError("invalid_scope", "malformed scope")
        wanted = (requested or "").split()
        granted = [s for s in dict.fromkeys(wanted) if s in self.supported_scopes]
        if not client.is_public or CLIENT_CREDENTIALS_GRANT in client.grant_types:
            granted = [s for s in granted if s not in ("offline_access", "openid")]
        return tuple(granted)

    # -- RFC 8628 device authorization ----------------------------------------

    def device_authorization(
        self, params: Mapping[str, str], basic: tuple[str, str] | None, verification_uri: str
    ) -> dict[str, Any]:
        """Start a device flow (RFC 8628 §3.1, §3.2)."""
        client = self.authenticate(params, basic)
        if DEVICE_CODE_GRANT not in client.grant_types:
            raise OAuthError("unauthorized_client", "client may not use the device flow")
        scopes = self._scopes(params.get("scope"), client)
        now = self.clock()
        with self._lock:
            code = _DeviceCode(
                device_code=secrets.token_urlsafe(32),
                user_code=self._new_user_code(),  # unique among live codes: under the lock
                client_id=client.client_id,
                scopes=scopes,
                expires_at=now + self.lifetimes.device_code,
                interval=self.lifetimes.interval,
            )
            self._state.devices[code.device_code] = code
            self._state.by_user_code[normalize_user_code(code.user_code)] = code.device_code
            if self.auto_approve is not None:
                code.status, code.user = "approved", self.users[self.auto_approve]
        return {
            "device_code": code.device_code,
            "user_code": code.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={code.user_code}",
            "expires_in": self.lifetimes.device_code,
            "interval": code.interval,
        }

    def _new_user_code(self) -> str:
        while True:
            raw = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
            if raw not in self._state.by_user_code:
                return f"{raw[:4]}-{raw[4:]}"

    def _pending(self, user_code: str) -> _DeviceCode:
        device_code = self._state.by_user_code.get(normalize_user_code(user_code))
        code = self._state.devices.get(device_code or "")
        if code is None:
            raise OAuthError("invalid_request", "unknown user code", 404)
        if code.expires_at <= self.clock():
            raise OAuthError("expired_token", "the user code has expired")
        if code.status != "pending":
            raise OAuthError("invalid_request", f"the user code is already {code.status}", 409)
        return code

    def approve_device(self, user_code: str, sub: str) -> None:
        """Record that user `sub` approved the device login showing `user_code`."""
        user = self.user(sub)
        with self._lock:
            code = self._pending(user_code)
            code.status, code.user = "approved", user

    def deny_device(self, user_code: str) -> None:
        """Record that the person refused the device login showing `user_code`."""
        with self._lock:
            self._pending(user_code).status = "denied"

    # -- token endpoint --------------------------------------------------------

    def token(self, params: Mapping[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        """The token endpoint (RFC 6749 §3.2) for the three supported grants."""
        grant_type = params.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        handlers = {
            DEVICE_CODE_GRANT: self._device_code_grant,
            REFRESH_TOKEN_GRANT: self._refresh_token_grant,
            CLIENT_CREDENTIALS_GRANT: self._client_credentials_grant,
        }
        handler = handlers.get(grant_type)
        if handler is None:
            raise OAuthError(
                "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
            )
        client = self.authenticate(params, basic)
        if grant_type not in client.grant_types:
            raise OAuthError("unauthorized_client", f"client may not use {grant_type}")
        return handler(client, params)

    def _device_code_grant(self, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
        device_code = params.get("device_code")
        if not device_code:
            raise OAuthError("invalid_request", "device_code is required")
        now = self.clock()
        with self._lock:
            code = self._state.devices.get(device_code)
            if code is None or code.client_id != client.client_id:
                raise OAuthError("invalid_grant", "unknown device_code")
            if code.status == "consumed":
                raise OAuthError("invalid_grant", "device_code was already used")
            if code.expires_at <= now:
                raise OAuthError("expired_token", "the device code has expired")
            if code.status == "denied":
                raise OAuthError("access_denied", "the user denied the request")
            too_fast = code.last_poll is not None and now - code.last_poll < code.interval
            code.last_poll = now
            if code.status == "pending":
                if too_fast:
                    code.interval += 5  # RFC 8628 §3.5: for this and all later requests
                    raise OAuthError("slow_down", f"poll at most every {code.interval} s")
                raise OAuthError("authorization_pending", "the user has not approved yet")
            assert code.user is not None
            code.status = "consumed"
            grant = _Grant(secrets.token_urlsafe(16), client.client_id, code.user, code.scopes)
            self._state.grants[grant.grant_id] = grant
            return self._issue(grant, client, now)

    def _refresh_token_grant(self, client: Client, params: Mapping[str, str]) -> dict[str, Any]:
        presented = params.get("refresh_token")
        if not presented:
            raise OAuthError("invalid_request", "refresh_token is required")
        now = self.clock()
        with self._lock:
            record = self._state.refresh_tokens.get(presented)
            grant = self._state.grants.get(record.grant_id) if record else None
            if record is None or grant is None or grant.client_id != client.client_id:
                raise OAuthError("invalid_grant", "unknown refresh token")
            if record.used:
                # Reuse of a rotated token: someone else holds the newer one. Revoke the
                # grant (oidc-provider does the same), so both copies stop working.
                grant.revoked = True
                raise OAuthError("invalid_grant", "refresh token reused; grant revoked")
            if grant.revoked:
                raise OAuthError("invalid_grant", "grant revoked")
            if record.expires_at <= now:
                raise OAuthError("invalid_grant", "refresh token expired")
            scopes = grant.scopes
            if "scope" in params:
                narrowed = tuple(params["scope"].split())
                if not set(narrowed) <= set(grant.scopes):
                    raise OAuthError("invalid_scope", "scope exceeds the original grant")
                scopes = narrowed
            record.used = True
            return self._issue(grant, client, now, scopes)

    def _client_credentials_grant(
        self, client: Client, params: Mapping[str, str]
    ) -> dict[str, Any]:
        if client.is_public:
            raise OAuthError("unauthorized_client", "public clients cannot use client_credentials")
        scopes = self._scopes(params.get("scope"), client)
        now = self.clock()
        subject = User(
            sub=client.client_id,
            email=client.email or "",
            groups=client.groups,
            name=client.client_id,
        )
        return {
            "access_token": self._access_token(subject, client, scopes, now),
            "token_type": "Bearer",
            "expires_in": self.lifetimes.access_token,
            "scope": " ".join(scopes),
        }

    def grant_revoked(self, refresh_token: str) -> bool:
        """Whether the grant behind `refresh_token` has been revoked (for tests/demo)."""
        with self._lock:
            record = self._state.refresh_tokens.get(refresh_token)
            grant = self._state.grants.get(record.grant_id) if record else None
            return grant is None or grant.revoked

    # -- minting -----------------------------------------------------------------

    def _issue(
        self, grant: _Grant, client: Client, now: float, scopes: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        scopes = grant.scopes if scopes is None else scopes
        out: dict[str, Any] = {
            "access_token": self._access_token(grant.user, client, scopes, now),
            "token_type": "Bearer",
            "expires_in": self.lifetimes.access_token,
            "scope": " ".join(scopes),
        }
        if "openid" in scopes:
            out["id_token"] = self._id_token(grant.user, client, now)
        if "offline_access" in grant.scopes and REFRESH_TOKEN_GRANT in client.grant_types:
            token = secrets.token_urlsafe(32)
            self._state.refresh_tokens[token] = _RefreshToken(
                grant.grant_id, now + self.lifetimes.refresh_token
            )
            out["refresh_token"] = token
        return out

    def _identity_claims(self, user: User) -> dict[str, Any]:
        claims: dict[str, Any] = {"sub": user.sub, "groups": list(user.groups)}
        if user.email:
            claims["email"] = user.email
        if user.is_agent:
            claims["agent"] = True
        return claims

    def _access_token(self, user: User, client: Client, scopes: tuple[str, ...], now: float) -> str:
        iat = int(now)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            **self._identity_claims(user),
            "client_id": client.client_id,
            "scope": " ".join(scopes),
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.lifetimes.access_token,
            "jti": secrets.token_urlsafe(16),
        }
        return self.keys.sign(claims, typ="at+jwt")

    def _id_token(self, user: User, client: Client, now: float) -> str:
        iat = int(now)
        claims = {
            "iss": self.issuer,
            "aud": client.client_id,
            **self._identity_claims(user),
            "name": user.name or user.sub,
            "preferred_username": user.sub,
            "iat": iat,
            "auth_time": iat,
            "exp": iat + self.lifetimes.id_token,
        }
        return self.keys.sign(claims, typ="JWT")
