"""Interactive login (OAuth device code through msal), silent refresh, logout.

The refresh token sits in msal's serialized cache, kept by a `TokenStore`. Every
read -> refresh -> write of that cache happens under `token_store.locked()`, so two
jitkube processes refreshing at once do not reuse a rotated refresh token (which makes
the provider revoke the grant). A small login record (`login.json`, no secrets) says
which provider, client and store the login used. msal is imported lazily.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from jitkube.errors import BrokerUnreachableError, ConfigError, LoginRequiredError
from jitkube.identity.claims import Identity, identity_from_claims, jwt_claims
from jitkube.identity.settings import ProviderSettings
from jitkube.identity.token_store import (
    FileStore,
    KeyringStore,
    TokenStore,
    ensure_private_dir,
    locked,
    open_store,
)

RECORD_FILE = "login.json"
MIN_TTL = 60.0  # an access token handed out must live at least this long
Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class LoginRecord:
    """Which login the stored cache belongs to. Contains no secret."""

    authority: str
    kind: str
    client_id: str
    request_scopes: tuple[str, ...]
    api_scopes: tuple[str, ...]
    token_store: str
    home_account_id: str | None
    ca_bundle: str | None = None
    broker_url: str | None = None
    groups_claim: str = "groups"
    audience: str | None = None
    logged_in_at: float = 0.0

    def settings(self, ca_bundle: str | None = None) -> ProviderSettings:
        return ProviderSettings(
            authority=self.authority,
            kind=self.kind,
            client_id=self.client_id,
            request_scopes=self.request_scopes,
            api_scopes=self.api_scopes,
            ca_bundle=ca_bundle or self.ca_bundle,
            broker_url=self.broker_url,
            groups_claim=self.groups_claim,
            audience=self.audience,
        )


def read_record(state: Path) -> LoginRecord | None:
    """The login record, or None when nobody is logged in (or it is unreadable)."""
    try:
        raw = json.loads((state / RECORD_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, OSError):
        return None
    if not isinstance(raw, dict):
        return None
    names = {f.name for f in fields(LoginRecord)}
    data = {k: v for k, v in raw.items() if k in names}
    for key in ("request_scopes", "api_scopes"):
        data[key] = tuple(data.get(key) or ())
    try:
        return LoginRecord(**data)
    except TypeError:
        return None


def write_record(state: Path, record: LoginRecord) -> None:
    ensure_private_dir(state)
    tmp = state / f".{RECORD_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(record), fh, indent=2)
    os.replace(tmp, state / RECORD_FILE)


# -- msal ---------------------------------------------------------------------------------


def public_app(settings: ProviderSettings, cache: Any) -> Any:
    """msal PublicClientApplication for `settings`, with the configured CA pinned."""
    import msal
    import requests

    from jitkube.identity.transport import PinnedHttpClient

    http = PinnedHttpClient(settings.ca_bundle)
    key = "authority" if settings.kind == "entra" else "oidc_authority"
    try:
        return msal.PublicClientApplication(
            settings.client_id, token_cache=cache, http_client=http, **{key: settings.authority}
        )
    except requests.exceptions.SSLError:
        raise BrokerUnreachableError(
            f"identity provider {settings.authority}: TLS verification failed",
            hint="set ca_bundle (JITKUBE_CA_BUNDLE) to the PEM bundle of its CA",
        ) from None
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise BrokerUnreachableError(
            f"identity provider {settings.authority} cannot be used ({type(exc).__name__})"
        ) from None


@contextlib.contextmanager
def provider_calls(settings: ProviderSettings) -> Iterator[None]:
    """Turn transport failures while talking to the provider into one clear error."""
    import requests

    try:
        yield
    except requests.exceptions.SSLError:
        raise BrokerUnreachableError(
            f"identity provider {settings.authority}: TLS verification failed",
            hint="set ca_bundle (JITKUBE_CA_BUNDLE) to the PEM bundle of its CA",
        ) from None
    except requests.exceptions.RequestException as exc:
        raise BrokerUnreachableError(
            f"identity provider {settings.authority} did not answer ({type(exc).__name__})"
        ) from None


def _provider_error(result: dict[str, Any]) -> str:
    code = str(result.get("error") or "unknown_error")
    return code[:64]


# -- device code login ----------------------------------------------------------------------


@dataclass(frozen=True)
class DevicePrompt:
    """What the person must do: open a URL and enter a code (before `expires_at`)."""

    verification_uri: str
    user_code: str
    verification_uri_complete: str | None
    expires_at: float
    message: str | None  # Entra ID writes its own instruction; generic OIDC does not


class DeviceLoginUI(Protocol):
    def waiting(self, prompt: DevicePrompt) -> AbstractContextManager[None]:
        """Show `prompt`; the context stays open while jitkube polls the provider."""


_DEVICE_ERRORS = {
    "access_denied": "the sign-in was refused at the identity provider",
    "expired_token": "the code expired before it was approved; run `jitkube login` again",
    "authorization_declined": "the sign-in was refused at the identity provider",
}


def device_login(
    settings: ProviderSettings,
    store: TokenStore,
    state: Path,
    ui: DeviceLoginUI,
    *,
    clock: Clock = time.time,
    sleep: Sleep = time.sleep,
) -> Identity:
    """Run the device-code flow, store the new cache under the lock, return who logged in."""
    import msal

    # Refuse an unusable keyring or state directory before the person types a code.
    ensure_private_dir(state)
    if isinstance(store, KeyringStore):
        store.backend()
    cache = msal.SerializableTokenCache()
    app = public_app(settings, cache)
    try:
        with provider_calls(settings):
            flow = app.initiate_device_flow(scopes=list(settings.request_scopes))
    except ValueError as exc:
        raise ConfigError(f"device login is not possible here: {exc}") from None
    if "user_code" not in flow:
        raise LoginRequiredError(
            f"the identity provider refused to start a device login ({_provider_error(flow)})"
        )
    prompt = DevicePrompt(
        verification_uri=str(flow.get("verification_uri") or flow.get("verification_url") or ""),
        user_code=str(flow["user_code"]),
        verification_uri_complete=flow.get("verification_uri_complete"),
        expires_at=clock() + float(flow.get("expires_in", 300)),
        message=flow.get("message"),
    )
    with ui.waiting(prompt), provider_calls(settings):
        result = _poll(app, flow, prompt.expires_at, clock, sleep)
    claims = jwt_claims(result["access_token"]) or {}
    accounts = app.get_accounts()
    home = accounts[0].get("home_account_id") if accounts else None
    record = LoginRecord(
        authority=settings.authority,
        kind=settings.kind,
        client_id=settings.client_id,
        request_scopes=settings.request_scopes,
        api_scopes=settings.api_scopes,
        token_store=store.name,
        home_account_id=home,
        ca_bundle=settings.ca_bundle,
        broker_url=settings.broker_url,
        groups_claim=settings.groups_claim,
        audience=settings.audience,
        logged_in_at=clock(),
    )
    with locked(state):
        store.save(cache.serialize())
        write_record(state, record)
    if not claims:
        claims = dict(result.get("id_token_claims") or {})
    return identity_from_claims(
        claims,
        source="device_code",
        token_store=store.name,
        groups_claim=settings.groups_claim,
        client_id=settings.client_id,
    )


def _poll(app: Any, flow: dict[str, Any], expires_at: float, clock: Clock, sleep: Sleep) -> Any:
    """Poll the token endpoint at the provider's interval (msal widens it on slow_down)."""
    while True:
        result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _flow: True)
        if "access_token" in result:
            return result
        error = result.get("error")
        if error not in ("authorization_pending", "slow_down"):
            message = _DEVICE_ERRORS.get(str(error))
            raise LoginRequiredError(
                message or f"the identity provider ended the login ({_provider_error(result)})"
            )
        if clock() >= expires_at:
            raise LoginRequiredError(_DEVICE_ERRORS["expired_token"])
        sleep(float(flow.get("interval", 5)))


