"""The sandbox OpenID provider: HTTPS on loopback, under a path, for the demo and tests.

`SandboxIdP(...).start()` serves, under `https://127.0.0.1:PORT/idp`:

- `/.well-known/openid-configuration`, `/jwks`
- `/device_authorization` (RFC 8628) and `/token` (device_code, refresh_token,
  client_credentials), errors as RFC 6749 JSON
- `/device`: a page telling a person how to approve a code (no browser login here)
- `/admin/device` (POST, `Authorization: Bearer <admin_secret>`, JSON
  `{"user_code": "...", "action": "approve"|"deny", "user": "alice"}`), used by
  `jitkube sandbox approve-device`.

stdlib `ThreadingHTTPServer` + `ssl` keeps start-up to a few milliseconds; the protocol
lives in `idp_core` (transport-free, injectable clock).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import secrets
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from jitkube.sandbox.idp_core import (
    CLIENT_CREDENTIALS_GRANT,
    DEFAULT_USERS,
    DEVICE_CODE_GRANT,
    REFRESH_TOKEN_GRANT,
    Client,
    Clock,
    IdentityCore,
    Lifetimes,
    OAuthError,
    SigningKeys,
    User,
    default_clients,
)
from jitkube.sandbox.tls import CertificateAuthority

__all__ = [
    "DEFAULT_USERS",
    "Client",
    "Lifetimes",
    "OAuthError",
    "SandboxIdP",
    "User",
    "default_clients",
]

_MAX_BODY = 64 * 1024
_DRAIN_LIMIT = 1024 * 1024
_FORM = "application/x-www-form-urlencoded"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    idp: SandboxIdP

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that drops its TLS handshake is not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add 40 ms a call.
    disable_nagle_algorithm = True
    # Routes relative to the issuer path.
    GET_ROUTES: ClassVar[dict[str, str]] = {
        "/.well-known/openid-configuration": "discovery",
        "/jwks": "jwks",
        "/device": "device_page",
        "/authorize": "authorize",
    }
    POST_ROUTES: ClassVar[dict[str, str]] = {
        "/device_authorization": "device_authorization",
        "/token": "token",
        "/admin/device": "admin_device",
    }

    def setup(self) -> None:
        # The TLS handshake runs here, in the connection's own thread, so one slow
        # client cannot stall the accept loop.
        self.request.settimeout(self.timeout)
        try:
            self.request.do_handshake()
        except OSError:
            self.request.close()
            raise
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        return  # request lines may carry codes; the sandbox logs nothing

    def do_GET(self) -> None:
        self._dispatch(self.GET_ROUTES)

    def do_POST(self) -> None:
        self._dispatch(self.POST_ROUTES)

    def _dispatch(self, routes: dict[str, str]) -> None:
        idp = self.server.idp
        url = urlsplit(self.path)
        prefix = idp.path
        route = url.path[len(prefix) :] if url.path.startswith(prefix + "/") else None
        name = routes.get(route or "")
        try:
            body = self._read_body()
            if name is None:
                known = route in self.GET_ROUTES or route in self.POST_ROUTES
                status = HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND
                self._json(
                    status, {"error": "invalid_request", "error_description": "no such endpoint"}
                )
                return
            getattr(self, "_" + name)(url.query, body)
        except OAuthError as err:
            headers = {}
            if err.status == 401 and self.headers.get("Authorization", "").startswith("Basic "):
                headers["WWW-Authenticate"] = 'Basic realm="jitkube-sandbox"'
            self._json(err.status, err.body(), headers)
        except Exception:  # fail as a JSON server_error, never a dropped connection
            self._json(500, {"error": "server_error", "error_description": "internal error"})

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise OAuthError("invalid_request", "chunked bodies are not supported", 411)
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise OAuthError("invalid_request", "bad Content-Length") from None
        if n < 0 or n > _MAX_BODY:
            self.close_connection = True
            if 0 < n <= _DRAIN_LIMIT:
                # Read it away so the client sees our 413, not a reset mid-upload.
                while n > 0 and (chunk := self.rfile.read(min(n, 65536))):
                    n -= len(chunk)
            raise OAuthError("invalid_request", "request body too large", 413)
        return self.rfile.read(n)

    def _form(self, body: bytes) -> dict[str, str]:
        """Parse a form body; RFC 6749 §3.2 forbids repeated parameters."""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != _FORM:
            raise OAuthError("invalid_request", f"Content-Type must be {_FORM}")
        try:
            parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise OAuthError("invalid_request", "body is not UTF-8") from None
        repeated = sorted(k for k, v in parsed.items() if len(v) > 1)
        if repeated:
            raise OAuthError("invalid_request", f"parameters repeated: {', '.join(repeated)}")
        return {k: v[0] for k, v in parsed.items() if v[0] != ""}

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "unsupported client authentication", 401)
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "malformed Basic credentials", 401)
        # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    # -- endpoints ----------------------------------------------------------------

    def _discovery(self, query: str, body: bytes) -> None:
        self._json(200, self.server.idp.discovery())

    def _jwks(self, query: str, body: bytes) -> None:
        self._json(200, self.server.idp.core.keys.jwks())

    def _authorize(self, query: str, body: bytes) -> None:
        # msal requires an authorization_endpoint in discovery; only device flow is served.
        raise OAuthError("unsupported_response_type", "use the device authorization endpoint")

    def _device_page(self, query: str, body: bytes) -> None:
        code = parse_qs(query).get("user_code", ["CODE"])[0]
        page = (
            "<!doctype html><title>jitkube sandbox sign-in</title>"
            "<h1>jitkube sandbox sign-in</h1><p>Approve this device code with:</p>"
            f"<pre>jitkube sandbox approve-device {html.escape(code)} --user alice</pre>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def _device_authorization(self, query: str, body: bytes) -> None:
        idp = self.server.idp
        flow = idp.core.device_authorization(
            self._form(body), self._basic(), idp.issuer + "/device"
        )
        self._json(200, flow)

    def _token(self, query: str, body: bytes) -> None:
        self._json(200, self.server.idp.core.token(self._form(body), self._basic()))

    def _admin_device(self, query: str, body: bytes) -> None:
        idp = self.server.idp
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.strip().encode(), idp.admin_secret.encode()
        ):
            raise OAuthError("invalid_token", "admin secret required", 401)
        try:
            req = json.loads(body)
        except ValueError:
            raise OAuthError("invalid_request", "body must be JSON") from None
        if not isinstance(req, dict) or not isinstance(req.get("user_code"), str):
            raise OAuthError("invalid_request", "user_code is required")
        action = req.get("action", "approve")
        if action == "approve":
            user = req.get("user")
            if not isinstance(user, str):
                raise OAuthError("invalid_request", "user is required to approve")
            idp.approve_device(req["user_code"], user)
        elif action == "deny":
            idp.deny_device(req["user_code"])
        else:
            raise OAuthError("invalid_request", "action must be approve or deny")
        self._json(200, {"user_code": req["user_code"], "status": action + "d"})


class SandboxIdP:
    """A small OpenID provider on `https://127.0.0.1:<port><path>` for the sandbox.

    `users` log in through the device flow (approved with `approve_device` or the admin
    endpoint); `clients` are OAuth clients (public ones use the device flow, confidential
    ones client_credentials), by default `default_clients()` with a CI secret generated
    here. Access tokens are RS256 `at+jwt` with `aud=audience`.
    """

    def __init__(
        self,
        users: Sequence[User] = DEFAULT_USERS,
        clients: Sequence[Client] | None = None,
        audience: str = "jitkube",
        ca: CertificateAuthority | None = None,
        *,
        path: str = "/idp",
        lifetimes: Lifetimes | None = None,
        clock: Clock = time.time,
        auto_approve: str | None = None,
        resource_scopes: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not path.startswith("/") or path == "/" or path.endswith("/"):
            raise ValueError("path must look like /idp (msal needs a path segment)")
        self.ca = ca or CertificateAuthority()
        self.path = path
        self.admin_secret = secrets.token_urlsafe(32)
        self._users = tuple(users)
        self.clients: dict[str, Client] = {
            c.client_id: c
            for c in (
                clients if clients is not None else default_clients(secrets.token_urlsafe(24))
            )
        }
        self._audience, self._lifetimes = audience, lifetimes or Lifetimes()
        self._clock, self._auto_approve = clock, auto_approve
        self._resource_scopes = tuple(resource_scopes)
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._core: IdentityCore | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> SandboxIdP:
        """Bind (port 0 by default), start serving in a daemon thread, return self."""
        if self._server is not None:
            return self
        ctx = self.ca.issue_server().server_context()
        server = _Server((self._host, self._port), _Handler, bind_and_activate=True)
        server.socket = ctx.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.idp = self
        port = server.server_address[1]
        self._core = IdentityCore(
            issuer=f"https://{self._host}:{port}{self.path}",
            audience=self._audience,
            users=self._users,
            clients=tuple(self.clients.values()),
            lifetimes=self._lifetimes,
            keys=SigningKeys(),
            clock=self._clock,
            auto_approve=self._auto_approve,
            resource_scopes=self._resource_scopes,
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="idp"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxIdP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need -------------------------------------------------------------

    @property
    def core(self) -> IdentityCore:
        if self._core is None:
            raise RuntimeError("SandboxIdP is not started")
        return self._core

    @property
    def issuer(self) -> str:
        return self.core.issuer

    @property
    def audience(self) -> str:
        return self._audience

    @property
    def jwks_uri(self) -> str:
        return self.issuer + "/jwks"

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"

    @property
    def device_authorization_endpoint(self) -> str:
        return self.issuer + "/device_authorization"

    @property
    def admin_url(self) -> str:
        """POST here with `Authorization: Bearer <admin_secret>` to approve/deny codes."""
        return self.issuer + "/admin/device"

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata (OpenID Connect Discovery 1.0 / RFC 8414)."""
        core = self.core
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.token_endpoint,
            "device_authorization_endpoint": self.device_authorization_endpoint,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["none"],  # device flow only
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "grant_types_supported": [
                DEVICE_CODE_GRANT,
                REFRESH_TOKEN_GRANT,
                CLIENT_CREDENTIALS_GRANT,
            ],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "scopes_supported": list(core.supported_scopes),
            "claims_supported": ["sub", "email", "groups", "name", "preferred_username"],
        }

    # -- person-side actions -------------------------------------------------------------

    def approve_device(self, user_code: str, user: str) -> None:
        """Approve the pending device login showing `user_code` as configured user `user`."""
        self.core.approve_device(user_code, user)

    def deny_device(self, user_code: str) -> None:
        """Refuse the pending device login showing `user_code`."""
        self.core.deny_device(user_code)

    def rotate_signing_key(self) -> str:
        """Sign with a new key from now on (old keys stay in JWKS); returns the new kid."""
        return self.core.keys.rotate()
