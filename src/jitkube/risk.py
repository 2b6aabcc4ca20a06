"""Risk classes and the judgement of one kubectl invocation.

`assess(invocation, manifests)` is pure: it reads no files and opens no network. The
caller reads `-f`/`-k` sources first (`jitkube.kubectl.manifests.read_manifests`) and
passes the result. Every table lives at module level, built once at import, so one
judgement is a handful of dict lookups (the hot path budget is tens of microseconds).

The classes follow RISK-TAXONOMY.md; deliberate deviations are noted where they are made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from enum import IntEnum

from jitkube.dataclass_lite import dataclass
from jitkube.kubectl.resources import CATEGORIES, resolve_type

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

    from jitkube.kubectl.invocation import Invocation
    from jitkube.kubectl.manifests import ManifestObject, ManifestSet, PodFeatures


class RiskClass(IntEnum):
    """Ordered by severity; a command gets the maximum over everything it touches.

    `BYPASS` and `UNKNOWN` are refusals: commands that would change which cluster or
    identity kubectl talks to, and commands jitkube cannot understand. Both fail closed.
    """

    READ = 0
    SENSITIVE_READ = 1
    WRITE = 2
    DESTRUCTIVE = 3
    CREDENTIAL_EXPOSURE = 4
    PRIVILEGE_ESCALATION = 5
    BYPASS = 6
    UNKNOWN = 7

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> RiskClass:
        try:
            return cls[label.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown risk class {label!r}") from None


@dataclass(frozen=True, slots=True)
class Reason:
    """One human-readable reason, with the class it alone would give.

    `code` is a stable machine-readable tag (e.g. ``cluster_admin_binding``) that policy
    may key on; every code is a key of `REASON_CODES`.
    """

    risk: RiskClass
    text: str
    code: str = ""


# Every reason code `assess()` can give, with a one-line description. This is the set a
# policy rule's `codes:` may name (policy validation accepts exactly these) and the list
# docs/policy.md shows; tests/test_reason_codes.py checks that nothing else is emitted.
REASON_CODES: dict[str, str] = {
    "bypass": "a flag that would change the cluster or identity kubectl uses "
    "(--kubeconfig, --context, --server, --token, --as, …); always denied",
    "cluster_admin_binding": "binds the cluster-admin ClusterRole",
    "csr_approval": "`certificate approve`: a signer may issue a certificate with any identity",
    "custom_resource": "a custom resource type whose scope and contents jitkube does not know",
    "daemonset": "a DaemonSet, which runs a pod on every node",
    "dangerous_rbac_rule": "an RBAC rule granting `*`, escalate/bind/impersonate, reading "
    "secrets, tokens, nodes/proxy, exec or CSR approval",
    "debug_node": "`debug node/…`: a pod with the node's root filesystem and host namespaces",
    "delete_critical": "deletes namespaces, CRDs, volumes, nodes or other critical objects",
    "delete_force": "deletes without graceful termination (`--force --grace-period=0`, `--now`)",
    "delete_wide": "deletes many objects at once (`--all`, `-A`, `-l`, categories, many names)",
    "editor": "`edit`/`edit-last-applied`: the change is only known once saved in an editor",
    "external_exposure": "exposes pods outside the cluster (LoadBalancer or NodePort Service)",
    "force": "`--force` deletes and re-creates objects, or drain ignores safeguards",
    "host_namespace_pod": "a pod sharing the node's network, PID or IPC namespace",
    "insecure_backend": "`logs --insecure-skip-tls-verify-backend`: the kubelet is not verified",
    "local_code_execution": "kustomize runs local programs (helm, exec plugins, containers)",
    "manifest_unread": "the -f/-k manifests or --patch-file were not read, so cannot be judged",
    "manifest_unreadable": "a manifest cannot be judged (invalid, too large, unsupported)",
    "mints_token": "mints a bearer token that works outside jitkube (`create token`, "
    "token requests)",
    "nodes_proxy": "reaches the kubelet API through nodes/proxy",
    "non_loopback_listen": "port-forward or proxy listening on a non-loopback address",
    "parse_error": "argv jitkube cannot parse with kubectl's grammar; always denied",
    "plugin": "an unknown command or kubectl plugin jitkube cannot judge; always denied",
    "port_forward": "opens a network path from this machine into the cluster",
    "privileged_pod": "a privileged container or hostPath access to the node's filesystem",
    "prune": "`apply --prune` deletes objects missing from the manifests",
    "psa_relax": "changes a Pod Security admission label in a way that may relax it",
    "raw_kubeconfig": "`config view --raw/--flatten` prints the session's credentials",
    "raw_path": "a `--raw` path jitkube cannot judge",
    "remote_manifest": "a manifest given by URL (jitkube does not fetch them)",
    "secret_values": "secret values loaded into an editor or printed by view-last-applied",
    "verbose_bodies": "-v>=8 or --vmodule logs full request and response bodies",
    "wide_scope": "changes many objects at once (-A, --all, -l, categories, implicit all)",
}
# Codes for which RISK-TAXONOMY §1/§2 recommends `deny` for agents regardless of class.
DENY_CODES = frozenset(
    {
        "mints_token",
        "raw_kubeconfig",
        "cluster_admin_binding",
        "dangerous_rbac_rule",
        "privileged_pod",
        "host_namespace_pod",
        "debug_node",
        "nodes_proxy",
        "non_loopback_listen",
        "local_code_execution",
        "delete_wide",
        "delete_critical",
        "delete_force",
    }
)
# Codes for which the taxonomy raises the decision one level (scope, force, exposure).
RAISE_CODES = frozenset(
    {
        "wide_scope",
        "force",
        "external_exposure",
        "insecure_backend",
        "port_forward",
        "csr_approval",
        "prune",
    }
)


@dataclass(frozen=True, slots=True)
class Assessment:
    """The judgement of one invocation, before policy.

    `risk` is the maximum over `reasons`. `exposes_secret_values` is True when the output
    may carry secret values (the runner then masks it). `namespaces` are the effective
    namespaces touched (from argv or manifests; "" = context default, "*" = all);
    `kinds` include every object of -f/-k manifests. `wide_scope` is True for mutations
    of many objects at once (-A, --all, -l, categories, implicit all).
    """

    risk: RiskClass
    reasons: tuple[Reason, ...]
    exposes_secret_values: bool
    kinds: tuple[str, ...]
    namespaces: tuple[str, ...]
    mutating: bool
    cluster_scoped: bool = False
    wide_scope: bool = False

    @property
    def codes(self) -> frozenset[str]:
        """Machine-readable tags of all reasons."""
        return frozenset(r.code for r in self.reasons if r.code)

    @property
    def deny_suggested(self) -> bool:
        """True when the taxonomy recommends refusing this for agents (see DENY_CODES)."""
        return bool(self.codes & DENY_CODES) or self.risk >= RiskClass.BYPASS

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(r.text for r in self.reasons)


_R = RiskClass

# --------------------------------------------------------------------------- commands

# How a command touches the objects it names; decides which kind modifiers apply.
OP_NONE = "none"  # local only, or help
OP_READ = "read"
OP_WRITE = "write"
OP_DELETE = "delete"
OP_CONNECT = "connect"  # exec/attach/logs/port-forward/proxy/cp/debug


@dataclass(frozen=True, slots=True)
class CommandRule:
    """Base judgement of one kubectl command node (RISK-TAXONOMY §2)."""

    risk: RiskClass
    reason: str
    op: str = OP_READ
    implied: tuple[str, ...] = ()  # kinds acted on without a TYPE argument
    cluster: bool = False  # acts on cluster-scoped objects by nature
    exposes: bool = False  # output may carry secret values, always
    code: str = ""
    local: bool = False  # never talks to the cluster (no namespace)
    mutates: bool = False  # changes cluster state (unless dry run)


def _c(
    risk: RiskClass,
    reason: str,
    op: str = OP_READ,
    implied: tuple[str, ...] = (),
    *,
    cluster: bool = False,
    exposes: bool = False,
    code: str = "",
    local: bool = False,
    mutates: bool | None = None,
) -> CommandRule:
    if mutates is None:
        mutates = op in (OP_WRITE, OP_DELETE)
    return CommandRule(risk, reason, op, implied, cluster, exposes, code, local, mutates)


_HELP = _c(_R.READ, "prints help", OP_NONE, local=True)
_CFG_MUT = "changes the kubeconfig (which cluster and identity later calls use): jitkube pins it"
_RBAC = "rbac.authorization.k8s.io"
_CSR = "certificatesigningrequests.certificates.k8s.io"

# One table: every command node of kubectl 1.32 (`_grammar_data.COMMANDS`) has a row.
COMMANDS: dict[tuple[str, ...], CommandRule] = {
    (): _HELP,
    ("alpha",): _HELP,
    ("help",): _HELP,
    ("options",): _HELP,
    ("completion",): _c(_R.READ, "prints a shell completion script", OP_NONE, local=True),
    ("version",): _c(_R.READ, "prints client and server versions", OP_NONE),
    ("api-resources",): _c(_R.READ, "lists API resource types (discovery)", OP_NONE),
    ("api-versions",): _c(_R.READ, "lists API versions (discovery)", OP_NONE),
    ("explain",): _c(_R.READ, "prints the schema of a resource type", OP_NONE),
    ("plugin",): _HELP,
    ("plugin", "list"): _c(_R.READ, "lists kubectl plugins on PATH", OP_NONE, local=True),
    ("kustomize",): _c(_R.READ, "renders a kustomization locally", OP_NONE, local=True),
    ("get",): _c(_R.READ, "reads objects"),
    ("describe",): _c(_R.READ, "describes objects"),
    ("events",): _c(_R.READ, "lists events", OP_READ, ("events",)),
    ("wait",): _c(_R.READ, "waits for a condition"),
    ("top",): _HELP,
    ("top", "node"): _c(_R.READ, "shows node metrics", OP_READ, ("nodes",), cluster=True),
    ("top", "pod"): _c(_R.READ, "shows pod metrics", OP_READ, ("pods",)),
    ("diff",): _c(_R.READ, "diffs manifests against live objects (server-side dry run)"),
    ("cluster-info",): _c(_R.READ, "prints control plane addresses", OP_NONE),
    ("cluster-info", "dump"): _c(
        _R.SENSITIVE_READ,
        "cluster-info dump prints every pod spec (env values) and all container logs",
        OP_READ,
        ("pods",),
        exposes=True,
    ),
    ("auth",): _HELP,
    ("auth", "can-i"): _c(_R.READ, "checks an authorization", OP_NONE),
    ("auth", "whoami"): _c(_R.READ, "prints the caller's identity", OP_NONE),
    ("auth", "reconcile"): _c(
        _R.PRIVILEGE_ESCALATION,
        "auth reconcile writes RBAC roles and bindings from a file",
        OP_WRITE,
    ),
    ("logs",): _c(
        _R.SENSITIVE_READ,
        "logs print container output, which often carries confidential data",
        OP_CONNECT,
        ("pods",),
        exposes=True,
    ),
    ("exec",): _c(
        _R.PRIVILEGE_ESCALATION,
        "exec runs a command inside a container, with its service account and mounted secrets",
        OP_CONNECT,
        ("pods",),
        exposes=True,
    ),
    ("attach",): _c(
        _R.PRIVILEGE_ESCALATION,
        "attach connects to a running container's console",
        OP_CONNECT,
        ("pods",),
        exposes=True,
    ),
    ("cp",): _c(
        _R.PRIVILEGE_ESCALATION,
        "cp runs tar inside a container (exec) to copy files in or out",
        OP_CONNECT,
        ("pods",),
        exposes=True,
    ),
    ("debug",): _c(
        _R.PRIVILEGE_ESCALATION,
        "debug starts a debugging container with access to the target's processes or host",
        OP_CONNECT,
        ("pods",),
        exposes=True,
        mutates=True,  # creates a pod or an ephemeral container
    ),
    ("port-forward",): _c(
        _R.SENSITIVE_READ,
        "port-forward opens a network path into the cluster",
        OP_CONNECT,
        ("pods",),
        code="port_forward",
    ),
    ("proxy",): _c(
        _R.CREDENTIAL_EXPOSURE,
        "proxy serves the API with the session's credentials to anything that can connect",
        OP_NONE,
    ),
    ("run",): _c(
        _R.WRITE, "run creates a pod that runs an image of the caller's choice", OP_WRITE, ("pods",)
    ),
    ("create",): _c(_R.WRITE, "creates objects", OP_WRITE),
    ("create", "clusterrole"): _c(
        _R.PRIVILEGE_ESCALATION,
        "creates a ClusterRole (RBAC write)",
        OP_WRITE,
        (f"clusterroles.{_RBAC}",),
        cluster=True,
    ),
    ("create", "clusterrolebinding"): _c(
        _R.PRIVILEGE_ESCALATION,
        "creates a ClusterRoleBinding: grants permissions cluster-wide",
        OP_WRITE,
        (f"clusterrolebindings.{_RBAC}",),
        cluster=True,
    ),
    ("create", "role"): _c(
        _R.PRIVILEGE_ESCALATION, "creates a Role (RBAC write)", OP_WRITE, (f"roles.{_RBAC}",)
    ),
    ("create", "rolebinding"): _c(
        _R.PRIVILEGE_ESCALATION,
        "creates a RoleBinding: grants permissions in a namespace",
        OP_WRITE,
        (f"rolebindings.{_RBAC}",),
    ),
    ("create", "configmap"): _c(_R.WRITE, "creates a ConfigMap", OP_WRITE, ("configmaps",)),
    ("create", "cronjob"): _c(
        _R.WRITE, "creates a CronJob (runs code on a schedule)", OP_WRITE, ("cronjobs.batch",)
    ),
    ("create", "deployment"): _c(_R.WRITE, "creates a Deployment", OP_WRITE, ("deployments.apps",)),
    ("create", "ingress"): _c(
        _R.WRITE, "creates an Ingress", OP_WRITE, ("ingresses.networking.k8s.io",)
    ),
    ("create", "job"): _c(_R.WRITE, "creates a Job (runs code now)", OP_WRITE, ("jobs.batch",)),
    ("create", "namespace"): _c(
        _R.WRITE, "creates a Namespace", OP_WRITE, ("namespaces",), cluster=True
    ),
    ("create", "poddisruptionbudget"): _c(
        _R.WRITE, "creates a PodDisruptionBudget", OP_WRITE, ("poddisruptionbudgets.policy",)
    ),
    ("create", "priorityclass"): _c(
        _R.WRITE,
        "creates a PriorityClass (can preempt workloads)",
        OP_WRITE,
        ("priorityclasses.scheduling.k8s.io",),
        cluster=True,
    ),
    ("create", "quota"): _c(_R.WRITE, "creates a ResourceQuota", OP_WRITE, ("resourcequotas",)),
    ("create", "secret"): _HELP,
    ("create", "secret", "docker-registry"): _c(
        _R.WRITE, "creates a registry Secret (values travel in argv)", OP_WRITE, ("secrets",)
    ),
    ("create", "secret", "generic"): _c(
        _R.WRITE, "creates a Secret (values travel in argv or local files)", OP_WRITE, ("secrets",)
    ),
    ("create", "secret", "tls"): _c(
        _R.WRITE, "creates a TLS Secret from local key files", OP_WRITE, ("secrets",)
    ),
    ("create", "service"): _HELP,
    ("create", "service", "clusterip"): _c(_R.WRITE, "creates a Service", OP_WRITE, ("services",)),
    ("create", "service", "externalname"): _c(
        _R.WRITE, "creates a Service", OP_WRITE, ("services",)
    ),
    ("create", "service", "loadbalancer"): _c(
        _R.WRITE,
        "creates a LoadBalancer Service: exposes pods outside the cluster",
        OP_WRITE,
        ("services",),
        code="external_exposure",
    ),
    ("create", "service", "nodeport"): _c(
        _R.WRITE,
        "creates a NodePort Service: exposes pods on every node's address",
        OP_WRITE,
        ("services",),
        code="external_exposure",
    ),
    ("create", "serviceaccount"): _c(
        _R.WRITE, "creates a ServiceAccount", OP_WRITE, ("serviceaccounts",)
    ),
    ("create", "token"): _c(
        _R.CREDENTIAL_EXPOSURE,
        "create token mints a bearer token usable outside jitkube",
        OP_WRITE,
        ("serviceaccounts",),
        exposes=True,
        code="mints_token",
    ),
    ("apply",): _c(_R.WRITE, "applies manifests", OP_WRITE),
    ("apply", "view-last-applied"): _c(
        _R.READ,
        "prints the last-applied annotation (the object's data as last applied)",
        OP_READ,
        exposes=True,
    ),
    ("apply", "edit-last-applied"): _c(
        _R.WRITE,
        "edits the last-applied annotation in a local editor (the change is only known once saved)",
        OP_WRITE,
        code="editor",
    ),
    ("apply", "set-last-applied"): _c(_R.WRITE, "sets the last-applied annotation", OP_WRITE),
    ("replace",): _c(_R.WRITE, "replaces objects", OP_WRITE),
    ("patch",): _c(_R.WRITE, "patches objects", OP_WRITE),
    ("edit",): _c(
        _R.WRITE,
        "edits objects in a local editor (the change is only known once saved)",
        OP_WRITE,
        code="editor",
    ),
    ("label",): _c(_R.WRITE, "changes labels (can re-route Service selectors)", OP_WRITE),
    ("annotate",): _c(_R.WRITE, "changes annotations", OP_WRITE),
    ("scale",): _c(_R.WRITE, "changes replica counts", OP_WRITE),
    ("autoscale",): _c(_R.WRITE, "creates a HorizontalPodAutoscaler", OP_WRITE),
    ("expose",): _c(_R.WRITE, "creates a Service for existing pods", OP_WRITE),
    ("rollout",): _HELP,
    ("rollout", "status"): _c(_R.READ, "watches rollout status"),
    ("rollout", "history"): _c(_R.READ, "lists rollout revisions"),
    ("rollout", "restart"): _c(_R.WRITE, "restarts every pod of a workload", OP_WRITE),
    ("rollout", "pause"): _c(_R.WRITE, "pauses a rollout", OP_WRITE),
    ("rollout", "resume"): _c(_R.WRITE, "resumes a rollout", OP_WRITE),
    ("rollout", "undo"): _c(_R.WRITE, "rolls back to an earlier pod template", OP_WRITE),
    ("set",): _HELP,
    ("set", "env"): _c(_R.WRITE, "changes container environment variables", OP_WRITE),
    ("set", "image"): _c(_R.WRITE, "changes container images (runs new code)", OP_WRITE),
    ("set", "resources"): _c(_R.WRITE, "changes container resource limits", OP_WRITE),
    ("set", "selector"): _c(_R.WRITE, "changes a selector", OP_WRITE),
    ("set", "serviceaccount"): _c(
        _R.PRIVILEGE_ESCALATION,
        "set serviceaccount changes the identity a workload runs as",
        OP_WRITE,
    ),
    ("set", "subject"): _c(
        _R.PRIVILEGE_ESCALATION,
        "set subject adds subjects to a role binding (RBAC write)",
        OP_WRITE,
    ),
    ("delete",): _c(_R.DESTRUCTIVE, "deletes objects", OP_DELETE),
    ("drain",): _c(
        _R.DESTRUCTIVE,
        "drain evicts every pod from a node and cordons it",
        OP_WRITE,
        ("nodes",),
        cluster=True,
    ),
    ("cordon",): _c(
        _R.WRITE,
        "cordons a node (no new pods are scheduled on it)",
        OP_WRITE,
        ("nodes",),
        cluster=True,
    ),
    ("uncordon",): _c(_R.WRITE, "uncordons a node", OP_WRITE, ("nodes",), cluster=True),
    ("taint",): _c(
        _R.WRITE,
        "changes node taints (controls which pods may run where)",
        OP_WRITE,
        ("nodes",),
        cluster=True,
    ),
    ("certificate",): _HELP,
    ("certificate", "approve"): _c(
        _R.PRIVILEGE_ESCALATION,
        "certificate approve lets a signer issue a client certificate with any name and groups",
        OP_WRITE,
        (_CSR,),
        cluster=True,
        code="csr_approval",
    ),
    ("certificate", "deny"): _c(
        _R.WRITE, "denies a certificate signing request", OP_WRITE, (_CSR,), cluster=True
    ),
    ("config",): _HELP,
    ("config", "current-context"): _c(_R.READ, "prints the current context", OP_NONE, local=True),
    ("config", "get-contexts"): _c(_R.READ, "lists kubeconfig contexts", OP_NONE, local=True),
    ("config", "get-clusters"): _c(_R.READ, "lists kubeconfig clusters", OP_NONE, local=True),
    ("config", "get-users"): _c(_R.READ, "lists kubeconfig users", OP_NONE, local=True),
    ("config", "view"): _c(
        _R.SENSITIVE_READ,
        "config view prints the kubeconfig; auth-provider config and exec env/args are "
        "not redacted",
        OP_NONE,
        exposes=True,
        local=True,
    ),
}
for _name in (
    "set", "set-cluster", "set-context", "set-credentials", "unset", "use-context",
    "delete-cluster", "delete-context", "delete-user", "rename-context",
):  # fmt: skip
    COMMANDS[("config", _name)] = _c(_R.BYPASS, f"config {_name} {_CFG_MUT}", OP_NONE, local=True)

# --------------------------------------------------------------------------- flags

# §3.4: global flags that change which cluster or identity kubectl talks to, or how it is
# configured. The parser has already resolved shadowing (a command's local --user etc.).
BYPASS_FLAGS: dict[str, str] = {
    "as": "impersonates another user",
    "as-group": "impersonates a group",
    "as-uid": "impersonates a user id",
    "token": "authenticates with a different bearer token",
    "username": "authenticates as a different user",
    "password": "authenticates with a password",
    "client-certificate": "authenticates with a different client certificate",
    "client-key": "authenticates with a different client key",
    "certificate-authority": "trusts a different certificate authority",
    "insecure-skip-tls-verify": "disables TLS verification of the API server",
    "tls-server-name": "changes the expected server name",
    "server": "talks to a different API server",
    "kubeconfig": "reads a different kubeconfig (may run its exec plugins)",
    "context": "switches to a different kubeconfig context",
    "cluster": "switches to a different cluster",
    "user": "switches to a different kubeconfig user",
    "cache-dir": "uses a different discovery cache",
    "profile": "writes a profile of kubectl itself",
    "profile-output": "writes a profile of kubectl itself to a file",
    "kuberc": "loads user aliases and default flags",
}

# Commands that print whole objects without -o (describe hides secret data; diff masks it).
_PRINTS_OBJECTS = frozenset({("describe",), ("diff",), ("apply", "view-last-applied")})
_ANNOTATIONS = re.compile(r"annotations|last-applied", re.IGNORECASE)
_VALUE_SAFE_OUTPUTS = frozenset({"", "name", "wide"})
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_PROXY_DEFAULTS = {
    "accept-hosts": r"^localhost$,^127\.0\.0\.1$,^\[::1\]$",
    "accept-paths": "^.*",
    "reject-methods": "^$",
    "reject-paths": r"^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach",
}
_DANGEROUS_DEBUG_PROFILES = frozenset({"sysadmin", "netadmin", "legacy"})
_KUSTOMIZE_EXEC_FLAGS = (
    "enable-helm",
    "helm-command",
    "enable-alpha-plugins",
    "mount",
    "network",
    "as-current-user",
)

# --------------------------------------------------------------------------- kinds

_SECRETS = "secrets"
_CONFIGMAPS = "configmaps"
RBAC_KINDS = frozenset(
    f"{k}.{_RBAC}" for k in ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
)
ADMISSION_KINDS = frozenset(
    {
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
        "validatingadmissionpolicies.admissionregistration.k8s.io",
        "validatingadmissionpolicybindings.admissionregistration.k8s.io",
        "apiservices.apiregistration.k8s.io",
    }
)
WORKLOAD_KINDS = frozenset(
    {
        "pods", "podtemplates", "replicationcontrollers", "deployments.apps",
        "daemonsets.apps", "statefulsets.apps", "replicasets.apps", "jobs.batch",
        "cronjobs.batch", "controllerrevisions.apps",
    }
)  # fmt: skip
# Deleting these loses much more than the object: contents, data, or a whole API.
_DELETE_CRITICAL = {
    "namespaces": "deletes namespaces: cascades to every object inside",
    "customresourcedefinitions.apiextensions.k8s.io": (
        "deletes CustomResourceDefinitions: every custom resource of that type is lost"
    ),
    "persistentvolumes": "deletes PersistentVolumes: the data may be lost",
    "persistentvolumeclaims": "deletes PersistentVolumeClaims: the data may be lost",
    "nodes": "deletes nodes from the cluster",
}
_EVENTS = frozenset({"events", "events.events.k8s.io"})
# Kinds whose full output never holds secret values (so value output needs no masking).
_VALUE_SAFE_KINDS = frozenset(
    {
        "namespaces", "nodes", "services", "endpoints", "events", "events.events.k8s.io",
        "limitranges", "resourcequotas", "persistentvolumes", "persistentvolumeclaims",
        "serviceaccounts", "componentstatuses", "bindings", "leases.coordination.k8s.io",
        "endpointslices.discovery.k8s.io", "ingresses.networking.k8s.io",
        "ingressclasses.networking.k8s.io", "networkpolicies.networking.k8s.io",
        "runtimeclasses.node.k8s.io", "poddisruptionbudgets.policy",
        "priorityclasses.scheduling.k8s.io", "storageclasses.storage.k8s.io",
        "csidrivers.storage.k8s.io", "csinodes.storage.k8s.io",
        "csistoragecapacities.storage.k8s.io", "volumeattachments.storage.k8s.io",
        "horizontalpodautoscalers.autoscaling", "flowschemas.flowcontrol.apiserver.k8s.io",
        "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
        "customresourcedefinitions.apiextensions.k8s.io",
        "certificatesigningrequests.certificates.k8s.io", *RBAC_KINDS, *ADMISSION_KINDS,
    }
)  # fmt: skip
_RBAC_DANGEROUS_VERBS = frozenset({"escalate", "bind", "impersonate"})
_RBAC_DANGEROUS_RESOURCES = {
    "serviceaccounts/token": "mint service account tokens",
    "nodes/proxy": "reach the kubelet API (exec on any pod, bypassing audit)",
    "certificatesigningrequests/approval": "approve certificate requests",
    "pods/exec": "exec into pods",
    "pods/attach": "attach to pods",
    "pods/ephemeralcontainers": "inject debug containers",
}
_ADMIN_ROLES = frozenset({"cluster-admin", "admin"})

# --------------------------------------------------------------------------- --raw

_RAW_READ_PREFIXES = (
    "/api",
    "/apis",
    "/version",
    "/openapi",
    "/healthz",
    "/livez",
    "/readyz",
    "/metrics",
    "/.well-known/openid-configuration",
    "/openid/v1/jwks",
)
_RAW_SENSITIVE_PREFIXES = ("/logs", "/debug", "/configz", "/flagz")


@dataclass(frozen=True, slots=True)
class _RawTarget:
    resource: str  # qualified
    namespace: str | None
    name: str | None
    sub: str  # subresource ("" for none)


def _parse_raw_path(path: str) -> _RawTarget | str | None:
    """Split an API path; a str result is a non-resource path class, None = not judgeable."""
    if not path.startswith("/") or ".." in path or "%" in path or "\\" in path:
        return None
    clean = path.split("?", 1)[0].split("#", 1)[0]
    parts = [p for p in clean.split("/") if p]
    if not parts:
        return "read"
    if parts[0] == "api" and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    elif parts[0] in ("api", "apis"):
        return "read"
    elif clean.startswith(_RAW_SENSITIVE_PREFIXES):
        return "sensitive"
    elif clean.startswith(_RAW_READ_PREFIXES):
        return "read"
    else:
        return None
    if rest and rest[0] == "watch":
        rest = rest[1:]
    if not rest:
        return "read"
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:])
    return _RawTarget(f"{resource}.{group}" if group else resource, namespace, name, sub)


# --------------------------------------------------------------------------- judgement


class _Acc:
    """Accumulates reasons and facts for one assessment."""

    __slots__ = (
        "cluster",
        "exposes",
        "kinds",
        "lowered",
        "namespaces",
        "note",
        "reasons",
        "risk",
        "wide",
    )

    def __init__(self, lowered: bool) -> None:
        self.reasons: dict[str, Reason] = {}  # by text: the first reason of a text stays
        self.risk = _R.READ  # the highest risk of `reasons`
        self.exposes = False
        self.kinds: dict[str, None] = {}
        self.namespaces: dict[str, None] = {}
        self.lowered = lowered
        self.note = ""
        self.wide = False
        self.cluster = False

    def add(self, risk: RiskClass, text: str, code: str = "", *, mutation: bool = False) -> None:
        if mutation and self.lowered:
            # Dry run / --local: nothing is changed, so the change itself carries no risk;
            # the reason stays visible for reviewers.
            risk, code, text = _R.READ, "", f"{text} ({self.note})"
        if text in self.reasons:
            return
        self.reasons[text] = Reason(risk, text, code)
        if risk > self.risk:
            self.risk = risk

    def add_reason(self, reason: Reason) -> None:
        """`add` for a prebuilt reason (already lowered where it must be)."""
        if reason.text in self.reasons:
            return
        self.reasons[reason.text] = reason
        if reason.risk > self.risk:
            self.risk = reason.risk

    def expose(self, risk: RiskClass, text: str, code: str = "") -> None:
        self.exposes = True
        self.add(risk, text, code)


def _value_output(inv: Invocation) -> str | None:
    """The value-printing output format in use (e.g. "-o yaml"), or None."""
    if inv.template:
        return "--template"
    out = inv.output
    if out is None:
        return None
    base = out.split("=", 1)[0].strip().lower()
    if base in _VALUE_SAFE_OUTPUTS:
        return None
    return f"-o {base}"


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _names_of(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values)))


def assess(invocation: Invocation, manifests: ManifestSet | None = None) -> Assessment:
    """Judge one parsed kubectl invocation (and the manifests it reads), without I/O."""
    inv = invocation
    rule = COMMANDS.get(inv.command)
    # --list on set env only prints; dry runs and --local send nothing that persists.
    lowered = (
        inv.dry_run != "none"
        or inv.has_true("local")
        or (inv.command == ("set", "env") and inv.has_true("list"))
    )
    acc = _Acc(lowered and rule is not None and rule.op in (OP_WRITE, OP_DELETE))
    if acc.lowered:
        acc.note = (
            "--dry-run=server: nothing is persisted"
            if inv.dry_run == "server"
            else "--dry-run=client: nothing is sent"
            if inv.dry_run == "client"
            else "--list: nothing is changed"
            if inv.has_true("list")
            else "--local: nothing is sent"
        )

    for problem in inv.problems:
        code = "plugin" if "plugin" in problem else "parse_error"
        acc.add(_R.UNKNOWN, f"not understood: {problem}", code)
    if rule is None:
        word = inv.command[0] if inv.command else (inv.argv[0] if inv.argv else "")
        acc.add(
            _R.UNKNOWN,
            f"unknown command or plugin {' '.join(inv.command) or word!r}: kubectl would run "
            "an external kubectl-* program jitkube cannot judge",
            "plugin",
        )
        return _finish(inv, acc, rule)

    for flag in inv.global_flags:
        why = BYPASS_FLAGS.get(flag)
        if why is not None:
            acc.add(_R.BYPASS, f"--{flag} {why}: jitkube decides cluster and identity", "bypass")

    acc.add_reason(_command_reason(inv.command, rule, acc))
    if rule.exposes:
        acc.exposes = True
    for kind in rule.implied:
        acc.kinds.setdefault(kind, None)
    if rule.cluster:
        acc.cluster = True

    # Output formats of discovery/local commands (explain, api-resources, version) print
    # schemas, not objects.
    value_out = _value_output(inv) if rule.op != OP_NONE else None
    verbose_bodies = inv.verbosity >= 8
    # Deviation: the taxonomy treats -v>=8 as value output; here it is that per kind
    # (secrets -> credential_exposure, below) plus sensitive_read for any body logged.
    if verbose_bodies:
        acc.expose(
            _R.SENSITIVE_READ,
            f"-v={inv.verbosity} logs full request and response bodies to stderr",
            "verbose_bodies",
        )

    if value_out is not None and _ANNOTATIONS.search(f"{inv.output or ''} {inv.template or ''}"):
        acc.expose(
            _R.READ,
            f"{value_out} over annotations prints the last-applied configuration, which "
            "holds the object's data as applied",
        )
    vmodule = inv.global_flags.get("vmodule")
    if vmodule:
        _judge_vmodule(acc, vmodule)
    for flag in ("from-file", "from-env-file"):
        if inv.flags.get(flag):
            acc.add(_R.WRITE, f"--{flag} uploads local files into the cluster", mutation=True)
    _command_specifics(inv, acc)
    _judge_refs(inv, rule, acc, value_out, verbose_bodies)
    if inv.raw_path is not None and inv.command[:1] != ("config",):
        _judge_raw(inv, rule, acc)
    if inv.files:
        _judge_manifests(inv, rule, acc, manifests, value_out, verbose_bodies)
    if inv.flags.get("patch-file"):
        if manifests is None or len(manifests.patches) < len(inv.flags["patch-file"]):
            acc.add(
                _R.UNKNOWN,
                "the --patch-file was not read, so the patch cannot be judged",
                "manifest_unread",
            )
        else:
            _judge_patch_text(acc, manifests.patches)
    _judge_scope(inv, rule, acc)
    return _finish(inv, acc, rule)


# (command, dry-run note) -> (its rule, the reason `_command_reason` made of it)
_COMMAND_REASONS: dict[tuple[tuple[str, ...], str], tuple[CommandRule, Reason]] = {}


def _command_reason(command: tuple[str, ...], rule: CommandRule, acc: _Acc) -> Reason:
    """The reason `rule` (the command's row of COMMANDS) gives, as `acc.add` would make
    it; built once per command and dry-run note."""
    mutation = rule.op in (OP_WRITE, OP_DELETE) and rule.code != "mints_token"
    note = acc.note if mutation and acc.lowered else ""
    hit = _COMMAND_REASONS.get((command, note))
    if hit is not None and hit[0] is rule:
        return hit[1]
    name = " ".join(command) or "kubectl"
    text = rule.reason if rule.reason.startswith(name) else f"{name}: {rule.reason}"
    # As `acc.add(..., mutation=mutation)` would lower it (the note is set when lowered).
    reason = Reason(_R.READ, f"{text} ({note})", "") if note else Reason(rule.risk, text, rule.code)
    _COMMAND_REASONS[command, note] = (rule, reason)  # bounded: commands of COMMANDS
    return reason


def _judge_vmodule(acc: _Acc, values: Iterable[str]) -> None:
    """--vmodule raises klog verbosity per file: >= 8 logs bodies like -v=8."""
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            level = _int_or_none(part.rpartition("=")[2])
            if level is None:
                acc.add(_R.UNKNOWN, f"--vmodule {part!r} cannot be judged", "parse_error")
            elif level >= 8:
                acc.expose(
                    _R.SENSITIVE_READ,
                    f"--vmodule {part} logs full request and response bodies to stderr",
                    "verbose_bodies",
                )


def _finish(inv: Invocation, acc: _Acc, rule: CommandRule | None) -> Assessment:
    reasons = tuple(acc.reasons.values())
    if len(reasons) > 1:
        reasons = tuple(sorted(reasons, key=_minus_risk))  # stable: equal risks keep order
    mutating = rule is not None and rule.mutates and not acc.lowered
    namespaces: tuple[str, ...]
    if rule is None or rule.local:
        namespaces = ()
    elif inv.all_namespaces:
        namespaces = ("*",)
    else:
        if not acc.namespaces and not _only_cluster_scoped(acc, rule):
            acc.namespaces.setdefault(inv.namespace or "", None)
        namespaces = tuple(acc.namespaces)
    # Positional (in field order): the keyword form costs twice as much.
    return Assessment(
        acc.risk,
        reasons,
        acc.exposes,  # exposes_secret_values
        tuple(acc.kinds),
        namespaces,
        mutating,
        acc.cluster,  # cluster_scoped
        acc.wide,  # wide_scope
    )


def _minus_risk(reason: Reason) -> int:
    return -reason.risk


def _only_cluster_scoped(acc: _Acc, rule: CommandRule) -> bool:
    if rule.op == OP_NONE:
        return True
    if not acc.kinds:
        return False
    for kind in acc.kinds:
        rt = resolve_type(kind)
        if rt is None or rt.namespaced:
            return False
    return True


def _kind_namespace(
    acc: _Acc, inv: Invocation, namespaced: bool | None, own: str | None = None
) -> None:
    if namespaced is False:
        acc.cluster = True
        return
    acc.namespaces.setdefault(own or inv.namespace or "", None)


# ---- refs (TYPE/NAME arguments)


def _judge_refs(
    inv: Invocation, rule: CommandRule, acc: _Acc, value_out: str | None, verbose: bool
) -> None:
    for ref in inv.resources:
        qualified = ref.qualified
        acc.kinds.setdefault(qualified, None)
        namespaced = ref.namespaced
        if namespaced is None and ref.known:
            rt = resolve_type(qualified)
            namespaced = rt.namespaced if rt is not None else None
        _kind_namespace(acc, inv, namespaced)
        _judge_kind(
            inv,
            rule,
            acc,
            qualified,
            ref.known,
            value_out,
            verbose,
            label=ref.as_typed or ref.resource,
        )


def _judge_kind(
    inv: Invocation,
    rule: CommandRule,
    acc: _Acc,
    kind: str,
    known: bool,
    value_out: str | None,
    verbose: bool,
    *,
    label: str,
    obj: ManifestObject | None = None,
) -> None:
    """Kind modifiers (§3.1) for one addressed kind, by how the command touches it."""
    op = rule.op
    cmd = inv.command
    shown = value_out or (f"-v={inv.verbosity}" if verbose else None)
    # Whether the command prints whole objects of this kind (secrets: see below).
    prints = shown if op != OP_DELETE or verbose else None
    if prints is None and (
        cmd in _PRINTS_OBJECTS or (cmd == ("rollout", "history") and inv.flag("revision"))
    ):
        prints = " ".join(cmd)
    if not known:
        acc.add(
            _R.READ,
            f"custom resource type {label}: scope and contents unknown to jitkube",
            "custom_resource",
        )
        if prints is not None:
            acc.expose(
                _R.SENSITIVE_READ,
                f"{prints} on custom resource type {label} may print "
                "secret values (contents unknown)",
            )
    if kind == _SECRETS:
        if cmd in (("edit",), ("apply", "edit-last-applied")):
            acc.expose(
                _R.CREDENTIAL_EXPOSURE,
                "edit on secrets loads their values into the editor (a failed save "
                "leaves them in $TMPDIR/kubectl-edit-*.yaml)",
                "secret_values",
            )
        elif cmd == ("apply", "view-last-applied"):
            acc.expose(
                _R.CREDENTIAL_EXPOSURE,
                "view-last-applied on secrets prints their values (the annotation "
                "holds data and stringData)",
                "secret_values",
            )
        # Deviation: `create` echoes only what the caller supplied (write + masking);
        # apply/patch/label/replace echo the stored object, merged with existing keys.
        elif shown is not None and cmd[:1] == ("create",) and not obj:
            acc.expose(
                _R.WRITE if not acc.lowered else _R.READ,
                f"{shown} echoes the new secret's values given on the command line",
            )
        elif shown is not None and cmd == ("create",) and obj is not None:
            acc.expose(_R.READ, f"{shown} echoes the new secret's values from the manifest")
        elif shown is not None and inv.has_true("local"):
            acc.expose(_R.READ, f"{shown} with --local echoes the local manifest's secret values")
        elif shown is not None:
            acc.expose(
                _R.CREDENTIAL_EXPOSURE, f"{shown} on secrets prints their values", "secret_values"
            )
        elif op == OP_WRITE:
            acc.add(
                _R.WRITE,
                "writes secrets (values travel through argv, files or stdin)",
                mutation=True,
            )
    elif kind == _CONFIGMAPS:
        if prints is not None:
            acc.expose(
                _R.SENSITIVE_READ,
                f"{prints} on configmaps prints their data "
                "(often application config and credentials)",
            )
    elif kind not in _VALUE_SAFE_KINDS and known and prints is not None:
        acc.expose(
            _R.READ,
            f"{prints} on {label} prints pod specs, whose literal env values may be "
            "secrets (masked)",
        )

    if op == OP_DELETE:
        critical = _DELETE_CRITICAL.get(kind)
        if critical is not None:
            acc.add(_R.DESTRUCTIVE, critical, "delete_critical", mutation=True)
        elif kind in _EVENTS:
            acc.add(
                _R.DESTRUCTIVE,
                "deletes events: hides what happened (defence evasion)",
                mutation=True,
            )
        elif kind in ADMISSION_KINDS:
            acc.add(
                _R.PRIVILEGE_ESCALATION,
                f"deletes {label}: removes admission control (defence evasion)",
                mutation=True,
            )
        elif kind in RBAC_KINDS:
            acc.add(_R.DESTRUCTIVE, f"deletes {label}: removes granted permissions", mutation=True)
        return
    if op != OP_WRITE:
        return
    if kind in RBAC_KINDS:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"writes RBAC ({label}): changes who may do what",
            mutation=True,
        )
        if obj is not None:
            _judge_rbac_object(acc, obj)
    elif kind in ADMISSION_KINDS:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"writes {label}: admission hooks and API services "
            "can intercept or alter every request",
            mutation=True,
        )
    elif kind == "nodes":
        acc.cluster = True
    elif kind == "namespaces" and obj is not None and obj.pod_security_labels:
        _judge_psa(acc, obj.pod_security_labels.items())
    elif kind == "persistentvolumes" and obj is not None and obj.pv_host_path is not None:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"creates a hostPath PersistentVolume ({obj.pv_host_path}): node filesystem access",
            "privileged_pod",
            mutation=True,
        )
    if obj is not None and obj.pods:
        for pod in obj.pods:
            _judge_pod(acc, pod, f"{obj.kind} {obj.name or ''}".strip())
        if kind == "daemonsets.apps":
            acc.add(_R.WRITE, "a DaemonSet runs on every node", "daemonset", mutation=True)
    if kind in WORKLOAD_KINDS and (
        cmd[:1] in (("apply",), ("create",), ("replace",), ("run",)) or obj is not None
    ):
        acc.add(
            _R.WRITE,
            "creating workloads runs code with a service account of the namespace",
            mutation=True,
        )


def _judge_pod(acc: _Acc, pod: PodFeatures, where: str) -> None:
    privileged = pod.privileged_containers
    if privileged:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"{where} runs privileged containers ({_names_of(privileged)}): root on the node",
            "privileged_pod",
            mutation=True,
        )
    hosts = [
        n
        for n, on in (
            ("hostPID", pod.host_pid),
            ("hostNetwork", pod.host_network),
            ("hostIPC", pod.host_ipc),
        )
        if on
    ]
    if hosts:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"{where} shares the node's namespaces ({', '.join(hosts)})",
            "host_namespace_pod",
            mutation=True,
        )
    if pod.host_paths:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"{where} mounts hostPath volumes "
            f"({_names_of(pod.host_paths)}): node filesystem access",
            "privileged_pod",
            mutation=True,
        )
    caps = pod.added_capabilities
    if caps:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"{where} adds Linux capabilities ({_names_of(caps)})",
            mutation=True,
        )
    if pod.allow_privilege_escalation:
        acc.add(_R.WRITE, f"{where} allows privilege escalation inside containers", mutation=True)
    if pod.runs_as_root:
        acc.add(_R.WRITE, f"{where} runs as root (runAsUser: 0)", mutation=True)
    if pod.service_account_name:
        acc.add(
            _R.WRITE, f"{where} runs as service account {pod.service_account_name}", mutation=True
        )


def _judge_rbac_object(acc: _Acc, obj: ManifestObject) -> None:
    where = f"{obj.kind} {obj.name or ''}".strip()
    if obj.role_ref is not None:
        ref_kind, ref_name = obj.role_ref
        if ref_name == "cluster-admin" or (
            ref_name in _ADMIN_ROLES and obj.kind == "ClusterRoleBinding"
        ):
            acc.add(
                _R.PRIVILEGE_ESCALATION,
                f"{where} binds {ref_kind} {ref_name}: full control",
                "cluster_admin_binding",
                mutation=True,
            )
        else:
            acc.add(_R.PRIVILEGE_ESCALATION, f"{where} binds {ref_kind} {ref_name}", mutation=True)
    if obj.aggregation:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"{where} aggregates other ClusterRoles by label",
            mutation=True,
        )
    for rule in obj.rules:
        _judge_rule(acc, where, rule.verbs, rule.resources, rule.api_groups)


def _judge_rule(
    acc: _Acc,
    where: str,
    verbs: Iterable[str],
    resources: Iterable[str],
    groups: Iterable[str] = (),
) -> None:
    verbs = {v.lower() for v in verbs}
    resources = {r.lower() for r in resources}
    bad: list[str] = []
    if "*" in verbs or "*" in resources or "*" in set(groups):
        bad.append("wildcards (*)")
    for verb in sorted(verbs & _RBAC_DANGEROUS_VERBS):
        bad.append(f"the {verb} verb")
    for res, what in _RBAC_DANGEROUS_RESOURCES.items():
        if res in resources:
            bad.append(f"{res} ({what})")
    if "secrets" in resources and verbs & {"get", "list", "watch", "*"}:
        bad.append("reading secrets")
    if bad:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"{where} grants {', '.join(bad)}",
            "dangerous_rbac_rule",
            mutation=True,
        )


def _judge_psa(acc: _Acc, labels: Iterable[tuple[str, str | None]]) -> None:
    """Deviation: only `enforce*` changes that are not `enforce=restricted` can relax Pod
    Security admission (privilege_escalation); warn/audit labels are plain writes."""
    for key, value in labels:
        if not key.startswith("pod-security.kubernetes.io/"):
            continue
        mode = key.rsplit("/", 1)[1]
        if mode.startswith("enforce") and not (mode == "enforce" and value == "restricted"):
            change = f"removes {key}" if value is None else f"sets {key}={value}"
            acc.add(
                _R.PRIVILEGE_ESCALATION,
                f"{change}: may relax Pod Security admission",
                "psa_relax",
                mutation=True,
            )
        else:
            acc.add(_R.WRITE, f"changes Pod Security label {key}", mutation=True)


# ---- command-specific flags

# Every command (besides config … and create …) that `_command_specifics` has a branch for.
_HAS_SPECIFICS = frozenset(
    {
        ("kustomize",), ("delete",), ("apply",), ("replace",), ("drain",), ("scale",),
        ("taint",), ("expose",), ("label",), ("annotate",), ("cp",), ("run",), ("debug",),
        ("port-forward",), ("proxy",), ("logs",), ("set", "env"), ("patch",),
    }
)  # fmt: skip


def _command_specifics(inv: Invocation, acc: _Acc) -> None:
    """Flags that change a specific command's risk (§2 notes, §3.3)."""
    cmd = inv.command
    head = cmd[:1]
    if cmd not in _HAS_SPECIFICS and head != ("create",) and head != ("config",):
        return  # most commands (get, describe, wait, …): nothing below applies
    if head == ("config",):
        # Deviation: the taxonomy says credential_exposure (deny). It prints the kubeconfig
        # jitkube generated, whose token then works without jitkube: refuse before exec.
        if cmd == ("config", "view") and (inv.has_true("raw") or inv.has_true("flatten")):
            flag = "--raw" if inv.has_true("raw") else "--flatten"
            acc.expose(
                _R.BYPASS,
                f"config view {flag} prints the kubeconfig with its "
                "credentials (the session token jitkube pinned)",
                "raw_kubeconfig",
            )
        return
    if cmd == ("kustomize",):
        for flag in _KUSTOMIZE_EXEC_FLAGS:
            if flag in inv.flags and (
                flag not in ("enable-helm", "enable-alpha-plugins", "network", "as-current-user")
                or inv.has_true(flag)
            ):
                acc.add(
                    _R.UNKNOWN,
                    f"kustomize --{flag} runs local programs (helm, exec "
                    "plugins, containers) jitkube cannot judge",
                    "local_code_execution",
                )
        return
    if cmd in (("delete",),):
        if inv.has_true("force") or inv.flag("grace-period") == "0" or inv.has_true("now"):
            acc.add(
                _R.DESTRUCTIVE,
                "--force/--grace-period=0/--now skips graceful termination",
                "delete_force",
                mutation=True,
            )
        cascade = inv.flag("cascade")
        if cascade == "orphan":
            acc.add(
                _R.DESTRUCTIVE,
                "--cascade=orphan leaves dependents running unmanaged",
                mutation=True,
            )
        if inv.has_true("interactive"):
            acc.add(_R.DESTRUCTIVE, "delete -i reads its confirmation from stdin: not an approval")
        return
    if cmd in (("apply",), ("replace",)):
        if inv.has_true("force"):
            acc.add(
                _R.DESTRUCTIVE,
                f"{cmd[0]} --force deletes and re-creates objects",
                "force",
                mutation=True,
            )
        if cmd == ("apply",) and inv.has_true("prune"):
            acc.add(
                _R.DESTRUCTIVE,
                "apply --prune deletes objects missing from the manifests",
                "prune",
                mutation=True,
            )
        if inv.has_true("server-side") and inv.has_true("force-conflicts"):
            acc.add(
                _R.WRITE,
                "--force-conflicts takes over fields owned by other managers",
                "force",
                mutation=True,
            )
        return
    if cmd == ("drain",):
        for flag, why in (
            ("disable-eviction", "bypasses PodDisruptionBudgets"),
            ("delete-emptydir-data", "deletes emptyDir data"),
            ("force", "deletes pods not managed by a controller"),
        ):
            if inv.has_true(flag):
                acc.add(_R.DESTRUCTIVE, f"drain --{flag} {why}", "force")
        return
    if cmd == ("scale",):
        if _int_or_none(inv.flag("replicas")) == 0:
            acc.add(_R.DESTRUCTIVE, "scales to 0 replicas: takes the workload down", mutation=True)
        return
    if cmd == ("taint",):
        if any("NoExecute" in p for p in inv.positionals):
            acc.add(_R.DESTRUCTIVE, "a NoExecute taint evicts running pods", mutation=True)
        return
    if cmd == ("expose",):
        svc_type = (inv.flag("type") or "").lower()
        if svc_type in ("loadbalancer", "nodeport") or inv.flag("external-ip"):
            acc.add(
                _R.WRITE,
                "exposes pods outside the cluster (LoadBalancer/NodePort/external IP)",
                "external_exposure",
                mutation=True,
            )
        return
    if cmd in (("label",), ("annotate",)):
        if cmd == ("label",):
            psa: list[tuple[str, str | None]] = []
            for p in inv.positionals:
                if p.startswith("pod-security.kubernetes.io/"):
                    key, eq, value = p.partition("=")
                    if eq:
                        psa.append((key, value))
                    elif key.endswith("-"):
                        psa.append((key[:-1], None))
            if psa:
                _judge_psa(acc, psa)
        return
    if cmd == ("cp",):
        for p in inv.positionals:
            spec, colon, _ = p.partition(":")
            if colon and "/" in spec:
                acc.namespaces.setdefault(spec.split("/", 1)[0], None)
        return
    if cmd == ("run",):
        _judge_run(inv, acc)
        return
    if cmd == ("debug",):
        _judge_debug(inv, acc)
        return
    if cmd == ("port-forward",):
        _judge_listen(inv, acc, "port-forward", _R.SENSITIVE_READ)
        return
    if cmd == ("proxy",):
        _judge_proxy(inv, acc)
        return
    if cmd == ("logs",):
        if inv.has_true("insecure-skip-tls-verify-backend"):
            acc.add(
                _R.SENSITIVE_READ,
                "logs --insecure-skip-tls-verify-backend skips verifying the kubelet's certificate",
                "insecure_backend",
            )
        if inv.has_true("all-pods") or inv.has_true("all-containers") or inv.selector:
            acc.add(_R.SENSITIVE_READ, "reads logs of many containers at once")
        return
    if cmd == ("set", "env"):
        if inv.has_true("list"):
            if inv.has_true("resolve"):
                acc.expose(
                    _R.CREDENTIAL_EXPOSURE,
                    "set env --list --resolve prints the values of secret and configmap references",
                    "secret_values",
                )
            else:
                acc.expose(_R.SENSITIVE_READ, "set env --list prints literal env values")
        if any(v.startswith(("secret/", "secrets/")) for v in inv.flags.get("from", ())):
            acc.add(
                _R.WRITE,
                "set env --from=secret/… copies secret references into the workload",
                mutation=True,
            )
        return
    if cmd == ("create", "clusterrolebinding") or cmd == ("create", "rolebinding"):
        role = inv.flag("clusterrole") or inv.flag("role") or ""
        if role == "cluster-admin" or (role in _ADMIN_ROLES and "cluster" in cmd[1]):
            acc.add(
                _R.PRIVILEGE_ESCALATION,
                f"binds the {role} role: full control",
                "cluster_admin_binding",
                mutation=True,
            )
        return
    if cmd in (("create", "clusterrole"), ("create", "role")):
        verbs = [v for vs in inv.flags.get("verb", ()) for v in vs.split(",")]
        resources = [r for rs in inv.flags.get("resource", ()) for r in rs.split(",")]
        if inv.flag("aggregation-rule"):
            acc.add(
                _R.PRIVILEGE_ESCALATION, "aggregates other ClusterRoles by label", mutation=True
            )
        _judge_rule(
            acc,
            f"the new {cmd[1]}",
            verbs,
            [r.split(".", 1)[0] if "/" not in r else r for r in resources],
        )
        return
    if cmd == ("create",) and inv.has_true("edit"):
        acc.add(
            _R.WRITE,
            "create --edit lets an editor change the objects after jitkube judged the file",
            "editor",
            mutation=True,
        )
        return
    if cmd == ("create", "job"):
        if (inv.flag("from") or "").startswith(("cronjob/", "cronjobs/", "cj/")):
            acc.add(_R.WRITE, "create job --from runs a CronJob's job now", mutation=True)
        return
    if head == ("create",) and cmd[1:2] == ("secret",) and inv.flag("from-env-file"):
        acc.add(
            _R.WRITE,
            "--from-env-file lines without '=' copy values from the environment",
            mutation=True,
        )
        return
    if cmd == ("patch",):
        _judge_patch_text(acc, [v for k in ("patch",) for v in inv.flags.get(k, ())])
        return


_PATCH_KEYWORDS = (
    "privileged", "hostpid", "hostnetwork", "hostipc", "hostpath", "capabilities",
    "allowprivilegeescalation", "serviceaccount", "runasuser", "pod-security.kubernetes.io",
    "automountserviceaccounttoken", "rules", "roleref", "subjects", "webhooks", "nodename",
)  # fmt: skip


def _judge_patch_text(acc: _Acc, texts: Iterable[str]) -> None:
    """A patch body is judged by the dangerous fields it mentions (conservative)."""
    for text in texts:
        lowered = text.lower()
        hits = [k for k in _PATCH_KEYWORDS if k in lowered]
        if hits:
            acc.add(
                _R.PRIVILEGE_ESCALATION,
                f"the patch sets security-relevant fields ({', '.join(hits)})",
                mutation=True,
            )


def _judge_run(inv: Invocation, acc: _Acc) -> None:
    if inv.has_true("privileged"):
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            "run --privileged starts a privileged container: root on the node",
            "privileged_pod",
            mutation=True,
        )
    overrides = inv.flag("overrides")
    if overrides:
        try:
            doc: Any = json.loads(overrides)
        except (ValueError, RecursionError):
            acc.add(
                _R.UNKNOWN, "run --overrides is not valid JSON: cannot be judged", "parse_error"
            )
            doc = None
        if isinstance(doc, dict):
            from jitkube.kubectl.manifests import pod_features

            _judge_pod(acc, pod_features(doc.get("spec")), "run --overrides")
        elif doc is not None:
            acc.add(_R.UNKNOWN, "run --overrides is not a JSON object", "parse_error")
    if inv.has_true("stdin") or inv.has_true("tty") or inv.has_true("attach"):
        acc.exposes = True
        acc.add(
            _R.WRITE, "run -i/-t/--attach attaches to the new container's console", mutation=True
        )


