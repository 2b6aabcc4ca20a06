"""Discovery documents of the simulated cluster, built from `BUILTIN_RESOURCES`.

Served both ways kubectl asks: aggregated (`apidiscovery.k8s.io/v2`, one round trip for
/api and one for /apis) and legacy (/api/v1, /apis/<group>/<version>). Plus a minimal
OpenAPI v3 that tells kubectl the server validates fields itself.
"""

from __future__ import annotations

from typing import Any

from jitkube.kubectl.resources import BUILTIN_RESOURCES, ResourceType

Obj = dict[str, Any]
KUBERNETES_MINOR = "32"

# Subresources listed in discovery: name -> (verbs, response kind group/version/kind).
SUBRESOURCES: dict[tuple[str, str], list[tuple[str, tuple[str, ...], tuple[str, str, str]]]] = {
    ("", "pods"): [
        ("attach", ("create", "get"), ("", "v1", "PodAttachOptions")),
        ("binding", ("create",), ("", "v1", "Binding")),
        ("ephemeralcontainers", ("get", "patch", "update"), ("", "v1", "Pod")),
        ("eviction", ("create",), ("policy", "v1", "Eviction")),
        ("exec", ("create", "get"), ("", "v1", "PodExecOptions")),
        ("log", ("get",), ("", "v1", "Pod")),
        ("portforward", ("create", "get"), ("", "v1", "PodPortForwardOptions")),
        ("proxy", ("create", "delete", "get", "patch", "update"), ("", "v1", "PodProxyOptions")),
        ("status", ("get", "patch", "update"), ("", "v1", "Pod")),
    ],
    ("", "namespaces"): [
        ("finalize", ("update",), ("", "v1", "Namespace")),
        ("status", ("get", "patch", "update"), ("", "v1", "Namespace")),
    ],
    ("", "serviceaccounts"): [
        ("token", ("create",), ("authentication.k8s.io", "v1", "TokenRequest"))
    ],
    **{
        ("apps", plural): [
            ("scale", ("get", "patch", "update"), ("autoscaling", "v1", "Scale")),
            ("status", ("get", "patch", "update"), ("apps", "v1", kind)),
        ]
        for plural, kind in (
            ("deployments", "Deployment"),
            ("replicasets", "ReplicaSet"),
            ("statefulsets", "StatefulSet"),
        )
    },
}


def _group_versions() -> dict[str, list[ResourceType]]:
    table: dict[str, list[ResourceType]] = {}
    for rt in BUILTIN_RESOURCES:
        table.setdefault(rt.group_version, []).append(rt)
    return table


BY_GV = _group_versions()
GROUPS = sorted({rt.group for rt in BUILTIN_RESOURCES if rt.group})
LOOKUP = {(rt.group, rt.version, rt.plural): rt for rt in BUILTIN_RESOURCES}


def legacy_resource_list(gv: str) -> Obj:
    resources: list[Obj] = []
    for rt in BY_GV[gv]:
        entry: Obj = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub, verbs, (grp, ver, kind) in SUBRESOURCES.get((rt.group, rt.plural), []):
            sub_entry: Obj = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind,
                "verbs": list(verbs),
            }
            if grp:
                sub_entry["group"], sub_entry["version"] = grp, ver
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def aggregated(core: bool, version: str) -> Obj:
    """APIGroupDiscoveryList (aggregated discovery): one round trip instead of one per group."""
    items: list[Obj] = []
    groups = [""] if core else GROUPS
    for group in groups:
        versions: dict[str, list[Obj]] = {}
        for rt in BUILTIN_RESOURCES:
            if rt.group != group:
                continue
            entry: Obj = {
                "resource": rt.plural,
                "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "scope": "Namespaced" if rt.namespaced else "Cluster",
                "singularResource": rt.singular,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            subs = SUBRESOURCES.get((rt.group, rt.plural), [])
            if subs:
                entry["subresources"] = [
                    {
                        "subresource": sub,
                        "responseKind": {"group": g, "version": v, "kind": k},
                        "verbs": list(verbs),
                    }
                    for sub, verbs, (g, v, k) in subs
                ]
            versions.setdefault(rt.version, []).append(entry)
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {"version": v, "resources": res, "freshness": "Current"}
                    for v, res in sorted(versions.items(), reverse=True)
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def legacy_groups() -> Obj:
    groups = []
    for group in GROUPS:
        versions = sorted(
            {rt.version for rt in BUILTIN_RESOURCES if rt.group == group}, reverse=True
        )
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _gv_path(gv: str) -> str:
    return f"apis/{gv}" if "/" in gv else f"api/{gv}"


def openapi_v3(rest: list[str]) -> Obj | None:
    """A minimal OpenAPI v3: PATCH operations that declare `fieldValidation`.

    kubectl `create/apply -f` validate manifests; a server whose OpenAPI v3 says it
    supports `fieldValidation` gets `fieldValidation=Strict` instead of client-side schema
    validation (which would need full schemas). No schemas: kubectl then computes
    strategic merge patches from its compiled-in types.
    """
    if not rest:
        index = {
            _gv_path(gv): {"serverRelativeURL": f"/openapi/v3/{_gv_path(gv)}?hash=SANDBOX"}
            for gv in BY_GV
        }
        return {"paths": index}
    gv = "/".join(rest[1:])
    if rest[0] not in ("api", "apis") or gv not in BY_GV or _gv_path(gv) != "/".join(rest):
        return None
    paths: Obj = {}
    for rt in BY_GV[gv]:
        prefix = f"/apis/{gv}" if rt.group else f"/api/{gv}"
        scope = "/namespaces/{namespace}" if rt.namespaced else ""
        paths[f"{prefix}{scope}/{rt.plural}/{{name}}"] = {
            "patch": {
                "x-kubernetes-group-version-kind": {
                    "group": rt.group,
                    "version": rt.version,
                    "kind": rt.kind,
                },
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v1.{KUBERNETES_MINOR}.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }
