"""Clusters without endpoint/CA in broker.yaml are found through EKS DescribeCluster."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_harness import (
    Broker,
    FakeClock,
    StsHandle,
    broker_config_dict,
    eks_describer,
    make_broker,
    sqlite_url,
)

from jitkube.broker.clusters import ClusterDirectory
from jitkube.broker.config import parse_config
from jitkube.broker.errors import BrokerError
from jitkube.broker.store import Store
from jitkube.errors import ConfigError

CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBdiscovered\n-----END CERTIFICATE-----\n"
CA_B64 = base64.b64encode(CA_PEM).decode()


def _eks_name() -> str:
    # moto's EKS state is per process and shared by every test of this xdist worker.
    return f"eks-{uuid.uuid4().hex[:10]}"


def _config(cluster: dict[str, Any], **aws: Any) -> dict[str, Any]:
    data = broker_config_dict()
    data["clusters"].append({"name": "found", "region": "us-east-1", **cluster})
    data["roles"][0]["clusters"] = ["prod", "dev", "found"]  # viewer: granted at once
    if aws:
        data["aws"] = aws
    return data


@pytest.fixture
def discovering(
    tmp_path: Path, real_clock: FakeClock, broker_sts: StsHandle
) -> Iterator[tuple[Broker, str]]:
    """A broker whose cluster `found` names a registered EKS cluster and nothing else."""
    eks_name = _eks_name()
    broker_sts.emulator.register_eks_cluster(eks_name, "https://10.1.2.3:6443", CA_PEM)
    store = Store.open(sqlite_url(tmp_path))
    made = make_broker(store, real_clock, broker_sts, _config({"eks_cluster_name": eks_name}))
    with made.client:
        yield made, eks_name
    store.close()


def _viewer_session(broker: Broker, cluster: str = "found") -> tuple[dict[str, Any], str]:
    created = broker.client.post(
        "/v1/sessions",
        json={"role": "viewer", "cluster": cluster, "ttl": "15m"},
        headers=broker.auth(),
    )
    assert created.status_code == 201, created.text
    return created.json()["session"], created.json()["session_token"]


def _eks_token(broker: Broker, session_id: str, token: str) -> Any:
    return broker.client.post(
        f"/v1/sessions/{session_id}/eks-token", headers=broker.session_auth(token)
    )


def test_a_cluster_without_endpoint_and_ca_gets_them_from_describe_cluster(
    discovering: tuple[Broker, str],
) -> None:
    broker, _ = discovering
    session, token = _viewer_session(broker)
    assert session["cluster_endpoint"] == "https://10.1.2.3:6443"
    assert session["cluster_certificate_authority"] == CA_B64
    answer = _eks_token(broker, session["id"], token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["cluster_endpoint"] == "https://10.1.2.3:6443"
    assert answer.json()["cluster_certificate_authority"] == CA_B64
    assert answer.json()["token"].startswith("k8s-aws-v1.")


def test_the_answer_is_kept_for_the_life_of_the_process(
    discovering: tuple[Broker, str], broker_sts: StsHandle
) -> None:
    broker, eks_name = discovering
    session, token = _viewer_session(broker)
    broker_sts.emulator.register_eks_cluster(eks_name, "https://10.9.9.9:443", b"other")
    again = _eks_token(broker, session["id"], token).json()
    assert again["cluster_endpoint"] == "https://10.1.2.3:6443"


def test_configured_clusters_never_ask_eks(discovering: tuple[Broker, str]) -> None:
    broker, _ = discovering
    session, token = _viewer_session(broker, cluster="prod")
    answer = _eks_token(broker, session["id"], token).json()
    assert answer["cluster_endpoint"] == "https://prod.eks.test"
    assert answer["cluster_certificate_authority"] == "LS0tLS1CRUdJTg=="


def test_a_field_given_in_the_file_wins_over_eks(
    tmp_path: Path, real_clock: FakeClock, broker_sts: StsHandle
) -> None:
    eks_name = _eks_name()
    broker_sts.emulator.register_eks_cluster(eks_name, "https://10.1.2.3:6443", CA_PEM)
    config = _config({"eks_cluster_name": eks_name, "endpoint": "https://private.example.test"})
    store = Store.open(sqlite_url(tmp_path))
    broker = make_broker(store, real_clock, broker_sts, config)
    with broker.client:
        session, token = _viewer_session(broker)
        answer = _eks_token(broker, session["id"], token).json()
    store.close()
    assert answer["cluster_endpoint"] == "https://private.example.test"
    assert answer["cluster_certificate_authority"] == CA_B64


def test_an_unknown_eks_cluster_fails_clearly_naming_the_cluster(
    tmp_path: Path, real_clock: FakeClock, broker_sts: StsHandle
) -> None:
    missing = _eks_name()
    store = Store.open(sqlite_url(tmp_path))
    broker = make_broker(store, real_clock, broker_sts, _config({"eks_cluster_name": missing}))
    with broker.client:
        session, token = _viewer_session(broker)
        answer = _eks_token(broker, session["id"], token)
    store.close()
    assert "cluster_endpoint" not in session  # the view does without
    assert answer.status_code == 502
    problem = answer.json()
    assert problem["code"] == "eks_unavailable"
    assert "cluster 'found'" in problem["detail"]
    assert repr(missing) in problem["detail"]
    assert "ResourceNotFoundException" in problem["detail"]


def test_a_failed_lookup_is_retried_after_a_pause(broker_sts: StsHandle) -> None:
    eks_name = _eks_name()
    settings = parse_config(_config({"eks_cluster_name": eks_name}))
    now = [0.0]
    directory = ClusterDirectory(
        settings.clusters, lambda: eks_describer(broker_sts), monotonic=lambda: now[0]
    )
    problems = directory.prefetch()
    assert len(problems) == 1
    assert "cluster 'found'" in problems[0]
    assert "ResourceNotFoundException" in problems[0]
    broker_sts.emulator.register_eks_cluster(eks_name, "https://10.4.4.4:443", CA_PEM)
    with pytest.raises(BrokerError) as excinfo:
        directory.access("found")  # still within the pause: EKS is not asked again
    assert excinfo.value.code == "eks_unavailable"
    now[0] += 31
    assert directory.access("found").endpoint == "https://10.4.4.4:443"
    assert directory.prefetch() == []


def test_an_unreachable_eks_endpoint_is_an_error_not_a_hang(broker_sts: StsHandle) -> None:
    import socket

    import boto3

    from jitkube.broker.clusters import Boto3ClusterDescriber, ClusterLookupError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the socket is closed
    session = boto3.session.Session(
        aws_access_key_id=broker_sts.key_id, aws_secret_access_key=broker_sts.secret
    )
    describer = Boto3ClusterDescriber(f"http://127.0.0.1:{port}", session=session)
    with pytest.raises(ClusterLookupError, match=r"'x' in us-east-1 failed \(EndpointConnection"):
        describer.describe("x", "us-east-1")


@pytest.mark.parametrize(
    ("cluster", "aws", "message"),
    [
        ({"endpoint": "http://x"}, {}, "clusters[2].endpoint: must be an https:// URL"),
        ({"certificate_authority": ""}, {}, "clusters[2].certificate_authority: must be"),
        ({}, {"eks_endpoint_url": "ftp://eks"}, "aws.eks_endpoint_url: must be an https://"),
    ],
)
def test_bad_cluster_discovery_settings_are_refused(
    cluster: dict[str, Any], aws: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(_config(cluster, **aws))
    assert message in excinfo.value.message


def test_endpoint_and_ca_are_optional_and_eks_endpoint_is_read() -> None:
    settings = parse_config(_config({}, region="us-east-1", eks_endpoint_url="http://127.0.0.1:1/"))
    found = settings.clusters["found"]
    assert (found.endpoint, found.certificate_authority, found.discovered) == (None, None, True)
    assert not settings.clusters["prod"].discovered
    assert settings.aws.eks_endpoint_url == "http://127.0.0.1:1/"
    assert settings.aws.sts_endpoint_url is None  # neither is derived from the other
