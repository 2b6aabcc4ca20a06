"""msal against both identity providers: jitkube's sandbox and the certified oidc-provider.

What jitkube's login relies on, proven against a real OpenID Certified provider and
against the sandbox the demo uses, with the same tests.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt
import msal
import pytest
import requests

from fixtures.idp import (
    API_SCOPE,
    CI_GROUPS,
    CertifiedIdPInfo,
    OIDCProvider,
    SandboxIdPInfo,
    device_login,
    refresh,
    validate_access_token,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def trust_provider_ca(oidc_provider: OIDCProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests (inside msal) lets REQUESTS_CA_BUNDLE override msal's own verify=.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(oidc_provider.ca_bundle))


def _msal_device_login(
    app: msal.PublicClientApplication, provider: OIDCProvider, user: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    flow = app.initiate_device_flow(scopes=[API_SCOPE])
    assert "user_code" in flow, flow
    approver = threading.Thread(target=provider.approve, args=(flow, user))
    approver.start()
    deadline = time.time() + 20
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: time.time() > deadline)
    approver.join(timeout=10)
    return flow, result


@pytest.mark.usefixtures("trust_provider_ca")
@pytest.mark.parametrize("user", ["alice", "bob"])
def test_msal_device_flow_gives_an_access_token_a_broker_can_validate(
    oidc_provider: OIDCProvider, user: str
) -> None:
    app = msal.PublicClientApplication(
        oidc_provider.public_client_id, oidc_authority=oidc_provider.issuer
    )
    flow, result = _msal_device_login(app, oidc_provider, user)

    assert "access_token" in result, result
    # msal only writes an instruction for Entra ID: jitkube must print its own.
    assert flow.get("message") is None
    assert flow["verification_uri"].startswith(oidc_provider.issuer)
    header = jwt.get_unverified_header(result["access_token"])
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    claims = validate_access_token(oidc_provider, result["access_token"])
    expected = oidc_provider.users[user]
    assert claims["sub"] == user
    assert claims["groups"] == list(expected.groups)
    assert claims["email"] == expected.email
    assert claims["exp"] > time.time()
    assert result["id_token_claims"]["iss"] == oidc_provider.issuer
    assert result["id_token_claims"]["sub"] == user


@pytest.mark.usefixtures("trust_provider_ca")
def test_msal_refreshes_silently_and_by_refresh_token(oidc_provider: OIDCProvider) -> None:
    app = msal.PublicClientApplication(
        oidc_provider.public_client_id, oidc_authority=oidc_provider.issuer
    )
    _, first = _msal_device_login(app, oidc_provider, "carol")
    assert "refresh_token" in first, first
    [account] = app.get_accounts()

    cached = app.acquire_token_silent([API_SCOPE], account=account)
    assert cached is not None
    assert cached["access_token"] == first["access_token"]  # served from msal's cache

    silent = app.acquire_token_silent([API_SCOPE], account=account, force_refresh=True)
    assert silent is not None
    assert "access_token" in silent, silent
    assert silent["access_token"] != first["access_token"]
    # Rotated refresh token: msal keeps the newest.
    assert silent["refresh_token"] != first["refresh_token"]
    claims = validate_access_token(oidc_provider, silent["access_token"])
    assert claims["groups"] == ["auditors"]  # groups survive a refresh in the access token

    again = app.acquire_token_by_refresh_token(silent["refresh_token"], scopes=[API_SCOPE])
    assert "access_token" in again, again
    assert validate_access_token(oidc_provider, again["access_token"])["sub"] == "carol"


def test_reusing_a_rotated_refresh_token_revokes_the_grant(oidc_provider: OIDCProvider) -> None:
    first = device_login(oidc_provider, "alice")

    rotated = refresh(oidc_provider, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    newest = rotated.json()["refresh_token"]
    assert newest != first["refresh_token"]

    reused = refresh(oidc_provider, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # The newest token died with the grant: two processes sharing a cache without a
    # lock log the user out. jitkube must lock read -> refresh -> write.
    after = refresh(oidc_provider, newest)
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"


@pytest.mark.usefixtures("trust_provider_ca")
def test_ci_client_credentials_through_msal(oidc_provider: OIDCProvider) -> None:
    app = msal.ConfidentialClientApplication(
        oidc_provider.ci_client_id,
        client_credential=oidc_provider.ci_client_secret,
        oidc_authority=oidc_provider.issuer,
    )
    result = app.acquire_token_for_client(scopes=[API_SCOPE])

    assert "access_token" in result, result
    claims = validate_access_token(oidc_provider, result["access_token"])
    assert claims["sub"] == oidc_provider.ci_client_id
    assert claims["groups"] == list(CI_GROUPS)
    assert "refresh_token" not in result


def test_ci_client_with_a_wrong_secret_is_refused(oidc_provider: OIDCProvider) -> None:
    resp = requests.post(
        oidc_provider.discovery()["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": API_SCOPE},
        auth=(oidc_provider.ci_client_id, "not-the-secret"),
        verify=str(oidc_provider.ca_bundle),
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


def test_a_denied_device_code_answers_access_denied(oidc_provider: OIDCProvider) -> None:
    meta = oidc_provider.discovery()
    verify = str(oidc_provider.ca_bundle)
    flow = requests.post(
        meta["device_authorization_endpoint"],
        data={"client_id": oidc_provider.public_client_id, "scope": "openid " + API_SCOPE},
        verify=verify,
        timeout=10,
    ).json()

    oidc_provider.deny(flow)

    resp = requests.post(
        meta["token_endpoint"],
        data={
            "client_id": oidc_provider.public_client_id,
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": flow["device_code"],
        },
        verify=verify,
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "access_denied"


def test_tokens_signed_by_another_provider_are_rejected(
    sandbox_idp: SandboxIdPInfo, certified_idp: CertifiedIdPInfo
) -> None:
    sandbox, certified = sandbox_idp.as_provider(), certified_idp.as_provider()
    token = device_login(certified, "alice")["access_token"]
    with pytest.raises(jwt.InvalidTokenError):
        validate_access_token(sandbox, token)
