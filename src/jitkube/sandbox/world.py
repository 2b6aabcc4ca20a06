"""The whole simulated EKS world in one object: STS emulator + simulated cluster.

Used by the test fixtures and the demo. Roles `jitkube-view`, `jitkube-edit` and
`jitkube-admin` exist in IAM and are mapped by the cluster's access entries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from jitkube.eks_token import EksToken, mint_eks_token
from jitkube.sandbox.cluster import DEFAULT_CLUSTER_NAME, SimulatedCluster
from jitkube.sandbox.sts import StsEmulator
from jitkube.sandbox.tls import CertificateAuthority

SANDBOX_ROLES = ("jitkube-view", "jitkube-edit", "jitkube-admin")


@dataclass(frozen=True)
class StsCredentials:
    """Temporary credentials from AssumeRole (repr hides the secret parts)."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: dt.datetime
    assumed_role_arn: str

    def __repr__(self) -> str:
        return (
            f"StsCredentials(access_key_id={self.access_key_id!r}, arn={self.assumed_role_arn!r})"
        )


@dataclass
class Sandbox:
    """A started STS emulator and simulated cluster that trust each other."""

    sts: StsEmulator
    cluster: SimulatedCluster

    @classmethod
    def start(
        cls,
        cluster_name: str = DEFAULT_CLUSTER_NAME,
        region: str = "us-east-1",
        ca: CertificateAuthority | None = None,
    ) -> Sandbox:
        """Start STS, create the sandbox roles, start the cluster and register it with EKS.

        `ca` lets the cluster share one CA with other sandbox services (the IdP).
        """
        sts = StsEmulator(region=region).start()
        try:
            for role in SANDBOX_ROLES:
                sts.ensure_role(role)
            cluster = SimulatedCluster(
                sts.url, name=cluster_name, account_id=sts.account_id, ca=ca
            ).start()
            sts.register_eks_cluster(cluster_name, cluster.url, cluster.ca_pem)
        except BaseException:
            sts.stop()
            raise
        return cls(sts, cluster)

    def stop(self) -> None:
        self.cluster.stop()
        self.sts.stop()

    def role_arn(self, role: str) -> str:
        return f"arn:aws:iam::{self.sts.account_id}:role/{role}"

    def boto3_client(self, service: str) -> Any:
        """A boto3 client for the emulator, with throw-away caller credentials."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.sts.url,
            region_name=self.sts.region,
            aws_access_key_id="sandbox-caller",
            aws_secret_access_key="sandbox-caller-secret",  # noqa: S106 - moto does not check it
        )

    def assume_role(
        self, role: str, session_name: str = "tester", duration_seconds: int = 900, **kwargs: Any
    ) -> StsCredentials:
        """AssumeRole through boto3 against the emulator (extra kwargs go to boto3)."""
        answer = self.boto3_client("sts").assume_role(
            RoleArn=self.role_arn(role),
            RoleSessionName=session_name,
            DurationSeconds=duration_seconds,
            **kwargs,
        )
        creds = answer["Credentials"]
        return StsCredentials(
            creds["AccessKeyId"],
            creds["SecretAccessKey"],
            creds["SessionToken"],
            creds["Expiration"],
            answer["AssumedRoleUser"]["Arn"],
        )

    def mint_token(
        self, creds: StsCredentials, cluster_name: str | None = None, now: dt.datetime | None = None
    ) -> EksToken:
        return mint_eks_token(
            creds.access_key_id,
            creds.secret_access_key,
            creds.session_token,
            cluster_name or self.cluster.name,
            self.sts.region,
            now=now,
        )
