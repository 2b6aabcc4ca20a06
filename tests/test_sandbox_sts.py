"""The STS emulator: boto3 AssumeRole, EKS DescribeCluster, and real presigned validation."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import secrets
import string
from urllib.parse import urlsplit

import pytest

from jitkube.eks_token import decode_eks_token, presign_get_caller_identity
from jitkube.sandbox.sts import CallerIdentity, StsError
from jitkube.sandbox.world import Sandbox, StsCredentials

pytestmark = pytest.mark.integration


def _send(sandbox: Sandbox, url: str, headers: dict[str, str], accept: str = "application/json"):
    """Send a presigned GET to the emulator, keeping the signed Host header."""
    emulator = urlsplit(sandbox.sts.url)
    target = urlsplit(url)
    conn = http.client.HTTPConnection(emulator.hostname or "", emulator.port, timeout=10)
    try:
        conn.putrequest("GET", f"{target.path}?{target.query}", skip_host=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Accept", accept)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _presign(creds: StsCredentials, cluster: str = "demo", now: dt.datetime | None = None) -> str:
    return presign_get_caller_identity(
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token,
        cluster,
        "us-east-1",
        now or dt.datetime.now(dt.UTC),
    )


def _headers(url: str, cluster: str = "demo") -> dict[str, str]:
    return {"Host": urlsplit(url).netloc, "x-k8s-aws-id": cluster}


def test_presigned_get_caller_identity_returns_the_assumed_role_as_json(sandbox: Sandbox) -> None:
    creds = sandbox.assume_role("jitkube-view", "alice")
    url = _presign(creds)

    status, body = _send(sandbox, url, _headers(url))

    assert status == 200
    result = json.loads(body)["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
    assert result["Arn"] == "arn:aws:sts::123456789012:assumed-role/jitkube-view/alice"
    assert result["Account"] == "123456789012"


def test_presigned_get_caller_identity_answers_xml_unless_json_is_asked(sandbox: Sandbox) -> None:
    creds = sandbox.assume_role("jitkube-view", "bob")
    url = _presign(creds)
    status, body = _send(sandbox, url, _headers(url), accept="*/*")
    assert status == 200
    assert b"<Arn>arn:aws:sts::123456789012:assumed-role/jitkube-view/bob</Arn>" in body


def _swap_signature(url: str) -> str:
    head, sig = url.rsplit("X-Amz-Signature=", 1)
    return head + "X-Amz-Signature=" + ("0" if sig[0] != "0" else "1") + sig[1:]


def _shift_date(url: str) -> str:
    parts = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    old = parts["X-Amz-Date"]
    new = (dt.datetime.strptime(old, "%Y%m%dT%H%M%SZ") - dt.timedelta(seconds=1)).strftime(
        "%Y%m%dT%H%M%SZ"
    )
    return url.replace(old, new)


def _random_key() -> tuple[str, str]:
    key = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
    return key, secrets.token_urlsafe(30)


# Each case: (how to build url + headers from valid credentials, expected STS error code).
_REJECTIONS = {
    "signature changed": (
        lambda s, c: (_swap_signature(_presign(c)), "demo"),
        "SignatureDoesNotMatch",
    ),
    "date altered": (lambda s, c: (_shift_date(_presign(c)), "demo"), "SignatureDoesNotMatch"),
    "other cluster header": (lambda s, c: (_presign(c, "demo"), "other"), "SignatureDoesNotMatch"),
    "signed for other cluster": (
        lambda s, c: (_presign(c, "other"), "demo"),
        "SignatureDoesNotMatch",
    ),
    "expired": (
        lambda s, c: (_presign(c, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)), "demo"),
        "SignatureDoesNotMatch",
    ),
    "dated in the future": (
        lambda s, c: (_presign(c, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)), "demo"),
        "SignatureDoesNotMatch",
    ),
    "wrong session token": (
        lambda s, c: (
            _presign(
                StsCredentials(
                    c.access_key_id,
                    c.secret_access_key,
                    s.assume_role("jitkube-view", "other").session_token,
                    c.expiration,
                    c.assumed_role_arn,
                )
            ),
            "demo",
        ),
        "InvalidClientTokenId",
    ),
    "no session token": (
        lambda s, c: (
            presign_get_caller_identity(
                c.access_key_id,
                c.secret_access_key,
                None,
                "demo",
                "us-east-1",
                dt.datetime.now(dt.UTC),
            ),
            "demo",
        ),
        "InvalidClientTokenId",
    ),
    "unknown access key": (
        lambda s, c: (
            presign_get_caller_identity(
                *_random_key(), c.session_token, "demo", "us-east-1", dt.datetime.now(dt.UTC)
            ),
            "demo",
        ),
        "InvalidClientTokenId",
    ),
    "right key, wrong secret": (
        lambda s, c: (
            presign_get_caller_identity(
                c.access_key_id,
                "not-the-secret",
                c.session_token,
                "demo",
                "us-east-1",
                dt.datetime.now(dt.UTC),
            ),
            "demo",
        ),
        "SignatureDoesNotMatch",
    ),
}


@pytest.mark.parametrize("case", sorted(_REJECTIONS))
def test_tampered_presigned_requests_get_an_sts_403_not_a_200(sandbox: Sandbox, case: str) -> None:
    build, expected_code = _REJECTIONS[case]
    creds = sandbox.assume_role("jitkube-view", "mallory")
    url, cluster = build(sandbox, creds)

    status, body = _send(sandbox, url, _headers(url, cluster))

    assert status == 403
    assert json.loads(body)["Error"]["Code"] == expected_code
    in_process = sandbox.sts.validate_presigned(url, _headers(url, cluster))
    assert isinstance(in_process, StsError)
    assert in_process.code == expected_code


def test_presigned_get_for_another_service_is_refused_not_routed_to_s3(sandbox: Sandbox) -> None:
    creds = sandbox.assume_role("jitkube-view", "eve")
    url = _presign(creds).replace("Action=GetCallerIdentity", "Action=ListBuckets")
    status, body = _send(sandbox, url, _headers(url))
    assert status == 403
    assert b"ListAllMyBucketsResult" not in body


def test_unsigned_get_caller_identity_is_refused(sandbox: Sandbox) -> None:
    status, body = _send(
        sandbox,
        "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        {"Host": "sts.amazonaws.com"},
    )
    assert status == 403
    assert json.loads(body)["Error"]["Code"] == "MissingAuthenticationToken"


def test_validate_presigned_in_process_returns_the_identity(sandbox: Sandbox) -> None:
    creds = sandbox.assume_role("jitkube-admin", "carol")
    url = _presign(creds)
    result = sandbox.sts.validate_presigned(url, _headers(url))
    assert result == CallerIdentity(
        arn="arn:aws:sts::123456789012:assumed-role/jitkube-admin/carol",
        account="123456789012",
        user_id=result.user_id if isinstance(result, CallerIdentity) else "",
        access_key_id=creds.access_key_id,
    )


def test_credentials_past_their_sts_expiry_are_refused(sandbox: Sandbox) -> None:
    creds = sandbox.assume_role("jitkube-view", "late", duration_seconds=900)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)
    url = _presign(creds, now=later)
    result = sandbox.sts.validate_presigned(url, _headers(url), now=later)
    assert isinstance(result, StsError)
    assert result.code == "ExpiredToken"


def test_eks_token_request_validates_through_the_decoded_form(sandbox: Sandbox) -> None:
    creds = sandbox.assume_role("jitkube-view", "dave")
    token = sandbox.mint_token(creds, cluster_name="demo")
    request = decode_eks_token(token.token, "demo")
    status, _ = _send(sandbox, request.url, request.headers)
    assert status == 200


def test_assume_role_records_source_identity_tags_and_duration(sandbox: Sandbox) -> None:
    before = len(sandbox.sts.assume_role_calls)
    sandbox.assume_role(
        "jitkube-edit",
        "broker-session-1",
        duration_seconds=1800,
        SourceIdentity="alice@example.com",
        Tags=[{"Key": "jitkube-session", "Value": "s-123"}],
        TransitiveTagKeys=["jitkube-session"],
    )
    call = sandbox.sts.assume_role_calls[before]
    assert call.role_arn == "arn:aws:iam::123456789012:role/jitkube-edit"
    assert call.role_session_name == "broker-session-1"
    assert call.source_identity == "alice@example.com"
    assert call.duration_seconds == 1800
    assert call.tags == {"jitkube-session": "s-123"}
    assert call.transitive_tag_keys == ("jitkube-session",)
    assert call.outcome == "ok"


@pytest.mark.parametrize(
    ("role", "duration", "code"),
    [
        ("no-such-role", 900, "AccessDenied"),
        ("jitkube-short", 7200, "ValidationError"),  # above MaxSessionDuration (3600)
    ],
)
def test_assume_role_refuses_what_real_sts_refuses(
    sandbox: Sandbox, role: str, duration: int, code: str
) -> None:
    from botocore.exceptions import ClientError

    sandbox.sts.ensure_role("jitkube-short", max_session_duration=3600)
    with pytest.raises(ClientError) as info:
        sandbox.assume_role(role, "s1", duration_seconds=duration)
    assert info.value.response["Error"]["Code"] == code


def test_describe_cluster_names_the_simulated_api_server_and_its_ca(sandbox: Sandbox) -> None:
    cluster = sandbox.boto3_client("eks").describe_cluster(name=sandbox.cluster.name)["cluster"]
    assert cluster["endpoint"] == sandbox.cluster.url
    assert base64.b64decode(cluster["certificateAuthority"]["data"]) == sandbox.cluster.ca_pem
