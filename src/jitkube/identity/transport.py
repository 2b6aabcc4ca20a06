"""HTTPS for the identity code: the configured CA bundle always wins.

requests lets `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` override a session's `verify`
whenever a call does not pass `verify=` itself, and msal calls without it; this machine
(and many corporate ones) set `REQUESTS_CA_BUNDLE` globally. So every call made here
passes `verify=` explicitly: the configured bundle, or requests' default when none is
configured. Imports requests: never on the hot path.
"""

from __future__ import annotations

from typing import Any

import requests

from jitkube.errors import BrokerUnreachableError, ConfigError

DEFAULT_TIMEOUT = 15.0


class PinnedHttpClient:
    """msal's `http_client` interface (get/post/close) with `verify` fixed per request."""

    def __init__(self, ca_bundle: str | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        if ca_bundle is not None:
            try:
                with open(ca_bundle, "rb"):
                    pass
            except OSError as exc:
                raise ConfigError(f"ca_bundle {ca_bundle} cannot be read: {exc.strerror}") from None
        self.verify: str | bool = ca_bundle if ca_bundle is not None else True
        self.timeout = timeout
        self.session = requests.Session()

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["verify"] = self.verify
        kwargs.setdefault("timeout", self.timeout)
        return kwargs

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        return self.session.get(url, params=params, headers=headers, **self._kwargs(kwargs))

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> Any:
        return self.session.post(
            url, params=params, data=data, headers=headers, **self._kwargs(kwargs)
        )

    def close(self) -> None:
        self.session.close()


def get_json(
    http: PinnedHttpClient, url: str, *, what: str, headers: dict[str, str] | None = None
) -> Any:
    """GET `url` and parse JSON; failures become one clear error naming `what`."""
    try:
        resp = http.get(url, headers=headers)
    except requests.exceptions.SSLError:
        raise BrokerUnreachableError(
            f"{what}: TLS verification failed for {url}",
            hint="set ca_bundle (JITKUBE_CA_BUNDLE) to the PEM bundle of its CA",
        ) from None
    except requests.exceptions.RequestException as exc:
        raise BrokerUnreachableError(f"{what}: cannot reach {url} ({type(exc).__name__})") from None
    if resp.status_code != 200:
        raise BrokerUnreachableError(f"{what}: {url} answered HTTP {resp.status_code}")
    try:
        return resp.json()
    except ValueError:
        raise BrokerUnreachableError(f"{what}: {url} did not answer JSON") from None
