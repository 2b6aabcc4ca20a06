"""A simulated EKS API server that the real kubectl talks to over TLS.

HTTPS on 127.0.0.1, port 0, with the sandbox's own CA. Discovery (legacy and aggregated
v2) comes from `BUILTIN_RESOURCES`, so the parser and the cluster cannot disagree.
Authentication is aws-iam-authenticator's (see `authn`); every request is recorded with
its identity and status so tests can assert what reached the store — and what did not.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jitkube.kubectl.resources import ResourceType
from jitkube.sandbox.authn import (
    AccessEntry,
    AuthFailure,
    RequestAttributes,
    TokenAuthenticator,
    UserInfo,
    authorize,
    default_access_entries,
)
from jitkube.sandbox.cluster_discovery import (
    BY_GV,
    GROUPS,
    KUBERNETES_MINOR,
    LOOKUP,
    SUBRESOURCES,
    aggregated,
    legacy_groups,
    legacy_resource_list,
    openapi_v3,
)
from jitkube.sandbox.cluster_seed import FakeCredentials, pod_log, seed_objects
from jitkube.sandbox.cluster_store import (
    Obj,
    ObjectStore,
    StoreError,
    field_matcher,
    fields_match,
    label_matcher,
    labels_match,
    status_object,
)
from jitkube.sandbox.cluster_table import to_table, wants_table
from jitkube.sandbox.tls import CertificateAuthority

DEFAULT_CLUSTER_NAME = "jitkube-sandbox"
DEFAULT_ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the API server saw it."""

    method: str
    path: str
    query: str
    user: str | None  # None: not authenticated
    groups: tuple[str, ...]
    status: int
    verb: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""
    detail: str = ""  # why authentication failed (never contains the token)


