"""An STS/IAM/EKS emulator that really validates presigned GetCallerIdentity requests.

moto's WSGI app runs in-process on loopback (port 0) behind a middleware. moto alone would
route a presigned GET to S3 (200 with a bucket list: any token "valid") and never reads
the key from `X-Amz-Credential`. The middleware therefore checks every query-signed
request itself: structure, date window (15 min), the key moto issued, the session token,
and the SigV4 signature recomputed with the secret moto stored (which binds the
`x-k8s-aws-id` cluster header). Only then does it hand moto an authenticated request, so
moto answers with the assumed-role identity. Anything wrong is a real STS-style 403.

Header-signed requests (boto3 with `endpoint_url=`) pass through unchecked, as in plain
moto, except that AssumeRole refuses unknown roles and durations above the role's
MaxSessionDuration, and every AssumeRole call is recorded for tests.

moto keeps its state in process-wide globals: one emulator per process, and do not mix it
with `moto.mock_aws` in the same process (mock_aws resets those globals).
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import json
import threading
import uuid
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jitkube.eks_token import (
    MAX_CLOCK_SKEW,
    TOKEN_VALIDITY,
    sigv4_signature,
)

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

# A WSGI app, typed loosely: the WSGI signatures are not worth spelling out for mypy here.
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class CallerIdentity:
    """What STS GetCallerIdentity answers for a valid request."""

    arn: str
    account: str
    user_id: str
    access_key_id: str


@dataclass(frozen=True)
class StsError:
    """An STS error response (HTTP status, code and message as real STS spells them)."""

    code: str
    message: str
    status: int = 403

    def xml(self, request_id: str) -> bytes:
        return (
            f'<ErrorResponse xmlns="{_STS_NS}"><Error><Type>Sender</Type>'
            f"<Code>{_xml_escape(self.code)}</Code><Message>{_xml_escape(self.message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()

    def json(self, request_id: str) -> bytes:
        body = {"Error": {"Code": self.code, "Message": self.message, "Type": "Sender"}}
        return json.dumps({**body, "RequestId": request_id}).encode()


@dataclass(frozen=True)
class AssumeRoleCall:
    """One AssumeRole request as the emulator received it (for broker tests)."""

    role_arn: str
    role_session_name: str
    source_identity: str | None
    duration_seconds: int | None
    tags: dict[str, str]
    transitive_tag_keys: tuple[str, ...]
    outcome: str  # "ok" or the STS error code


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _signature_mismatch() -> StsError:
    return StsError(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details.",
    )


def _invalid_token() -> StsError:
    return StsError(
        "InvalidClientTokenId", "The security token included in the request is invalid."
    )


@dataclass(frozen=True)
class _Credential:
    secret_key: str
    session_token: str | None
    expires_at: dt.datetime | None


def _lookup_credential(access_key_id: str) -> _Credential | None:
    """Find the secret moto issued for an access key (assumed role or IAM user key)."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for sts_account in list(sts_backends.values()):
        for sts_backend in list(sts_account.values()):
            role = sts_backend.get_assumed_role_from_access_key(access_key_id)
            if role is not None:
                expires = role.expiration
                if expires.tzinfo is None:
                    expires = expires.replace(tzinfo=dt.UTC)
                return _Credential(role.secret_access_key, role.session_token, expires)
    for iam_account in list(iam_backends.values()):
        for iam_backend in list(iam_account.values()):
            user = iam_backend.get_user_from_access_key_id(access_key_id)
            if user is None:
                continue
            for key in iam_backend.list_access_keys(user.name):
                if key.access_key_id == access_key_id and key.status == "Active":
                    return _Credential(key.secret_access_key, None, None)
    return None


def _host_matches_region(host: str, region: str) -> bool:
    """STS refuses a credential scope for another region than the endpoint's."""
    if host in ("sts.amazonaws.com", "sts-fips.amazonaws.com"):
        return region == "us-east-1"
    labels = host.split(".")
    return len(labels) >= 4 and labels[1] == region


