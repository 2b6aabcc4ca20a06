"""Built-in resource types of Kubernetes 1.32, as `kubectl api-resources` lists them.

Hand-kept: kubectl can only print this table against a live API server, and there is
none here. The sandbox cluster serves its discovery from the same table, so the parser
and the simulated cluster cannot disagree. Resolution follows kubectl's REST mapper:
case-insensitive plural, singular, short name or Kind, optionally `.group` or
`.version.group`; core group wins on ties (`events` is core/v1 events).
"""

from __future__ import annotations

from jitkube.dataclass_lite import dataclass

_RW = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_RO = ("get", "list")
_CREATE = ("create",)


@dataclass(frozen=True, slots=True)
class ResourceType:
    plural: str
    singular: str
    kind: str
    group: str  # "" = core
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _RW
    categories: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(
    plural: str,
    kind: str,
    group: str,
    version: str,
    namespaced: bool,
    short: tuple[str, ...] = (),
    verbs: tuple[str, ...] = _RW,
    categories: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        plural, kind.lower(), kind, group, version, namespaced, short, verbs, categories
    )


_ALL = ("all",)
_EXT = ("api-extensions",)

BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    # core/v1
    _r("bindings", "Binding", "", "v1", True, verbs=_CREATE),
    _r("componentstatuses", "ComponentStatus", "", "v1", False, ("cs",), _RO),
    _r("configmaps", "ConfigMap", "", "v1", True, ("cm",)),
    _r("endpoints", "Endpoints", "", "v1", True, ("ep",)),
    _r("events", "Event", "", "v1", True, ("ev",)),
    _r("limitranges", "LimitRange", "", "v1", True, ("limits",)),
    _r("namespaces", "Namespace", "", "v1", False, ("ns",)),
    _r("nodes", "Node", "", "v1", False, ("no",)),
    _r("persistentvolumeclaims", "PersistentVolumeClaim", "", "v1", True, ("pvc",)),
    _r("persistentvolumes", "PersistentVolume", "", "v1", False, ("pv",)),
    _r("pods", "Pod", "", "v1", True, ("po",), categories=_ALL),
    _r("podtemplates", "PodTemplate", "", "v1", True),
    _r("replicationcontrollers", "ReplicationController", "", "v1", True, ("rc",), categories=_ALL),
    _r("resourcequotas", "ResourceQuota", "", "v1", True, ("quota",)),
    _r("secrets", "Secret", "", "v1", True),
    _r("serviceaccounts", "ServiceAccount", "", "v1", True, ("sa",)),
    _r("services", "Service", "", "v1", True, ("svc",), categories=_ALL),
    # admissionregistration.k8s.io/v1
    _r(
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "v1",
        False,
        categories=_EXT,
    ),
    _r(
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        "admissionregistration.k8s.io",
        "v1",
        False,
        categories=_EXT,
    ),
    _r(
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        "admissionregistration.k8s.io",
        "v1",
        False,
        categories=_EXT,
    ),
    _r(
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "v1",
        False,
        categories=_EXT,
    ),
    # apiextensions / apiregistration
    _r(
        "customresourcedefinitions",
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        "v1",
        False,
        ("crd", "crds"),
        categories=_EXT,
    ),
    _r("apiservices", "APIService", "apiregistration.k8s.io", "v1", False, categories=_EXT),
    # apps/v1
    _r("controllerrevisions", "ControllerRevision", "apps", "v1", True),
    _r("daemonsets", "DaemonSet", "apps", "v1", True, ("ds",), categories=_ALL),
    _r("deployments", "Deployment", "apps", "v1", True, ("deploy",), categories=_ALL),
    _r("replicasets", "ReplicaSet", "apps", "v1", True, ("rs",), categories=_ALL),
    _r("statefulsets", "StatefulSet", "apps", "v1", True, ("sts",), categories=_ALL),
    # authentication / authorization (create-only reviews)
    _r(
        "selfsubjectreviews",
        "SelfSubjectReview",
        "authentication.k8s.io",
        "v1",
        False,
        verbs=_CREATE,
    ),
    _r("tokenreviews", "TokenReview", "authentication.k8s.io", "v1", False, verbs=_CREATE),
    _r(
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        "authorization.k8s.io",
        "v1",
        True,
        verbs=_CREATE,
    ),
    _r(
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        "authorization.k8s.io",
        "v1",
        False,
        verbs=_CREATE,
    ),
    _r(
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        "authorization.k8s.io",
        "v1",
        False,
        verbs=_CREATE,
    ),
    _r(
        "subjectaccessreviews",
        "SubjectAccessReview",
        "authorization.k8s.io",
        "v1",
        False,
        verbs=_CREATE,
    ),
    # autoscaling / batch
    _r(
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        True,
        ("hpa",),
        categories=_ALL,
    ),
    _r("cronjobs", "CronJob", "batch", "v1", True, ("cj",), categories=_ALL),
    _r("jobs", "Job", "batch", "v1", True, categories=_ALL),
    # certificates / coordination / discovery / events
    _r(
        "certificatesigningrequests",
        "CertificateSigningRequest",
        "certificates.k8s.io",
        "v1",
        False,
        ("csr",),
    ),
    _r("leases", "Lease", "coordination.k8s.io", "v1", True),
    _r("endpointslices", "EndpointSlice", "discovery.k8s.io", "v1", True),
    _r("events", "Event", "events.k8s.io", "v1", True, ("ev",)),
    # flowcontrol
    _r("flowschemas", "FlowSchema", "flowcontrol.apiserver.k8s.io", "v1", False),
    _r(
        "prioritylevelconfigurations",
        "PriorityLevelConfiguration",
        "flowcontrol.apiserver.k8s.io",
        "v1",
        False,
    ),
    # networking / node / policy
    _r("ingressclasses", "IngressClass", "networking.k8s.io", "v1", False),
    _r("ingresses", "Ingress", "networking.k8s.io", "v1", True, ("ing",)),
    _r("networkpolicies", "NetworkPolicy", "networking.k8s.io", "v1", True, ("netpol",)),
    _r("runtimeclasses", "RuntimeClass", "node.k8s.io", "v1", False),
    _r("poddisruptionbudgets", "PodDisruptionBudget", "policy", "v1", True, ("pdb",)),
    # rbac
    _r("clusterrolebindings", "ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", False),
    _r("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", "v1", False),
    _r("rolebindings", "RoleBinding", "rbac.authorization.k8s.io", "v1", True),
    _r("roles", "Role", "rbac.authorization.k8s.io", "v1", True),
    # scheduling / storage
    _r("priorityclasses", "PriorityClass", "scheduling.k8s.io", "v1", False, ("pc",)),
    _r("csidrivers", "CSIDriver", "storage.k8s.io", "v1", False),
    _r("csinodes", "CSINode", "storage.k8s.io", "v1", False),
    _r("csistoragecapacities", "CSIStorageCapacity", "storage.k8s.io", "v1", True),
    _r("storageclasses", "StorageClass", "storage.k8s.io", "v1", False, ("sc",)),
    _r("volumeattachments", "VolumeAttachment", "storage.k8s.io", "v1", False),
)

