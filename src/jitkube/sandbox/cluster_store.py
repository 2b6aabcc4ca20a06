"""The simulated cluster's object store: Kubernetes-shaped CRUD, patches, selectors, watch.

Objects are plain JSON dicts keyed by (group, plural, namespace, name). Enough of the
API machinery for kubectl: resourceVersion, uid, creationTimestamp, 404/409 Status
reasons, merge / strategic-merge (lists of named items merged by name) / JSON patch,
label and field selectors, dry-run, and a watch event log.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jitkube.kubectl.resources import ResourceType

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name


class StoreError(Exception):
    """An API error with the Kubernetes Status fields (code, reason, message)."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        """The error as a `Status` object, as kube-apiserver sends it."""
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    """A `metav1.Status` failure body."""
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def not_found(rt: ResourceType, name: str) -> StoreError:
    qualified = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    return StoreError(
        404,
        "NotFound",
        f'{qualified} "{name}" not found',
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


@dataclass(frozen=True)
class WatchEvent:
    """One change, as a watch stream sends it."""

    type: str  # ADDED, MODIFIED, DELETED
    resource_version: int
    key: Key
    object: Obj


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- selectors ---------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def label_matcher(selector: str) -> list[tuple[str, str, frozenset[str]]]:
    """Parse a label selector into (key, op, values) requirements; StoreError if malformed."""
    reqs: list[tuple[str, str, frozenset[str]]] = []
    for part in _split_selector(selector):
        m = _SET_RE.match(part)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append((m.group(1), m.group(2), values))
        elif "!=" in part:
            k, v = part.split("!=", 1)
            reqs.append((k.strip(), "!=", frozenset([v.strip()])))
        elif "==" in part or "=" in part:
            k, v = part.split("==", 1) if "==" in part else part.split("=", 1)
            reqs.append((k.strip(), "=", frozenset([v.strip()])))
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", frozenset()))
        elif re.fullmatch(r"[A-Za-z0-9./_-]+", part):
            reqs.append((part, "exists", frozenset()))
        else:
            raise StoreError(400, "BadRequest", f"unable to parse requirement: {part!r}")
    return reqs


def labels_match(labels: dict[str, str], reqs: list[tuple[str, str, frozenset[str]]]) -> bool:
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op == "=" and value not in values:
            return False
        if op == "!=" and present and value in values:
            return False
        if op == "in" and value not in values:
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
    return True


_FIELDS = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name", ""),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace", ""),
    "status.phase": lambda o: o.get("status", {}).get("phase", ""),
    "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
    "type": lambda o: o.get("type", ""),
}


def field_matcher(selector: str) -> list[tuple[str, bool, str]]:
    """Parse a field selector: (field, equal?, value); unsupported fields are a 400."""
    reqs = []
    for part in _split_selector(selector):
        if "!=" in part:
            f, v, eq = *part.split("!=", 1), False
        elif "==" in part:
            f, v, eq = *part.split("==", 1), True
        elif "=" in part:
            f, v, eq = *part.split("=", 1), True
        else:
            raise StoreError(400, "BadRequest", f"invalid selector: {part!r}")
        if f.strip() not in _FIELDS:
            raise StoreError(400, "BadRequest", f'field label not supported: "{f.strip()}"')
        reqs.append((f.strip(), eq, v.strip()))
    return reqs


def fields_match(obj: Obj, reqs: list[tuple[str, bool, str]]) -> bool:
    return all((_FIELDS[f](obj) == v) == eq for f, eq, v in reqs)


# --- patches -----------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any, strategic: bool = False) -> Any:
    """RFC 7386 merge patch; `strategic` also merges lists of named items by name.

    Strategic-merge directives (`$setElementOrder/…`, `$patch`, `$retainKeys`) are
    dropped rather than interpreted: close enough for a simulated cluster.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif (
            strategic
            and isinstance(value, list)
            and isinstance(result.get(key), list)
            and all(isinstance(v, dict) and "name" in v for v in value + result[key])
        ):
            merged = {item["name"]: item for item in result[key]}
            for item in value:
                if item.get("$patch") == "delete":
                    merged.pop(item["name"], None)
                else:
                    merged[item["name"]] = merge_patch(merged.get(item["name"]), item, True)
            result[key] = list(merged.values())
        else:
            result[key] = merge_patch(result.get(key), value, strategic)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise StoreError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> Any:
    for tok in tokens:
        try:
            doc = doc[int(tok)] if isinstance(doc, list) else doc[tok]
        except (KeyError, IndexError, ValueError, TypeError):
            raise StoreError(422, "Invalid", "JSON patch path does not exist") from None
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise StoreError(400, "BadRequest", "JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise StoreError(400, "BadRequest", "malformed JSON patch operation")
        kind, tokens = op["op"], _pointer(op["path"])
        if kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = copy.deepcopy(_parent(doc, src))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": op["path"], "value": value}])
            continue
        if kind == "test":
            if _parent(doc, tokens) != op.get("value"):
                raise StoreError(422, "Invalid", "JSON patch test operation failed")
            continue
        if not tokens:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise StoreError(422, "Invalid", "cannot remove the document root")
        parent, last = _parent(doc, tokens[:-1]), tokens[-1]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last) if last.isdigit() else -1
            if kind == "add" and 0 <= idx <= len(parent):
                parent.insert(idx, copy.deepcopy(op.get("value")))
            elif kind in ("remove", "replace") and 0 <= idx < len(parent):
                if kind == "remove":
                    parent.pop(idx)
                else:
                    parent[idx] = copy.deepcopy(op.get("value"))
            else:
                raise StoreError(422, "Invalid", "JSON patch index out of range")
        elif isinstance(parent, dict):
            if kind in ("remove", "replace") and last not in parent:
                raise StoreError(422, "Invalid", "JSON patch path does not exist")
            if kind == "remove":
                del parent[last]
            elif kind in ("add", "replace"):
                parent[last] = copy.deepcopy(op.get("value"))
            else:
                raise StoreError(400, "BadRequest", f"unknown JSON patch op {kind!r}")
        else:
            raise StoreError(422, "Invalid", "JSON patch path does not exist")
    return doc