def _judge_debug(inv: Invocation, acc: _Acc) -> None:
    targets = [p for p in inv.positionals if p.startswith(("node/", "nodes/", "no/"))]
    targets += [r.name or "" for r in inv.resources if r.resource == "nodes"]
    if targets:
        acc.cluster = True
        acc.kinds.setdefault("nodes", None)
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            "debug node/… runs a pod with the node's root filesystem at /host and host namespaces",
            "debug_node",
        )
    profile = (inv.flag("profile") or "").lower()
    if profile in _DANGEROUS_DEBUG_PROFILES:
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"debug --profile={profile} adds privileges to the debug container",
            "privileged_pod",
        )
    if inv.flag("custom"):
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            "debug --custom adds a container spec from a local file jitkube does not read",
            "privileged_pod",
        )
    if inv.flag("copy-to"):
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            "debug --copy-to copies the pod with its service account and secret mounts",
        )


def _listen_addresses(inv: Invocation) -> list[str]:
    return [a.strip() for v in inv.flags.get("address", ()) for a in v.split(",") if a.strip()]


def _judge_listen(inv: Invocation, acc: _Acc, what: str, risk: RiskClass) -> None:
    public = [a for a in _listen_addresses(inv) if a not in _LOOPBACK]
    if public:
        acc.add(
            risk,
            f"{what} --address {', '.join(public)} listens beyond this machine",
            "non_loopback_listen",
        )


def _judge_proxy(inv: Invocation, acc: _Acc) -> None:
    _judge_listen(inv, acc, "proxy", _R.CREDENTIAL_EXPOSURE)
    for flag, default in _PROXY_DEFAULTS.items():
        value = inv.flag(flag)
        if value is not None and value != default:
            acc.add(
                _R.CREDENTIAL_EXPOSURE,
                f"proxy --{flag}={value} relaxes which hosts, paths or methods reach the API",
                "non_loopback_listen",
            )
    if inv.has_true("disable-filter"):
        acc.add(
            _R.CREDENTIAL_EXPOSURE,
            "proxy --disable-filter accepts any host and path (exec included)",
            "non_loopback_listen",
        )
    if inv.flag("www"):
        acc.add(_R.CREDENTIAL_EXPOSURE, "proxy --www serves local files")
    if inv.flag("unix-socket"):
        acc.add(
            _R.CREDENTIAL_EXPOSURE,
            "proxy --unix-socket serves the API to local users",
            "non_loopback_listen",
        )


# ---- --raw


def _judge_raw(inv: Invocation, rule: CommandRule, acc: _Acc) -> None:
    path = inv.raw_path or ""
    verb = inv.command[0] if inv.command else "get"
    target = _parse_raw_path(path)
    if target is None:
        acc.add(_R.UNKNOWN, f"--raw {path}: path cannot be judged", "raw_path")
        return
    if isinstance(target, str):
        if target == "sensitive":
            acc.expose(_R.SENSITIVE_READ, f"--raw {path} reads server logs or debug data")
        return
    acc.kinds.setdefault(target.resource, None)
    rt = resolve_type(target.resource)
    if target.namespace is not None:
        acc.namespaces.setdefault(target.namespace, None)
    elif rt is not None and not rt.namespaced:
        acc.cluster = True
    sub = target.sub
    if target.resource == "nodes" and sub.startswith("proxy"):
        acc.add(
            _R.PRIVILEGE_ESCALATION,
            f"--raw {path} reaches the kubelet API (nodes/proxy): exec on any pod, bypassing audit",
            "nodes_proxy",
        )
        acc.exposes = True
        return
    if target.resource == "serviceaccounts" and sub == "token":
        acc.expose(
            _R.CREDENTIAL_EXPOSURE, f"--raw {path} mints a service account token", "mints_token"
        )
        return
    if sub.split("/", 1)[0] in ("exec", "attach", "portforward", "proxy", "ephemeralcontainers"):
        acc.expose(_R.PRIVILEGE_ESCALATION, f"--raw {path} reaches {target.resource}/{sub}")
        return
    if sub == "log":
        acc.expose(_R.SENSITIVE_READ, f"--raw {path} reads container logs")
        return
    if verb == "delete" and target.name is None:
        acc.add(
            _R.DESTRUCTIVE, f"--raw {path} deletes a whole collection", "delete_wide", mutation=True
        )
    known = rt is not None
    label = target.resource
    value_out = "--raw"  # raw output is the full object
    _judge_kind(
        inv,
        rule,
        acc,
        rt.qualified if rt else target.resource,
        known,
        value_out if verb == "get" else None,
        False,
        label=label,
    )