# -- silent refresh -------------------------------------------------------------------------


def _cached_access_token(
    cache: Any, record: LoginRecord, not_before: float
) -> tuple[str, dict[str, Any]] | None:
    """A cached access token valid until after `not_before`: no network (like kubelogin)."""
    import msal

    query: dict[str, str] = {"client_id": record.client_id}
    if record.home_account_id:
        query["home_account_id"] = record.home_account_id
    for entry in cache.search(
        msal.TokenCache.CredentialType.ACCESS_TOKEN, target=list(record.api_scopes), query=query
    ):
        try:
            expires_on = float(entry.get("expires_on", 0))
        except (TypeError, ValueError):
            continue
        if expires_on > not_before and entry.get("secret"):
            return str(entry["secret"]), entry
    return None


def stored_access_token(
    state: Path,
    *,
    ca_bundle: str | None = None,
    min_ttl: float = MIN_TTL,
    clock: Clock = time.time,
) -> tuple[str, LoginRecord]:
    """The logged-in user's access token, refreshed silently (under the lock) when due.

    Raises LoginRequiredError when nobody is logged in or the grant is gone.
    """
    record = read_record(state)
    if record is None:
        raise LoginRequiredError("not logged in; run `jitkube login`")
    store = open_store(record.token_store, state)
    import msal

    with locked(state):
        blob = store.load()
        if blob is None:
            if record.token_store == "memory":  # noqa: S105 - a store name
                raise LoginRequiredError(
                    "token_store is memory, so the login ended with its process; "
                    "run `jitkube login` (or set token_store = file or keyring)"
                )
            raise LoginRequiredError("not logged in; run `jitkube login`")
        cache = msal.SerializableTokenCache()
        try:
            cache.deserialize(blob)
        except ValueError:
            raise LoginRequiredError(
                "the stored login is unreadable; run `jitkube login`"
            ) from None
        hit = _cached_access_token(cache, record, clock() + min_ttl)
        if hit is not None:
            return hit[0], record
        settings = record.settings(ca_bundle)
        app = public_app(settings, cache)
        accounts = [
            a
            for a in app.get_accounts()
            if not record.home_account_id or a.get("home_account_id") == record.home_account_id
        ]
        if not accounts:
            raise LoginRequiredError("the stored login has no account; run `jitkube login`")
        with provider_calls(settings):
            result = app.acquire_token_silent_with_error(
                list(record.api_scopes), account=accounts[0], force_refresh=True
            )
        if cache.has_state_changed:
            store.save(cache.serialize())
    if not result or "access_token" not in result:
        reason = _provider_error(result) if result else "no refresh token"
        raise LoginRequiredError(
            f"the login has expired or was revoked ({reason}); run `jitkube login`"
        )
    return str(result["access_token"]), record


# -- logout ------------------------------------------------------------------------------------


def logout(state: Path) -> list[str]:
    """Remove every stored secret and the login record; returns the stores cleared."""
    cleared: list[str] = []
    if not state.exists():
        return cleared
    with locked(state):
        file_store = FileStore(state)
        if file_store.path.exists():
            file_store.clear()
            cleared.append("file")
        with contextlib.suppress(ConfigError):  # no usable keyring: nothing can be in it
            keyring_store = KeyringStore()
            if keyring_store.load() is not None:
                keyring_store.clear()
                cleared.append("keyring")
        record = state / RECORD_FILE
        if record.exists():
            record.unlink()
            cleared.append("login record")
    return cleared


@contextlib.contextmanager
def no_ui(prompt: DevicePrompt) -> Iterator[None]:
    """A `DeviceLoginUI.waiting` that shows nothing (for tests and embedding)."""
    yield