# --- the store ---------------------------------------------------------------------------


class ObjectStore:
    """Thread-safe in-memory objects with a global resourceVersion and an event log."""

    def __init__(self) -> None:
        self._objects: dict[Key, Obj] = {}
        self._events: list[WatchEvent] = []
        self._rv = 0
        self._cond = threading.Condition()

    @staticmethod
    def key(rt: ResourceType, namespace: str, name: str) -> Key:
        return (rt.group, rt.plural, namespace if rt.namespaced else "", name)

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    def load(self, objects: Iterable[tuple[ResourceType, Obj]]) -> None:
        """Replace everything with `objects` (seeds); the event log restarts."""
        with self._cond:
            self._objects.clear()
            self._events.clear()
            for rt, obj in objects:
                meta = obj["metadata"]
                self._rv += 1
                stored = self._stamp(rt, copy.deepcopy(obj), meta.get("namespace", ""))
                self._objects[self.key(rt, meta.get("namespace", ""), meta["name"])] = stored
            self._cond.notify_all()

    def snapshot(self) -> dict[Key, Obj]:
        """A deep copy of every object (for tests that assert nothing changed)."""
        with self._cond:
            return copy.deepcopy(self._objects)

    def _stamp(self, rt: ResourceType, obj: Obj, namespace: str) -> Obj:
        meta = obj.setdefault("metadata", {})
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind
        if rt.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta["resourceVersion"] = str(self._rv)
        return obj

    def _emit(self, kind: str, key: Key, obj: Obj) -> None:
        self._events.append(WatchEvent(kind, self._rv, key, copy.deepcopy(obj)))
        del self._events[:-2000]  # bounded: old watchers get a 410 instead
        self._cond.notify_all()

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        with self._cond:
            obj = self._objects.get(self.key(rt, namespace, name))
            if obj is None:
                raise not_found(rt, name)
            return copy.deepcopy(obj)

    def exists(self, rt: ResourceType, namespace: str, name: str) -> bool:
        with self._cond:
            return self.key(rt, namespace, name) in self._objects

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[Obj], int]:
        """Matching objects sorted by namespace/name, and the list's resourceVersion."""
        labels = label_matcher(label_selector) if label_selector else []
        fields = field_matcher(field_selector) if field_selector else []
        with self._cond:
            items = [
                copy.deepcopy(obj)
                for (group, plural, ns, _), obj in sorted(self._objects.items())
                if group == rt.group
                and plural == rt.plural
                and (namespace is None or ns == namespace)
                and labels_match(obj.get("metadata", {}).get("labels") or {}, labels)
                and fields_match(obj, fields)
            ]
            return items, self._rv

    def create(self, rt: ResourceType, namespace: str, obj: Obj, dry_run: bool = False) -> Obj:
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise StoreError(400, "BadRequest", "the object has no metadata")
        meta = obj["metadata"]
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
            raise StoreError(422, "Invalid", f'{rt.kind} "{name}" is invalid: metadata.name')
        body_ns = meta.get("namespace")
        if rt.namespaced and body_ns and body_ns != namespace:
            raise StoreError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        with self._cond:
            key = self.key(rt, namespace, name)
            if key in self._objects:
                qualified = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
                raise StoreError(
                    409,
                    "AlreadyExists",
                    f'{qualified} "{name}" already exists',
                    {"name": name, "group": rt.group, "kind": rt.plural},
                )
            if rt.namespaced and ("", "namespaces", "", namespace) not in self._objects:
                raise StoreError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            obj = copy.deepcopy(obj)
            obj["metadata"].pop("resourceVersion", None)
            obj["metadata"].pop("uid", None)
            obj["metadata"].pop("creationTimestamp", None)
            _defaults(rt, obj)
            if dry_run:
                return self._stamp(rt, obj, namespace)
            self._rv += 1
            stored = self._stamp(rt, obj, namespace)
            self._objects[key] = stored
            self._emit("ADDED", key, stored)
            return copy.deepcopy(stored)

    def replace(
        self, rt: ResourceType, namespace: str, name: str, obj: Obj, dry_run: bool = False
    ) -> Obj:
        with self._cond:
            key = self.key(rt, namespace, name)
            current = self._objects.get(key)
            if current is None:
                raise not_found(rt, name)
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            if not isinstance(meta, dict) or meta.get("name") != name:
                raise StoreError(400, "BadRequest", "the name of the object does not match")
            sent_rv = meta.get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise StoreError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.plural} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                )
            return self._commit(rt, key, namespace, current, copy.deepcopy(obj), dry_run)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        dry_run: bool = False,
    ) -> Obj:
        """Apply a merge, strategic-merge, JSON or apply patch (apply creates if missing)."""
        ctype = content_type.split(";")[0].strip()
        try:
            if ctype == "application/apply-patch+yaml":
                import yaml  # lazily: only server-side apply sends YAML

                patch = yaml.safe_load(body.decode())
            else:
                patch = json.loads(body or b"null")
        except Exception:
            raise StoreError(400, "BadRequest", "the patch body cannot be decoded") from None
        with self._cond:
            key = self.key(rt, namespace, name)
            current = self._objects.get(key)
            if current is None:
                if ctype == "application/apply-patch+yaml" and isinstance(patch, dict):
                    patch.setdefault("metadata", {})["name"] = name
                    return self.create(rt, namespace, patch, dry_run)
                raise not_found(rt, name)
            if ctype == "application/json-patch+json":
                updated = json_patch(current, patch)
            elif ctype in ("application/merge-patch+json", "application/apply-patch+yaml"):
                updated = merge_patch(current, patch)
            elif ctype == "application/strategic-merge-patch+json":
                updated = merge_patch(current, patch, strategic=True)
            else:
                raise StoreError(
                    415, "UnsupportedMediaType", f"the patch type {ctype!r} is not supported"
                )
            if not isinstance(updated, dict):
                raise StoreError(422, "Invalid", "the patched object is not an object")
            updated.setdefault("metadata", {})["name"] = name
            return self._commit(rt, key, namespace, current, updated, dry_run)

    def _commit(
        self, rt: ResourceType, key: Key, namespace: str, current: Obj, obj: Obj, dry_run: bool
    ) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta["uid"] = current["metadata"]["uid"]
        meta["creationTimestamp"] = current["metadata"]["creationTimestamp"]
        if "generation" in current["metadata"] and obj.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"]["generation"]) + 1
        if dry_run:
            return self._stamp(rt, obj, namespace)
        self._rv += 1
        stored = self._stamp(rt, obj, namespace)
        self._objects[key] = stored
        self._emit("MODIFIED", key, stored)
        return copy.deepcopy(stored)

    def delete(self, rt: ResourceType, namespace: str, name: str, dry_run: bool = False) -> Obj:
        """Delete at once (no finalizers); deleting a namespace deletes its contents."""
        with self._cond:
            key = self.key(rt, namespace, name)
            current = self._objects.get(key)
            if current is None:
                raise not_found(rt, name)
            if dry_run:
                return copy.deepcopy(current)
            if rt.group == "" and rt.plural == "namespaces":
                for other in [k for k in self._objects if k[2] == name and k[1] != "namespaces"]:
                    self._rv += 1
                    gone = self._objects.pop(other)
                    gone["metadata"]["resourceVersion"] = str(self._rv)
                    self._emit("DELETED", other, gone)
            self._rv += 1
            del self._objects[key]
            current["metadata"]["resourceVersion"] = str(self._rv)
            self._emit("DELETED", key, current)
            return copy.deepcopy(current)

    def events_after(self, rv: int, timeout: float) -> tuple[list[WatchEvent], bool]:
        """Events newer than `rv`, waiting up to `timeout`; the flag says `rv` is too old."""
        with self._cond:
            # Changes before the oldest kept event (or before a reset) are gone: 410.
            oldest_known = self._events[0].resource_version - 1 if self._events else self._rv
            if rv < oldest_known:
                return [], True
            found = [e for e in self._events if e.resource_version > rv]
            if not found:
                self._cond.wait(timeout)
                found = [e for e in self._events if e.resource_version > rv]
            return found, False


def _defaults(rt: ResourceType, obj: Obj) -> None:
    """The few server-side defaults kubectl's printers and waiters look at."""
    if rt.group == "" and rt.plural == "pods":
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    if rt.group == "" and rt.plural == "namespaces":
        obj.setdefault("status", {}).setdefault("phase", "Active")
    if rt.group == "apps":
        obj["metadata"].setdefault("generation", 1)
