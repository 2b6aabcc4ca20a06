"""Risk judgement, table-driven: argv -> parse -> (manifests) -> assess.

Each row names the class, a substring of the reason that must explain it, and whether the
output may carry secret values (so the runner masks it). Rows follow RISK-TAXONOMY §2/§3
and the leak paths of KUBECTL-NOTES.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitkube.kubectl import _grammar_data
from jitkube.kubectl.invocation import Invocation
from jitkube.kubectl.manifests import ManifestSet, read_manifests
from jitkube.kubectl.parser import parse
from jitkube.risk import (
    BYPASS_FLAGS,
    COMMANDS,
    DENY_CODES,
    Assessment,
    Reason,
    RiskClass,
    assess,
)

DATA = Path(__file__).parent / "data" / "manifests"

READ = RiskClass.READ
SENS = RiskClass.SENSITIVE_READ
WRITE = RiskClass.WRITE
DESTR = RiskClass.DESTRUCTIVE
CRED = RiskClass.CREDENTIAL_EXPOSURE
PRIV = RiskClass.PRIVILEGE_ESCALATION
BYPASS = RiskClass.BYPASS
UNKNOWN = RiskClass.UNKNOWN


def judge(argv: str, manifests: ManifestSet | None = None) -> Assessment:
    return assess(parse(shlex.split(argv)), manifests)


def judge_with_files(
    argv: str, stdin: bytes | None = None, kubectl: str | None = None
) -> Assessment:
    inv = parse(shlex.split(argv))
    ms = read_manifests(
        inv.files, stdin=stdin, kubectl=kubectl, patch_files=inv.flags.get("patch-file", ())
    )
    return assess(inv, ms)


def reason_texts(a: Assessment) -> str:
    return "\n".join(f"[{r.risk.label}] {r.text}" for r in a.reasons)


# (argv, class, reason substring, exposes secret values)
COMMAND_CASES: list[tuple[str, RiskClass, str, bool]] = [
    # --- reads and discovery
    ("get pods", READ, "reads objects", False),
    ("get pods -o wide", READ, "reads objects", False),
    ("get secrets", READ, "reads objects", False),
    ("get secrets -o name", READ, "reads objects", False),
    ("describe secret db", READ, "describes objects", False),
    ("describe pod web", READ, "literal env values", True),
    ("describe cm app", SENS, "describe on configmaps prints their data", True),
    ("events", READ, "lists events", False),
    ("wait --for=condition=Ready pod/web", READ, "waits", False),
    ("top pod", READ, "pod metrics", False),
    ("top node", READ, "node metrics", False),
    ("cluster-info", READ, "control plane", False),
    ("api-resources", READ, "discovery", False),
    ("api-versions", READ, "discovery", False),
    ("explain pods", READ, "schema", False),
    ("explain deployment --output=plaintext-openapiv2", READ, "schema", False),
    ("api-resources -o wide", READ, "discovery", False),
    ("version", READ, "versions", False),
    ("completion bash", READ, "completion", False),
    ("options", READ, "help", False),
    ("help", READ, "help", False),
    ("auth can-i get pods", READ, "authorization", False),
    ("auth whoami", READ, "identity", False),
    ("plugin list", READ, "plugins on PATH", False),
    ("kustomize overlays/prod", READ, "renders a kustomization", False),
    ("rollout status deploy/web", READ, "rollout status", False),
    ("rollout history deploy/web", READ, "revisions", False),
    ("rollout history deploy/web --revision=2", READ, "literal env values", True),
    ("config current-context", READ, "current context", False),
    ("config get-contexts", READ, "contexts", False),
    ("config get-clusters", READ, "clusters", False),
    ("config get-users", READ, "users", False),
    # --- secret values in every output form
    ("get secrets -o yaml", CRED, "-o yaml on secrets prints their values", True),
    ("get secret/db -o json", CRED, "-o json on secrets", True),
    ("get secrets.v1./db -o jsonpath={.data.password}", CRED, "on secrets prints", True),
    ("get SECRETS db -o go-template={{.data}}", CRED, "-o go-template on secrets", True),
    ("get secrets -o custom-columns=D:.data", CRED, "-o custom-columns on secrets", True),
    ("get secrets --template={{.data}}", CRED, "--template on secrets", True),
    ("get secrets -w -o json", CRED, "on secrets prints their values", True),
    ("get pods,secrets -o yaml", CRED, "on secrets prints their values", True),
    ("get cm -o yaml", SENS, "-o yaml on configmaps prints their data", True),
    ("get pods -o yaml", READ, "literal env", True),
    ("get nodes -o yaml", READ, "reads objects", False),
    ("get secret db -o jsonpath={.metadata.annotations}", CRED, "on secrets prints", True),
    ("get secrets -o jsonpath-as-json={.items}", CRED, "-o jsonpath-as-json on secrets", True),
    ("get secrets -o go-template-file=t.tmpl", CRED, "-o go-template-file on secrets", True),
    ("delete pod web -i", DESTR, "not an approval", False),
    ("delete pod " + " ".join(f"p{i}" for i in range(11)), DESTR, "names 11 objects", False),
    ("kustomize --mount=type=bind,src=/,dst=/x d", UNKNOWN, "--mount runs local programs", False),
    ("kustomize --network d", UNKNOWN, "--network runs local programs", False),
    ("diff -f -", UNKNOWN, "were not read", False),
    ("wait secret/db --for=create -o yaml", CRED, "-o yaml on secrets", True),
    ("label secret db a=b -o json", CRED, "-o json on secrets prints their values", True),
    ("patch secret db -p '{}' -o yaml", CRED, "-o yaml on secrets prints their values", True),
    ("--vmodule=round_trippers=8 get pods", SENS, "--vmodule round_trippers=8 logs full", True),
    ("--vmodule=round_trippers=2 get pods", READ, "reads objects", False),
    ("get pods --vmodule=x=y", UNKNOWN, "vmodule", False),
    ("scale deploy web --replicas=00", DESTR, "scales to 0 replicas", False),
    (
        "create configmap app --from-file=/home/me/.aws/credentials",
        WRITE,
        "uploads local files",
        False,
    ),
    ("get pods -o jsonpath={.items[*].metadata.annotations}", READ, "over annotations", True),
    ("apply view-last-applied secret db", CRED, "view-last-applied on secrets", True),
    ("apply view-last-applied deploy web", READ, "last-applied", True),
    ("edit secret db", CRED, "edit on secrets loads their values into the editor", True),
    ("set env deploy/web --list", SENS, "set env --list prints literal env values", True),
    ("set env deploy/web --list --resolve", CRED, "--list --resolve prints the values", True),
    ("-v=8 get secrets", CRED, "-v=8 on secrets prints their values", True),
    ("get secrets -v=9", CRED, "on secrets prints their values", True),
    ("--v=8 get pods", SENS, "logs full request and response bodies", True),
    ("-v=6 get secrets", READ, "reads objects", False),
    ("-v=8 describe secret db", CRED, "-v=8 on secrets", True),
    ("cluster-info dump", SENS, "every pod spec", True),
    ("config view", SENS, "not redacted", True),
    (
        "config view --raw",
        BYPASS,
        "config view --raw prints the kubeconfig with its credentials",
        True,
    ),
    ("config view --flatten", BYPASS, "config view --flatten prints the kubeconfig", True),
    ("create secret generic db --from-literal=pw=x -o yaml", WRITE, "echoes the new secret", True),
    ("create token default", CRED, "mints a bearer token", True),
    # --- --raw: judged by path
    (
        "get --raw /api/v1/namespaces/shop/secrets/db",
        CRED,
        "--raw on secrets prints their values",
        True,
    ),
    ("get --raw /api/v1/secrets", CRED, "on secrets prints their values", True),
    ("get --raw /api/v1/nodes/n1/proxy/configz", PRIV, "kubelet API (nodes/proxy)", True),
    ("get --raw /api/v1/namespaces/shop/pods/web/exec", PRIV, "reaches pods/exec", True),
    ("get --raw /api/v1/namespaces/shop/pods/web/log", SENS, "container logs", True),
    ("get --raw /api/v1/namespaces/shop/configmaps", SENS, "on configmaps", True),
    (
        "get --raw /apis/example.com/v1/widgets",
        SENS,
        "custom resource type widgets.example.com",
        True,
    ),
    ("get --raw /metrics", READ, "reads objects", False),
    ("get --raw /logs/kube-apiserver.log", SENS, "server logs", True),
    ("get --raw /api/v1/namespaces/shop/../secrets", UNKNOWN, "cannot be judged", False),
    ("get --raw /totally/unknown", UNKNOWN, "cannot be judged", False),
    ("delete --raw /api/v1/namespaces/shop/pods", DESTR, "deletes a whole collection", False),
    # --- connecting to workloads
    ("logs web", SENS, "container output", True),
    ("logs -l app=web --all-containers", SENS, "many containers", True),
    ("logs web --insecure-skip-tls-verify-backend", SENS, "kubelet's certificate", True),
    ("exec web -- env", PRIV, "runs a command inside a container", True),
    ("exec -it web -n prod -- sh", PRIV, "service account and mounted secrets", True),
    ("attach web", PRIV, "console", True),
    ("cp shop/web:/etc/app ./app", PRIV, "tar inside a container", True),
    ("port-forward pod/db 5432", SENS, "network path into the cluster", False),
    ("port-forward svc/db 5432 --address=0.0.0.0", SENS, "listens beyond this machine", False),
    ("port-forward svc/db 5432 --address=localhost,127.0.0.1", SENS, "network path", False),
    ("proxy", CRED, "session's credentials", False),
    ("proxy --address=0.0.0.0", CRED, "listens beyond this machine", False),
    ("proxy --accept-hosts=.*", CRED, "relaxes which hosts", False),
    ("proxy --disable-filter", CRED, "accepts any host and path", False),
    ("proxy --www=/srv", CRED, "serves local files", False),
    ("proxy --unix-socket=/tmp/k.sock", CRED, "local users", False),
    ("debug pod/web -it --image=busybox", PRIV, "debugging container", True),
    ("debug node/n1 -it --image=busybox", PRIV, "node's root filesystem", True),
    ("debug pod/web --image=busybox --profile=sysadmin", PRIV, "--profile=sysadmin", True),
    ("debug pod/web --image=busybox --copy-to=web-copy", PRIV, "--copy-to copies the pod", True),
    # --- run
    ("run web --image=nginx", WRITE, "image of the caller's choice", False),
    ("run web --image=nginx -it --rm", WRITE, "attaches to the new container", True),
    ("run web --image=nginx --privileged", PRIV, "run --privileged", False),
    ('run web --image=nginx --overrides=\'{"spec":{"hostPID":true}}\'', PRIV, "hostPID", False),
    (
        "run web --image=nginx --overrides="
        '\'{"spec":{"volumes":[{"name":"r","hostPath":{"path":"/"}}]}}\'',
        PRIV,
        "hostPath volumes (/)",
        False,
    ),
    ("run web --image=nginx --overrides='not json'", UNKNOWN, "not valid JSON", False),
    (
        "run web --image=nginx --dry-run=client -o yaml --privileged",
        READ,
        "--dry-run=client: nothing is sent",
        True,
    ),
    # --- delete
    ("delete pod web", DESTR, "deletes objects", False),
    ("delete ns prod", DESTR, "deletes namespaces: cascades to every object inside", False),
    ("delete crd widgets.example.com", DESTR, "every custom resource of that type is lost", False),
    ("delete pv data-1", DESTR, "PersistentVolumes: the data may be lost", False),
    ("delete pvc data-1", DESTR, "PersistentVolumeClaims", False),
    ("delete node n1", DESTR, "deletes nodes", False),
    ("delete events --all", DESTR, "hides what happened", False),
    ("delete validatingwebhookconfiguration policy", PRIV, "removes admission control", False),
    ("delete clusterrolebinding x", DESTR, "removes granted permissions", False),
    ("delete pods --all", DESTR, "--all acts on every object", False),
    ("delete pods -l app=web", DESTR, "-l app=web acts on every matching object", False),
    ("delete pods --field-selector=status.phase=Failed", DESTR, "--field-selector", False),
    ("delete all --all -n shop", DESTR, "category 'all'", False),
    ("delete pod web --force --grace-period=0", DESTR, "skips graceful termination", False),
    ("delete pod web --now", DESTR, "skips graceful termination", False),
    ("delete deploy web --cascade=orphan", DESTR, "orphan", False),
    ("delete widgets.example.com w1", DESTR, "custom resource type widgets.example.com", False),
    ("delete pod web --dry-run=server", READ, "--dry-run=server: nothing is persisted", False),
    ("delete ns prod --dry-run=client", READ, "--dry-run=client: nothing is sent", False),
    # --- create / RBAC
    ("create deployment web --image=nginx", WRITE, "creates a Deployment", False),
    ("create namespace team-b", WRITE, "creates a Namespace", False),
    ("create configmap app --from-literal=a=b", WRITE, "creates a ConfigMap", False),
    ("create secret generic db --from-literal=pw=x", WRITE, "creates a Secret", False),
    (
        "create secret generic db --from-env-file=app.env",
        WRITE,
        "copy values from the environment",
        False,
    ),
    ("create secret tls web --cert=c.pem --key=k.pem", WRITE, "TLS Secret", False),
    ("create secret docker-registry reg --docker-password=x", WRITE, "registry Secret", False),
    ("create job now --from=cronjob/backup", WRITE, "runs a CronJob's job now", False),
    ("create service loadbalancer web --tcp=80:80", WRITE, "outside the cluster", False),
    ("create service nodeport web --tcp=80:80", WRITE, "every node's address", False),
    ("create service clusterip web --tcp=80:80", WRITE, "creates a Service", False),
    ("create serviceaccount bot", WRITE, "ServiceAccount", False),
    ("create priorityclass high --value=1000", WRITE, "preempt", False),
    ("create quota q --hard=pods=2", WRITE, "ResourceQuota", False),
    ("create pdb p --selector=app=web --min-available=1", WRITE, "PodDisruptionBudget", False),
    ("create ingress web --rule=a.example.com/=web:80", WRITE, "Ingress", False),
    ("create cronjob c --image=busybox --schedule='* * * * *'", WRITE, "CronJob", False),
    ("create role r --verb=get --resource=pods", PRIV, "creates a Role", False),
    ("create role r --verb=get,list --resource=secrets", PRIV, "grants reading secrets", False),
    ("create clusterrole r --verb=* --resource=*", PRIV, "grants wildcards (*)", False),
    (
        "create clusterrole r --verb=impersonate --resource=users",
        PRIV,
        "the impersonate verb",
        False,
    ),
    (
        "create clusterrole r --verb=create --resource=serviceaccounts/token",
        PRIV,
        "mint service account tokens",
        False,
    ),
    ("create clusterrole r --verb=get --resource=nodes/proxy", PRIV, "nodes/proxy", False),
    (
        "create rolebinding rb --clusterrole=view --user=bob",
        PRIV,
        "grants permissions in a namespace",
        False,
    ),
    (
        "create clusterrolebinding crb --clusterrole=cluster-admin --user=me",
        PRIV,
        "binds the cluster-admin role",
        False,
    ),
    (
        "create clusterrolebinding crb --clusterrole=admin --group=devs",
        PRIV,
        "binds the admin role",
        False,
    ),
    (
        "create clusterrolebinding crb --clusterrole=cluster-admin --user=me"
        " --dry-run=client -o yaml",
        READ,
        "--dry-run=client: nothing is sent",
        False,
    ),
    (
        "create secret generic db --from-literal=pw=x --dry-run=client -o yaml",
        READ,
        "echoes the new secret",
        True,
    ),
    # --- other writes
    ("apply -f -", UNKNOWN, "were not read", False),
    ("replace -f app.yaml", UNKNOWN, "were not read", False),
    ('patch deploy web -p \'{"spec":{"replicas":2}}\'', WRITE, "patches objects", False),
    (
        'patch deploy web -p \'{"spec":{"template":{"spec":{"hostPID":true}}}}\'',
        PRIV,
        "security-relevant fields (hostpid)",
        False,
    ),
    ("patch clusterrolebinding crb --type=json -p '[]'", PRIV, "writes RBAC", False),
    (
        "patch mutatingwebhookconfiguration hook -p '{}'",
        PRIV,
        "intercept or alter every request",
        False,
    ),
    (
        "patch ns prod -p "
        '\'{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}\'',
        PRIV,
        "pod-security.kubernetes.io",
        False,
    ),
    ("patch deploy web --patch-file=p.yaml", UNKNOWN, "--patch-file was not read", False),
    ("edit deploy web", WRITE, "local editor", False),
    ("edit deploy", DESTR, "implicit all", False),
    ("label pods web tier=front", WRITE, "changes labels", False),
    (
        "label ns prod pod-security.kubernetes.io/enforce=privileged",
        PRIV,
        "may relax Pod Security admission",
        False,
    ),
    (
        "label ns prod pod-security.kubernetes.io/enforce-",
        PRIV,
        "removes pod-security.kubernetes.io/enforce",
        False,
    ),
    (
        "label ns prod pod-security.kubernetes.io/enforce=restricted",
        WRITE,
        "Pod Security label",
        False,
    ),
    (
        "label ns prod pod-security.kubernetes.io/warn=privileged",
        WRITE,
        "Pod Security label",
        False,
    ),
    ("label pods --all tier=front", DESTR, "--all acts on every object", False),
    ("label pods -A --all tier=front", DESTR, "-A acts in every namespace", False),
    ("annotate pods -l app=web note=x", DESTR, "acts on every matching object", False),
    ("annotate pods web note=x", WRITE, "changes annotations", False),
    ("scale deploy web --replicas=3", WRITE, "replica counts", False),
    ("scale deploy web --replicas=0", DESTR, "scales to 0 replicas", False),
    ("autoscale deploy web --max=5", WRITE, "HorizontalPodAutoscaler", False),
    ("expose deploy web --port=80", WRITE, "Service for existing pods", False),
    ("expose deploy web --port=80 --selector=app=web", WRITE, "Service for existing pods", False),
    ("drain -l pool=spot", DESTR, "-l pool=spot acts on every matching object", False),
    ("apply -f - -l app=web", UNKNOWN, "were not read", False),
    ("expose deploy web --port=80 --type=LoadBalancer", WRITE, "outside the cluster", False),
    ("rollout restart deploy/web", WRITE, "restarts every pod", False),
    ("rollout restart deploy", DESTR, "implicit all", False),
    ("rollout pause deploy/web", WRITE, "pauses", False),
    ("rollout resume deploy/web", WRITE, "resumes", False),
    ("rollout undo deploy/web", WRITE, "rolls back", False),
    ("set image deploy/web web=nginx:1.28", WRITE, "runs new code", False),
    ("set resources deploy/web --limits=cpu=1", WRITE, "resource limits", False),
    ("set selector svc/web app=web", WRITE, "selector", False),
    ("set env deploy/web --from=secret/db", WRITE, "copies secret references", False),
    ("set serviceaccount deploy/web bot", PRIV, "identity a workload runs as", False),
    ("set subject rolebinding rb --user=bob", PRIV, "adds subjects to a role binding", False),
    ("apply edit-last-applied deploy/web", WRITE, "last-applied", False),
    ("drain n1", DESTR, "evicts every pod", False),
    ("drain n1 --disable-eviction", DESTR, "bypasses PodDisruptionBudgets", False),
    ("drain n1 --delete-emptydir-data", DESTR, "deletes emptyDir data", False),
    ("cordon n1", WRITE, "cordons a node", False),
    ("uncordon n1", WRITE, "uncordons", False),
    ("taint nodes n1 dedicated=db:NoSchedule", WRITE, "node taints", False),
    ("taint nodes n1 dedicated=db:NoExecute", DESTR, "NoExecute taint evicts", False),
    ("taint nodes --all dedicated=db:NoSchedule", DESTR, "--all acts on every object", False),
    ("certificate approve csr-1", PRIV, "issue a client certificate", False),
    ("certificate deny csr-1", WRITE, "denies", False),
    # --- kubeconfig mutators and bypass
    ("config use-context prod", BYPASS, "changes the kubeconfig", False),
    ("config set-context --current --namespace=prod", BYPASS, "changes the kubeconfig", False),
    ("config set-credentials u --token=abc", BYPASS, "changes the kubeconfig", False),
    ("config set-cluster c --server=https://evil.example", BYPASS, "changes the kubeconfig", False),
    ("config set users.u.token abc", BYPASS, "changes the kubeconfig", False),
    ("config unset contexts.prod", BYPASS, "changes the kubeconfig", False),
    ("config delete-context prod", BYPASS, "changes the kubeconfig", False),
    ("config delete-cluster prod", BYPASS, "changes the kubeconfig", False),
    ("config delete-user u", BYPASS, "changes the kubeconfig", False),
    ("config rename-context a b", BYPASS, "changes the kubeconfig", False),
    ("get pods --user=bob", BYPASS, "--user switches to a different kubeconfig user", False),
    ("--context=prod get pods", BYPASS, "--context switches", False),
    ("auth can-i get secrets --as=system:admin", BYPASS, "--as impersonates", False),
    ("get pods --as-group=system:masters", BYPASS, "--as-group impersonates a group", False),
    # --- unknown: plugins, kustomize code execution, custom types judged by command
    ("foo", UNKNOWN, "plugin", False),
    ("foo bar --baz", UNKNOWN, "plugin", False),
    ("create foo", UNKNOWN, "kubectl-create-foo", False),
    ("GET pods", UNKNOWN, "plugin", False),
    ("kustomize --enable-helm overlays/prod", UNKNOWN, "--enable-helm runs local programs", False),
    ("kustomize --enable-alpha-plugins overlays/prod", UNKNOWN, "--enable-alpha-plugins", False),
    ("kustomize --helm-command=/tmp/x overlays/prod", UNKNOWN, "--helm-command", False),
    (
        "apply -f https://example.com/app.yaml",
        UNKNOWN,
        "remote manifests are not fetched; download and pass a local file",
        False,
    ),
    (
        "get widgets.example.com",
        READ,
        "custom resource type widgets.example.com: scope and contents unknown to jitkube",
        False,
    ),
    ("get widgets.example.com -o yaml", SENS, "may print secret values", True),
    ("describe widgets.example.com w1", SENS, "may print secret values", True),
]


@pytest.mark.parametrize(
    ("argv", "risk", "reason", "exposes"), COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES]
)
def test_command_is_judged_as_the_taxonomy_says(
    argv: str, risk: RiskClass, reason: str, exposes: bool
) -> None:
    a = judge(argv)
    texts = reason_texts(a)
    assert a.risk == risk, texts
    assert reason in texts
    assert a.exposes_secret_values is exposes, texts


def test_every_kubectl_command_node_has_exactly_one_row() -> None:
    assert set(COMMANDS) == set(_grammar_data.COMMANDS)


def test_every_bypass_flag_is_a_real_global_flag_of_the_pinned_kubectl() -> None:
    # --kuberc arrives with kubectl 1.33; listing it early costs nothing.
    assert set(BYPASS_FLAGS) - {"kuberc"} <= set(_grammar_data.GLOBAL_FLAGS)


@pytest.mark.parametrize("flag", sorted(set(BYPASS_FLAGS) & set(_grammar_data.GLOBAL_FLAGS)))
def test_each_global_identity_flag_is_refused_as_bypass(flag: str) -> None:
    kind = _grammar_data.GLOBAL_FLAGS[flag][1]
    # kubectl validates --profile's value before anything runs; "x" would be unknown.
    value = "cpu" if flag == "profile" else "x"
    arg = f"--{flag}" if kind == "bool" else f"--{flag}={value}"
    for argv in (f"get pods {arg}", f"{arg} get pods"):
        a = judge(argv)
        assert a.risk == BYPASS, reason_texts(a)
        assert f"--{flag} " in reason_texts(a)
        assert "bypass" in a.codes


@pytest.mark.parametrize(
    "argv",
    [
        "create rolebinding x --user=bob --clusterrole=view",
        "create clusterrolebinding x --user=bob --clusterrole=view",
        "--user=bob create rolebinding x --clusterrole=view",
        "set subject rolebinding x --user=bob",
        "debug pod/web --image=busybox --profile=general",
        "config set-context dev --cluster=c --user=u --namespace=n",
    ],
)
def test_shadowed_local_flags_are_not_bypass_flags(argv: str) -> None:
    a = judge(argv)
    assert "bypass" not in a.codes, reason_texts(a)


def test_namespace_flag_is_not_a_bypass() -> None:
    a = judge("-n prod get pods")
    assert a.risk == READ
    assert a.namespaces == ("prod",)


@pytest.mark.parametrize(
    ("argv", "namespaces", "cluster_scoped"),
    [
        ("get pods", ("",), False),
        ("get pods -n prod", ("prod",), False),
        ("get pods -A", ("*",), False),
        ("get pods -n prod -A", ("*",), False),
        ("-n prod delete ns prod", (), True),
        ("get nodes", (), True),
        ("cp shop/web:/x ./x", ("shop",), False),
        ("create clusterrolebinding x --clusterrole=view --user=u", (), True),
        ("exec web -n prod -- sh", ("prod",), False),
        ("get --raw /api/v1/namespaces/shop/pods", ("shop",), False),
        ("config view", (), False),
        ("version", (), False),
    ],
)
def test_effective_namespaces_follow_kubectl(
    argv: str, namespaces: tuple[str, ...], cluster_scoped: bool
) -> None:
    a = judge(argv)
    assert a.namespaces == namespaces
    assert a.cluster_scoped is cluster_scoped


@pytest.mark.parametrize(
    ("argv", "mutating"),
    [
        ("get pods", False),
        ("delete pod x", True),
        ("delete pod x --dry-run=server", False),
        ("apply -f - --dry-run=client", False),
        ("set image deploy/web web=nginx --local -f -", False),
        ("debug pod/web --image=busybox", True),
        ("logs web", False),
    ],
)
def test_mutating_is_false_for_reads_and_dry_runs(argv: str, mutating: bool) -> None:
    stdin = (DATA / "plain-deployment.yaml").read_bytes()
    assert judge_with_files(argv, stdin=stdin).mutating is mutating


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        ("create token default", "mints_token"),
        ("config view --raw", "raw_kubeconfig"),
        (
            "create clusterrolebinding x --clusterrole=cluster-admin --user=u",
            "cluster_admin_binding",
        ),
        ("create role r --verb=bind --resource=roles", "dangerous_rbac_rule"),
        ("run x --image=busybox --privileged", "privileged_pod"),
        ("debug node/n1 --image=busybox", "debug_node"),
        ("get --raw /api/v1/nodes/n1/proxy/run", "nodes_proxy"),
        ("port-forward pod/db 5432 --address=0.0.0.0", "non_loopback_listen"),
        ("kustomize --enable-helm d", "local_code_execution"),
        ("delete pods --all", "delete_wide"),
        ("delete ns prod", "delete_critical"),
        ("delete pod web --force --grace-period=0", "delete_force"),
    ],
)
def test_taxonomy_deny_cases_carry_a_deny_code(argv: str, code: str) -> None:
    a = judge(argv)
    assert code in a.codes
    assert code in DENY_CODES
    assert a.deny_suggested


@pytest.mark.parametrize(
    "argv", ["apply -f - --prune --all", "drain n1 --force", "create deployment web --image=x"]
)
def test_approval_cases_do_not_carry_deny_codes(argv: str) -> None:
    a = judge_with_files(argv, stdin=(DATA / "plain-deployment.yaml").read_bytes())
    assert not a.codes & DENY_CODES, a.codes


def test_unknown_command_path_is_unknown_even_from_a_hand_built_invocation() -> None:
    a = assess(Invocation(argv=("frobnicate",), command=("frobnicate",)))
    assert a.risk == UNKNOWN
    assert "unknown command or plugin 'frobnicate'" in reason_texts(a)


def test_plain_reads_suggest_nothing_to_deny() -> None:
    a = judge("get pods -n prod")
    assert not a.deny_suggested
    assert a.codes == frozenset()


def test_risk_is_the_maximum_of_the_reasons_and_reasons_are_sorted() -> None:
    a = judge("get secrets -o yaml --user=bob")
    assert a.risk == max(r.risk for r in a.reasons) == BYPASS
    assert list(a.reasons) == sorted(a.reasons, key=lambda r: -r.risk)
    assert all(isinstance(r, Reason) and r.text for r in a.reasons)


def test_parse_problems_are_unknown() -> None:
    a = judge("get pods --no-such-flag")
    assert a.risk == UNKNOWN
    assert "not understood" in reason_texts(a)


def test_kinds_are_qualified_and_include_implied_kinds() -> None:
    assert judge("get deploy,po").kinds == ("deployments.apps", "pods")
    assert judge("drain n1").kinds == ("nodes",)
    assert "secrets" in judge("create secret generic x --from-literal=a=b").kinds


# ------------------------------------------------------------------ manifests


@pytest.mark.parametrize(
    ("argv", "risk", "reason", "exposes"),
    [
        (
            "apply -f privileged-deployment.yaml",
            PRIV,
            "Deployment node-agent runs privileged containers (agent)",
            False,
        ),
        (
            "apply -f privileged-deployment.yaml",
            PRIV,
            "shares the node's namespaces (hostPID)",
            False,
        ),
        ("apply -f privileged-deployment.yaml", PRIV, "mounts hostPath volumes (/)", False),
        ("apply -f privileged-deployment.yaml", PRIV, "adds Linux capabilities (NET_ADMIN)", False),
        (
            "apply -f cluster-admin-binding.yaml",
            PRIV,
            "ClusterRoleBinding agent-admin binds ClusterRole cluster-admin",
            False,
        ),
        (
            "auth reconcile -f escalating-role.yaml",
            PRIV,
            "Role reader grants the escalate verb",
            False,
        ),
        ("apply -f app-with-secret.yaml", WRITE, "writes secrets", False),
        (
            "apply -f app-with-secret.yaml -o yaml",
            CRED,
            "-o yaml on secrets prints their values",
            True,
        ),
        (
            "create -f app-with-secret.yaml -o yaml",
            WRITE,
            "echoes the new secret's values from the manifest",
            True,
        ),
        ("delete -f app-with-secret.yaml", DESTR, "deletes objects", False),
        ("get -f app-with-secret.yaml -o yaml", CRED, "on secrets prints their values", True),
        ("apply -f list.yaml", PRIV, "sets pod-security.kubernetes.io/enforce=privileged", False),
        ("apply -f list.yaml", PRIV, "CronJob backup runs privileged containers (backup)", False),
        (
            "apply -f custom-resource.yaml",
            PRIV,
            "shares the node's namespaces (hostNetwork)",
            False,
        ),
        ("apply -f custom-resource.yaml", PRIV, "custom resource type Widget", False),
        ("apply -f malformed.yaml", UNKNOWN, "malformed YAML", False),
        ("apply -f plain-deployment.yaml", WRITE, "runs code with a service account", False),
        ("create -f plain-deployment.yaml --edit", WRITE, "after jitkube judged the file", False),
        (
            "apply -f privileged-deployment.yaml --dry-run=client",
            READ,
            "--dry-run=client: nothing is sent",
            False,
        ),
        (
            "apply -f privileged-deployment.yaml --dry-run=server",
            READ,
            "runs privileged containers (agent): root on the node (--dry-run=server: nothing is",
            False,
        ),
        ("apply -f dir", WRITE, "applies manifests", False),
        ("apply -f dir -R", WRITE, "writes secrets", False),
        (
            "apply -f plain-deployment.yaml --prune -l app=web",
            DESTR,
            "--prune deletes objects",
            False,
        ),
        ("apply -f plain-deployment.yaml --force", DESTR, "deletes and re-creates", False),
        ("replace -f plain-deployment.yaml --force", DESTR, "deletes and re-creates", False),
        (
            "apply -f plain-deployment.yaml --server-side --force-conflicts",
            WRITE,
            "--force-conflicts",
            False,
        ),
        ("diff -f plain-deployment.yaml", READ, "diff on Deployment prints pod specs", True),
    ],
)
def test_manifest_contents_decide_the_class(
    argv: str, risk: RiskClass, reason: str, exposes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DATA)
    a = judge_with_files(argv)
    texts = reason_texts(a)
    assert a.risk == risk, texts
    assert reason in texts
    assert a.exposes_secret_values is exposes, texts


def test_manifest_kinds_and_namespaces_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    a = judge_with_files("apply -f app-with-secret.yaml -f cluster-admin-binding.yaml")
    assert a.kinds == (
        "configmaps",
        "secrets",
        "services",
        "clusterrolebindings.rbac.authorization.k8s.io",
    )
    assert a.namespaces == ("shop", "")  # the Service has no namespace: context default
    assert a.cluster_scoped
    assert "cluster_admin_binding" in a.codes


def test_namespace_flag_fills_objects_without_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    a = judge_with_files("apply -f app-with-secret.yaml -n shop")
    assert a.namespaces == ("shop",)


def test_stdin_manifest_is_judged_from_the_buffered_bytes() -> None:
    data = (DATA / "cluster-admin-binding.yaml").read_bytes()
    a = judge_with_files("apply -f -", stdin=data)
    assert a.risk == PRIV
    assert "cluster_admin_binding" in a.codes


def test_patch_file_contents_are_judged(tmp_path: Path) -> None:
    patch = tmp_path / "p.yaml"
    patch.write_text("spec:\n  template:\n    spec:\n      hostNetwork: true\n")
    a = judge_with_files(f"patch deploy web --patch-file={patch}")
    assert a.risk == PRIV
    assert "hostnetwork" in reason_texts(a)


INLINE_MANIFESTS: list[tuple[str, str, RiskClass, str]] = [
    (
        "apply -f -",
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\n"
        "metadata: {name: hook}\nwebhooks: []\n",
        PRIV,
        "can intercept or alter every request",
    ),
    (
        "create -f -",
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\n"
        "spec: {hostPath: {path: /etc}}\n",
        PRIV,
        "hostPath PersistentVolume (/etc)",
    ),
    (
        "apply -f -",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d, namespace: ops}\n"
        "spec: {template: {spec: {containers: [{name: c, image: x}]}}}\n",
        WRITE,
        "a DaemonSet runs on every node",
    ),
    (
        "apply -f -",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n"
        "rules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]\n",
        PRIV,
        "ClusterRole r grants wildcards (*)",
    ),
    (
        "create --raw /api/v1/namespaces/shop/serviceaccounts/bot/token -f -",
        '{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}',
        CRED,
        "mints a service account token",
    ),
    (
        "apply -f -",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c}]\n"
        "  ephemeralContainers: [{name: dbg, securityContext: {privileged: true}}]\n",
        PRIV,
        "Pod p runs privileged containers (dbg)",
    ),
    ("apply -f -", "", WRITE, "applies manifests"),
]


@pytest.mark.parametrize(("argv", "manifest", "risk", "reason"), INLINE_MANIFESTS)
def test_stdin_manifest_kinds_raise_the_class(
    argv: str, manifest: str, risk: RiskClass, reason: str
) -> None:
    a = judge_with_files(argv, stdin=manifest.encode())
    assert a.risk == risk, reason_texts(a)
    assert reason in reason_texts(a)


def test_billion_laughs_manifest_is_unknown_and_fast(tmp_path: Path) -> None:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata: {name: x}",
        "data:",
        "  a0: &a0 [x,x,x,x,x,x,x,x,x]",
    ]
    lines += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = tmp_path / "lol.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    a = judge_with_files(f"apply -f {path}")
    assert time.perf_counter() - started < 2.0
    assert a.risk == UNKNOWN
    assert "alias" in reason_texts(a)


@pytest.mark.integration
def test_kustomization_is_rendered_and_judged(
    kubectl_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DATA)
    a = judge_with_files("apply -k kustomize", kubectl=str(kubectl_bin))
    assert a.risk == PRIV, reason_texts(a)
    assert "hostNetwork" in reason_texts(a)
    assert a.namespaces == ("kz",)
    assert set(a.kinds) == {"secrets", "deployments.apps"}


_FUZZ_WORDS = sorted(
    {w for key in _grammar_data.COMMANDS for w in key}
    | {f"--{f}" for node in _grammar_data.COMMANDS.values() for f in node["flags"]}
    | {f"--{f}" for f in _grammar_data.GLOBAL_FLAGS}
    | {"secrets", "secret/x", "all", "-A", "-o", "yaml", "jsonpath={.data}", "--raw",
       "/api/v1/secrets", "-f", "-", "-k", "node/n", "pod/x", "--", "-v=9", "--dry-run=client",
       "cluster-admin"}
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_FUZZ_WORDS), st.text(max_size=6)), max_size=8))
def test_assess_never_raises_and_risk_is_the_max_reason(argv: list[str]) -> None:
    a = assess(parse(argv), ManifestSet())
    assert a.reasons
    assert a.risk == max(r.risk for r in a.reasons)
    assert all(r.text for r in a.reasons)


def test_assess_is_cheap() -> None:
    invocations = [parse(shlex.split(c[0])) for c in COMMAND_CASES]
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        for inv in invocations:
            assess(inv)
    per_call = (time.perf_counter() - started) / (rounds * len(invocations))
    # Budget: parse + risk + policy >= 20,000 argv/s overall; risk alone must stay far
    # below 50 us. The bound here is loose so a loaded CI machine does not flake.
    assert per_call < 250e-6


def test_every_kubectl_help_example_is_judged_and_only_identity_changes_are_bypass() -> None:
    # The help corpus and its shell splitting belong to the parser's tests.
    from test_parser_corpus import _examples, _kubectl_segments

    judged = 0
    for _source, command in _examples():
        for argv in _kubectl_segments(command):
            if not argv:
                continue
            inv = parse(argv)
            a = assess(inv, ManifestSet() if inv.files else None)
            judged += 1
            if a.risk == BYPASS:
                assert argv[0] == "config" or any(f.startswith("--as") for f in argv), argv
            if a.risk == UNKNOWN:
                # The one help example with a literal "..." placeholder inside JSON.
                assert "--overrides" in " ".join(argv), (argv, reason_texts(a))
    assert judged > 350
