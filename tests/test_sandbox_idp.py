"""jitkube's sandbox OpenID provider: the protocol corners msal does not reach.

Device-flow polling errors (RFC 8628 §3.5), refresh-token rotation and reuse, client
credentials, the admin approval endpoint, and RFC 6749 JSON errors for bad requests.
Everything over real HTTPS on loopback; expiry through an injected clock.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from fixtures.idp import (
    API_SCOPE,
    PUBLIC_CLIENT_ID,
    SandboxIdPInfo,
    device_login,
    refresh,
    start_sandbox_idp,
    validate_access_token,
)
from jitkube.sandbox.idp import Lifetimes, OAuthError, SandboxIdP
from jitkube.sandbox.idp_core import DEVICE_CODE_GRANT

RFC6749_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))  # whole seconds: exact interval arithmetic

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Http:
    """Raw HTTP calls to one sandbox IdP, trusting its CA."""

    def __init__(self, info: SandboxIdPInfo) -> None:
        self.info = info
        self.verify = str(info.ca_bundle)

    def post(self, endpoint: str, **kwargs: Any) -> requests.Response:
        return requests.post(endpoint, verify=self.verify, timeout=10, **kwargs)

    def start_device_flow(
        self, scope: str = f"openid offline_access {API_SCOPE}"
    ) -> dict[str, Any]:
        resp = self.post(
            self.info.idp.device_authorization_endpoint,
            data={"client_id": PUBLIC_CLIENT_ID, "scope": scope},
        )
        assert resp.status_code == 200, resp.text
        flow: dict[str, Any] = resp.json()
        return flow

    def poll(self, device_code: str) -> requests.Response:
        return self.post(
            self.info.idp.token_endpoint,
            data={
                "client_id": PUBLIC_CLIENT_ID,
                "grant_type": DEVICE_CODE_GRANT,
                "device_code": device_code,
            },
        )


@pytest.fixture
def http(sandbox_idp: SandboxIdPInfo) -> Http:
    return Http(sandbox_idp)


@pytest.fixture
def clocked_idp(tmp_path: Path) -> Iterator[tuple[Http, FakeClock]]:
    clock = FakeClock()
    info = start_sandbox_idp(tmp_path, clock=clock, lifetimes=Lifetimes(device_code=60, interval=2))
    try:
        yield Http(info), clock
    finally:
        info.idp.stop()


def _error(resp: requests.Response) -> str:
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert isinstance(body.get("error_description"), str)
    error: str = body["error"]
    return error


# -- discovery ----------------------------------------------------------------------------


def test_discovery_names_the_issuer_and_every_endpoint_under_it(http: Http) -> None:
    idp = http.info.idp
    meta = requests.get(
        idp.issuer + "/.well-known/openid-configuration", verify=http.verify, timeout=10
    ).json()

    assert meta["issuer"] == idp.issuer
    assert idp.issuer.startswith("https://127.0.0.1:")
    assert idp.issuer.endswith("/idp")  # msal needs a path segment
    for key in ("token_endpoint", "device_authorization_endpoint", "jwks_uri"):
        assert meta[key].startswith(idp.issuer + "/")
    assert DEVICE_CODE_GRANT in meta["grant_types_supported"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]


def test_access_token_header_kid_is_published_in_jwks(http: Http) -> None:
    tokens = device_login(http.info.as_provider(), "alice")
    jwks = requests.get(http.info.idp.jwks_uri, verify=http.verify, timeout=10).json()

    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert all("d" not in k for k in jwks["keys"])  # public parts only


def test_access_token_carries_identity_and_validity_claims(http: Http) -> None:
    tokens = device_login(http.info.as_provider(), "bob")

    claims = validate_access_token(http.info.as_provider(), tokens["access_token"])
    assert claims["sub"] == "bob"
    assert claims["groups"] == ["reviewers", "sre"]
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == Lifetimes().access_token
    assert claims["jti"]
    id_claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert id_claims["aud"] == PUBLIC_CLIENT_ID


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"aud": "another-api"}, jwt.InvalidAudienceError),
        ({"iss": "https://127.0.0.1:1/idp"}, jwt.InvalidIssuerError),
        ({"exp": 1}, jwt.ExpiredSignatureError),
    ],
    ids=["audience", "issuer", "expiry"],
)
def test_validation_rejects_a_validly_signed_token_with_a_wrong_claim(
    http: Http, change: dict[str, Any], failure: type[Exception]
) -> None:
    token = device_login(http.info.as_provider(), "alice")["access_token"]
    claims = {**jwt.decode(token, options={"verify_signature": False}), **change}
    resigned = http.info.idp.core.keys.sign(claims, typ="at+jwt")

    with pytest.raises(failure):
        validate_access_token(http.info.as_provider(), resigned)


def test_validation_rejects_an_altered_payload(http: Http) -> None:
    token = device_login(http.info.as_provider(), "alice")["access_token"]
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["admins"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    with pytest.raises(jwt.InvalidSignatureError):
        validate_access_token(http.info.as_provider(), f"{head}.{forged}.{sig}")


def test_rotated_signing_key_signs_new_tokens_and_old_keys_stay_published(
    tmp_path: Path,
) -> None:
    info = start_sandbox_idp(tmp_path)
    try:
        old = device_login(info.as_provider(), "alice")["access_token"]
        new_kid = info.idp.rotate_signing_key()
        new = device_login(info.as_provider(), "alice")["access_token"]

        assert jwt.get_unverified_header(new)["kid"] == new_kid
        assert jwt.get_unverified_header(old)["kid"] != new_kid
        assert validate_access_token(info.as_provider(), old)["sub"] == "alice"
        assert validate_access_token(info.as_provider(), new)["sub"] == "alice"
    finally:
        info.idp.stop()


# -- device flow ---------------------------------------------------------------------------


def test_device_authorization_response_has_every_rfc8628_field(http: Http) -> None:
    flow = http.start_device_flow()

    assert set(flow) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert flow["verification_uri"] == http.info.idp.issuer + "/device"
    assert flow["verification_uri_complete"].endswith("user_code=" + flow["user_code"])
    assert flow["interval"] == 1


def test_polling_before_approval_is_pending_then_too_fast_is_slow_down(
    clocked_idp: tuple[Http, FakeClock],
) -> None:
    http, clock = clocked_idp
    flow = http.start_device_flow()

    assert _error(http.poll(flow["device_code"])) == "authorization_pending"
    clock.advance(1)  # interval is 2 s
    assert _error(http.poll(flow["device_code"])) == "slow_down"
    clock.advance(3)  # slow_down raised the interval to 7 s for all later polls
    assert _error(http.poll(flow["device_code"])) == "slow_down"
    clock.advance(12)  # and this one to 12 s: waiting that long is fine
    assert _error(http.poll(flow["device_code"])) == "authorization_pending"


def test_expired_device_code_answers_expired_token(clocked_idp: tuple[Http, FakeClock]) -> None:
    http, clock = clocked_idp
    flow = http.start_device_flow()
    clock.advance(61)

    assert _error(http.poll(flow["device_code"])) == "expired_token"
    with pytest.raises(OAuthError, match="expired"):
        http.info.idp.approve_device(flow["user_code"], "alice")


def test_denied_device_code_answers_access_denied_on_every_poll(http: Http) -> None:
    flow = http.start_device_flow()
    http.info.idp.deny_device(flow["user_code"])

    assert _error(http.poll(flow["device_code"])) == "access_denied"
    assert _error(http.poll(flow["device_code"])) == "access_denied"


def test_device_code_is_redeemed_only_once(http: Http) -> None:
    flow = http.start_device_flow()
    http.info.idp.approve_device(flow["user_code"], "carol")

    assert http.poll(flow["device_code"]).status_code == 200
    assert _error(http.poll(flow["device_code"])) == "invalid_grant"


def test_user_code_is_accepted_as_a_person_types_it(http: Http) -> None:
    flow = http.start_device_flow()
    http.info.idp.approve_device(flow["user_code"].lower().replace("-", " "), "alice")

    assert http.poll(flow["device_code"]).status_code == 200


def test_approving_for_an_unknown_user_changes_nothing(http: Http) -> None:
    flow = http.start_device_flow()
    with pytest.raises(OAuthError, match="unknown user"):
        http.info.idp.approve_device(flow["user_code"], "mallory")

    assert _error(http.poll(flow["device_code"])) == "authorization_pending"


def test_auto_approval_logs_the_configured_user_in_at_the_first_poll(tmp_path: Path) -> None:
    info = start_sandbox_idp(tmp_path, auto_approve="agent-claude")
    try:
        http = Http(info)
        resp = http.poll(http.start_device_flow()["device_code"])

        assert resp.status_code == 200, resp.text
        claims = validate_access_token(info.as_provider(), resp.json()["access_token"])
        assert claims["sub"] == "agent-claude"
        assert claims["agent"] is True
    finally:
        info.idp.stop()


# -- the admin endpoint (used by `jitkube sandbox approve-device`) --------------------------


@pytest.mark.parametrize(
    ("action", "expected"), [("approve", 200), ("deny", 400)], ids=["approve", "deny"]
)
def test_admin_endpoint_approves_or_denies_with_the_admin_secret(
    http: Http, action: str, expected: int
) -> None:
    flow = http.start_device_flow()
    resp = http.post(
        http.info.idp.admin_url,
        json={"user_code": flow["user_code"], "action": action, "user": "bob"},
        headers={"Authorization": f"Bearer {http.info.idp.admin_secret}"},
    )
    assert resp.status_code == 200, resp.text

    assert http.poll(flow["device_code"]).status_code == expected


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic YWRtaW46eA=="])
def test_admin_endpoint_refuses_callers_without_the_secret(
    http: Http, authorization: str | None
) -> None:
    flow = http.start_device_flow()
    headers = {"Authorization": authorization} if authorization else {}
    resp = http.post(
        http.info.idp.admin_url,
        json={"user_code": flow["user_code"], "user": "alice"},
        headers=headers,
    )

    assert resp.status_code == 401
    assert _error(http.poll(flow["device_code"])) == "authorization_pending"


# -- refresh and client credentials ------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_whole_grant(http: Http) -> None:
    provider = http.info.as_provider()
    first = device_login(provider, "alice")
    second = refresh(provider, first["refresh_token"]).json()
    third = refresh(provider, second["refresh_token"]).json()
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3

    assert _error(refresh(provider, first["refresh_token"])) == "invalid_grant"
    assert _error(refresh(provider, third["refresh_token"])) == "invalid_grant"
    assert http.info.idp.core.grant_revoked(third["refresh_token"])


def test_other_logins_survive_a_revoked_grant(http: Http) -> None:
    provider = http.info.as_provider()
    victim, bystander = device_login(provider, "alice"), device_login(provider, "alice")
    refresh(provider, victim["refresh_token"])
    refresh(provider, victim["refresh_token"])  # reuse: revokes only this grant

    assert refresh(provider, bystander["refresh_token"]).status_code == 200


def test_refresh_token_expires(clocked_idp: tuple[Http, FakeClock]) -> None:
    http, clock = clocked_idp
    tokens = device_login(http.info.as_provider(), "alice")
    clock.advance(Lifetimes().refresh_token + 1)

    assert _error(refresh(http.info.as_provider(), tokens["refresh_token"])) == "invalid_grant"


def test_no_refresh_token_without_offline_access(http: Http) -> None:
    tokens = device_login(http.info.as_provider(), "alice", scope=f"openid {API_SCOPE}")

    assert "refresh_token" not in tokens
    assert tokens["scope"] == f"openid {API_SCOPE}"


def test_unknown_scopes_are_dropped_like_oidc_provider_does(http: Http) -> None:
    tokens = device_login(http.info.as_provider(), "alice", scope=f"{API_SCOPE} admin:everything")

    assert tokens["scope"] == API_SCOPE


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_credentials_with_either_secret_method(http: Http, method: str) -> None:
    info = http.info
    data = {"grant_type": "client_credentials", "scope": API_SCOPE}
    if method == "basic":
        resp = http.post(
            info.idp.token_endpoint, data=data, auth=("jitkube-ci", info.ci_client_secret)
        )
    else:
        data.update(client_id="jitkube-ci", client_secret=info.ci_client_secret)
        resp = http.post(info.idp.token_endpoint, data=data)

    assert resp.status_code == 200, resp.text
    claims = validate_access_token(info.as_provider(), resp.json()["access_token"])
    assert claims["sub"] == "jitkube-ci"
    assert claims["groups"] == ["ci-deployers"]


def test_public_client_cannot_use_client_credentials(http: Http) -> None:
    resp = http.post(
        http.info.idp.token_endpoint,
        data={"grant_type": "client_credentials", "client_id": PUBLIC_CLIENT_ID},
    )
    assert resp.status_code == 400
    assert _error(resp) == "unauthorized_client"


# -- malformed requests -------------------------------------------------------------------

B64 = base64.b64encode
DC = DEVICE_CODE_GRANT
RT = "grant_type=refresh_token&client_id=jitkube-cli"


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        ("", {}, 400, "invalid_request"),
        ("client_id=jitkube-cli", {}, 400, "invalid_request"),
        ("grant_type=password&client_id=jitkube-cli", {}, 400, "unsupported_grant_type"),
        (f"grant_type={DC}&client_id=jitkube-cli", {}, 400, "invalid_request"),
        (f"grant_type={DC}&client_id=nobody&device_code=x", {}, 401, "invalid_client"),
        (f"grant_type={DC}&client_id=jitkube-cli&device_code=x", {}, 400, "invalid_grant"),
        (f"grant_type=refresh_token&{RT}", {}, 400, "invalid_request"),
        (f"{RT}&refresh_token=nope", {}, 400, "invalid_grant"),
        (f"{RT}&client_secret=x&refresh_token=a", {}, 401, "invalid_client"),
        ("grant_type=client_credentials", {"Authorization": "Basic !!!"}, 401, "invalid_client"),
        (
            "grant_type=client_credentials",
            {"Authorization": "Basic " + B64(b"nocolon").decode()},
            401,
            "invalid_client",
        ),
        ("grant_type=client_credentials", {"Authorization": "Bearer abc"}, 401, "invalid_client"),
        (
            '{"grant_type": "client_credentials"}',
            {"Content-Type": "application/json"},
            400,
            "invalid_request",
        ),
        (b"grant_type=\xff\xfe", {}, 400, "invalid_request"),
    ],
)
def test_malformed_token_requests_get_rfc6749_json_errors(
    http: Http, body: str | bytes, headers: dict[str, str], status: int, error: str
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    resp = http.post(http.info.idp.token_endpoint, data=body, headers=headers)

    assert resp.status_code == status, resp.text
    assert _error(resp) == error
    assert error in RFC6749_ERRORS
    if status == 401 and headers.get("Authorization", "").startswith("Basic"):
        assert resp.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/token", 405), ("POST", "/jwks", 405), ("GET", "/nowhere", 404)],
)
def test_wrong_method_or_path_is_a_json_error(
    http: Http, method: str, path: str, status: int
) -> None:
    resp = requests.request(method, http.info.idp.issuer + path, verify=http.verify, timeout=10)

    assert resp.status_code == status
    assert _error(resp) == "invalid_request"


def test_oversized_body_is_refused_before_reading_it(http: Http) -> None:
    resp = http.post(http.info.idp.token_endpoint, data="a=" + "x" * 70_000)

    assert resp.status_code == 413
    assert _error(resp) == "invalid_request"


def test_sandbox_idp_starts_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    idp = SandboxIdP(audience="jitkube").start()
    elapsed = time.perf_counter() - started
    try:
        meta = requests.get(
            idp.issuer + "/.well-known/openid-configuration",
            verify=str(idp.ca.write_bundle(tmp_path / "ca.pem")),
            timeout=10,
        )
        assert meta.status_code == 200
    finally:
        idp.stop()
    assert elapsed < 1.0  # the whole sandbox has 3 s; RSA keygen + leaf cert ≈ 50 ms


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ("not json", 400, "invalid_request"),
        ({"action": "approve", "user": "alice"}, 400, "invalid_request"),
        ({"user_code": "BCDF-GHJK", "user": "alice"}, 404, "invalid_request"),
        ({"user_code": "{code}", "action": "approve"}, 400, "invalid_request"),
        ({"user_code": "{code}", "action": "approve", "user": "mallory"}, 400, "invalid_request"),
        ({"user_code": "{code}", "action": "delete"}, 400, "invalid_request"),
    ],
    ids=["not-json", "no-code", "unknown-code", "no-user", "unknown-user", "bad-action"],
)
def test_admin_endpoint_refuses_bad_requests_and_leaves_the_code_pending(
    http: Http, payload: Any, status: int, error: str
) -> None:
    flow = http.start_device_flow()
    if isinstance(payload, dict):
        payload = json.dumps({k: v.format(code=flow["user_code"]) for k, v in payload.items()})
    resp = http.post(
        http.info.idp.admin_url,
        data=payload,
        headers={"Authorization": f"Bearer {http.info.idp.admin_secret}"},
    )

    assert resp.status_code == status, resp.text
    assert _error(resp) == error
    assert _error(http.poll(flow["device_code"])) == "authorization_pending"


def test_admin_endpoint_refuses_a_code_already_decided(http: Http) -> None:
    flow = http.start_device_flow()
    http.info.idp.deny_device(flow["user_code"])
    resp = http.post(
        http.info.idp.admin_url,
        json={"user_code": flow["user_code"], "user": "alice"},
        headers={"Authorization": f"Bearer {http.info.idp.admin_secret}"},
    )

    assert resp.status_code == 409
    assert _error(http.poll(flow["device_code"])) == "access_denied"


def test_verification_page_tells_a_person_what_to_run_and_escapes_the_code(http: Http) -> None:
    page = requests.get(
        http.info.idp.issuer + "/device",
        params={"user_code": "<script>x</script>"},
        verify=http.verify,
        timeout=10,
    )

    assert page.status_code == 200
    assert "jitkube sandbox approve-device" in page.text
    assert "<script>" not in page.text
