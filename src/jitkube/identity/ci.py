"""Non-interactive identities for CI: client credentials and OIDC id-tokens from the CI.

Sources, first match wins (no network is used to decide):

1. `JITKUBE_ID_TOKEN` — an id-token in the environment;
2. `id_token_file` / `JITKUBE_ID_TOKEN_FILE` — a file holding one (Kubernetes projected
   service-account tokens, GitLab `id_tokens:` written to a file, ...);
3. `JITKUBE_CLIENT_SECRET` or `client_secret_file` — OAuth client credentials through msal
   (ConfidentialClientApplication) for `client_id` at the configured issuer;
4. GitHub Actions: `ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN`
   (the job needs `permissions: id-token: write`), requested `&audience=<audience>`.

The resulting token is what jitkube sends to the broker, which validates it like any
other (signature against the issuer's JWKS, `iss`, `aud`, `exp`): the broker must trust
the CI's issuer and list the requested audience (`id_token_audience`, default the
broker's first audience from `/v1/client-config`) among its accepted audiences.
Tokens are never stored: each process obtains its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from jitkube.config import Config, is_loopback_host
from jitkube.errors import BrokerUnreachableError, ConfigError, LoginRequiredError
from jitkube.identity.claims import jwt_claims

GITHUB_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 - a variable name


@dataclass(frozen=True)
class CiCredential:
    """A bearer token for the broker and where it came from."""

    token: str = field(repr=False)
    source: str  # id_token_env | id_token_file | client_credentials | github_actions
    client_id: str | None = None
    groups_claim: str = "groups"


def ci_source(config: Config, environ: Mapping[str, str]) -> str | None:
    """Which CI identity is configured, without using it (None: none is)."""
    if environ.get("JITKUBE_ID_TOKEN", "").strip():
        return "id_token_env"
    if config.id_token_file:
        return "id_token_file"
    if environ.get("JITKUBE_CLIENT_SECRET", "").strip() or config.client_secret_file:
        return "client_credentials"
    if environ.get(GITHUB_URL) and environ.get(GITHUB_TOKEN):
        return "github_actions"
    return None


def _read_secret_file(path: str, what: str) -> str:
    try:
        value = open(path, encoding="utf-8").read().strip()  # noqa: SIM115 - tiny read
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{what} {path} is empty")
    return value


def _check_unexpired(token: str, source: str, now: float) -> str:
    claims = jwt_claims(token)
    if claims is None:
        raise LoginRequiredError(f"the id-token from {source} is not a JWT")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp <= now:
        raise LoginRequiredError(f"the id-token from {source} has expired; the CI must renew it")
    return token


def ci_credential(
    config: Config, environ: Mapping[str, str], *, now: float | None = None
) -> CiCredential | None:
    """Obtain the configured CI credential, or None when no CI identity is configured."""
    source = ci_source(config, environ)
    now = time.time() if now is None else now
    if source is None:
        return None
    if source == "id_token_env":
        token = environ["JITKUBE_ID_TOKEN"].strip()
        return CiCredential(_check_unexpired(token, "JITKUBE_ID_TOKEN", now), source)
    if source == "id_token_file":
        assert config.id_token_file is not None
        token = _read_secret_file(config.id_token_file, "id_token_file")
        return CiCredential(_check_unexpired(token, config.id_token_file, now), source)
    if source == "client_credentials":
        return _client_credentials(config, environ)
    return _github_actions(config, environ, now)


def _client_credentials(config: Config, environ: Mapping[str, str]) -> CiCredential:
    import msal
    import requests

    from jitkube.identity.settings import resolve
    from jitkube.identity.transport import PinnedHttpClient

    secret = environ.get("JITKUBE_CLIENT_SECRET", "").strip()
    if not secret:
        assert config.client_secret_file is not None
        secret = _read_secret_file(config.client_secret_file, "client_secret_file")
    settings = resolve(config)
    key = "authority" if settings.kind == "entra" else "oidc_authority"
    try:
        app = msal.ConfidentialClientApplication(
            settings.client_id,
            client_credential=secret,
            http_client=PinnedHttpClient(settings.ca_bundle),
            **{key: settings.authority},
        )
        result = app.acquire_token_for_client(scopes=list(settings.api_scopes))
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise BrokerUnreachableError(
            f"identity provider {settings.authority} cannot be used ({type(exc).__name__})"
        ) from None
    if "access_token" not in result:
        error = str(result.get("error") or "unknown_error")[:64]
        raise LoginRequiredError(
            f"client credentials for {settings.client_id} were refused ({error})"
        )
    return CiCredential(
        str(result["access_token"]), "client_credentials", settings.client_id, settings.groups_claim
    )


def github_audience(config: Config) -> str:
    """The audience to request from GitHub: config, else the broker's first audience."""
    if config.id_token_audience:
        return config.id_token_audience
    if config.broker_url:
        from jitkube.identity.settings import fetch_client_config

        audiences = fetch_client_config(config.broker_url, config.ca_bundle).get("audience")
        if isinstance(audiences, list) and audiences and isinstance(audiences[0], str):
            return audiences[0]
    raise ConfigError(
        "GitHub Actions id-token needs an audience",
        hint="set id_token_audience (JITKUBE_ID_TOKEN_AUDIENCE) to one the broker accepts",
    )


def _github_actions(config: Config, environ: Mapping[str, str], now: float) -> CiCredential:
    from jitkube.identity.transport import PinnedHttpClient, get_json

    url = environ[GITHUB_URL]
    parts = urlsplit(url)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and is_loopback_host(parts.hostname)
    ):
        raise ConfigError(f"{GITHUB_URL} must be an https:// URL")
    audience = github_audience(config)
    url += ("&" if parts.query else "?") + "audience=" + quote(audience, safe="")
    # GitHub's runner endpoint uses the public CAs; the configured bundle is for the broker/IdP.
    http = PinnedHttpClient(None)
    try:
        doc = get_json(
            http,
            url,
            what="GitHub Actions id-token",
            headers={"Authorization": "bearer " + environ[GITHUB_TOKEN]},
        )
    finally:
        http.close()
    token = doc.get("value") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise LoginRequiredError("GitHub Actions answered no id-token")
    return CiCredential(_check_unexpired(token, "GitHub Actions", now), "github_actions")
