"""The caller's credential for the broker: what every broker-facing command calls.

`access_token(config, env)` returns a bearer token for the broker: a CI identity when one
is configured (see `jitkube.identity.ci`), else the logged-in user's access token,
refreshed silently under the cross-process lock. It never starts a login: without a
usable identity it raises `LoginRequiredError` (exit 68) saying what to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jitkube.config import Config, state_dir
from jitkube.environment import Environment
from jitkube.errors import LoginRequiredError
from jitkube.identity.claims import Identity, identity_from_claims, jwt_claims

if TYPE_CHECKING:
    from jitkube.identity.login import DeviceLoginUI


@dataclass(frozen=True)
class Credential:
    """A bearer token plus who it names; `token` must never be printed or logged."""

    token: str
    identity: Identity

    def __repr__(self) -> str:  # keep the token out of tracebacks and debug output
        return f"Credential(identity={self.identity!r})"


def current_credential(config: Config, env: Environment) -> Credential:
    """The credential to use now (CI identity first, then the stored login)."""
    from jitkube.identity.ci import ci_credential

    ci = ci_credential(config, env.environ)
    if ci is not None:
        claims = jwt_claims(ci.token) or {}
        identity = identity_from_claims(
            claims,
            source=ci.source,
            token_store="none",  # noqa: S106 - CI credentials are never stored
            groups_claim=ci.groups_claim,
            client_id=ci.client_id,
        )
        return Credential(ci.token, identity)

    from jitkube.identity.login import stored_access_token

    token, record = stored_access_token(state_dir(env.environ), ca_bundle=config.ca_bundle)
    if config.issuer and config.issuer != record.authority and record.kind == "oidc":
        raise LoginRequiredError(
            f"logged in at {record.authority}, but issuer is {config.issuer}; run `jitkube login`"
        )
    user_claims = jwt_claims(token)
    if user_claims is None:
        raise LoginRequiredError(
            "the identity provider issued an opaque access token; jitkube needs a JWT "
            "(configure the API scope/resource so the provider issues one)"
        )
    identity = identity_from_claims(
        user_claims,
        source="device_code",
        token_store=record.token_store,
        groups_claim=record.groups_claim,
        client_id=record.client_id,
    )
    return Credential(token, identity)


def access_token(config: Config, env: Environment) -> str:
    """A bearer token for the broker, valid for at least a minute."""
    return current_credential(config, env).token


def current_identity(config: Config, env: Environment) -> Identity:
    """Who jitkube acts as (claims of the current access token; refreshes when due)."""
    return current_credential(config, env).identity


def login(config: Config, env: Environment, ui: DeviceLoginUI) -> Identity:
    """`jitkube login`: verify a configured CI identity, else run the device-code flow.

    Never waits for a person in non-interactive mode (--non-interactive,
    JITKUBE_NON_INTERACTIVE=1, CI=true): it raises LoginRequiredError instead. A device
    login with stderr not on a terminal still runs (the person may be at another device);
    only commands that need a token never start one by themselves.
    """
    from jitkube.identity.ci import ci_source

    if ci_source(config, env.environ) is not None:
        return current_identity(config, env)
    if env.non_interactive:
        raise LoginRequiredError(
            "login needs a person in non-interactive mode: run `jitkube login` in a terminal, "
            "or set JITKUBE_CLIENT_SECRET or JITKUBE_ID_TOKEN_FILE for CI"
        )
    from jitkube.identity.login import device_login
    from jitkube.identity.settings import resolve
    from jitkube.identity.token_store import open_store

    state = state_dir(env.environ)
    store = open_store(config.token_store, state)
    return device_login(resolve(config), store, state, ui)


def logout(env: Environment) -> list[str]:
    """`jitkube logout`: remove every stored secret; returns the stores that held one."""
    from jitkube.identity.login import logout as remove_all

    return remove_all(state_dir(env.environ))


def broker_url(config: Config, env: Environment) -> str:
    """The broker to talk to: config/env/flag, else the one `jitkube login --broker` used."""
    if config.broker_url:
        return config.broker_url
    from jitkube.identity.login import read_record

    record = read_record(state_dir(env.environ))
    if record is not None and record.broker_url:
        return record.broker_url
    from jitkube.errors import ConfigError

    raise ConfigError(
        "no broker configured",
        hint="set broker_url in config.toml, JITKUBE_BROKER_URL, or pass --broker",
    )
