"""Reading -f/-k manifests safely: files, dirs, stdin, kustomize, limits, features."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from pathlib import Path

import pytest

from jitkube.kubectl.invocation import FileSource
from jitkube.kubectl.manifests import (
    ManifestLimits,
    ManifestSet,
    guess_plural,
    parse_manifest_bytes,
    read_manifests,
)
from jitkube.kubectl.parser import parse

DATA = Path(__file__).parent / "data" / "manifests"


def _file(name: str, *, recursive: bool = False) -> FileSource:
    path = DATA / name
    return FileSource(str(path), "dir" if path.is_dir() else "file", recursive=recursive)


def _names(ms: ManifestSet) -> list[tuple[str, str | None, str | None]]:
    return [(o.kind, o.name, o.namespace) for o in ms.objects]


def _billion_laughs(levels: int = 9) -> bytes:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata: {name: lol}",
        "data:",
        "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    ]
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def test_multi_document_file_yields_every_object_and_skips_empty_documents() -> None:
    ms = read_manifests([_file("app-with-secret.yaml")])
    assert ms.problems == ()
    assert _names(ms) == [
        ("ConfigMap", "app-config", "shop"),
        ("Secret", "app-credentials", "shop"),
        ("Service", "app", None),
    ]


def test_secret_keys_are_kept_but_values_never() -> None:
    ms = read_manifests([_file("app-with-secret.yaml")])
    secret = ms.objects[1]
    assert secret.secret_keys == ("password",)
    assert secret.secret_type == "Opaque"
    assert "hunter2" not in repr(ms)


def test_digest_covers_every_byte_read_in_order() -> None:
    a, b = DATA / "app-with-secret.yaml", DATA / "plain-deployment.yaml"
    ms = read_manifests([_file(a.name), _file(b.name)])
    assert ms.digest == hashlib.sha256(a.read_bytes() + b.read_bytes()).hexdigest()
    swapped = read_manifests([_file(b.name), _file(a.name)])
    assert swapped.digest != ms.digest


def test_stdin_is_read_from_the_callers_buffer() -> None:
    data = (DATA / "plain-deployment.yaml").read_bytes()
    ms = read_manifests([FileSource("-", "stdin")], stdin=data)
    assert _names(ms) == [("Deployment", "web", "shop")]
    assert ms.digest == hashlib.sha256(data).hexdigest()


def test_stdin_without_a_buffer_is_a_problem() -> None:
    ms = read_manifests([FileSource("-", "stdin")])
    assert ms.problems
    assert "not buffered" in ms.problems[0]


def test_directory_reads_only_top_level_manifest_files_without_recursive() -> None:
    ms = read_manifests([_file("dir")])
    assert ms.problems == ()
    assert _names(ms) == [("ConfigMap", "top-level", "dir-ns"), ("ConfigMap", "tabbed", "json-ns")]


def test_directory_with_recursive_descends_into_subdirectories() -> None:
    ms = read_manifests([_file("dir", recursive=True)])
    assert ("Secret", "nested-secret", "dir-ns") in _names(ms)
    assert len(ms.objects) == 3


def test_json_indented_with_tabs_is_read_like_kubectl_does() -> None:
    docs = parse_manifest_bytes((DATA / "dir" / "b.json").read_bytes())
    assert docs[0]["metadata"]["name"] == "tabbed"


def test_kind_list_items_are_expanded() -> None:
    ms = read_manifests([_file("list.yaml")])
    assert [o.kind for o in ms.objects] == ["Namespace", "CronJob"]
    ns, cron = ms.objects
    assert ns.pod_security_labels == {"pod-security.kubernetes.io/enforce": "privileged"}
    assert cron.pods[0].privileged_containers == ("backup",)


def test_workload_template_features_are_extracted() -> None:
    (obj,) = read_manifests([_file("privileged-deployment.yaml")]).objects
    (pod,) = obj.pods
    assert pod.privileged_containers == ("agent",)
    assert pod.host_pid
    assert pod.host_paths == ("/",)
    assert pod.added_capabilities == ("NET_ADMIN",)
    assert pod.service_account_name == "agent"


def test_rbac_role_ref_and_rules_are_extracted() -> None:
    (binding,) = read_manifests([_file("cluster-admin-binding.yaml")]).objects
    assert binding.role_ref == ("ClusterRole", "cluster-admin")
    assert binding.subjects == (("ServiceAccount", "agent"),)
    (role,) = read_manifests([_file("escalating-role.yaml")]).objects
    assert [r.verbs for r in role.rules] == [("get", "list"), ("escalate",)]


def test_custom_resource_pod_templates_are_found_anywhere() -> None:
    (obj,) = read_manifests([_file("custom-resource.yaml")]).objects
    assert obj.resource is None
    assert obj.qualified == "widgets.example.com"
    assert obj.pods[0].host_network


@pytest.mark.parametrize(
    ("kind", "plural"),
    [
        ("Widget", "widgets"),
        ("Policy", "policies"),
        ("Gateway", "gateways"),
        ("Ingress", "ingresses"),
    ],
)
def test_unknown_kinds_get_kubectls_guessed_plural(kind: str, plural: str) -> None:
    assert guess_plural(kind) == plural


def test_read_manifests_accepts_an_invocation(tmp_path: Path) -> None:
    patch = tmp_path / "p.yaml"
    patch.write_text("spec: {replicas: 2}\n")
    inv = parse(["patch", "deploy", "web", f"--patch-file={patch}"])
    assert read_manifests(inv).patches == ("spec: {replicas: 2}\n",)
    inv = parse(["apply", "-f", str(DATA / "plain-deployment.yaml")])
    assert [o.name for o in read_manifests(inv).objects] == ["web"]


def test_malformed_yaml_is_a_problem_not_an_exception() -> None:
    ms = read_manifests([_file("malformed.yaml")])
    assert ms.objects == ()
    assert "malformed YAML" in ms.problems[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"just a string\n", "not a mapping"),
        (b"metadata: {name: x}\n", "no kind/apiVersion"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'{"kind": "ConfigMap", "apiVersion": "v1"', "malformed JSON"),
    ],
)
def test_unusable_documents_are_problems(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    ms = read_manifests([FileSource(str(path), "file")])
    assert any(expected in p for p in ms.problems), ms.problems


def test_billion_laughs_is_refused_fast_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "lol.yaml"
    path.write_bytes(_billion_laughs())
    tracemalloc.start()
    started = time.perf_counter()
    ms = read_manifests([FileSource(str(path), "file")])
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert ms.objects == ()
    assert any("alias" in p for p in ms.problems), ms.problems
    assert elapsed < 2.0
    assert peak < 20 * 1024 * 1024


@pytest.mark.parametrize(
    "content",
    [
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        b"spec:\n  hostPID: true\n  hostPID: false\n",
        b'{"apiVersion": "v1", "kind": "Pod", "spec": {"hostPID": true, "hostPID": false}}',
    ],
)
def test_duplicate_keys_are_refused_because_decoders_disagree_on_them(content: bytes) -> None:
    with pytest.raises(ValueError, match="duplicate key 'hostPID'"):
        parse_manifest_bytes(content)


def test_yaml_merge_keys_and_repeated_keys_in_sibling_mappings_are_fine() -> None:
    doc = (
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
        b"base: &b {x: 1}\nitems:\n  - {<<: *b, name: one}\n  - {<<: *b, name: two}\n"
    )
    assert parse_manifest_bytes(doc)[0]["items"][1] == {"x": 1, "name": "two"}


def test_a_few_yaml_aliases_are_fine() -> None:
    doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: &l {x: y}}\ndata: *l\n"
    assert parse_manifest_bytes(doc)[0]["data"] == {"x": "y"}


def test_deep_nesting_is_refused() -> None:
    deep = b"a: " + b"[" * 200 + b"]" * 200 + b"\n"
    with pytest.raises(ValueError, match="nested deeper"):
        parse_manifest_bytes(deep)
    deep_json = b"{" + b'"a":{' * 5000 + b"}" * 5001
    with pytest.raises(ValueError, match="nested"):
        parse_manifest_bytes(deep_json)


def test_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.write(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  x: '")
        f.truncate(11 * 1024 * 1024)
    ms = read_manifests([FileSource(str(path), "file")])
    assert ms.objects == ()
    assert "exceed" in ms.problems[0]


def test_total_size_limit_spans_all_sources(tmp_path: Path) -> None:
    limits = ManifestLimits(max_total_bytes=600)
    src = _file("app-with-secret.yaml")
    ms = read_manifests([src, src, src], limits=limits)
    assert any("exceed 600 bytes" in p for p in ms.problems)


def test_urls_are_never_fetched() -> None:
    ms = read_manifests([FileSource("https://example.invalid/x.yaml", "url")])
    assert ms.problems == (
        "remote manifests are not fetched; download and pass a local file: "
        "https://example.invalid/x.yaml",
    )


def test_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    ms = read_manifests([FileSource(str(fifo), "file")])
    assert "not a regular file" in ms.problems[0]


def test_missing_file_is_a_problem() -> None:
    ms = read_manifests([FileSource("/nonexistent/m.yaml", "file")])
    assert "cannot read manifest /nonexistent/m.yaml" in ms.problems[0]


@pytest.mark.integration
def test_kustomization_is_rendered_by_real_kubectl(kubectl_bin: Path) -> None:
    src = FileSource(str(DATA / "kustomize"), "dir", kustomize=True)
    ms = read_manifests([src], kubectl=str(kubectl_bin))
    assert ms.problems == ()
    kinds = {(o.kind, o.namespace) for o in ms.objects}
    assert kinds == {("Secret", "kz"), ("Deployment", "kz")}
    assert ms.digest == hashlib.sha256(ms.rendered[src.path]).hexdigest()
    deployment = next(o for o in ms.objects if o.kind == "Deployment")
    assert deployment.pods[0].host_network


@pytest.mark.integration
def test_kustomization_with_remote_resource_fails_closed(kubectl_bin: Path, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n  - https://example.invalid/deploy.yaml\n"
    )
    src = FileSource(str(tmp_path), "dir", kustomize=True)
    ms = read_manifests([src], kubectl=str(kubectl_bin))
    assert ms.objects == ()
    assert "could not be rendered" in ms.problems[0]


def test_kustomization_without_kubectl_is_a_problem() -> None:
    ms = read_manifests([FileSource(str(DATA / "kustomize"), "dir", kustomize=True)])
    assert "not rendered" in ms.problems[0]