@dataclass(frozen=True)
class _Route:
    """A parsed resource path."""

    rt: ResourceType
    namespace: str  # "" when none in the path
    name: str
    subresource: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, cluster: SimulatedCluster, ssl_context: ssl.SSLContext) -> None:
        self.cluster = cluster
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the worker thread, so a slow client cannot stall accept().
        request.settimeout(30)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            request.shutdown(socket.SHUT_RDWR)
        request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client went away mid-response; nothing to report


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "jitkube-sandbox-apiserver"
    sys_version = ""
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK held
    # every response back ~40 ms (kubectl get pods: 88 ms, 45 of them this stall).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        try:
            self.server.cluster._serve(self)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    # --- response helpers ------------------------------------------------------------

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, obj: Obj, content_type: str = "application/json") -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class SimulatedCluster:
    """An EKS-like API server on loopback HTTPS with aws-iam-authenticator authentication.

    `start()` binds 127.0.0.1 port 0; `url`, `ca_pem` and `name` go into a kubeconfig.
    `requests` is the request log; `reset()` restores the seeds and clears the log.
    """

    def __init__(
        self,
        sts_url: str,
        name: str = DEFAULT_CLUSTER_NAME,
        account_id: str = DEFAULT_ACCOUNT_ID,
        access_entries: tuple[AccessEntry, ...] | None = None,
        ca: CertificateAuthority | None = None,
    ) -> None:
        self.name = name
        self.account_id = account_id
        self.ca = ca or CertificateAuthority("jitkube sandbox cluster CA")
        self.credentials = FakeCredentials.generate()
        self.store = ObjectStore()
        self.store.load(seed_objects(self.credentials))
        self.authenticator = TokenAuthenticator(
            name, sts_url, access_entries or default_access_entries(account_id)
        )
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> SimulatedCluster:
        context = self.ca.issue_server("jitkube-sandbox-apiserver").server_context()
        context.set_alpn_protocols(["http/1.1"])
        self._stopping.clear()
        self._server = _Server(self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="jitkube-sandbox-apiserver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SimulatedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("SimulatedCluster is not started")
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._log_lock:
            return list(self._log)

    def reset(self) -> None:
        """Restore the seeded objects and clear the request log."""
        self.store.load(seed_objects(self.credentials))
        with self._log_lock:
            self._log.clear()

    def set_access_entries(self, entries: tuple[AccessEntry, ...]) -> None:
        self.authenticator.set_access_entries(entries)

    def write_kubeconfig(self, path: Path, token: str, user: str = "jitkube") -> Path:
        """A 0600 kubeconfig with this cluster's URL and CA and a static bearer token."""
        return write_kubeconfig(path, self.url, self.ca_pem, token, self.name, user)

    # --- request handling ----------------------------------------------------------------

    def _record(
        self,
        h: _Handler,
        user: UserInfo | None,
        status: int,
        attrs: RequestAttributes | None,
        detail: str = "",
    ) -> None:
        parts = urlsplit(h.path)
        record = RequestRecord(
            method=h.command,
            path=parts.path,
            query=parts.query,
            user=user.username if user else None,
            groups=user.groups if user else (),
            status=status,
            verb=attrs.verb if attrs else "",
            resource=(
                f"{attrs.resource}/{attrs.subresource}"
                if attrs and attrs.subresource
                else attrs.resource
                if attrs
                else ""
            ),
            namespace=attrs.namespace if attrs else "",
            name=attrs.name if attrs else "",
            detail=detail,
        )
        with self._log_lock:
            self._log.append(record)

    def _serve(self, h: _Handler) -> None:
        body = h.body()
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        auth = self.authenticator.authenticate(h.headers.get("Authorization"))
        if isinstance(auth, AuthFailure):
            self._record(h, None, 401, None, auth.reason)
            h.send_json(401, status_object(401, "Unauthorized", "Unauthorized"))
            return
        user = auth
        try:
            route, attrs = self._attributes(h.command, parts.path, query)
        except StoreError as err:
            self._record(h, user, err.code, None)
            h.send_json(err.code, err.status())
            return
        if not authorize(user, attrs):
            self._record(h, user, 403, attrs)
            h.send_json(403, _forbidden(user, attrs))
            return
        if route is None:
            status, obj, ctype = self._non_resource(h, parts.path, attrs, body, user)
            self._record(h, user, status, attrs)
            h.send_json(status, obj, ctype)
            return
        if attrs.verb == "watch":
            self._record(h, user, 200, attrs)
            self._watch(h, route, query)
            return
        try:
            if route.subresource == "exec":
                self._exec(h, user, attrs, route, parts.query)
                return
            if route.subresource == "log":
                text = self._log_text(route, query)
                self._record(h, user, 200, attrs)
                h.send_text(200, text)
                return
            status, obj = self._resource(h.command, route, attrs, query, body, h.headers)
        except StoreError as err:
            status, obj = err.code, err.status()
        self._record(h, user, status, attrs)
        h.send_json(status, obj)

    def _exec(
        self, h: _Handler, user: UserInfo, attrs: RequestAttributes, route: _Route, raw_query: str
    ) -> None:
        """`kubectl exec` over the WebSocket remote-command protocol (see cluster_exec)."""
        from jitkube.sandbox.cluster_exec import PROTOCOLS, serve_exec, wants_websocket

        pod = self.store.get(route.rt, route.namespace, route.name)
        offered = [p.strip() for p in (h.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        protocol = next((p for p in PROTOCOLS if p in offered), None)
        if not wants_websocket(h.headers) or protocol is None:
            raise StoreError(
                400, "BadRequest", "the sandbox cluster speaks exec over WebSockets (v4/v5) only"
            )
        self._record(h, user, 101, attrs)
        serve_exec(h, pod, parse_qs(raw_query, keep_blank_values=True), protocol)

    def _attributes(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[_Route | None, RequestAttributes]:
        segs = [s for s in path.split("/") if s]
        read = {"GET": "get", "HEAD": "get"}.get(method)
        if _is_review(segs):
            if method != "POST":
                raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")
            return None, RequestAttributes("create", segs[1], segs[3])
        if not segs or segs[0] not in ("api", "apis") or _is_discovery(segs):
            if method not in ("GET", "HEAD"):
                raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")
            return None, RequestAttributes(read or "get", non_resource_path=path)
        if segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        else:
            group, version, rest = segs[1], segs[2], segs[3:]
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        rt = LOOKUP.get((group, version, rest[0]))
        if rt is None or len(rest) > 3:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if namespace and not rt.namespaced:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and name and not namespace:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")
        if sub and sub not in {s for s, _, _ in SUBRESOURCES.get((rt.group, rt.plural), [])}:
            raise StoreError(404, "NotFound", "the server could not find the requested resource")
        if method in ("GET", "HEAD") and name:
            verb = "get"
        elif method in ("GET", "HEAD"):
            verb = "watch" if query.get("watch") in ("true", "1") else "list"
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")
        if sub == "exec" or sub == "attach" or sub == "portforward":
            verb = "create"  # kubectl upgrades a POST; RBAC checks create on pods/exec
        attrs = RequestAttributes(verb, group, rt.plural, sub, namespace, name)
        return _Route(rt, namespace, name, sub), attrs

    def _non_resource(
        self, h: _Handler, path: str, attrs: RequestAttributes, body: bytes, user: UserInfo
    ) -> tuple[int, Obj, str]:
        accept = h.headers.get("Accept", "")
        if attrs.verb == "create":
            return self._review(attrs.resource, body, user)
        if path in ("/version", "/version/"):
            return (
                200,
                {
                    "major": "1",
                    "minor": KUBERNETES_MINOR,
                    "gitVersion": f"v1.{KUBERNETES_MINOR}.0-eks-sandbox",
                    "gitCommit": "0" * 40,
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.23.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                },
                "application/json",
            )
        wants_aggregated = (
            "as=APIGroupDiscoveryList" in accept and "g=apidiscovery.k8s.io" in accept
        )
        version = "v2" if "v=v2;" in accept.replace(" ", "") + ";" else "v2beta1"
        agg_type = f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
        if path.rstrip("/") == "/api":
            if wants_aggregated:
                return 200, aggregated(True, version), agg_type
            return (
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {
                            "clientCIDR": "0.0.0.0/0",
                            "serverAddress": self.url.removeprefix("https://"),
                        }
                    ],
                },
                "application/json",
            )
        if path.rstrip("/") == "/apis":
            if wants_aggregated:
                return 200, aggregated(False, version), agg_type
            return 200, legacy_groups(), "application/json"
        segs = [s for s in path.split("/") if s]
        if segs[:2] == ["openapi", "v3"]:
            doc = openapi_v3(segs[2:])
            if doc is not None:
                return 200, doc, "application/json"
        if segs == ["api", "v1"]:
            return 200, legacy_resource_list("v1"), "application/json"
        if len(segs) == 3 and segs[0] == "apis" and f"{segs[1]}/{segs[2]}" in BY_GV:
            return 200, legacy_resource_list(f"{segs[1]}/{segs[2]}"), "application/json"
        if len(segs) == 2 and segs[0] == "apis" and segs[1] in GROUPS:
            group = next(g for g in legacy_groups()["groups"] if g["name"] == segs[1])
            return 200, {"kind": "APIGroup", "apiVersion": "v1", **group}, "application/json"
        err = StoreError(404, "NotFound", "the server could not find the requested resource")
        return 404, err.status(), "application/json"

    def _review(self, resource: str, body: bytes, user: UserInfo) -> tuple[int, Obj, str]:
        """SelfSubjectAccessReview and SelfSubjectReview, JSON only.

        kubectl's typed clients send these as protobuf, which the sandbox does not speak:
        `kubectl auth can-i/whoami` get a 415; JSON clients get answers.
        """
        if body[:4] == b"k8s\x00":
            message = "the sandbox cluster speaks JSON only, not protobuf"
            return 415, status_object(415, "UnsupportedMediaType", message), "application/json"
        try:
            review = json.loads(body or b"{}")
        except ValueError:
            return (
                400,
                status_object(400, "BadRequest", "cannot decode the review"),
                "application/json",
            )
        if resource == "selfsubjectreviews":
            review["status"] = {
                "userInfo": {
                    "username": user.username,
                    "uid": user.uid,
                    "groups": list(user.groups),
                    "extra": user.extra,
                }
            }
            return 201, review, "application/json"
        spec = review.get("spec") or {}
        if "nonResourceAttributes" in spec:
            nra = spec["nonResourceAttributes"]
            attrs = RequestAttributes(nra.get("verb", ""), non_resource_path=nra.get("path", ""))
        else:
            ra = spec.get("resourceAttributes") or {}
            attrs = RequestAttributes(
                ra.get("verb", ""),
                ra.get("group", ""),
                ra.get("resource", ""),
                ra.get("subresource", ""),
                ra.get("namespace", ""),
                ra.get("name", ""),
            )
        review["status"] = {"allowed": authorize(user, attrs)}
        if resource == "selfsubjectrulesreviews":
            review["status"] = {"resourceRules": [], "nonResourceRules": [], "incomplete": True}
        return 201, review, "application/json"

    def _resource(
        self,
        method: str,
        route: _Route,
        attrs: RequestAttributes,
        query: dict[str, str],
        body: bytes,
        headers: Any,
    ) -> tuple[int, Obj]:
        rt, ns, name = route.rt, route.namespace, route.name
        dry_run = query.get("dryRun") == "All"
        if route.subresource and route.subresource not in ("status", "scale"):
            raise StoreError(
                400,
                "BadRequest",
                f"the sandbox cluster does not implement {rt.plural}/{route.subresource}",
            )
        table = wants_table(headers.get("Accept", "")) and not route.subresource
        if attrs.verb == "get":
            obj = self.store.get(rt, ns, name)
            if table:
                return 200, to_table(rt, [obj], obj["metadata"].get("resourceVersion"))
            return 200, _scale(obj) if route.subresource == "scale" else obj
        if attrs.verb == "list":
            items, rv = self.store.list_objects(
                rt, ns or None, query.get("labelSelector", ""), query.get("fieldSelector", "")
            )
            if table:
                return 200, to_table(rt, items, str(rv))
            return 200, {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.group_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        if attrs.verb == "create":
            obj = _decode(body)
            return 201, self.store.create(rt, ns, obj, dry_run)
        if attrs.verb == "update":
            obj = _decode(body)
            if route.subresource == "scale":
                current = self.store.get(rt, ns, name)
                current.setdefault("spec", {})["replicas"] = obj.get("spec", {}).get("replicas", 0)
                return 200, _scale(self.store.replace(rt, ns, name, current, dry_run))
            return 200, self.store.replace(rt, ns, name, obj, dry_run)
        if attrs.verb == "patch":
            ctype = headers.get("Content-Type", "application/merge-patch+json")
            if route.subresource == "scale":
                patch = _decode(body)
                replicas = patch.get("spec", {}).get("replicas")
                payload = json.dumps({"spec": {"replicas": replicas}}).encode()
                updated = self.store.patch(
                    rt, ns, name, "application/merge-patch+json", payload, dry_run
                )
                return 200, _scale(updated)
            return 200, self.store.patch(rt, ns, name, ctype, body, dry_run)
        if attrs.verb == "delete":
            return 200, self.store.delete(rt, ns, name, dry_run)
        if attrs.verb == "deletecollection":
            items, _ = self.store.list_objects(
                rt, ns or None, query.get("labelSelector", ""), query.get("fieldSelector", "")
            )
            for item in items:
                meta = item["metadata"]
                self.store.delete(rt, meta.get("namespace", ""), meta["name"], dry_run)
            return 200, {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.group_version,
                "metadata": {},
                "items": items,
            }
        raise StoreError(405, "MethodNotAllowed", "the server does not allow this method")

    def _log_text(self, route: _Route, query: dict[str, str]) -> str:
        pod = self.store.get(route.rt, route.namespace, route.name)
        containers = [c.get("name", "") for c in pod.get("spec", {}).get("containers", [])]
        container = query.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise StoreError(
                400,
                "BadRequest",
                f"container {container} is not valid for pod {route.name}",
            )
        lines = pod_log(self.credentials, route.namespace, route.name, container)
        tail = query.get("tailLines", "")
        if tail.isdigit():
            lines = lines[-int(tail) :] if int(tail) else []
        return "".join(line + "\n" for line in lines)

    def _watch(self, h: _Handler, route: _Route, query: dict[str, str]) -> None:
        rt, ns = route.rt, route.namespace
        try:
            items, list_rv = self.store.list_objects(
                rt, ns or None, query.get("labelSelector", ""), query.get("fieldSelector", "")
            )
        except StoreError as err:
            h.send_json(err.code, err.status())
            return
        table = wants_table(h.headers.get("Accept", ""))
        labels = label_matcher(query.get("labelSelector", ""))
        fields = field_matcher(query.get("fieldSelector", ""))
        timeout = (
            float(query["timeoutSeconds"]) if query.get("timeoutSeconds", "").isdigit() else 1800.0
        )
        h.start_chunked()
        h.close_connection = True
        requested = query.get("resourceVersion", "")
        if requested in ("", "0"):
            rv = list_rv
            for obj in items:
                h.chunk(_event("ADDED", rt, obj, table))
        else:
            rv = int(requested) if requested.isdigit() else list_rv
        deadline = time.monotonic() + timeout
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if select.select([h.connection], [], [], 0)[0]:
                break  # a watch client sends nothing more: readable means it hung up
            events, gone = self.store.events_after(rv, 0.25)
            if gone:
                expired = status_object(410, "Expired", "too old resource version")
                h.chunk(json.dumps({"type": "ERROR", "object": expired}).encode() + b"\n")
                break
            for ev in events:
                rv = max(rv, ev.resource_version)
                group, plural, ev_ns, _ = ev.key
                if (group, plural) != (rt.group, rt.plural) or (ns and ev_ns != ns):
                    continue
                if not labels_match(ev.object.get("metadata", {}).get("labels") or {}, labels):
                    continue
                if not fields_match(ev.object, fields):
                    continue
                h.chunk(_event(ev.type, rt, ev.object, table))
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()


def _event(kind: str, rt: ResourceType, obj: Obj, table: bool) -> bytes:
    """One watch event line; a one-row Table when kubectl asked for tables."""
    payload = to_table(rt, [obj], obj["metadata"].get("resourceVersion")) if table else obj
    return json.dumps({"type": kind, "object": payload}).encode() + b"\n"


def _is_discovery(segs: list[str]) -> bool:
    """/api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>."""
    if segs[0] == "api":
        return len(segs) <= 2
    return len(segs) <= 3


def _is_review(segs: list[str]) -> bool:
    return (
        len(segs) == 4
        and segs[0] == "apis"
        and segs[1] in ("authorization.k8s.io", "authentication.k8s.io")
        and segs[3].startswith("selfsubject")
    )


def _decode(body: bytes) -> Obj:
    if body[:4] == b"k8s\x00":
        # kubectl's typed clients (`create namespace`, `create secret generic`, …) send
        # protobuf; decoding it needs every type's schema. Say so instead of guessing.
        raise StoreError(
            415, "UnsupportedMediaType", "the sandbox cluster speaks JSON only, not protobuf"
        )
    try:
        obj = json.loads(body)
    except ValueError:
        try:
            import yaml  # kubectl sends JSON; YAML only from hand-made requests

            obj = yaml.safe_load(body.decode())
        except Exception:
            raise StoreError(400, "BadRequest", "the request body cannot be decoded") from None
    if not isinstance(obj, dict):
        raise StoreError(400, "BadRequest", "the request body is not an object")
    return obj


def _scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {"replicas": obj.get("status", {}).get("replicas", 0)},
    }


def _forbidden(user: UserInfo, attrs: RequestAttributes) -> Obj:
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    target = f'{attrs.resource} "{attrs.name}"' if attrs.name else attrs.resource
    where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    message = (
        f'{target} is forbidden: User "{user.username}" cannot {attrs.verb} resource '
        f'"{resource}" in API group "{attrs.group}"{where}'
    )
    details: Obj = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.group:
        details["group"] = attrs.group
    return status_object(403, "Forbidden", message, details)


def write_kubeconfig(
    path: Path, server: str, ca_pem: bytes, token: str, cluster_name: str, user: str = "jitkube"
) -> Path:
    """Write a 0600 kubeconfig (JSON, which is YAML) with a static bearer token."""
    import base64

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(config, indent=2))
    return path


__all__ = [
    "DEFAULT_CLUSTER_NAME",
    "RequestRecord",
    "SimulatedCluster",
    "write_kubeconfig",
]