def validate_presigned(
    url: str, headers: dict[str, str], now: dt.datetime | None = None
) -> CallerIdentity | StsError:
    """Validate a query-presigned STS GetCallerIdentity GET exactly as STS would.

    `headers` are the request headers (`Host` as signed, `x-k8s-aws-id`); names are
    case-insensitive. Returns the caller identity, or the STS error to answer with.
    """
    from moto.sts.models import sts_backends

    lowered = {k.lower(): v for k, v in headers.items()}
    parts = urlsplit(url)
    host = lowered.get("host") or parts.netloc
    lowered["host"] = host
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return StsError("MalformedQueryString", "The query string is malformed.", 400)
    query: dict[str, str] = {}
    for key, value in pairs:
        if key in query:
            return StsError("MalformedQueryString", f"Duplicate query parameter {key}.", 400)
        query[key] = value
    if query.get("Action") != "GetCallerIdentity" or query.get("Version") != "2011-06-15":
        return StsError("AccessDenied", "Only presigned GetCallerIdentity is supported.")
    if parts.path != "/":
        return _signature_mismatch()
    required = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders")
    signature = query.pop("X-Amz-Signature", "")
    if not signature or any(not query.get(name) for name in required):
        return StsError(
            "IncompleteSignature", "The request signature does not conform to AWS standards."
        )
    if query["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        return StsError("IncompleteSignature", "Unsupported AWS 'algorithm'.")
    scope = query["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[3] != "sts" or scope[4] != "aws4_request":
        return StsError("IncompleteSignature", "Credential should be scoped to a valid service.")
    access_key_id, scope_date, region = scope[0], scope[1], scope[2]
    if not _host_matches_region(host, region):
        return StsError(
            "SignatureDoesNotMatch",
            f"Credential should be scoped to a valid region, not {region!r}.",
        )
    amz_date = query["X-Amz-Date"]
    try:
        signed_at = dt.datetime.strptime(amz_date, _DATE_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return StsError("IncompleteSignature", "X-Amz-Date is malformed.")
    if scope_date != amz_date[:8]:
        return StsError("SignatureDoesNotMatch", "Credential should be scoped to a valid date.")
    current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    stamp = current.strftime(_DATE_FORMAT)
    if current > signed_at + TOKEN_VALIDITY:
        limit = (current - TOKEN_VALIDITY).strftime(_DATE_FORMAT)
        return StsError(
            "SignatureDoesNotMatch",
            f"Signature expired: {amz_date} is now earlier than {limit} ({stamp} - 15 min.)",
        )
    if signed_at > current + MAX_CLOCK_SKEW:
        limit = (current + MAX_CLOCK_SKEW).strftime(_DATE_FORMAT)
        return StsError(
            "SignatureDoesNotMatch",
            f"Signature not yet current: {amz_date} is still later than {limit} "
            f"({stamp} + 15 min.)",
        )
    signed_headers = query["X-Amz-SignedHeaders"]
    names = signed_headers.split(";")
    if "host" not in names or any(n not in lowered for n in names):
        return _signature_mismatch()
    credential = _lookup_credential(access_key_id)
    if credential is None:
        return _invalid_token()
    if query.get("X-Amz-Security-Token") != credential.session_token:
        # Missing, extra or wrong session token: STS cannot match the key to a session.
        return _invalid_token()
    if credential.expires_at is not None and current > credential.expires_at:
        return StsError("ExpiredToken", "The security token included in the request is expired")
    expected = sigv4_signature(
        secret_key=credential.secret_key,
        method="GET",
        host=host,
        path=parts.path,
        params=list(query.items()),
        headers=lowered,
        signed_headers=signed_headers,
        amz_date=amz_date,
        region=region,
        service="sts",
    )
    if not hmac.compare_digest(expected, signature):
        return _signature_mismatch()
    for sts_account in list(sts_backends.values()):
        for sts_backend in list(sts_account.values()):
            role = sts_backend.get_assumed_role_from_access_key(access_key_id)
            if role is not None:
                return CallerIdentity(role.arn, role.account_id, role.user_id, access_key_id)
    from moto.iam.models import iam_backends

    for iam_account in list(iam_backends.values()):
        for iam_backend in list(iam_account.values()):
            user = iam_backend.get_user_from_access_key_id(access_key_id)
            if user is not None:
                return CallerIdentity(user.arn, user.account_id, user.id, access_key_id)
    return _invalid_token()


class _Middleware:
    """WSGI wrapper in front of moto: validates query-signed requests, guards AssumeRole."""

    def __init__(self, app: WsgiApp, emulator: StsEmulator) -> None:
        self._app = app
        self._emulator = emulator

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        query = environ.get("QUERY_STRING", "")
        keys = {k.lower() for k, _ in parse_qsl(query, keep_blank_values=True)}
        wants_json = "application/json" in environ.get("HTTP_ACCEPT", "")
        request_id = str(uuid.uuid4())
        if keys & {"x-amz-signature", "x-amz-credential", "x-amz-security-token"}:
            return self._presigned(environ, start_response, wants_json, request_id)
        if not environ.get("HTTP_AUTHORIZATION"):
            body = self._read_body(environ)
            action = dict(parse_qsl(body.decode("utf-8", "replace"))).get("Action", "")
            if action not in ("AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"):
                err = StsError(
                    "MissingAuthenticationToken", "Request is missing Authentication Token"
                )
                return _respond(start_response, err, wants_json, request_id)
            return self._app(environ, start_response)
        if environ.get("REQUEST_METHOD") == "POST":
            body = self._read_body(environ)
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if form.get("Action") == "AssumeRole":
                refusal = self._emulator._check_assume_role(form)
                if refusal is not None:
                    return _respond(start_response, refusal, wants_json, request_id)
        return self._app(environ, start_response)

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        """Read the body and put it back, so moto can read it again."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    def _presigned(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        wants_json: bool,
        request_id: str,
    ) -> Any:
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        host = headers.get("host", "")
        url = f"https://{host}{environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}"
        if environ.get("REQUEST_METHOD") != "GET":
            result: CallerIdentity | StsError = _signature_mismatch()
        else:
            result = validate_presigned(url, headers)
        self._emulator._record_validation(result)
        if isinstance(result, StsError):
            return _respond(start_response, result, wants_json, request_id)
        # Turn the verified query auth into header auth: moto reads the key from there, and
        # routes by its scope to STS (not S3). The signature is not checked again by moto.
        date = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        environ["HTTP_AUTHORIZATION"] = (
            f"AWS4-HMAC-SHA256 Credential={result.access_key_id}/{date}/us-east-1/sts/"
            "aws4_request, SignedHeaders=host, Signature=verified"
        )
        environ["QUERY_STRING"] = "Action=GetCallerIdentity&Version=2011-06-15"
        environ["HTTP_HOST"] = "sts.amazonaws.com"
        environ.pop("HTTP_X_AMZ_SECURITY_TOKEN", None)
        if not wants_json:
            return self._app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, response_headers: list[tuple[str, str]], *_: Any) -> None:
            captured["status"] = status

        body = b"".join(self._app(environ, capture))
        if not str(captured.get("status", "")).startswith("200"):
            return _respond(start_response, _invalid_token(), wants_json, request_id)
        return _json_identity(start_response, body)


def _respond(
    start_response: Callable[..., Any], err: StsError, wants_json: bool, request_id: str
) -> list[bytes]:
    body = err.json(request_id) if wants_json else err.xml(request_id)
    ctype = "application/json" if wants_json else "text/xml"
    reason = {400: "Bad Request", 403: "Forbidden"}.get(err.status, "Error")
    start_response(
        f"{err.status} {reason}",
        [
            ("Content-Type", ctype),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", request_id),
        ],
    )
    return [body]


def _json_identity(start_response: Callable[..., Any], xml_body: bytes) -> list[bytes]:
    """Real STS answers JSON when asked (aws-iam-authenticator asks); moto only speaks XML."""
    root = ET.fromstring(xml_body)  # noqa: S314 - moto's own output, on loopback
    ns = {"s": _STS_NS}
    fields = {
        name: root.findtext(f"s:GetCallerIdentityResult/s:{name}", default="", namespaces=ns)
        for name in ("Arn", "UserId", "Account")
    }
    request_id = root.findtext("s:ResponseMetadata/s:RequestId", default="", namespaces=ns)
    body = json.dumps(
        {
            "GetCallerIdentityResponse": {
                "GetCallerIdentityResult": fields,
                "ResponseMetadata": {"RequestId": request_id},
            }
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


@dataclass
class StsEmulator:
    """STS + IAM + EKS on loopback, with real presigned GetCallerIdentity validation.

    `start()` serves on 127.0.0.1, port 0 (plain HTTP: boto3 takes `endpoint_url=self.url`;
    EKS tokens never name this URL, they pin the real STS host).
    """

    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    assume_role_calls: list[AssumeRoleCall] = field(default_factory=list)
    validations: list[CallerIdentity | StsError] = field(default_factory=list)
    _server: Any = None
    _thread: threading.Thread | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("StsEmulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StsEmulator:
        """Serve moto behind the validating middleware in a daemon thread."""
        from werkzeug.serving import WSGIRequestHandler, make_server

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                create_backend_app,
            )

        class QuietHandler(WSGIRequestHandler):
            def log(self, type: str, message: str, *args: Any) -> None:
                pass

        app = _Middleware(DomainDispatcherApplication(create_backend_app), self)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="jitkube-sts-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; moto's state stays in the process."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> StsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def validate_presigned(
        self, url: str, headers: dict[str, str], now: dt.datetime | None = None
    ) -> CallerIdentity | StsError:
        """In-process form of what the HTTP endpoint does for a presigned GET."""
        return validate_presigned(url, headers, now)

    # --- IAM / EKS helpers -------------------------------------------------------------

    def _iam(self) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[self.account_id]["aws"]

    def ensure_role(self, name: str, max_session_duration: int | None = None) -> str:
        """Create the IAM role if missing (trust: this account) and return its ARN.

        MaxSessionDuration defaults to 3600 on creation; an existing role keeps its own
        unless one is given (moto's state is shared by every emulator in the process).
        """
        iam = self._iam()
        with self._lock:
            existing = next((r for r in list(iam.roles.values()) if r.name == name), None)
            if existing is not None:
                if max_session_duration is not None:
                    existing.max_session_duration = max_session_duration
                return str(existing.arn)
            trust = json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{self.account_id}:root"},
                            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                        }
                    ],
                }
            )
            role = iam.create_role(
                role_name=name,
                assume_role_policy_document=trust,
                path="/",
                permissions_boundary=None,
                description="jitkube sandbox role",
                tags=[],
                max_session_duration=str(max_session_duration or 3600),
            )
            return str(role.arn)

    def create_access_key(self, user_name: str = "jitkube-broker") -> tuple[str, str]:
        """An IAM user access key (id, secret) moto knows, e.g. for the broker's own calls."""
        iam = self._iam()
        with self._lock:
            # IAM allows two keys per user, and moto's state is per process (shared by
            # every emulator in it): past two, the key goes to a fresh numbered user.
            name, n = user_name, 1
            while name in iam.users and len(iam.users[name].access_keys) >= 2:
                n += 1
                name = f"{user_name}-{n}"
            if name not in iam.users:
                iam.create_user(region_name=self.region, user_name=name, path="/", tags=[])
            key = iam.create_access_key(user_name=name)
        return str(key.access_key_id), str(key.secret_access_key)

    def register_eks_cluster(self, name: str, endpoint: str, ca_pem: bytes) -> str:
        """Create (or update) an EKS cluster whose DescribeCluster names the simulated API."""
        import base64

        from moto.eks.models import eks_backends

        backend = eks_backends[self.account_id][self.region]
        with self._lock:
            cluster = backend.clusters.get(name)
            if cluster is None:
                role_arn = self.ensure_role("jitkube-eks-cluster-role")
                cluster = backend.create_cluster(
                    name=name,
                    role_arn=role_arn,
                    resources_vpc_config={"subnetIds": [], "securityGroupIds": []},
                    version="1.32",
                )
            cluster.endpoint = endpoint
            cluster.certificate_authority = {"data": base64.b64encode(ca_pem).decode()}
            return str(cluster.arn)

    # --- middleware hooks -----------------------------------------------------------------

    def _record_validation(self, result: CallerIdentity | StsError) -> None:
        with self._lock:
            self.validations.append(result)

    def _check_assume_role(self, form: dict[str, str]) -> StsError | None:
        """Refuse what real STS refuses and moto lets through; record the call."""
        role_arn = form.get("RoleArn", "")
        tags = {
            form[f"Tags.member.{i}.Key"]: form.get(f"Tags.member.{i}.Value", "")
            for i in range(1, 51)
            if f"Tags.member.{i}.Key" in form
        }
        transitive = tuple(
            form[f"TransitiveTagKeys.member.{i}"]
            for i in range(1, 51)
            if f"TransitiveTagKeys.member.{i}" in form
        )
        duration = (
            int(form["DurationSeconds"]) if form.get("DurationSeconds", "").isdigit() else None
        )
        err: StsError | None = None
        role = next((r for r in list(self._iam().roles.values()) if str(r.arn) == role_arn), None)
        if role is None:
            err = StsError(
                "AccessDenied", f"Not authorized to perform sts:AssumeRole on resource {role_arn}"
            )
        elif duration is not None and duration > int(role.max_session_duration):
            err = StsError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
                400,
            )
        call = AssumeRoleCall(
            role_arn=role_arn,
            role_session_name=form.get("RoleSessionName", ""),
            source_identity=form.get("SourceIdentity"),
            duration_seconds=duration,
            tags=tags,
            transitive_tag_keys=transitive,
            outcome="ok" if err is None else err.code,
        )
        with self._lock:
            self.assume_role_calls.append(call)
        return err
