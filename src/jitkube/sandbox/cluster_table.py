"""Server-side `Table` rendering, as kube-apiserver answers `kubectl get` (Accept: as=Table).

kubectl accepts plain lists too, but then prints only NAME and AGE; the Table gives the
familiar columns (READY, STATUS, RESTARTS…) for the kinds the sandbox seeds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from jitkube.kubectl.resources import ResourceType

Obj = dict[str, Any]
_Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def human_age(created: str, now: dt.datetime | None = None) -> str:
    """kubectl's HumanDuration of the time since `created` (RFC 3339)."""
    try:
        then = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return "<unknown>"
    seconds = max(0, int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def _name(o: Obj) -> str:
    return str(o.get("metadata", {}).get("name", ""))


def _age(o: Obj) -> str:
    return human_age(o.get("metadata", {}).get("creationTimestamp", ""))


def _pod_ready(o: Obj) -> str:
    statuses = o.get("status", {}).get("containerStatuses") or []
    total = len(o.get("spec", {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_restarts(o: Obj) -> int:
    statuses = o.get("status", {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


def _containers(o: Obj) -> list[Obj]:
    spec = o.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers") or [])


def _replicas(o: Obj) -> str:
    status = o.get("status", {})
    return f"{status.get('readyReplicas', 0)}/{o.get('spec', {}).get('replicas', 0)}"


_NAME: _Column = ("Name", "string", 0, _name)
_AGE: _Column = ("Age", "string", 0, _age)

_COLUMNS: dict[tuple[str, str], list[_Column]] = {
    ("", "pods"): [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, lambda o: o.get("status", {}).get("phase", "Unknown")),
        ("Restarts", "string", 0, lambda o: str(_pod_restarts(o))),
        _AGE,
        ("IP", "string", 1, lambda o: o.get("status", {}).get("podIP", "<none>")),
        ("Node", "string", 1, lambda o: o.get("spec", {}).get("nodeName", "<none>")),
    ],
    ("apps", "deployments"): [
        _NAME,
        ("Ready", "string", 0, _replicas),
        ("Up-to-date", "integer", 0, lambda o: o.get("status", {}).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: o.get("status", {}).get("availableReplicas", 0)),
        _AGE,
        ("Containers", "string", 1, lambda o: ",".join(c.get("name", "") for c in _containers(o))),
        ("Images", "string", 1, lambda o: ",".join(c.get("image", "") for c in _containers(o))),
    ],
    ("", "secrets"): [
        _NAME,
        ("Type", "string", 0, lambda o: o.get("type", "Opaque")),
        ("Data", "string", 0, lambda o: str(len(o.get("data") or {}))),
        _AGE,
    ],
    ("", "configmaps"): [
        _NAME,
        (
            "Data",
            "string",
            0,
            lambda o: str(len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        ),
        _AGE,
    ],
    ("", "namespaces"): [
        _NAME,
        ("Status", "string", 0, lambda o: o.get("status", {}).get("phase", "Active")),
        _AGE,
    ],
    ("", "serviceaccounts"): [
        _NAME,
        ("Secrets", "string", 0, lambda o: str(len(o.get("secrets") or []))),
        _AGE,
    ],
}


def wants_table(accept: str) -> bool:
    """kubectl's human-readable `get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io`."""
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _partial(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def to_table(rt: ResourceType, objects: list[Obj], resource_version: str | None) -> Obj:
    """A meta.k8s.io/v1 Table of `objects` (rows carry PartialObjectMetadata)."""
    columns = _COLUMNS.get((rt.group, rt.plural), [_NAME, _AGE])
    table: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": [
            {
                "name": n,
                "type": t,
                "format": "name" if n == "Name" else "",
                "description": n,
                "priority": p,
            }
            for n, t, p, _ in columns
        ],
        "rows": [
            {"cells": [cell(obj) for _, _, _, cell in columns], "object": _partial(obj)}
            for obj in objects
        ],
    }
    return table
