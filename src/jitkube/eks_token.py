"""EKS bearer tokens: mint (SigV4 presign in pure stdlib) and decode (aws-iam-authenticator checks).

An EKS token is `k8s-aws-v1.` + unpadded base64url of a SigV4 query-presigned STS
`GetCallerIdentity` GET whose signed headers include `x-k8s-aws-id: <cluster>`. The API
server's authenticator sends that GET to STS; STS answers with the caller's identity only
if the signature (which covers the cluster header) is right and the date is recent.

Stdlib only: minting runs on the CLI hot path (roles that deliver STS credentials) and in
the broker; botocore costs ~250 ms per process for the same ~0.05 ms of hashing. The host
is always the real STS host: an `AWS_ENDPOINT_URL_STS` override must never leak into a
token (no validator accepts `http://127.0.0.1:…`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from urllib.parse import parse_qsl, quote, urlsplit

from jitkube.dataclass_lite import dataclass

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a format prefix, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
MAX_TOKEN_LENGTH = 4096  # aws-iam-authenticator's maxTokenLenBytes
TOKEN_VALIDITY = dt.timedelta(minutes=15)  # STS accepts a presigned URL this long after X-Amz-Date
REPORTED_VALIDITY = dt.timedelta(minutes=14)  # what `aws eks get-token` reports: a minute of slack
PRESIGN_EXPIRES = 60  # sent as X-Amz-Expires; STS ignores it for GetCallerIdentity
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)  # a date this far in the future is refused too

_ACTION = "GetCallerIdentity"
_VERSION = "2011-06-15"
_ALGORITHM = "AWS4-HMAC-SHA256"
_SIGNED_HEADERS = f"host;{CLUSTER_ID_HEADER}"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
# Query parameters aws-iam-authenticator lets through (compared lower-cased).
_ALLOWED_PARAMS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
# sts.amazonaws.com, sts.<region>.amazonaws.com, sts-fips.<region>…, and the China partition.
_STS_HOST_RE = re.compile(
    r"^sts(-fips)?(\.[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2})?\.amazonaws\.com(\.cn)?$"
)


class EksTokenError(ValueError):
    """A token that is not a well-formed EKS token. The message never contains the token."""


@dataclass(frozen=True)
class EksToken:
    """A bearer token for the Kubernetes API of an EKS cluster."""

    token: str
    expires_at: dt.datetime

    def __repr__(self) -> str:  # the token is a credential: keep it out of logs and tracebacks
        return f"EksToken(token=<redacted>, expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True)
class PresignedRequest:
    """A decoded EKS token: the GET an authenticator sends to STS, and what it claims."""

    url: str
    host: str
    headers: dict[str, str]  # host + x-k8s-aws-id, as signed
    access_key_id: str
    region: str
    signed_at: dt.datetime
    expires_at: dt.datetime  # signed_at + 15 min: when STS stops accepting it

    def __repr__(self) -> str:
        return (
            f"PresignedRequest(host={self.host!r}, access_key_id={self.access_key_id!r}, "
            f"region={self.region!r}, signed_at={self.signed_at.isoformat()})"
        )


def sts_host(region: str) -> str:
    """The real regional STS host botocore presigns against (China partition included)."""
    if not _REGION_RE.match(region):
        raise EksTokenError(f"not an AWS region: {region!r}")
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"sts.{region}{suffix}"


def _quote(value: str) -> str:
    # SigV4 URI encoding: everything but unreserved characters, '/' included.
    return quote(value, safe="-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_signature(
    *,
    secret_key: str,
    method: str,
    host: str,
    path: str,
    params: list[tuple[str, str]],
    headers: dict[str, str],
    signed_headers: str,
    amz_date: str,
    region: str,
    service: str,
    payload_sha256: str = _EMPTY_SHA256,
) -> str:
    """SigV4 signature (hex) of a request whose auth parameters are in the query string.

    `params` excludes X-Amz-Signature; `headers` must hold every name in `signed_headers`
    (lower-case). Shared by the minter and the sandbox's STS emulator, which recomputes it.
    """
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(params))
    names = signed_headers.split(";")
    lowered = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(f"{n}:{' '.join(lowered[n].split())}\n" for n in names)
    canonical_request = "\n".join(
        [method, path, canonical_query, canonical_headers, signed_headers, payload_sha256]
    )
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [_ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def presign_get_caller_identity(
    access_key: str,
    secret_key: str,
    session_token: str | None,
    cluster_name: str,
    region: str,
    now: dt.datetime,
) -> str:
    """The presigned STS URL, byte for byte what botocore produces for the same inputs."""
    host = sts_host(region)
    amz_date = now.astimezone(dt.UTC).strftime(_DATE_FORMAT)
    scope = f"{amz_date[:8]}/{region}/sts/aws4_request"
    # botocore's order: operation params, then auth params, signature last.
    params = [
        ("Action", _ACTION),
        ("Version", _VERSION),
        ("X-Amz-Algorithm", _ALGORITHM),
        ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(PRESIGN_EXPIRES)),
        ("X-Amz-SignedHeaders", _SIGNED_HEADERS),
    ]
    if session_token:
        params.append(("X-Amz-Security-Token", session_token))
    signature = sigv4_signature(
        secret_key=secret_key,
        method="GET",
        host=host,
        path="/",
        params=params,
        headers={"host": host, CLUSTER_ID_HEADER: cluster_name},
        signed_headers=_SIGNED_HEADERS,
        amz_date=amz_date,
        region=region,
        service="sts",
    )
    query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in params)
    return f"https://{host}/?{query}&X-Amz-Signature={signature}"


def mint_eks_token(
    access_key: str,
    secret_key: str,
    session_token: str | None,
    cluster_name: str,
    region: str,
    now: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> EksToken:
    """Mint an EKS bearer token from AWS credentials, like `aws eks get-token`.

    `expires_at` is signing time + 14 min (one minute of slack before STS refuses it),
    capped at `not_after` (e.g. the expiry of the STS credentials or of the session).
    """
    if not cluster_name:
        raise EksTokenError("cluster name is empty")
    signed_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    url = presign_get_caller_identity(
        access_key, secret_key, session_token, cluster_name, region, signed_at
    )
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    if len(token) > MAX_TOKEN_LENGTH:
        raise EksTokenError(
            f"EKS token would be {len(token)} bytes, over the {MAX_TOKEN_LENGTH}-byte limit "
            "(session token too long: fewer session tags or a shorter policy)"
        )
    expires_at = signed_at + REPORTED_VALIDITY
    if not_after is not None:
        expires_at = min(expires_at, not_after.astimezone(dt.UTC))
    return EksToken(token=token, expires_at=expires_at)


def decode_eks_token(
    token: str, cluster_id: str, now: dt.datetime | None = None
) -> PresignedRequest:
    """Check a token's structure as aws-iam-authenticator does and return the STS request.

    This does not prove anything by itself: the signature (which binds the cluster id,
    the key and the date) is checked by STS when the returned request is sent there with
    `headers`. Raises EksTokenError on any deviation.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise EksTokenError("token is too large")
    if not token.startswith(TOKEN_PREFIX):
        raise EksTokenError("token is missing the k8s-aws-v1. prefix")
    body = token[len(TOKEN_PREFIX) :]
    if not re.fullmatch(r"[A-Za-z0-9_-]*", body):
        raise EksTokenError("token is not unpadded base64url")
    try:
        url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise EksTokenError("token is not valid base64url") from None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise EksTokenError("pre-signed URL is malformed") from None
    if parts.scheme != "https":
        raise EksTokenError("pre-signed URL must use https")
    if parts.netloc != host or port is not None or parts.username or parts.password:
        raise EksTokenError("pre-signed URL has an unexpected authority")
    if not _STS_HOST_RE.match(host):
        raise EksTokenError(f"unexpected hostname {host!r} in pre-signed URL")
    if parts.path != "/":
        raise EksTokenError("unexpected path in pre-signed URL")
    if parts.fragment:
        raise EksTokenError("unexpected fragment in pre-signed URL")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise EksTokenError("malformed query parameter") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        lower = key.lower()
        if lower not in _ALLOWED_PARAMS:
            raise EksTokenError(f"non-allowed query parameter {key!r}")
        if lower in query:
            raise EksTokenError("query parameter with multiple values not supported")
        query[lower] = value
    if query.get("action") != _ACTION:
        raise EksTokenError("unexpected action parameter in pre-signed URL")
    if query.get("version") != _VERSION:
        raise EksTokenError("unexpected version parameter in pre-signed URL")
    if query.get("x-amz-algorithm") != _ALGORITHM:
        raise EksTokenError("unexpected signing algorithm in pre-signed URL")
    if not query.get("x-amz-signature"):
        raise EksTokenError("pre-signed URL is not signed")
    signed = query.get("x-amz-signedheaders", "").lower().split(";")
    if CLUSTER_ID_HEADER not in signed:
        raise EksTokenError(f"client did not sign the {CLUSTER_ID_HEADER} header")
    if not set(signed) <= {"host", CLUSTER_ID_HEADER}:
        raise EksTokenError("pre-signed URL signs headers the authenticator cannot supply")
    try:
        expires = int(query.get("x-amz-expires", ""))
    except ValueError:
        raise EksTokenError("malformed X-Amz-Expires parameter") from None
    if not 0 <= expires <= 900:
        raise EksTokenError("X-Amz-Expires must be between 0 and 900 seconds")
    credential = query.get("x-amz-credential", "").split("/")
    if len(credential) != 5 or credential[3] != "sts" or credential[4] != "aws4_request":
        raise EksTokenError("malformed X-Amz-Credential parameter")
    access_key_id, scope_date, region = credential[0], credential[1], credential[2]
    if not access_key_id or not _REGION_RE.match(region):
        raise EksTokenError("malformed X-Amz-Credential parameter")
    try:
        signed_at = dt.datetime.strptime(query.get("x-amz-date", ""), _DATE_FORMAT).replace(
            tzinfo=dt.UTC
        )
    except ValueError:
        raise EksTokenError("malformed X-Amz-Date parameter") from None
    if scope_date != signed_at.strftime("%Y%m%d"):
        raise EksTokenError("X-Amz-Credential date does not match X-Amz-Date")
    current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    expires_at = signed_at + TOKEN_VALIDITY
    if current > expires_at:
        raise EksTokenError("X-Amz-Date parameter is expired (15 minute expiration)")
    if signed_at - current > MAX_CLOCK_SKEW:
        raise EksTokenError("X-Amz-Date parameter is in the future")
    if not cluster_id:
        raise EksTokenError("cluster id is empty")
    return PresignedRequest(
        url=url,
        host=host,
        headers={"host": host, CLUSTER_ID_HEADER: cluster_id},
        access_key_id=access_key_id,
        region=region,
        signed_at=signed_at,
        expires_at=expires_at,
    )
