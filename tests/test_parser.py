"""kubectl argv parser: one table per rule of KUBECTL-NOTES.md, plus "kubectl agrees" checks.

Rules are numbered as in /work/shared/KUBECTL-NOTES.md ("Parse rules").
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from fixtures.env import IsolatedEnv
from jitkube.kubectl.invocation import FileSource, Invocation, ResourceRef
from jitkube.kubectl.parser import parse


def p(line: str) -> Invocation:
    return parse(shlex.split(line))


def ok(line: str) -> Invocation:
    inv = p(line)
    assert inv.problems == (), (line, inv.problems)
    return inv


def refs(inv: Invocation) -> list[tuple[str, str | None]]:
    return [(r.qualified, r.name) for r in inv.resources]


# --- rule 1: scalar flags, last wins ------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "get pods -n prod -n dev",
        "get pods --namespace prod --namespace dev",
        "get pods --namespace=prod -n dev",
        "-n prod get pods -n dev",
    ],
)
def test_last_scalar_flag_wins(line: str) -> None:
    assert ok(line).namespace == "dev"


def test_output_last_wins_and_all_values_are_kept() -> None:
    inv = ok("get secrets -o name -o yaml")
    assert inv.output == "yaml"
    assert inv.flags["output"] == ("name", "yaml")


# --- rule 2: short-flag forms ---------------------------------------------------------------


@pytest.mark.parametrize("line", ["get pods -nprod", "get pods -n=prod", "get pods -n prod"])
def test_short_flag_value_forms_are_equivalent(line: str) -> None:
    assert ok(line).namespace == "prod"


@pytest.mark.parametrize("line", ["exec -itn prod pod -- sh", "exec -itnprod pod -- sh"])
def test_clustered_bool_shorthands_with_last_taking_a_value(line: str) -> None:
    inv = ok(line)
    assert inv.namespace == "prod"
    assert inv.flags["stdin"] == ("true",)
    assert inv.flags["tty"] == ("true",)
    assert refs(inv) == [("pods", "pod")]


def test_clustered_all_namespaces_then_namespace() -> None:
    inv = ok("get pods -Anprod")
    assert inv.all_namespaces is True
    assert inv.namespace == "prod"  # kept, but -A wins (rule 3)


def test_short_flag_equals_with_nothing_after_takes_the_equals_sign() -> None:
    # pflag: "-n=" is two characters, so the value is "=" (not empty).
    assert ok("get pods -n=").namespace == "="


def test_bool_shorthand_with_equals_value() -> None:
    assert ok("exec -i=false pod -- sh").flags["stdin"] == ("false",)


# --- rule 3: empty namespace, -A beats -n, cluster-scoped kinds -----------------------------


@pytest.mark.parametrize(
    "line", ["get pods -n ''", "get pods --namespace=", "get pods -n prod -n ''"]
)
def test_empty_namespace_means_context_default(line: str) -> None:
    assert ok(line).namespace is None


def test_all_namespaces_flag_is_reported_alongside_namespace() -> None:
    inv = ok("get pods -n prod -A")
    assert inv.all_namespaces is True
    assert inv.namespace == "prod"


def test_namespace_kept_for_cluster_scoped_kind_with_scope_on_the_ref() -> None:
    inv = ok("-n prod delete ns prod")
    assert inv.namespace == "prod"
    assert inv.resources == (ResourceRef("namespaces", "", "prod", False, True, "ns"),)


# --- rule 4: flags before the subcommand ---------------------------------------------------


@pytest.mark.parametrize(
    ("line", "flag", "value"),
    [
        ("-n prod get pods", "namespace", "prod"),
        ("-v 6 get pods", "v", "6"),
        ("--insecure-skip-tls-verify get pods", "insecure-skip-tls-verify", "true"),
        ("-o name get pods", "output", "name"),
        ("--context other rollout restart deploy x", "context", "other"),
    ],
)
def test_global_and_local_value_flags_may_precede_the_subcommand(
    line: str, flag: str, value: str
) -> None:
    inv = ok(line)
    assert inv.flag(flag) == value
    assert inv.command[0] in ("get", "rollout")


@pytest.mark.parametrize(
    "line", ["--all-namespaces get pods", "-A get pods", "--force delete pod x"]
)
def test_local_bool_before_subcommand_breaks_lookup(line: str) -> None:
    inv = p(line)
    assert inv.problems
    assert "before plugin name" in inv.problems[0]


def test_value_flag_before_subcommand_swallows_the_command_word() -> None:
    # cobra stripFlags: an unknown-to-root flag is assumed to take a value.
    inv = p("-o get pods")
    assert inv.problems


# --- rule 5: local flags shadow globals ----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "flag"),
    [
        ("--user=bob create rolebinding rb --clusterrole=view", "user"),
        ("create clusterrolebinding crb --clusterrole=view --user=bob", "user"),
        ("set subject rolebinding rb --user=bob", "user"),
        ("debug pod --profile=sysadmin --image=busybox", "profile"),
        ("config set-cluster c --server=https://x", "server"),
        ("config set-context c --namespace=x --user=u --cluster=c", "namespace"),
        ("config set-credentials u --token=t", "token"),
    ],
)
def test_local_flag_shadows_global_of_same_name(line: str, flag: str) -> None:
    inv = ok(line)
    assert flag in inv.flags
    assert flag not in inv.global_flags


@pytest.mark.parametrize(
    ("line", "flag"),
    [
        ("get pods --user=bob", "user"),
        ("--token=x get pods", "token"),
        ("get pods -s https://evil", "server"),
        ("get pods --as=admin --as-group=system:masters", "as-group"),
        ("create deployment d --image=x --kubeconfig=/tmp/k", "kubeconfig"),
    ],
)
def test_global_flags_are_reported_as_global(line: str, flag: str) -> None:
    assert flag in ok(line).global_flags


def test_set_context_namespace_is_the_contexts_field_not_the_request_namespace() -> None:
    inv = ok("config set-context c --namespace=x")
    assert inv.flags["namespace"] == ("x",)
    assert "namespace" not in inv.global_flags
    assert inv.namespace is None


# --- rule 6: bools never consume the next token ------------------------------------------


def test_bool_flag_never_consumes_next_token() -> None:
    inv = ok("delete pod foo --force false")
    assert refs(inv) == [("pods", "foo"), ("pods", "false")]
    assert inv.flags["force"] == ("true",)


@pytest.mark.parametrize(("value", "expected"), [("false", "false"), ("0", "false"), ("T", "true")])
def test_bool_flag_with_attached_value(value: str, expected: str) -> None:
    assert ok(f"delete pod foo --force={value}").flags["force"] == (expected,)


def test_bool_flag_with_non_boolean_value_is_a_problem() -> None:
    assert p("delete pod foo --force=maybe").problems


# --- rule 7: optional-value flags ----------------------------------------------------------


def test_bare_dry_run_is_client_and_does_not_consume_next_token() -> None:
    inv = ok("delete pods --dry-run server")
    assert inv.dry_run == "client"
    assert refs(inv) == [("pods", "server")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("client", "client"), ("server", "server"), ("none", "none"), ("true", "client"),
     ("1", "client"), ("false", "none"), ("F", "none"), ("unchanged", "client")],
)  # fmt: skip
def test_dry_run_values_follow_kubectl(value: str, expected: str) -> None:
    assert ok(f"delete pod x --dry-run={value}").dry_run == expected


def test_invalid_dry_run_value_is_a_problem() -> None:
    assert p("delete pod x --dry-run=bogus").problems


@pytest.mark.parametrize(
    ("line", "flag", "value"),
    [
        ("delete pod x --cascade", "cascade", "background"),
        ("apply -f x.yaml --validate", "validate", "strict"),
        ("config set-cluster c --embed-certs", "embed-certs", "true"),
        ("config view --merge", "merge", "true"),
    ],
)
def test_optional_value_flags_bare_form_takes_the_default(line: str, flag: str, value: str) -> None:
    assert ok(line).flags[flag] == (value,)


# --- rule 8: `--` -------------------------------------------------------------------------


def test_double_dash_makes_flags_positional_names() -> None:
    inv = ok("get pods -- -n prod")
    assert refs(inv) == [("pods", "-n"), ("pods", "prod")]
    assert inv.namespace is None


def test_double_dash_help_is_a_name_not_help() -> None:
    inv = ok("delete pod x -- --help")
    assert inv.help is False
    assert refs(inv) == [("pods", "x"), ("pods", "--help")]


@pytest.mark.parametrize(
    ("line", "cmd"),
    [
        ("exec pod -- sh -n prod", ("sh", "-n", "prod")),
        ("attach pod -- x", ("x",)),
        ("debug pod -it --image=busybox -- sh -c 'id -n'", ("sh", "-c", "id -n")),
        ("run x --image=busybox -- ls -la", ("ls", "-la")),
        ("create job j --image=busybox -- date -n", ("date", "-n")),
    ],
)
def test_container_command_after_double_dash_is_opaque(line: str, cmd: tuple[str, ...]) -> None:
    inv = ok(line)
    assert inv.container_command == cmd
    assert inv.namespace is None


def test_double_dash_before_command_is_root_help() -> None:
    inv = ok("-- get pods")
    assert inv.command == ()
    assert inv.resources == ()


def test_exec_command_without_double_dash_is_a_problem() -> None:
    assert p("exec pod sh").problems


# --- rule 9: names ------------------------------------------------------------------------


def test_underscore_in_long_flag_names_normalizes_to_dash() -> None:
    inv = ok("get pods --all_namespaces")
    assert inv.all_namespaces is True
    assert ok("create ns x --dry_run=client").dry_run == "client"


def test_flag_names_are_case_sensitive() -> None:
    assert "unknown flag" in p("get pods --Namespace prod").problems[0]


def test_em_dash_flag_is_a_positional() -> None:
    inv = ok("get pods —namespace prod")
    assert refs(inv) == [("pods", "—namespace"), ("pods", "prod")]
    assert inv.namespace is None


@pytest.mark.parametrize(
    "line", ["get —pods", "get ｐｏｄｓ", "get pods --namespacé=x", "get pods -ñ"]
)
def test_non_ascii_in_type_or_flag_tokens_is_a_problem(line: str) -> None:
    assert p(line).problems


# --- rule 10: repeatable flags --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "flag", "values"),
    [
        ("apply -f a.yaml,b.yaml", "filename", ("a.yaml", "b.yaml")),
        ("apply -f a.yaml -f b.yaml", "filename", ("a.yaml", "b.yaml")),
        ("create role r --verb=get,list --resource=pods,secrets", "verb", ("get", "list")),
        ("create role r --verb=get --resource=pods,secrets", "resource", ("pods", "secrets")),
        ("create cm c --from-file=a,b", "from-file", ("a", "b")),
        ("get pods --as-group=system:masters,foo", "as-group", ("system:masters,foo",)),
        ("create cm c --from-literal=a=b,c=d", "from-literal", ("a=b,c=d",)),
        ("run x --image=i --env=A=1,B=2", "env", ("A=1,B=2",)),
        ("create rolebinding r --role=x --user=a,b", "user", ("a,b",)),
        ("apply -f '\"a,b.yaml\",c.yaml'", "filename", ("a,b.yaml", "c.yaml")),
    ],
)
def test_string_slice_splits_on_commas_and_string_array_does_not(
    line: str, flag: str, values: tuple[str, ...]
) -> None:
    assert ok(line).flags[flag] == values


# --- rule 11: resource TYPE ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "qualified"),
    [
        ("SECRETS", "secrets"), ("Secret", "secrets"), ("deploy.apps", "deployments.apps"),
        ("deployments.v1.apps", "deployments.apps"), ("secrets.v1.", "secrets"),
        ("po", "pods"), ("crd", "customresourcedefinitions.apiextensions.k8s.io"),
    ],
)  # fmt: skip
def test_type_forms_resolve_like_kubectl(typed: str, qualified: str) -> None:
    assert refs(ok(f"get {typed} x")) == [(qualified, "x")]


def test_categories_expand() -> None:
    kinds = ok("delete all --all").kinds
    assert "pods" in kinds
    assert "deployments.apps" in kinds
    assert "secrets" not in kinds
    ext = ok("get api-extensions").kinds
    assert "customresourcedefinitions.apiextensions.k8s.io" in ext


def test_type_list_expands_over_names() -> None:
    assert refs(ok("get pods,svc a b")) == [
        ("pods", "a"), ("pods", "b"), ("services", "a"), ("services", "b")
    ]  # fmt: skip


@pytest.mark.parametrize("line", ["get pods, svc", "get pods,", "get ,pods", "get pods,,svc"])
def test_space_or_stray_comma_in_type_list_is_a_problem(line: str) -> None:
    assert p(line).problems


def test_commas_in_name_position_are_literal() -> None:
    assert refs(ok("delete pod a,b")) == [("pods", "a,b")]


@pytest.mark.parametrize("line", ["get pods pod/x", "delete pod/x y"])
def test_type_name_cannot_be_mixed_with_type_slash_name(line: str) -> None:
    assert p(line).problems


@pytest.mark.parametrize("line", ["get pods/a/b", "get /x", "get pods/", "get pods,svc/x"])
def test_malformed_type_slash_name_is_a_problem(line: str) -> None:
    assert p(line).problems


def test_type_slash_name_forms() -> None:
    assert refs(ok("delete pod/a svc/b")) == [("pods", "a"), ("services", "b")]


def test_unknown_type_is_an_unknown_custom_resource() -> None:
    (ref,) = ok("delete widgets.example.com w1").resources
    assert ref.known is False
    assert ref.namespaced is None
    assert ref.name == "w1"
    assert ref.as_typed == "widgets.example.com"


# --- rule 12: implicit all (recorded as TYPE without NAME) --------------------------------


@pytest.mark.parametrize(
    "line", ["get pods", "edit secrets", "rollout restart deployments", "describe nodes"]
)
def test_type_without_name_has_no_name(line: str) -> None:
    inv = ok(line)
    assert inv.resources
    assert all(r.name is None for r in inv.resources)


def test_select_all_selector_and_field_selector() -> None:
    inv = ok("delete pods --all -l app=x --field-selector=status.phase=Failed")
    assert inv.select_all
    assert inv.selector == "app=x"
    assert inv.field_selector == "status.phase=Failed"


# --- rule 13: manifests, cp namespace, pod targets -----------------------------------------


def test_filename_sources() -> None:
    inv = ok("apply -R -f - -f https://x/y.yaml -f dir/ -f http://a -f m.yaml")
    assert inv.files == (
        FileSource("-", "stdin", True), FileSource("https://x/y.yaml", "url", True),
        FileSource("dir/", "dir", True), FileSource("http://a", "url", True),
        FileSource("m.yaml", "file", True),
    )  # fmt: skip


def test_kustomize_flag_is_a_kustomize_source() -> None:
    assert ok("apply -k overlays/prod").files == (FileSource("overlays/prod", "dir", False, True),)


@pytest.mark.parametrize(
    ("line", "ns", "pod"),
    [
        ("cp ns1/p:/tmp/x /tmp/y", "ns1", "p"),
        ("cp /tmp/y p:/tmp/x -n prod", "prod", "p"),
        ("cp -n prod ns2/p:/a /b", "ns2", "p"),
        ("cp deploy/x:/a /b", "deploy", "x"),  # the part before '/' is a namespace
    ],
)
def test_cp_namespace_comes_from_the_file_spec(line: str, ns: str, pod: str) -> None:
    inv = ok(line)
    assert inv.namespace == ns
    assert refs(inv) == [("pods", pod)]


@pytest.mark.parametrize("line", ["cp a:/x b:/y", "cp a/b/c:/x /y", "cp :/x /y", "cp /x"])
def test_bad_cp_specs_are_problems(line: str) -> None:
    assert p(line).problems


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("exec deploy/web -- sh", [("deployments.apps", "web")]),
        ("logs svc/web", [("services", "web")]),
        ("logs web c1", [("pods", "web")]),
        ("port-forward rs/web 8080:80", [("replicasets.apps", "web")]),
        ("attach web", [("pods", "web")]),
        ("debug node/n1 -it --image=busybox", [("nodes", "n1")]),
        ("debug web --image=busybox", [("pods", "web")]),
    ],
)
def test_pod_targets_resolve_type_slash_name(line: str, expected: list[tuple[str, str]]) -> None:
    assert refs(ok(line)) == expected


# --- rule 14: commands and plugins ---------------------------------------------------------


@pytest.mark.parametrize("line", ["GET pods", "foo bar", "nuke", "create foo", "create secret x y"])
def test_unknown_commands_and_shadow_plugins_are_problems(line: str) -> None:
    assert p(line).problems


@pytest.mark.parametrize(
    ("line", "kind", "name"),
    [
        ("create deployment d --image=x", "deployments.apps", "d"),
        ("create deploy d --image=x", "deployments.apps", "d"),
        ("create secret generic s --from-literal=a=b", "secrets", "s"),
        ("create secret tls s --cert=c --key=k", "secrets", "s"),
        ("create secret docker-registry s --docker-server=x", "secrets", "s"),
        ("create token sa1", "serviceaccounts", "sa1"),
        ("create clusterrolebinding b --clusterrole=cluster-admin --user=x",
         "clusterrolebindings.rbac.authorization.k8s.io", "b"),
        ("create service nodeport s --tcp=80:80", "services", "s"),
        ("create quota q --hard=pods=1", "resourcequotas", "q"),
        ("create pdb p --selector=a=b --min-available=1", "poddisruptionbudgets.policy", "p"),
        ("run x --image=busybox", "pods", "x"),
        ("drain n1", "nodes", "n1"),
        ("cordon n1", "nodes", "n1"),
        ("certificate approve csr1", "certificatesigningrequests.certificates.k8s.io", "csr1"),
        ("top pod p", "pods", "p"),
        ("taint nodes n1 k=v:NoExecute", "nodes", "n1"),
        ("label pods p a=b c-", "pods", "p"),
        ("set env deploy/d A=B", "deployments.apps", "d"),
        ("set image deploy d c=nginx", "deployments.apps", "d"),
        ("set serviceaccount deploy d sa1", "deployments.apps", "d"),
        ("scale deploy d --replicas=0", "deployments.apps", "d"),
        ("apply view-last-applied secret s", "secrets", "s"),
    ],
)  # fmt: skip
def test_commands_imply_their_kind(line: str, kind: str, name: str) -> None:
    assert refs(ok(line)) == [(kind, name)]


def test_explain_records_the_kind_without_a_name() -> None:
    assert refs(ok("explain pods.spec.containers")) == [("pods", None)]


def test_auth_can_i_records_no_target() -> None:
    inv = ok("auth can-i delete secrets -n kube-system")
    assert inv.resources == ()
    assert inv.positionals == ("delete", "secrets")


def test_help_flag_means_command_help() -> None:
    inv = ok("delete pods --all -h")
    assert inv.help is True
    assert inv.command == ("delete",)
    assert inv.resources == ()
    assert ok("help delete").command == ("help",)


def test_raw_path_and_verbosity() -> None:
    inv = ok("get --raw /api/v1/namespaces/x/secrets --v 9")
    assert inv.raw_path == "/api/v1/namespaces/x/secrets"
    assert inv.verbosity == 9
    assert ok("-v=8 get pods").verbosity == 8


def test_invalid_verbosity_is_a_problem() -> None:
    assert p("get pods -v=x").problems


def test_unknown_flag_and_missing_value_are_problems() -> None:
    assert p("get pods --bogus").problems
    assert p("get pods -n").problems
    assert p("get pods ---n x").problems


# --- kubectl agrees: the real binary, no server, client-side only ----------------------------


def _kubectl(kubectl_bin: Path, env: IsolatedEnv, line: str) -> subprocess.CompletedProcess[str]:
    e = dict(env.env)
    e["KUBECONFIG"] = str(env.home / "no-such-kubeconfig")
    e["KUBECTL_ENABLE_CMD_SHADOW"] = "false"
    e["KUBECTL_KUBERC"] = "false"
    e["PATH"] = os.defpath
    return subprocess.run(
        [str(kubectl_bin), *shlex.split(line)],
        capture_output=True, text=True, env=e, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.integration
def test_kubectl_agrees_on_namespace_and_string_array(
    kubectl_bin: Path, isolated_env: IsolatedEnv
) -> None:
    line = "create configmap cm --from-literal=a=b,c=d -nprod -n dev --dry-run=client -o json"
    out = json.loads(_kubectl(kubectl_bin, isolated_env, line).stdout)
    inv = ok(line)
    assert out["metadata"]["namespace"] == inv.namespace == "dev"
    assert list(out["data"].items()) == [tuple(inv.flags["from-literal"][0].split("=", 1))]


@pytest.mark.integration
def test_kubectl_agrees_binding_user_is_local_and_unsplit(
    kubectl_bin: Path, isolated_env: IsolatedEnv
) -> None:
    line = (
        "--user=a,b create rolebinding rb --clusterrole=admin --user=bob --dry-run=client -o json"
    )
    out = json.loads(_kubectl(kubectl_bin, isolated_env, line).stdout)
    inv = ok(line)
    assert [s["name"] for s in out["subjects"]] == list(inv.flags["user"]) == ["a,b", "bob"]
    assert "user" not in inv.global_flags


@pytest.mark.integration
def test_kubectl_agrees_bare_dry_run_leaves_next_token_as_name(
    kubectl_bin: Path, isolated_env: IsolatedEnv
) -> None:
    line = "create namespace --dry-run server -o name"
    proc = _kubectl(kubectl_bin, isolated_env, line)
    inv = ok(line)
    assert proc.stdout.strip() == f"namespace/{inv.resources[0].name}" == "namespace/server"
    assert inv.dry_run == "client"


@pytest.mark.integration
def test_kubectl_agrees_on_clustered_bool_then_value_shorthand(
    kubectl_bin: Path, isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                   "spec: {containers: [{name: c, image: i}]}\n")  # fmt: skip
    line = f"set env -f {pod} --local -Re A=B,C=D -o json"
    out = json.loads(_kubectl(kubectl_bin, isolated_env, line).stdout)
    inv = ok(line)
    assert inv.flags["recursive"] == ("true",)
    env = out["spec"]["containers"][0]["env"]
    assert [f"{e['name']}={e['value']}" for e in env] == list(inv.flags["env"]) == ["A=B,C=D"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-A get pods", "flags cannot be placed before plugin name"),
        ("GET pods", 'unknown command "GET"'),
        ("create ns x --Namespace y", "unknown flag: --Namespace"),
        ("create ns x --dry-run=client --save-config false", "exactly one NAME is required"),
        ("exec pod sh", "is not supported anymore"),
        ("create ns x --dry-run=bogus", "Invalid dry-run value"),
        ("config set-cluster c -s https://x", "unknown shorthand flag: 's'"),  # shadowed -s
        ("-h get pods", "flags cannot be placed before plugin name: -h"),
        ("--help get pods", "flags cannot be placed before plugin name: --help"),
    ],
)
def test_kubectl_agrees_these_are_errors(
    kubectl_bin: Path, isolated_env: IsolatedEnv, line: str, message: str
) -> None:
    proc = _kubectl(kubectl_bin, isolated_env, line)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert p(line).problems


@pytest.mark.integration
def test_kubectl_agrees_underscore_flags_work(kubectl_bin: Path, isolated_env: IsolatedEnv) -> None:
    line = "create ns x --dry_run=client -o name"
    assert _kubectl(kubectl_bin, isolated_env, line).stdout.strip() == "namespace/x"
    assert ok(line).dry_run == "client"


@pytest.mark.integration
@pytest.mark.parametrize(
    "line",
    [
        "-o name create ns x --dry-run=client",  # local value flag before the subcommand
        "--dry-run=client create ns x -o name",  # attached value: not taken as the command
        "-n prod -v 1 create deploy x --image=i --dry-run=client -o name",  # globals first, alias
    ],
)
def test_kubectl_agrees_flags_before_subcommand_work(
    kubectl_bin: Path, isolated_env: IsolatedEnv, line: str
) -> None:
    proc = _kubectl(kubectl_bin, isolated_env, line)
    inv = ok(line)
    (ref,) = inv.resources
    kind = {"namespaces": "namespace", "deployments": "deployment.apps"}[ref.resource]
    assert proc.stdout.strip() == f"{kind}/{ref.name}"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--dry-run create ns x -o name", "flags cannot be placed before plugin name"),
        ("create cm c -o name --dry-run=client -v=x", 'invalid argument "x"'),
        ("create cm c -o name --dry-run=client --v=' 8'", 'invalid argument " 8"'),
        ("create cm c -o name --dry-run=client --force=maybe", "unknown flag"),
    ],
)
def test_kubectl_agrees_these_flag_lines_fail(
    kubectl_bin: Path, isolated_env: IsolatedEnv, line: str, message: str
) -> None:
    proc = _kubectl(kubectl_bin, isolated_env, line)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert p(line).problems


@pytest.mark.integration
@pytest.mark.parametrize(("flag", "namespace"), [("-n=", "="), ("-n ''", ""), ("-nprod", "prod")])
def test_kubectl_agrees_on_short_namespace_forms(
    kubectl_bin: Path, isolated_env: IsolatedEnv, flag: str, namespace: str
) -> None:
    line = f"create cm c {flag} --dry-run=client -o jsonpath={{.metadata.namespace}}"
    assert _kubectl(kubectl_bin, isolated_env, line).stdout == namespace
    assert (ok(line).namespace or "") == namespace


@pytest.mark.integration
def test_kubectl_agrees_create_deployment_command_after_double_dash(
    kubectl_bin: Path, isolated_env: IsolatedEnv
) -> None:
    line = (
        "create deploy d --image=i --dry-run=client "
        "-o jsonpath={.spec.template.spec.containers[0].command} -- date -n prod"
    )
    out = json.loads(_kubectl(kubectl_bin, isolated_env, line).stdout)
    inv = ok(line)
    assert tuple(out) == inv.container_command == ("date", "-n", "prod")
    assert inv.namespace is None


def test_pure_group_without_subcommand_prints_help() -> None:
    inv = ok("rollout")
    assert inv.help is True
    assert inv.resources == ()
    assert p("rollout bogus deploy/x").problems


def test_run_requires_a_name_before_double_dash() -> None:
    assert p("run --image=x -- sh").problems
    assert ok("run x --image=i a b -- c").container_command == ("a", "b", "c")


def test_empty_resource_name_is_a_problem() -> None:
    assert p("delete pod ''").problems


def test_newline_in_comma_list_flag_is_a_problem() -> None:
    assert parse(["apply", "-f", "a.yaml\nb.yaml"]).problems


@pytest.mark.parametrize("value", ["٨", " 8", "8_0", "0x8"])
def test_verbosity_parses_like_go(value: str) -> None:
    assert parse(["get", "pods", f"--v={value}"]).problems


@pytest.mark.integration
@pytest.mark.parametrize(
    ("line", "flag", "jsonpath"),
    [
        # stringArray: one value, commas kept
        ("create ingress i --rule=a.com/=svc:80 --annotation=a=b,c=d", "annotation",
         "{.metadata.annotations}"),
        ("create secret generic s --from-literal=a=b,c=d", "from-literal", "{.data}"),
        # stringSlice: split on commas
        ("create deployment d --image=a,b", "image", "{.spec.template.spec.containers[*].image}"),
        ("create service clusterip s --tcp=80:80,81:81", "tcp", "{.spec.ports[*].port}"),
    ],
)  # fmt: skip
def test_kubectl_agrees_on_comma_splitting(
    kubectl_bin: Path, isolated_env: IsolatedEnv, line: str, flag: str, jsonpath: str
) -> None:
    full = f"{line} --dry-run=client -o jsonpath={jsonpath}"
    out = _kubectl(kubectl_bin, isolated_env, full).stdout
    count = len(json.loads(out)) if out.startswith("{") else len(out.split())
    assert len(ok(full).flags[flag]) == count


@pytest.mark.integration
def test_kubectl_agrees_exec_env_is_array_and_exec_arg_is_slice(
    kubectl_bin: Path, isolated_env: IsolatedEnv, tmp_path: Path
) -> None:
    kc = tmp_path / "kc"
    line = (
        f"config set-credentials u --exec-command=x --kubeconfig={kc} "
        "--exec-api-version=client.authentication.k8s.io/v1 --exec-env=A=B,C=D --exec-arg=a,b"
    )
    assert _kubectl(kubectl_bin, isolated_env, line).returncode == 0
    view = _kubectl(kubectl_bin, isolated_env, f"config view --kubeconfig={kc} -o json")
    exec_cfg = json.loads(view.stdout)["users"][0]["user"]["exec"]
    inv = ok(line)
    assert [f"{e['name']}={e['value']}" for e in exec_cfg["env"]] == list(inv.flags["exec-env"])
    assert exec_cfg["args"] == list(inv.flags["exec-arg"])
    assert "kubeconfig" in inv.global_flags


@pytest.mark.integration
@pytest.mark.parametrize(
    ("line", "command"),
    [("--help get", ()), ("rollout -h restart deploy", ("rollout",)), ("get -h pods", ("get",))],
)
def test_kubectl_agrees_help_before_a_word_swallows_it_during_lookup(
    kubectl_bin: Path, isolated_env: IsolatedEnv, line: str, command: tuple[str, ...]
) -> None:
    # cobra defines -h/--help only after the command lookup, so there it takes a value.
    proc = _kubectl(kubectl_bin, isolated_env, line)
    inv = ok(line)
    assert inv.help is True
    assert inv.command == command
    assert proc.returncode == 0
    usage = proc.stdout.split("Usage:\n", 1)[1].split("\n", 1)[0].split()
    assert usage[: 1 + len(command)] == ["kubectl", *command]


@pytest.mark.parametrize(
    ("line", "fine"),
    [("help get", True), ("-v=1 help", True), ("--as x help", False), ("-n prod help", False)],
)
def test_help_command_must_be_the_first_plain_word(line: str, fine: bool) -> None:
    # kubectl's plugin dispatch only spares `help` when it is the first non-flag argument.
    assert (p(line).problems == ()) is fine


def test_create_shadow_plugin_wins_over_help() -> None:
    # kubectl looks for kubectl-create-foo before it parses flags, so --help cannot save it
    assert "kubectl-create-foo" in p("create foo --help").problems[0]
    assert p("-n x create foo").problems  # no plugin lookup, but create takes no arguments


@pytest.mark.integration
def test_kubectl_agrees_verbosity_is_base_ten(kubectl_bin: Path, isolated_env: IsolatedEnv) -> None:
    line = "create ns x --dry-run=client -o name -v=08"
    assert _kubectl(kubectl_bin, isolated_env, line).stdout.strip() == "namespace/x"
    assert ok(line).verbosity == 8
