"""EKS token minting (stdlib SigV4) and decoding (aws-iam-authenticator's structure checks)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import string
from urllib.parse import parse_qs, urlsplit

import pytest

from jitkube.eks_token import (
    MAX_TOKEN_LENGTH,
    TOKEN_PREFIX,
    EksTokenError,
    decode_eks_token,
    mint_eks_token,
    presign_get_caller_identity,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def _fake_key(prefix: str = "ASIA") -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _fake_secret() -> str:
    return secrets.token_urlsafe(30)[:40]


def _encode(url: str) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def _url(token: str) -> str:
    body = token[len(TOKEN_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def _botocore_presign(
    access_key: str, secret_key: str, session_token: str | None, cluster: str, region: str
) -> str:
    """Presign the way `aws eks get-token` does (botocore + the x-k8s-aws-id hooks)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=session_token,
        region_name=region,
    )
    client = session.client("sts", region_name=region)

    def retrieve_cluster_id(params: dict[str, str], context: dict[str, str], **_: object) -> None:
        if "x-k8s-aws-id" in params:
            context["eks_cluster"] = params.pop("x-k8s-aws-id")

    def inject_cluster_header(request: object, **_: object) -> None:
        cluster_id = request.context.get("eks_cluster")  # type: ignore[attr-defined]
        if cluster_id:
            request.headers["x-k8s-aws-id"] = cluster_id  # type: ignore[attr-defined]

    client.meta.events.register("provide-client-params.sts.GetCallerIdentity", retrieve_cluster_id)
    client.meta.events.register("before-sign.sts.GetCallerIdentity", inject_cluster_header)
    return str(
        client.generate_presigned_url(
            "get_caller_identity",
            Params={"x-k8s-aws-id": cluster},
            ExpiresIn=60,
            HttpMethod="GET",
        )
    )