# ---- manifests


def _judge_manifests(
    inv: Invocation,
    rule: CommandRule,
    acc: _Acc,
    manifests: ManifestSet | None,
    value_out: str | None,
    verbose: bool,
) -> None:
    for src in inv.files:
        if src.kind == "url" or src.path.startswith(("http://", "https://")):
            acc.add(
                _R.UNKNOWN,
                f"remote manifests are not fetched; download and pass a local file: {src.path}",
                "remote_manifest",
            )
    if manifests is None:
        acc.add(
            _R.UNKNOWN,
            "the -f/-k manifests were not read, so their contents cannot be judged",
            "manifest_unread",
        )
        return
    for problem in manifests.problems:
        acc.add(_R.UNKNOWN, f"manifest cannot be judged: {problem}", "manifest_unreadable")
    for obj in manifests.objects:
        kind = obj.qualified
        acc.kinds.setdefault(kind, None)
        namespaced = obj.resource.namespaced if obj.resource is not None else None
        _kind_namespace(acc, inv, namespaced, obj.namespace)
        _judge_kind(
            inv,
            rule,
            acc,
            kind,
            obj.resource is not None,
            value_out,
            verbose,
            label=obj.kind if obj.resource is not None else f"{obj.kind} ({obj.api_version})",
            obj=obj,
        )


