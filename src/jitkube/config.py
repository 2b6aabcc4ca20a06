"""jitkube's client configuration: file, then `JITKUBE_*` variables, then flags.

`$XDG_CONFIG_HOME/jitkube/config.toml` (or the file `JITKUBE_CONFIG` names) is read with
`tomllib`; each key can be overridden by its `JITKUBE_<KEY>` variable and then by a
command-line flag. State (tokens, login record, locks) lives in `$XDG_STATE_HOME/jitkube/`.

Stdlib only, and cheap to import: the hot path reads this module on every `jitkube
kubectl`, so tomllib, ipaddress and urllib are imported only when a file or URL needs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from jitkube.dataclass_lite import dataclass, field, fields, replace
from jitkube.errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

TOKEN_STORES = ("keyring", "file", "memory")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    """Every client setting, merged from file, environment and flags.

    `None` means "not set anywhere"; consumers decide the default (and say so).
    """

    broker_url: str | None = None
    issuer: str | None = None  # generic OIDC issuer (msal oidc_authority)
    authority: str | None = None  # Entra ID authority (msal authority)
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    ca_bundle: str | None = None  # PEM bundle trusted for broker and IdP HTTPS
    token_store: str = "keyring"  # noqa: S105 - keyring | file | memory, not a secret
    kubectl: str | None = None
    agent: str | None = None  # agent name; set means "the caller is an agent"
    cluster: str | None = None
    role: str | None = None
    # CI identities (the secrets themselves come only from the environment or files).
    client_secret_file: str | None = None
    id_token_file: str | None = None
    id_token_audience: str | None = None
    # The warm server (jitkube.warm): None means on; False keeps every call in-process.
    warm: bool | None = None
    # Where each value came from, for `whoami`/debugging: key -> "file" | "env" | "flag".
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


_STRING_KEYS = (
    "broker_url",
    "issuer",
    "authority",
    "client_id",
    "ca_bundle",
    "token_store",
    "kubectl",
    "cluster",
    "role",
    "client_secret_file",
    "id_token_file",
    "id_token_audience",
)
_PATH_KEYS = ("ca_bundle", "kubectl", "client_secret_file", "id_token_file")
KEYS = (*_STRING_KEYS, "scopes", "agent", "warm")


def env_var(key: str) -> str:
    """The environment variable that overrides config key `key`."""
    return "JITKUBE_" + key.upper()


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or os.path.expanduser("~"))


def _xdg(environ: Mapping[str, str], var: str, default: str) -> Path:
    # The XDG spec says relative values are invalid and must be ignored.
    value = environ.get(var, "")
    if value and os.path.isabs(value):
        return Path(value)
    return _home(environ) / default


def config_path(environ: Mapping[str, str]) -> Path:
    """`JITKUBE_CONFIG`, else `$XDG_CONFIG_HOME/jitkube/config.toml`."""
    explicit = environ.get("JITKUBE_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return _xdg(environ, "XDG_CONFIG_HOME", ".config") / "jitkube" / "config.toml"


def state_dir(environ: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/jitkube` (tokens, login record, locks). Not created here."""
    return _xdg(environ, "XDG_STATE_HOME", ".local/state") / "jitkube"


def _split_scopes(value: str) -> tuple[str, ...]:
    return tuple(s for s in value.replace(",", " ").split() if s)


def _coerce(key: str, value: Any, origin: str) -> Any:
    """Check one raw value's type and normalise it; ConfigError names the key and origin."""
    if key == "scopes":
        if isinstance(value, str):
            return _split_scopes(value)
        if isinstance(value, list) and all(isinstance(s, str) and s.strip() for s in value):
            return tuple(s.strip() for s in value)
        raise ConfigError(f"{origin}: scopes must be a list of strings or one string")
    if key == "agent":
        if isinstance(value, bool):
            return "agent" if value else None
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _FALSE:
                return None
            return "agent" if lowered in _TRUE else value.strip()
        raise ConfigError(f"{origin}: agent must be a name or true/false")
    if key == "warm":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{origin}: warm must be true or false")
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: {key} must be a string")
    value = value.strip()
    if key in _PATH_KEYS and value:
        value = os.path.expanduser(value)
    return value or None


def _read_file(path: Path, explicit: bool) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist (JITKUBE_CONFIG)") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        # Fail closed: a misspelt key (say `token_stor`) must not be silently ignored.
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}",
            hint="known keys: " + ", ".join(KEYS),
        )
    return data


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback IP literals (the only hosts plain http may reach)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(key: str, url: str, *, allow_loopback_http: bool = True) -> str:
    """Return `url` without a trailing slash, or raise: https only, http only on loopback."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{key} must be an https:// URL, not {url!r}")
    if parts.username or parts.password:
        raise ConfigError(f"{key} must not carry credentials in the URL")
    if parts.scheme == "http" and not (allow_loopback_http and is_loopback_host(parts.hostname)):
        raise ConfigError(
            f"{key} {url!r} uses plain http:// to a non-loopback host; use https://",
        )
    return url.rstrip("/")


def _validate(config: Config) -> Config:
    if config.token_store not in TOKEN_STORES:
        raise ConfigError(
            f"token_store must be one of {', '.join(TOKEN_STORES)}, not {config.token_store!r}"
        )
    changes: dict[str, Any] = {}
    if config.broker_url:
        changes["broker_url"] = check_url("broker_url", config.broker_url)
    # msal accepts only https authorities, so the identity provider is never plain http.
    for key in ("issuer", "authority"):
        value = getattr(config, key)
        if value:
            changes[key] = check_url(key, value, allow_loopback_http=False)
    return replace(config, **changes) if changes else config


def load(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge config file < `JITKUBE_*` environment < `overrides` (flags; None = unset)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_path(environ)
    for key, raw in _read_file(path, explicit=bool(environ.get("JITKUBE_CONFIG"))).items():
        values[key] = _coerce(key, raw, f"config file {path}")
        sources[key] = "file"
    for key in KEYS:
        raw_env = environ.get(env_var(key))
        if raw_env is not None and (raw_env.strip() or key == "agent"):
            values[key] = _coerce(key, raw_env, env_var(key))
            sources[key] = "env"
    for key, raw in (overrides or {}).items():
        if key not in KEYS:
            raise ValueError(f"unknown config key {key!r}")  # a programming error
        if raw is None or raw == ():
            continue
        values[key] = _coerce(key, list(raw) if isinstance(raw, tuple) else raw, f"--{key}")
        sources[key] = "flag"
    known = {f.name for f in fields(Config)}
    clean = {k: v for k, v in values.items() if k in known and v is not None}
    if clean.get("token_store") is None:
        clean.pop("token_store", None)
    return _validate(Config(**clean, sources=sources))
