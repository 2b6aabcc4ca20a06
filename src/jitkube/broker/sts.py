"""STS AssumeRole for sessions, and the at-rest encryption of the credentials it returns.

The credentials never leave the broker (unless a role opts into `delivery: credentials`);
in the database they are a Fernet token (AES-128-CBC + HMAC-SHA256) under a key from the
environment or a file. Without a configured key the broker makes an ephemeral one and
says so: credentials then do not survive a restart, and the broker simply assumes the
role again when it cannot decrypt them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from jitkube.broker.config import StorageSettings
from jitkube.errors import ConfigError

log = logging.getLogger("jitkube.broker")

STS_POOL_CONNECTIONS = 40
_SESSION_NAME_RE = re.compile(r"[^\w+=,.@-]")
_TAG_VALUE_RE = re.compile(r"[^\w\s.:/=+\-@]")


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: float  # epoch seconds
    assumed_role_arn: str = ""

    def __repr__(self) -> str:  # credentials: keep them out of logs and tracebacks
        return (
            f"AwsCredentials(access_key_id={self.access_key_id[:4]}…, expiration={self.expiration})"
        )


@dataclass(frozen=True)
class AssumeRoleRequest:
    role_arn: str
    role_session_name: str
    source_identity: str
    tags: Mapping[str, str]
    duration_seconds: int


class StsError(Exception):
    """STS refused or could not be reached. The message carries no credentials."""


class CredentialIssuer(Protocol):
    def assume_role(self, request: AssumeRoleRequest) -> AwsCredentials: ...


class Boto3CredentialIssuer:
    """AssumeRole through boto3 with the broker's own AWS identity (default chain)."""

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        session: Any | None = None,
    ) -> None:
        import boto3  # only the broker needs boto3
        from botocore.config import Config

        # One client for the app's life (clients are thread-safe and costly to build),
        # with a connection pool as large as the thread pool that calls it: botocore's
        # default of 10 makes concurrent AssumeRole calls open (and drop) connections.
        self._client = (session or boto3.session.Session()).client(
            "sts",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(max_pool_connections=STS_POOL_CONNECTIONS),
        )

    def assume_role(self, request: AssumeRoleRequest) -> AwsCredentials:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            answer = self._client.assume_role(
                RoleArn=request.role_arn,
                RoleSessionName=request.role_session_name,
                SourceIdentity=request.source_identity,
                Tags=[{"Key": k, "Value": v} for k, v in request.tags.items()],
                DurationSeconds=request.duration_seconds,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            hint = (
                ": the role's trust policy must let the broker's AWS identity assume it "
                "and set SourceIdentity and session tags (examples/iam/)"
                if code == "AccessDenied"
                else ""
            )
            raise StsError(f"STS refused AssumeRole of {request.role_arn}: {code}{hint}") from None
        except NoCredentialsError:
            raise StsError(
                "the broker has no AWS credentials to call STS with: give its process an "
                "AWS identity (instance or pod role, AWS_* variables or a profile)"
            ) from None
        except BotoCoreError as exc:
            raise StsError(f"STS unreachable ({exc.__class__.__name__})") from None
        creds = answer["Credentials"]
        return AwsCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expiration=creds["Expiration"].timestamp(),
            assumed_role_arn=answer.get("AssumedRoleUser", {}).get("Arn", ""),
        )


def role_session_name(session_id: str) -> str:
    """Broker-controlled RoleSessionName: CloudTrail ties the AWS calls to the session."""
    return _SESSION_NAME_RE.sub("-", f"jitkube-{session_id}")[:64]


def source_identity(requester: str) -> str:
    """SourceIdentity from the requester (2-64 chars of [\\w+=,.@-]), visible in CloudTrail."""
    value = _SESSION_NAME_RE.sub("-", requester)[:64]
    return value if len(value) >= 2 else f"{value}--"


def session_tag(value: str) -> str:
    """A session-tag value: allowed characters only, at most 256 of them."""
    return _TAG_VALUE_RE.sub("_", value)[:256]


class CredentialVault:
    """Encrypts STS credentials for the database. Several keys: first encrypts, all decrypt."""

    def __init__(self, keys: list[bytes], *, ephemeral: bool = False) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._keys = list(keys)
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self.ephemeral = ephemeral

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled only to hand the same keys to `broker serve --workers` processes.
        return (_restore_vault, (self._keys, self.ephemeral))

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"CredentialVault(keys={len(self._keys)}, ephemeral={self.ephemeral})"

    @classmethod
    def from_settings(
        cls, settings: StorageSettings, environ: Mapping[str, str] | None = None
    ) -> CredentialVault:
        """Keys from `encryption_key_file` or the env var (comma-separated for rotation)."""
        env = os.environ if environ is None else environ
        raw: str | None = None
        if settings.encryption_key_file:
            try:
                raw = Path(settings.encryption_key_file).read_text(encoding="ascii").strip()
            except OSError as exc:
                raise ConfigError(
                    f"storage.encryption_key_file: cannot read ({exc.strerror})"
                ) from None
        elif env.get(settings.encryption_key_env):
            raw = env[settings.encryption_key_env]
        if not raw:
            log.warning(
                "no credential encryption key configured (%s): using an ephemeral key; "
                "sessions re-assume their role after a restart",
                settings.encryption_key_env,
            )
            return cls([Fernet.generate_key()], ephemeral=True)
        keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
        try:
            return cls(keys)
        except ValueError:
            raise ConfigError(
                "storage encryption key: must be Fernet keys (32 url-safe base64 bytes); "
                'make one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            ) from None

    def seal(self, credentials: AwsCredentials) -> str:
        payload = json.dumps(
            {
                "a": credentials.access_key_id,
                "s": credentials.secret_access_key,
                "t": credentials.session_token,
                "e": credentials.expiration,
                "r": credentials.assumed_role_arn,
            }
        ).encode()
        return self._fernet.encrypt(payload).decode("ascii")

    def open(self, blob: str) -> AwsCredentials | None:
        """The credentials, or None if this key cannot decrypt them (rotated, ephemeral)."""
        try:
            data = json.loads(self._fernet.decrypt(blob.encode("ascii")))
        except (InvalidToken, ValueError):
            return None
        return AwsCredentials(
            access_key_id=data["a"],
            secret_access_key=data["s"],
            session_token=data["t"],
            expiration=float(data["e"]),
            assumed_role_arn=data.get("r", ""),
        )


def _restore_vault(keys: list[bytes], ephemeral: bool) -> CredentialVault:
    return CredentialVault(keys, ephemeral=ephemeral)