@pytest.mark.parametrize(
    ("region", "with_session_token", "cluster"),
    [
        ("us-east-1", True, "prod-eks"),
        ("eu-west-1", True, "my_cluster.with-dots"),
        ("ap-southeast-2", False, "c"),
        ("us-gov-west-1", True, "gov"),
        ("cn-north-1", True, "china"),
    ],
)
def test_stdlib_presign_is_byte_identical_to_botocore(
    region: str, with_session_token: bool, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_STS_REGIONAL_ENDPOINTS"):
        monkeypatch.delenv(var, raising=False)
    key, secret = _fake_key(), _fake_secret()
    # Session tokens carry '/', '+' and '=' that must be percent-encoded identically.
    session_token = (secrets.token_urlsafe(200) + "/+=") if with_session_token else None
    reference = _botocore_presign(key, secret, session_token, cluster, region)
    signed_at = dt.datetime.strptime(
        parse_qs(urlsplit(reference).query)["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"
    ).replace(tzinfo=dt.UTC)

    ours = presign_get_caller_identity(key, secret, session_token, cluster, region, signed_at)

    assert ours == reference


def test_token_is_prefix_plus_unpadded_base64url_of_the_presigned_url() -> None:
    token = mint_eks_token(_fake_key(), _fake_secret(), "tok", "demo", "us-east-1", now=NOW)

    assert token.token.startswith(TOKEN_PREFIX)
    assert "=" not in token.token
    url = _url(token.token)
    assert url.startswith("https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-SignedHeaders"] == ["host;x-k8s-aws-id"]
    assert query["X-Amz-Date"] == ["20260301T120000Z"]


@pytest.mark.parametrize(
    ("not_after", "expected"),
    [
        (None, NOW + dt.timedelta(minutes=14)),
        (NOW + dt.timedelta(minutes=30), NOW + dt.timedelta(minutes=14)),
        (NOW + dt.timedelta(minutes=5), NOW + dt.timedelta(minutes=5)),
    ],
)
def test_reported_expiry_is_14_minutes_capped_by_not_after(
    not_after: dt.datetime | None, expected: dt.datetime
) -> None:
    token = mint_eks_token(
        _fake_key(), _fake_secret(), "t", "demo", "us-east-1", now=NOW, not_after=not_after
    )
    assert token.expires_at == expected


def test_emulator_endpoint_in_environment_never_leaks_into_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    token = mint_eks_token(_fake_key(), _fake_secret(), "t", "demo", "eu-central-1", now=NOW)
    assert urlsplit(_url(token.token)).netloc == "sts.eu-central-1.amazonaws.com"


def test_token_and_credentials_stay_out_of_repr() -> None:
    secret = _fake_secret()
    token = mint_eks_token(_fake_key(), secret, "session-tok", "demo", "us-east-1", now=NOW)
    decoded = decode_eks_token(token.token, "demo", now=NOW)
    for text in (repr(token), repr(decoded)):
        assert token.token not in text
        assert secret not in text
        assert "session-tok" not in text


def test_oversized_session_token_is_refused_at_mint_time() -> None:
    with pytest.raises(EksTokenError, match="4096"):
        mint_eks_token(_fake_key(), _fake_secret(), "x" * 3000, "demo", "us-east-1", now=NOW)


def test_decode_round_trips_a_minted_token() -> None:
    key = _fake_key()
    token = mint_eks_token(key, _fake_secret(), "tok", "demo", "eu-west-1", now=NOW)

    request = decode_eks_token(token.token, "demo", now=NOW + dt.timedelta(minutes=10))

    assert request.host == "sts.eu-west-1.amazonaws.com"
    assert request.headers == {"host": request.host, "x-k8s-aws-id": "demo"}
    assert request.access_key_id == key
    assert request.region == "eu-west-1"
    assert request.signed_at == NOW
    assert request.expires_at == NOW + dt.timedelta(minutes=15)
    assert request.url == _url(token.token)


def _valid_url(host: str = "sts.us-east-1.amazonaws.com", region: str = "us-east-1") -> str:
    url = presign_get_caller_identity(_fake_key(), _fake_secret(), "tok", "demo", region, NOW)
    return url.replace("sts.us-east-1.amazonaws.com", host, 1)


@pytest.mark.parametrize(
    "host",
    [
        "sts.amazonaws.com",
        "sts.us-east-1.amazonaws.com",
        "sts-fips.us-east-1.amazonaws.com",
        "sts.cn-north-1.amazonaws.com.cn",
        "sts.us-gov-west-1.amazonaws.com",
    ],
)
def test_decode_accepts_every_sts_host_form(host: str) -> None:
    request = decode_eks_token(_encode(_valid_url(host)), "demo", now=NOW)
    assert request.host == host


def _replace_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    pairs = [p.split("=", 1) for p in parts.query.split("&")]
    query = "&".join(f"{k}={value if k == name else v}" for k, v in pairs)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"


_BAD_URLS = {
    "http scheme": lambda u: u.replace("https://", "http://", 1),
    "emulator host": lambda u: u.replace("sts.us-east-1.amazonaws.com", "127.0.0.1:4566", 1),
    "look-alike host": lambda u: u.replace(
        "sts.us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com.evil.example", 1
    ),
    "host with port": lambda u: u.replace(
        "sts.us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com:443", 1
    ),
    "userinfo in authority": lambda u: u.replace("https://", "https://user@", 1),
    "other path": lambda u: u.replace(".com/?", ".com/x?", 1),
    "extra query parameter": lambda u: u + "&X-Amz-Foo=1",
    "duplicate parameter": lambda u: u + "&Action=GetCallerIdentity",
    "other action": lambda u: _replace_param(u, "Action", "AssumeRole"),
    "other version": lambda u: _replace_param(u, "Version", "2010-01-01"),
    "cluster header not signed": lambda u: _replace_param(u, "X-Amz-SignedHeaders", "host"),
    "expires above 900": lambda u: _replace_param(u, "X-Amz-Expires", "901"),
    "expires not a number": lambda u: _replace_param(u, "X-Amz-Expires", "soon"),
    "malformed date": lambda u: _replace_param(u, "X-Amz-Date", "yesterday"),
    "malformed credential": lambda u: _replace_param(u, "X-Amz-Credential", "AKID"),
    "credential for another service": lambda u: _replace_param(
        u, "X-Amz-Credential", "ASIAX%2F20260301%2Fus-east-1%2Fs3%2Faws4_request"
    ),
    "no signature": lambda u: _replace_param(u, "X-Amz-Signature", ""),
    "fragment": lambda u: u + "#frag",
}


@pytest.mark.parametrize("case", sorted(_BAD_URLS))
def test_decode_refuses_malformed_presigned_urls(case: str) -> None:
    url = _BAD_URLS[case](_valid_url())
    with pytest.raises(EksTokenError):
        decode_eks_token(_encode(url), "demo", now=NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "k8s-aws-v2.aGVsbG8",
        "Bearer k8s-aws-v1.aGVsbG8",
        "k8s-aws-v1.aGVsbG8=",  # padded
        "k8s-aws-v1.a+b/c",  # not base64url
        "k8s-aws-v1.gA",  # not ASCII once decoded
        TOKEN_PREFIX + "A" * MAX_TOKEN_LENGTH,
    ],
)
def test_decode_refuses_tokens_that_are_not_eks_tokens(token: str) -> None:
    with pytest.raises(EksTokenError):
        decode_eks_token(token, "demo", now=NOW)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (dt.timedelta(minutes=-14, seconds=-59), True),
        (dt.timedelta(minutes=-15, seconds=-1), False),
        (dt.timedelta(minutes=-60), False),
        (dt.timedelta(minutes=14), True),
        (dt.timedelta(minutes=16), False),
    ],
)
def test_decode_enforces_the_15_minute_window_around_x_amz_date(
    offset: dt.timedelta, accepted: bool
) -> None:
    token = mint_eks_token(_fake_key(), _fake_secret(), "t", "demo", "us-east-1", now=NOW + offset)
    if accepted:
        decode_eks_token(token.token, "demo", now=NOW)
    else:
        with pytest.raises(EksTokenError):
            decode_eks_token(token.token, "demo", now=NOW)


def test_error_messages_never_contain_the_token() -> None:
    token = mint_eks_token(_fake_key(), _fake_secret(), "t", "demo", "us-east-1", now=NOW)
    with pytest.raises(EksTokenError) as info:
        decode_eks_token(token.token, "demo", now=NOW + dt.timedelta(hours=1))
    assert token.token[len(TOKEN_PREFIX) :][:40] not in str(info.value)
