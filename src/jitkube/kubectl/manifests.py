"""Read what `-f`/`-k` point at, safely, and extract what risk judgement needs.

kubectl reads manifests itself; jitkube reads the same bytes first so that the kinds,
namespaces and dangerous pod/RBAC settings inside them are judged before kubectl runs.
Everything here fails closed: whatever cannot be read within the limits becomes a
`problem`, and a command with problems is judged `unknown` and refused.

Only `read_manifests` touches files or runs `kubectl kustomize`; `parse_manifest_bytes`
and `features_of` are pure. PyYAML is imported lazily (the hot path must not pay for it
when no manifest is involved).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jitkube.dataclass_lite import dataclass, field
from jitkube.kubectl.invocation import FileSource, Invocation
from jitkube.kubectl.resources import ResourceType, kind_to_resource

if TYPE_CHECKING:
    import subprocess

# hashlib and subprocess are imported where used: this module sits on the hot path's
# import graph, and most commands read no manifest at all.
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# Extensions kubectl reads from a directory (an explicitly named file may have any name).
MANIFEST_EXTENSIONS = (".json", ".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class ManifestLimits:
    """Bounds that keep a hostile manifest from costing time or memory."""

    max_total_bytes: int = 10 * 1024 * 1024
    max_files: int = 1000
    max_documents: int = 5000
    max_depth: int = 64  # nesting of mappings/sequences
    max_aliases: int = 1000  # YAML `*alias` uses; real manifests need few or none
    max_nodes: int = 2_000_000  # YAML events per source (bounds parse time)
    max_expanded: int = 1_000_000  # values per document once aliases are expanded
    max_walk: int = 200_000  # values visited while extracting features per object
    kustomize_timeout: float = 30.0


DEFAULT_LIMITS = ManifestLimits()


@dataclass(frozen=True, slots=True)
class Container:
    """What matters about one container (init, ephemeral and app containers alike)."""

    name: str
    privileged: bool = False
    allow_privilege_escalation: bool = False
    run_as_root: bool = False
    added_capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PodFeatures:
    """Security-relevant settings of one pod spec (a Pod's or a workload template's)."""

    containers: tuple[Container, ...] = ()
    host_pid: bool = False
    host_network: bool = False
    host_ipc: bool = False
    host_paths: tuple[str, ...] = ()
    service_account_name: str | None = None
    run_as_root: bool = False  # pod-level securityContext.runAsUser == 0
    automount_service_account_token: bool | None = None

    @property
    def privileged_containers(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.containers if c.privileged)

    @property
    def added_capabilities(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for c in self.containers:
            for cap in c.added_capabilities:
                seen.setdefault(cap, None)
        return tuple(seen)

    @property
    def allow_privilege_escalation(self) -> bool:
        return any(c.allow_privilege_escalation for c in self.containers)

    @property
    def runs_as_root(self) -> bool:
        return self.run_as_root or any(c.run_as_root for c in self.containers)


@dataclass(frozen=True, slots=True)
class RbacRule:
    """One PolicyRule of a Role/ClusterRole."""

    verbs: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ManifestObject:
    """One object found in a manifest, with the features risk judgement needs.

    Secret values are never kept: only the keys of `data`/`stringData`.
    """

    api_version: str
    kind: str
    name: str | None
    namespace: str | None  # metadata.namespace; None when absent
    resource: ResourceType | None  # None: custom or unknown type
    source: str = ""
    pods: tuple[PodFeatures, ...] = ()  # the Pod's spec, or every pod template inside
    role_ref: tuple[str, str] | None = None  # (kind, name) of a (Cluster)RoleBinding
    subjects: tuple[tuple[str, str], ...] = ()  # (kind, name) of binding subjects
    rules: tuple[RbacRule, ...] = ()
    aggregation: bool = False  # ClusterRole with aggregationRule
    webhooks: int = 0  # number of webhooks in a webhook configuration
    secret_keys: tuple[str, ...] = ()
    secret_type: str | None = None
    pod_security_labels: Mapping[str, str] = field(default_factory=dict)
    pv_host_path: str | None = None

    @property
    def qualified(self) -> str:
        """Qualified resource name (`deployments.apps`); for types jitkube does not know,
        a guessed plural (`Widget` -> `widgets.example.com`), see `guess_plural`."""
        if self.resource is not None:
            return self.resource.qualified
        group = self.api_version.rpartition("/")[0] if "/" in self.api_version else ""
        plural = guess_plural(self.kind)
        return f"{plural}.{group}" if group else plural


@dataclass(frozen=True, slots=True)
class ManifestSet:
    """Everything read for one invocation.

    `digest` is a sha256 over every byte read, in order (files, stdin, rendered
    kustomizations), for approval fingerprints. `problems` non-empty means the set is
    incomplete and the command must be judged `unknown`. `patches` holds the text of
    `--patch-file` files for `patch` (judged by risk, never applied here).
    """

    objects: tuple[ManifestObject, ...] = ()
    digest: str = _EMPTY_SHA256
    problems: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    patches: tuple[str, ...] = ()
    # kustomization path -> the exact bytes judged; the runner can feed these to
    # `kubectl apply -f -` instead of letting kubectl render again (no TOCTOU).
    rendered: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    # Every chunk of bytes read, in order (what `digest` covers): sent to the broker with
    # a per-command approval so it judges, and fingerprints, exactly what the CLI judged.
    blobs: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def kinds(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for obj in self.objects:
            seen.setdefault(obj.qualified, None)
        return tuple(seen)


def guess_plural(kind: str) -> str:
    """A plural for a Kind jitkube has no discovery for (CRDs' usual lowercase English
    plural; like kubectl's `UnsafeGuessKindToResource`, but `Gateway` -> `gateways`)."""
    singular = kind.lower()
    if not singular:
        return singular
    if singular.endswith(("s", "x", "z", "ch", "sh")):
        return singular + "es"
    if singular.endswith("y") and len(singular) > 1 and singular[-2] not in "aeiou":
        return singular[:-1] + "ies"
    return singular + "s"


class ManifestLimitError(ValueError):
    """A manifest exceeds a limit (size, nesting, aliases); the message has no content."""


# --------------------------------------------------------------------------- reading


@dataclass
class _Reader:
    limits: ManifestLimits
    hasher: Any
    total: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)
    objects: list[ManifestObject] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    rendered: dict[str, bytes] = field(default_factory=dict)
    blobs: list[bytes] = field(default_factory=list)
    documents: int = 0
    full: bool = False

    def take(self, data: bytes, source: str) -> bool:
        """Account for bytes read; False (with a problem) when over the size limit."""
        self.total += len(data)
        if self.total > self.limits.max_total_bytes:
            self.full = True
            self.problems.append(
                f"manifests exceed {self.limits.max_total_bytes} bytes in total "
                f"(at {source}): refused"
            )
            return False
        self.hasher.update(data)
        self.blobs.append(data)
        self.sources.append(source)
        return True

    def read_file(self, path: str) -> bytes | None:
        self.files += 1
        if self.files > self.limits.max_files:
            self.problems.append(f"more than {self.limits.max_files} manifest files: refused")
            return None
        try:
            # O_NONBLOCK: opening a FIFO must not hang; it is refused below anyway.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self.problems.append(f"cannot read manifest {path}: {exc.strerror or 'error'}")
            return None
        try:
            st = os.fstat(fd)
            # Only regular files: a FIFO or device (e.g. /dev/stdin) would block or
            # differ between our read and kubectl's.
            if not stat.S_ISREG(st.st_mode):
                self.problems.append(f"manifest {path} is not a regular file: refused")
                return None
            room = self.limits.max_total_bytes - self.total + 1
            chunks: list[bytes] = []
            got = 0
            while got < room:
                chunk = os.read(fd, min(1 << 20, room - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            data = b"".join(chunks)
        except OSError as exc:
            self.problems.append(f"cannot read manifest {path}: {exc.strerror or 'error'}")
            return None
        finally:
            os.close(fd)
        return data if self.take(data, path) else None

    def parse(self, data: bytes, source: str) -> None:
        try:
            docs = parse_manifest_bytes(data, source, self.limits)
        except ValueError as exc:  # malformed, or a ManifestLimitError
            self.problems.append(f"{source}: {exc}")
            return
        self.documents += len(docs)
        if self.documents > self.limits.max_documents:
            self.problems.append(f"more than {self.limits.max_documents} manifest documents")
            return
        for doc in docs:
            self._add_object(doc, source, 0)

    def _add_object(self, doc: Any, source: str, depth: int) -> None:
        if not isinstance(doc, dict):
            self.problems.append(f"{source}: a document is not a mapping (kubectl refuses it)")
            return
        kind = doc.get("kind")
        api_version = doc.get("apiVersion")
        if not isinstance(kind, str) or not kind or not isinstance(api_version, str):
            self.problems.append(f"{source}: an object has no kind/apiVersion")
            return
        if kind.endswith("List") and "items" in doc:
            items = doc.get("items")
            if not isinstance(items, list):
                self.problems.append(f"{source}: {kind} items is not a list")
                return
            if depth >= 2:
                self.problems.append(f"{source}: nested {kind} too deep")
                return
            if len(items) + self.documents > self.limits.max_documents:
                self.problems.append(f"more than {self.limits.max_documents} manifest objects")
                return
            self.documents += len(items)
            for item in items:
                self._add_object(item, source, depth + 1)
            return
        try:
            self.objects.append(features_of(doc, source, self.limits))
        except ManifestLimitError as exc:
            self.problems.append(f"{source}: {exc}")


def read_manifests(
    sources: Invocation | Sequence[FileSource],
    *,
    stdin: bytes | None = None,
    kubectl: str | None = None,
    limits: ManifestLimits = DEFAULT_LIMITS,
    patch_files: Sequence[str] = (),
) -> ManifestSet:
    """Read every -f/-k source of an invocation (files, dirs, stdin bytes, kustomize).

    `stdin` is the caller's buffer of standard input (the same bytes are later fed to
    kubectl); `kubectl` is the binary used to render `-k` directories. URLs are never
    fetched: they become problems, so the command is judged unknown. Given an
    `Invocation`, its -f/-k sources and `--patch-file` files are read.
    """
    if isinstance(sources, Invocation):
        patch_files = (*patch_files, *sources.flags.get("patch-file", ()))
        sources = sources.files
    import hashlib

    reader = _Reader(limits, hashlib.sha256())
    for src in sources:
        if reader.full:
            break
        if src.kind == "url" or _is_url(src.path):
            reader.problems.append(
                f"remote manifests are not fetched; download and pass a local file: {src.path}"
            )
            continue
        if src.kustomize:
            _read_kustomization(reader, src.path, kubectl)
            continue
        if src.kind == "stdin" or src.path == "-":
            if stdin is None:
                reader.problems.append("manifest on stdin (-f -) was not buffered")
                continue
            if reader.take(stdin, "<stdin>"):
                reader.parse(stdin, "<stdin>")
            continue
        _read_path(reader, src.path, src.recursive)
    patches: list[str] = []
    for path in patch_files:
        data = reader.read_file(path)
        if data is not None:
            patches.append(data.decode("utf-8", errors="replace"))
    return ManifestSet(
        objects=tuple(reader.objects),
        digest=reader.hasher.hexdigest(),
        problems=tuple(reader.problems),
        sources=tuple(reader.sources),
        patches=tuple(patches),
        rendered=reader.rendered,
        blobs=tuple(reader.blobs),
    )


def _is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _read_path(reader: _Reader, path: str, recursive: bool) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        reader.problems.append(f"cannot read manifest {path}: {exc.strerror or 'error'}")
        return
    if not stat.S_ISDIR(st.st_mode):
        data = reader.read_file(path)
        if data is not None:
            reader.parse(data, path)
        return
    for file_path in _walk(reader, path, recursive):
        data = reader.read_file(file_path)
        if data is None:
            return
        reader.parse(data, file_path)


def _walk(reader: _Reader, root: str, recursive: bool) -> Iterator[str]:
    """Files kubectl would read from a directory, in its (lexical) order."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        reader.problems.append(f"cannot list {root}: {exc.strerror or 'error'}")
        return
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            if entry.is_symlink() and os.path.isdir(entry.path):
                # kubectl's walk does not descend symlinked directories and would fail on
                # one with a manifest extension; do not guess what it reads.
                if entry.name.endswith(MANIFEST_EXTENSIONS) or recursive:
                    reader.problems.append(f"symlinked directory {entry.path}: refused")
                continue
        except OSError:
            reader.problems.append(f"cannot inspect {entry.path}")
            continue
        if is_dir:
            if recursive:
                yield from _walk(reader, entry.path, recursive)
            continue
        if entry.name.endswith(MANIFEST_EXTENSIONS):
            yield entry.path


def _read_kustomization(reader: _Reader, path: str, kubectl: str | None) -> None:
    if _is_url(path) or "://" in path or path.startswith(("git@", "github.com/")):
        reader.problems.append(
            f"remote kustomizations are not fetched; download and pass a local directory: {path}"
        )
        return
    if kubectl is None:
        reader.problems.append(f"kustomization {path} was not rendered (no kubectl given)")
        return
    if not os.path.isdir(path):
        reader.problems.append(f"kustomization {path} is not a directory")
        return
    # A scrubbed environment: no PATH (no git, no helm, no exec plugins), an unreachable
    # proxy (remote bases fail instead of being fetched), a throwaway HOME.
    env = {
        "PATH": "",
        "HOME": "/nonexistent",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "KUBECTL_KUBERC": "false",
        "KUBECTL_ENABLE_CMD_SHADOW": "false",
    }
    import subprocess

    cap = reader.limits.max_total_bytes - reader.total + 1
    try:
        proc = subprocess.Popen(
            [kubectl, "kustomize", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        reader.problems.append(f"cannot run kubectl kustomize: {exc.strerror or 'error'}")
        return
    try:
        out, _err = _communicate_capped(proc, cap, reader.limits.kustomize_timeout)
    except ManifestLimitError as exc:
        reader.problems.append(f"kustomization {path}: {exc}")
        return
    if proc.returncode != 0:
        # kustomize's message is not shown: it can quote generator literals (secrets).
        # Remote bases fail here too (no network, no git for the render).
        reader.problems.append(
            f"kustomization {path} could not be rendered offline (kubectl kustomize exit "
            f"code {proc.returncode}); run `kubectl kustomize {path}` to see why"
        )
        return
    source = f"{path} (kustomize)"
    if reader.take(out, source):
        reader.rendered[path] = out
        reader.parse(out, source)


def _communicate_capped(
    proc: subprocess.Popen[bytes], cap: int, timeout: float
) -> tuple[bytes, bytes]:
    """Collect stdout up to `cap` bytes within `timeout`; kill the child otherwise."""
    import selectors
    import subprocess
    import time

    assert proc.stdout is not None
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    out: list[bytes] = []
    err: list[bytes] = []
    got = 0
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ManifestLimitError(f"kubectl kustomize took longer than {timeout:g} s")
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                key.data.append(chunk)
                if key.data is out:
                    got += len(chunk)
                    if got > cap:
                        raise ManifestLimitError("rendered output exceeds the manifest size limit")
                elif sum(map(len, err)) > 1 << 16:
                    sel.unregister(key.fileobj)
        proc.wait(max(0.1, deadline - time.monotonic()))
    except (ManifestLimitError, subprocess.TimeoutExpired) as exc:
        proc.kill()
        proc.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise ManifestLimitError(f"kubectl kustomize took longer than {timeout:g} s") from None
        raise
    finally:
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    return b"".join(out), b"".join(err)


# --------------------------------------------------------------------------- parsing


def parse_manifest_bytes(
    data: bytes, source: str = "<manifest>", limits: ManifestLimits = DEFAULT_LIMITS
) -> list[Any]:
    """Decode one file's bytes into documents (JSON stream or multi-document YAML).

    Raises ValueError (malformed) or an internal limit error; never expands aliases into
    copies, and refuses inputs whose alias count, nesting or size exceed `limits`.
    """
    if len(data) > limits.max_total_bytes:
        raise ManifestLimitError("manifest too large")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("manifest is not UTF-8 text") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        # kubectl sniffs a leading "{" and decodes a JSON stream; so do we (PyYAML
        # would reject JSON indented with tabs, which kubectl accepts).
        return _parse_json_stream(stripped, limits)
    return _parse_yaml(text, limits)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:40]!r} in a mapping")
        result[key] = value
    return result


def _parse_json_stream(text: str, limits: ManifestLimits) -> list[Any]:
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)
    docs: list[Any] = []
    pos = 0
    end = len(text)
    while pos < end:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"malformed JSON at line {exc.lineno}") from None
        except ValueError as exc:  # from _no_duplicate_keys
            raise ValueError(str(exc)) from None
        except RecursionError:
            raise ManifestLimitError("JSON nested too deeply") from None
        docs.append(doc)
        if len(docs) > limits.max_documents:
            raise ManifestLimitError("too many documents")
    for doc in docs:
        _check_depth(doc, limits)
    return docs


def _check_depth(doc: Any, limits: ManifestLimits) -> None:
    stack: list[tuple[Any, int]] = [(doc, 0)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > limits.max_nodes:
            raise ManifestLimitError("manifest has too many values")
        if depth > limits.max_depth:
            raise ManifestLimitError(f"manifest nested deeper than {limits.max_depth} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _parse_yaml(text: str, limits: ManifestLimits) -> list[Any]:
    import yaml

    loader_cls: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    # First pass on the event level (cheap, bounded memory): count aliases, nesting and
    # documents before anything is built. A billion-laughs document is refused here.
    # `frames` holds, per open collection, [anchor, size once aliases are expanded, keys
    # seen (mappings only), next child is a key]; `anchors` remembers the size per anchor,
    # so `*alias` costs its target. Duplicate keys are refused: PyYAML keeps the last one
    # and a Go decoder may not, so the two could judge different objects.
    aliases = docs = events = 0
    anchors: dict[str, int] = {}
    frames: list[list[Any]] = []
    try:
        for event in yaml.parse(text, Loader=loader_cls):
            events += 1
            if events > limits.max_nodes:
                raise ManifestLimitError("manifest has too many YAML nodes")
            if isinstance(event, yaml.NodeEvent) and frames and frames[-1][2] is not None:
                parent = frames[-1]
                if parent[3] and isinstance(event, yaml.ScalarEvent) and event.value != "<<":
                    if event.value in parent[2]:
                        raise ValueError(f"duplicate key {event.value[:40]!r} in a mapping")
                    parent[2].add(event.value)
                parent[3] = not parent[3]
            if isinstance(event, yaml.CollectionStartEvent):
                keys: set[str] | None = set() if isinstance(event, yaml.MappingStartEvent) else None
                frames.append([event.anchor, 1, keys, True])
                if len(frames) > limits.max_depth:
                    raise ManifestLimitError(
                        f"manifest nested deeper than {limits.max_depth} levels"
                    )
                continue
            if isinstance(event, yaml.ScalarEvent):
                n = 1
                if event.anchor:
                    anchors[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > limits.max_aliases:
                    raise ManifestLimitError(
                        f"manifest uses more than {limits.max_aliases} YAML aliases"
                    )
                n = anchors.get(event.anchor or "", 1)
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, n, _, _ = frames.pop()
                if anchor:
                    anchors[anchor] = n
            elif isinstance(event, yaml.DocumentStartEvent):
                docs += 1
                anchors.clear()
                if docs > limits.max_documents:
                    raise ManifestLimitError("too many documents")
                continue
            else:
                continue
            if n > limits.max_expanded:
                raise ManifestLimitError("manifest expands to too many values (YAML alias bomb?)")
            if frames:
                frames[-1][1] += n
                if frames[-1][1] > limits.max_expanded:
                    raise ManifestLimitError(
                        "manifest expands to too many values (YAML alias bomb?)"
                    )
        loaded = list(yaml.load_all(text, Loader=loader_cls))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"malformed YAML{where}") from None
    except RecursionError:
        raise ManifestLimitError("manifest nested too deeply") from None
    return [d for d in loaded if d is not None]


# --------------------------------------------------------------------------- features

_POD_TEMPLATE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Pod": (("spec",),),
    "PodTemplate": (("template", "spec"),),
    "Deployment": (("spec", "template", "spec"),),
    "DaemonSet": (("spec", "template", "spec"),),
    "StatefulSet": (("spec", "template", "spec"),),
    "ReplicaSet": (("spec", "template", "spec"),),
    "ReplicationController": (("spec", "template", "spec"),),
    "Job": (("spec", "template", "spec"),),
    "CronJob": (("spec", "jobTemplate", "spec", "template", "spec"),),
}

_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def _dig(obj: Any, path: Iterable[str]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, (str, int, float)))
    return ()


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def pod_features(spec: Any) -> PodFeatures:
    """Security-relevant settings of one PodSpec mapping (pure)."""
    if not isinstance(spec, dict):
        return PodFeatures()
    containers: list[Container] = []
    for list_name in _CONTAINER_LISTS:
        items = spec.get(list_name)
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            sc = item.get("securityContext")
            sc = sc if isinstance(sc, dict) else {}
            caps = _dig(sc, ("capabilities", "add"))
            containers.append(
                Container(
                    name=str(item.get("name", "")),
                    privileged=_truthy(sc.get("privileged")),
                    allow_privilege_escalation=_truthy(sc.get("allowPrivilegeEscalation")),
                    run_as_root=sc.get("runAsUser") == 0,
                    added_capabilities=_strs(caps),
                )
            )
    host_paths: list[str] = []
    volumes = spec.get("volumes")
    if isinstance(volumes, list):
        for vol in volumes:
            hp = vol.get("hostPath") if isinstance(vol, dict) else None
            if isinstance(hp, dict):
                host_paths.append(str(hp.get("path", "")))
    psc = spec.get("securityContext")
    psc = psc if isinstance(psc, dict) else {}
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount")
    automount = spec.get("automountServiceAccountToken")
    return PodFeatures(
        containers=tuple(containers),
        host_pid=_truthy(spec.get("hostPID")),
        host_network=_truthy(spec.get("hostNetwork")),
        host_ipc=_truthy(spec.get("hostIPC")),
        host_paths=tuple(host_paths),
        service_account_name=str(sa) if isinstance(sa, str) else None,
        run_as_root=psc.get("runAsUser") == 0,
        automount_service_account_token=automount if isinstance(automount, bool) else None,
    )


def _find_pod_specs(obj: Any, limits: ManifestLimits) -> list[Any]:
    """Every mapping that looks like a PodSpec (has a `containers` list), bounded.

    Used for custom resources, whose pod templates may sit anywhere (Argo Rollouts,
    operators). Shared YAML aliases are visited once: the walk tracks ids.
    """
    found: list[Any] = []
    stack: list[tuple[Any, int]] = [(obj, 0)]
    seen: set[int] = set()
    visited = 0
    while stack:
        value, depth = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        visited += 1
        if visited > limits.max_walk:
            raise ManifestLimitError("manifest object too large to inspect")
        if depth > limits.max_depth:
            raise ManifestLimitError(f"manifest nested deeper than {limits.max_depth} levels")
        if isinstance(value, dict):
            if isinstance(value.get("containers"), list):
                found.append(value)
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return found


def _rules(value: Any) -> tuple[RbacRule, ...]:
    if not isinstance(value, list):
        return ()
    rules: list[RbacRule] = []
    for rule in value:
        if not isinstance(rule, dict):
            continue
        rules.append(
            RbacRule(
                verbs=_strs(rule.get("verbs")),
                resources=_strs(rule.get("resources")),
                api_groups=_strs(rule.get("apiGroups")),
                non_resource_urls=_strs(rule.get("nonResourceURLs")),
            )
        )
    return tuple(rules)


def features_of(
    doc: Mapping[str, Any], source: str = "", limits: ManifestLimits = DEFAULT_LIMITS
) -> ManifestObject:
    """Extract what risk judgement needs from one decoded object (pure)."""
    kind = str(doc.get("kind", ""))
    api_version = str(doc.get("apiVersion", ""))
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name")
    namespace = meta.get("namespace")
    resource = kind_to_resource(kind, api_version)

    pods: list[PodFeatures] = []
    paths = _POD_TEMPLATE_PATHS.get(kind) if resource is not None else None
    if paths is not None:
        pods.extend(pod_features(_dig(doc, p)) for p in paths)
    elif resource is None:
        pods.extend(pod_features(s) for s in _find_pod_specs(doc, limits))

    role_ref: tuple[str, str] | None = None
    ref = doc.get("roleRef")
    if isinstance(ref, dict):
        role_ref = (str(ref.get("kind", "")), str(ref.get("name", "")))
    subjects: tuple[tuple[str, str], ...] = ()
    subj = doc.get("subjects")
    if isinstance(subj, list):
        subjects = tuple(
            (str(s.get("kind", "")), str(s.get("name", ""))) for s in subj if isinstance(s, dict)
        )

    secret_keys: tuple[str, ...] = ()
    secret_type: str | None = None
    if kind == "Secret":
        keys: dict[str, None] = {}
        for part in ("data", "stringData"):
            values = doc.get(part)
            if isinstance(values, dict):
                for key in values:
                    keys.setdefault(str(key), None)
        secret_keys = tuple(keys)
        raw_type = doc.get("type")
        secret_type = str(raw_type) if isinstance(raw_type, str) else None

    psa: dict[str, str] = {}
    if kind == "Namespace":
        labels = meta.get("labels")
        if isinstance(labels, dict):
            psa = {
                str(k): str(v)
                for k, v in labels.items()
                if str(k).startswith("pod-security.kubernetes.io/")
            }

    webhooks = doc.get("webhooks")
    pv_host = _dig(doc, ("spec", "hostPath", "path")) if kind == "PersistentVolume" else None
    return ManifestObject(
        api_version=api_version,
        kind=kind,
        name=str(name) if isinstance(name, str) else None,
        namespace=str(namespace) if isinstance(namespace, str) and namespace else None,
        resource=resource,
        source=source,
        pods=tuple(pods),
        role_ref=role_ref,
        subjects=subjects,
        rules=_rules(doc.get("rules")),
        aggregation=isinstance(doc.get("aggregationRule"), dict),
        webhooks=len(webhooks) if isinstance(webhooks, list) else 0,
        secret_keys=secret_keys,
        secret_type=secret_type,
        pod_security_labels=psa,
        pv_host_path=str(pv_host) if isinstance(pv_host, (str, int)) else None,
    )