# ---- scope

# More named objects than this in one mutation counts as a wide change (§3.2).
MANY_OBJECTS = 10

# Commands where -l/--field-selector choose which objects to change (elsewhere, e.g.
# `create pdb --selector` or `expose --selector`, it is a field of the new object, and
# `apply -l` only filters the manifests).
_SELECTING = frozenset(
    {
        ("delete",), ("label",), ("annotate",), ("scale",), ("taint",), ("drain",),
        ("cordon",), ("uncordon",), ("set", "env"), ("set", "image"), ("set", "resources"),
        ("set", "serviceaccount"), ("rollout", "restart"), ("rollout", "pause"),
        ("rollout", "resume"), ("rollout", "undo"), ("patch",), ("edit",),
    }
)  # fmt: skip


def _judge_scope(inv: Invocation, rule: CommandRule, acc: _Acc) -> None:
    """§3.2: wide selections raise mutations (reads are unchanged).

    Deviation: the taxonomy raises the decision one level; a class cannot say "one level
    more", so wide mutations become `destructive` (as DESIGN.md lists `--all`/`-A` on
    mutations) and carry `wide_scope`/`delete_wide` codes for policy to raise further.
    """
    if rule.op not in (OP_WRITE, OP_DELETE):
        return
    why: list[str] = []
    if inv.all_namespaces:
        why.append("-A acts in every namespace")
    if inv.select_all:
        why.append("--all acts on every object of the type")
    if (inv.selector or inv.field_selector) and inv.command in _SELECTING:
        if inv.selector:
            why.append(f"-l {inv.selector} acts on every matching object")
        if inv.field_selector:
            why.append("--field-selector acts on every matching object")
    if inv.resources:
        categories = {
            r.as_typed.lower()
            for r in inv.resources
            if r.as_typed and r.as_typed.lower() in CATEGORIES
        }
        for cat in sorted(categories):
            why.append(f"category '{cat}' expands to many resource types")
    if (
        inv.resources
        and not inv.files
        and not inv.select_all
        and not inv.selector
        and not inv.field_selector
        and all(r.name is None for r in inv.resources)
        and inv.command[0] in ("edit", "rollout")
    ):
        why.append(
            f"{inv.command_name} without a name acts on every "
            f"{_names_of(r.qualified for r in inv.resources)} (implicit all)"
        )
    if len(inv.resources) > MANY_OBJECTS:  # else fewer named objects than that
        named = {(r.qualified, r.name) for r in inv.resources if r.name is not None}
        if len(named) > MANY_OBJECTS:
            why.append(f"names {len(named)} objects at once")
    if not why:
        return
    acc.wide = True
    code = "delete_wide" if rule.op == OP_DELETE else "wide_scope"
    for text in why:
        acc.add(_R.DESTRUCTIVE, f"{inv.command_name}: {text}", code, mutation=True)
