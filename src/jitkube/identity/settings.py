"""Which identity provider and client to use: config, else the broker's client-config.

`GET {broker}/v1/client-config` answers `issuer` (or an Entra ID `authority`),
`client_id`, `scopes`, `audience` and `groups_claim`. Values set in config, environment
or flags win over what the broker says; the broker fills the gaps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jitkube.config import Config, check_url
from jitkube.errors import BrokerUnreachableError, ConfigError

# msal adds these itself and refuses them as input.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
# Scopes about the user, not an API: msal caches no access token for these alone.
OIDC_SCOPES = RESERVED_SCOPES | {"email", "address", "phone", "groups"}


@dataclass(frozen=True)
class ProviderSettings:
    """Everything msal needs to log in and refresh."""

    authority: str  # issuer (generic OIDC) or Entra authority URL
    kind: str  # "oidc" (msal oidc_authority=) | "entra" (msal authority=)
    client_id: str
    request_scopes: tuple[str, ...]  # sent on the device flow (msal adds the reserved ones)
    api_scopes: tuple[str, ...]  # resource scopes: what cached tokens are looked up by
    ca_bundle: str | None
    broker_url: str | None
    groups_claim: str = "groups"
    audience: str | None = None

    @property
    def issuer(self) -> str:
        return self.authority


def split_scopes(
    scopes: Sequence[str], audience: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(scopes to request, API scopes). Falls back to the audience as the API scope."""
    request = [s for s in dict.fromkeys(scopes) if s not in RESERVED_SCOPES]
    api = [s for s in request if s not in OIDC_SCOPES]
    if not api:
        if not audience:
            raise ConfigError(
                "no API scope to ask the identity provider for",
                hint="set scopes (e.g. the broker's audience) in config.toml or pass --scope",
            )
        api = [audience]
        request.append(audience)
    return tuple(request), tuple(api)


def _check_authority(key: str, url: str) -> str:
    url = check_url(key, url, allow_loopback_http=False)
    if not urlsplit(url).path.strip("/"):
        # msal builds endpoints relative to a path segment and refuses a bare host.
        raise ConfigError(f"{key} {url!r} needs a path (e.g. https://idp.example/realm)")
    return url


def fetch_client_config(broker_url: str, ca_bundle: str | None) -> dict[str, Any]:
    """`GET {broker}/v1/client-config`; one clear error when the broker cannot answer."""
    from jitkube.identity.transport import PinnedHttpClient, get_json

    http = PinnedHttpClient(ca_bundle)
    try:
        doc = get_json(http, broker_url + "/v1/client-config", what="broker client-config")
    finally:
        http.close()
    if not isinstance(doc, dict):
        raise BrokerUnreachableError("broker client-config is not a JSON object")
    return doc


def _str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) and value else None


def resolve(config: Config, discovered: Mapping[str, Any] | None = None) -> ProviderSettings:
    """Merge config with the broker's client-config (fetched here when needed and possible)."""
    authority_url, kind = (
        (config.authority, "entra") if config.authority else (config.issuer, "oidc")
    )
    needs = authority_url is None or config.client_id is None or not config.scopes
    doc: Mapping[str, Any] = discovered or {}
    if needs and discovered is None and config.broker_url:
        doc = fetch_client_config(config.broker_url, config.ca_bundle)
    if authority_url is None:
        issuer, authority = _str(doc, "issuer"), _str(doc, "authority")
        if authority and authority.rstrip("/") != (issuer or "").rstrip("/"):
            authority_url, kind = authority, "entra"
        else:
            authority_url, kind = issuer, "oidc"
    client_id = config.client_id or _str(doc, "client_id")
    if authority_url is None or client_id is None:
        raise ConfigError(
            "no identity provider configured",
            hint="pass --broker URL (or --issuer URL --client-id ID), or set them in config.toml",
        )
    audiences = doc.get("audience")
    audience = config.id_token_audience or (
        audiences[0]
        if isinstance(audiences, list) and audiences and isinstance(audiences[0], str)
        else None
    )
    raw_scopes = config.scopes or tuple(
        s for s in doc.get("scopes") or () if isinstance(s, str) and s
    )
    request, api = split_scopes(raw_scopes, audience)
    return ProviderSettings(
        authority=_check_authority("authority" if kind == "entra" else "issuer", authority_url),
        kind=kind,
        client_id=client_id,
        request_scopes=request,
        api_scopes=api,
        ca_bundle=config.ca_bundle,
        broker_url=config.broker_url,
        groups_claim=_str(doc, "groups_claim") or "groups",
        audience=audience,
    )
