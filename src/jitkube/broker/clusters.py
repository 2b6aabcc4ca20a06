"""Where each configured cluster's API server is: from broker.yaml, else EKS DescribeCluster.

A cluster in broker.yaml may leave out `endpoint` and/or `certificate_authority`; the
broker then asks `eks:DescribeCluster` (with its own AWS identity, in the cluster's
region) on first use and keeps the answer for the life of the process: an EKS cluster's
endpoint and CA never change while the cluster exists. A failed lookup is remembered for
a short while, so a list of sessions does not call EKS once per row, and then retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jitkube.broker.config import ClusterSettings
from jitkube.broker.errors import BrokerError

log = logging.getLogger("jitkube.broker")

FAILURE_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class ClusterAccess:
    """What a client needs for its kubeconfig: API server URL and base64 PEM CA."""

    endpoint: str
    certificate_authority: str


class ClusterLookupError(Exception):
    """DescribeCluster failed or gave no usable answer. The message carries no secret."""


class ClusterDescriber(Protocol):
    def describe(self, eks_name: str, region: str) -> ClusterAccess: ...


class Boto3ClusterDescriber:
    """`eks:DescribeCluster` through boto3 with the broker's own AWS identity."""

    def __init__(self, endpoint_url: str | None = None, session: Any | None = None) -> None:
        self._endpoint_url = endpoint_url
        self._session = session
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, region: str) -> Any:
        with self._lock:
            if region not in self._clients:
                import boto3  # only the broker needs boto3
                from botocore.config import Config

                session = self._session or boto3.session.Session()
                self._clients[region] = session.client(
                    "eks",
                    region_name=region,
                    endpoint_url=self._endpoint_url,
                    config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3}),
                )
            return self._clients[region]

    def describe(self, eks_name: str, region: str) -> ClusterAccess:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"EKS cluster {eks_name!r} in {region}"
        try:
            answer = self._client(region).describe_cluster(name=eks_name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise ClusterLookupError(f"DescribeCluster of {where} refused: {code}") from None
        except BotoCoreError as exc:
            raise ClusterLookupError(
                f"DescribeCluster of {where} failed ({exc.__class__.__name__})"
            ) from None
        cluster = answer.get("cluster") or {}
        endpoint = cluster.get("endpoint") or ""
        ca = (cluster.get("certificateAuthority") or {}).get("data") or ""
        if not endpoint.startswith("https://") or not ca:
            status = cluster.get("status", "unknown")
            raise ClusterLookupError(f"{where} has no endpoint and CA yet (status {status})")
        return ClusterAccess(endpoint=endpoint, certificate_authority=ca)


class ClusterDirectory:
    """Endpoint and CA of every configured cluster; thread-safe, one per app."""

    def __init__(
        self,
        clusters: Mapping[str, ClusterSettings],
        describer: Callable[[], ClusterDescriber],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clusters = clusters
        self._describer_factory = describer
        self._describer: ClusterDescriber | None = None
        self._monotonic = monotonic
        self._known: dict[str, ClusterAccess] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def access(self, name: str) -> ClusterAccess:
        """Endpoint and CA of a configured cluster, or BrokerError `eks_unavailable`."""
        cluster = self._clusters.get(name)
        if cluster is None:
            raise BrokerError("conflict", f"cluster {name!r} is no longer configured")
        if cluster.endpoint is not None and cluster.certificate_authority is not None:
            return ClusterAccess(cluster.endpoint, cluster.certificate_authority)
        with self._lock:
            known = self._known.get(name)
            if known is not None:
                return known
            failed = self._failed.get(name)
            if failed is not None and self._monotonic() < failed[0]:
                raise self._error(failed[1])
            if self._describer is None:
                self._describer = self._describer_factory()
            describer = self._describer
        # Outside the lock: a slow EKS answer for one cluster must not stall the others.
        try:
            found = describer.describe(cluster.eks_cluster_name, cluster.region)
        except ClusterLookupError as exc:
            reason = f"cluster {name!r}: {exc}"
            with self._lock:
                self._failed[name] = (self._monotonic() + FAILURE_RETRY_SECONDS, reason)
            log.warning(
                "cluster discovery failed; retried on use after %.0fs",
                FAILURE_RETRY_SECONDS,
                extra={"cluster": name, "error": str(exc)},
            )
            raise self._error(reason) from None
        access = ClusterAccess(
            cluster.endpoint or found.endpoint,
            cluster.certificate_authority or found.certificate_authority,
        )
        with self._lock:
            self._known[name] = access
            self._failed.pop(name, None)
        return access

    def access_or_none(self, name: str) -> ClusterAccess | None:
        """Like access(), but None instead of an error (for views that can do without)."""
        try:
            return self.access(name)
        except BrokerError:
            return None

    def prefetch(self) -> list[str]:
        """Look up every cluster that needs EKS now; returns the failures (one line each)."""
        problems = []
        for name, cluster in self._clusters.items():
            if cluster.discovered:
                try:
                    self.access(name)
                except BrokerError as exc:
                    problems.append(exc.detail)
        return problems

    @staticmethod
    def _error(reason: str) -> BrokerError:
        return BrokerError("eks_unavailable", f"cannot find the API server of {reason}")
