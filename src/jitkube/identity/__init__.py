"""Who the caller is: OIDC device login, CI identities, token storage and refresh.

Broker-facing commands call `access_token(config, env)` or `current_identity(config,
env)`. Nothing here is imported by the `jitkube kubectl` hot path.
"""

from jitkube.identity.claims import Identity
from jitkube.identity.current import (
    Credential,
    access_token,
    broker_url,
    current_credential,
    current_identity,
    login,
    logout,
)

__all__ = [
    "Credential",
    "Identity",
    "access_token",
    "broker_url",
    "current_credential",
    "current_identity",
    "login",
    "logout",
]