CATEGORIES: dict[str, tuple[ResourceType, ...]] = {
    cat: tuple(r for r in BUILTIN_RESOURCES if cat in r.categories)
    for cat in ("all", "api-extensions")
}


def _index() -> dict[str, list[ResourceType]]:
    idx: dict[str, list[ResourceType]] = {}
    for r in BUILTIN_RESOURCES:
        for key in {r.plural, r.singular, r.kind.lower(), *r.short_names}:
            idx.setdefault(key, []).append(r)
    return idx


_BY_NAME = _index()


def resolve_type(token: str) -> ResourceType | None:
    """Resolve a TYPE token (`po`, `Deployment`, `deploy.apps`, `deployments.v1.apps`).

    Returns None for types not built in (custom resources or typos). ASCII case folding
    only: kubectl does not fold fullwidth letters, and neither may we.
    """
    if not token or not token.isascii():
        return None
    lowered = token.lower()
    name, _, rest = lowered.partition(".")
    candidates = _BY_NAME.get(name)
    if not candidates:
        return None
    if not rest:
        return candidates[0]
    version, _, group = rest.partition(".")
    for r in candidates:
        if r.group == rest:  # name.group
            return r
        if version == r.version and r.group == group:  # name.version.group ("secrets.v1." = core)
            return r
    return None


def kind_to_resource(kind: str, api_version: str = "") -> ResourceType | None:
    """Map a manifest's `kind` (+ `apiVersion`) to its resource type."""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    fallback: ResourceType | None = None
    for r in BUILTIN_RESOURCES:
        if r.kind == kind:
            if r.group == group:
                return r
            fallback = fallback or r
    return fallback if not api_version else None
