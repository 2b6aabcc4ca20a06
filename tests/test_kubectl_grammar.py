"""The generated grammar tables: drift against the pinned kubectl, and measured facts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jitkube.kubectl import _grammar_data, grammar

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "gen_kubectl_grammar.py"


@pytest.mark.slow
@pytest.mark.integration
def test_checked_in_tables_match_the_pinned_kubectl(kubectl_bin: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.py"
    examples = tmp_path / "examples.txt"
    subprocess.run(
        [sys.executable, str(GENERATOR), "--kubectl", str(kubectl_bin),
         "--data-out", str(data), "--examples-out", str(examples)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert data.read_text() == (ROOT / "src/jitkube/kubectl/_grammar_data.py").read_text(), (
        "kubectl grammar drifted: run scripts/gen_kubectl_grammar.py and review the diff"
    )
    assert examples.read_text() == (ROOT / "tests/data/kubectl_help_examples.txt").read_text()


def _local_kinds() -> dict[str, int]:
    counts = {"value": 0, "bool": 0, "optional": 0}
    for node in _grammar_data.COMMANDS.values():
        for spec in node["flags"].values():  # type: ignore[attr-defined]
            counts[spec[1]] += 1
    return counts


def test_flag_counts_match_the_measured_grammar() -> None:
    # KUBECTL-NOTES.md: 484 value-taking, 337 boolean, 76 optional-value local flags;
    # 27 global flags, 23 taking a value.
    assert _local_kinds() == {"value": 484, "bool": 337, "optional": 76}
    assert len(grammar.GLOBAL_FLAGS) == 27
    assert sum(1 for f in grammar.GLOBAL_FLAGS.values() if f.kind == "value") == 23


def test_only_dry_run_validate_and_cascade_are_optional_value_flags() -> None:
    names = {
        name
        for node in grammar.COMMANDS.values()
        for name, spec in node.long_flags.items()
        if spec.kind == "optional"
    }
    assert names == {"dry-run", "validate", "cascade"}


def test_config_tristates_have_a_bare_form() -> None:
    for path, name in [
        ("config set-cluster", "embed-certs"),
        ("config set-cluster", "insecure-skip-tls-verify"),
        ("config set-credentials", "embed-certs"),
        ("config view", "merge"),
        ("config set", "set-raw-bytes"),
        ("config set-credentials", "exec-provide-cluster-info"),
    ]:
        spec = grammar.flag(path, name)
        assert spec is not None, (path, name)
        assert spec.takes_bare, (path, name)


def test_local_flags_shadowing_globals_are_exactly_the_measured_ones() -> None:
    assert grammar.shadowing_flags() == {
        "config set-cluster": frozenset(
            {"server", "certificate-authority", "insecure-skip-tls-verify", "tls-server-name"}
        ),
        "config set-context": frozenset({"cluster", "namespace", "user"}),
        "config set-credentials": frozenset(
            {"token", "username", "password", "client-certificate", "client-key"}
        ),
        "create clusterrolebinding": frozenset({"user"}),
        "create rolebinding": frozenset({"user"}),
        "debug": frozenset({"profile"}),
        "set subject": frozenset({"user"}),
    }


def test_shadowed_flag_resolves_to_the_local_definition() -> None:
    local = grammar.flag("create rolebinding", "user")
    assert local is not None
    assert not local.is_global
    assert local.multi == "array"
    glob = grammar.flag("get", "user")
    assert glob is not None
    assert glob.is_global
    assert glob.multi == ""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("create deploy", ("create", "deployment")),
        ("create cm", ("create", "configmap")),
        ("top po", ("top", "pod")),
        ("config use", ("config", "use-context")),
        ("set sa", ("set", "serviceaccount")),
    ],
)
def test_aliases_resolve_to_the_canonical_command(path: str, expected: tuple[str, ...]) -> None:
    node = grammar.command(path)
    assert node is not None
    assert node.path == expected


def test_command_names_are_case_sensitive() -> None:
    assert grammar.command("GET") is None
    assert grammar.command("get") is not None


@pytest.mark.parametrize(
    ("path", "name", "multi"),
    [
        ("apply", "filename", "slice"),
        ("create configmap", "from-file", "slice"),
        ("create configmap", "from-literal", "array"),
        ("create role", "verb", "slice"),
        ("create role", "resource", "slice"),
        ("run", "env", "array"),
        ("get", "as-group", "array"),
        ("get", "namespace", ""),
    ],
)
def test_repeatable_flags_know_whether_they_split_on_commas(
    path: str, name: str, multi: str
) -> None:
    spec = grammar.flag(path, name)
    assert spec is not None
    assert spec.multi == multi


def test_shorthand_lookup_falls_back_to_globals() -> None:
    n = grammar.flag("exec", "n")
    assert n is not None
    assert n.name == "namespace"
    assert n.is_global
    i = grammar.flag("exec", "i")
    assert i is not None
    assert i.name == "stdin"
    assert i.kind == "bool"
    assert grammar.flag("exec", "h") is not None  # cobra's help flag on every command


def test_every_subcommand_has_a_node() -> None:
    for node in grammar.COMMANDS.values():
        for sub in node.subcommands:
            assert (*node.path, sub) in grammar.COMMANDS
    assert len(grammar.COMMANDS) >= 106


def test_tables_record_the_kubectl_version() -> None:
    assert grammar.KUBECTL_VERSION.startswith("v1.32.")
