"""Property tests: the parser never raises, and its output is self-consistent.

Anything with `problems` is what risk judges `unknown` (refused), so the only hard
requirement on arbitrary input is: return an Invocation, never raise.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jitkube.kubectl import grammar
from jitkube.kubectl.invocation import Invocation
from jitkube.kubectl.parser import parse

_COMMAND_WORDS = sorted({w for node in grammar.COMMANDS.values() for w in node.children})
_FLAG_WORDS = sorted(
    {f"--{n}" for node in grammar.COMMANDS.values() for n in node.long_flags}
    | {f"-{s}" for node in grammar.COMMANDS.values() for s in node.short_flags}
)
_TOKENS = st.one_of(
    st.sampled_from(_COMMAND_WORDS),
    st.sampled_from(_FLAG_WORDS),
    st.sampled_from(["--", "-", "=", ",", "", "-A", "-itn", "-n=", "pods,svc", "pod/x", "a/b/c",
                     "all", "deploy/x", "ns/p:/x", "—namespace", "--dry-run", "--v=9", "—"]),
    st.text(alphabet="-=,/:_.abnop", max_size=8),
    st.text(max_size=6),  # full unicode
    st.builds(lambda f, v: f"{f}={v}", st.sampled_from(_FLAG_WORDS), st.text(max_size=5)),
)  # fmt: skip


def _check(inv: Invocation, argv: list[str]) -> None:
    assert isinstance(inv, Invocation)
    assert inv.argv == tuple(argv)
    if not inv.problems:
        assert inv.command == () or grammar.command(inv.command) is not None
        for name in inv.global_flags:
            assert grammar.GLOBAL_FLAGS[name].name == name
        assert inv.dry_run in ("none", "client", "server")


@settings(max_examples=600, deadline=None)
@given(st.lists(_TOKENS, max_size=10))
def test_parse_never_raises_on_kubectl_like_tokens(argv: list[str]) -> None:
    _check(parse(argv), argv)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=8))
def test_parse_never_raises_on_arbitrary_text(argv: list[str]) -> None:
    _check(parse(argv), argv)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["get", "delete", "exec", "cp", "create", "label"]),
    st.lists(_TOKENS, max_size=6),
)
def test_non_ascii_flag_names_are_never_accepted(cmd: str, rest: list[str]) -> None:
    inv = parse([cmd, *rest])
    if not inv.problems:
        for name in inv.flags:
            assert name.isascii()
        for ref in inv.resources:
            assert ref.as_typed.isascii()


# --- differential: the real kubectl decides ----------------------------------------------
#
# Appending `--help` makes kubectl do everything jitkube's parser models (command lookup,
# plugin dispatch, flag parsing, value checks) and then print the found command's help
# instead of running it. So for random argv: kubectl exits 0 exactly when the parser finds
# no problem, and the help it prints is for the command the parser found.

# proxy/port-forward would listen and edit open an editor if the parser erred; alpha and
# options print no "Usage:" line to compare with.
_NO_RUN = {"proxy", "port-forward", "edit", "alpha", "options"}
_PATHS = sorted(p for p in grammar.COMMANDS if p and p[0] not in _NO_RUN)


def _flag_tokens(path: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    node = grammar.COMMANDS[path]
    specs = [s for s in node.long_flags.values() if s.name != "help"]
    values = st.sampled_from(["x", "0", "1", "true", "maybe", "a,b", "", "5s", "-1", "a=b", "ü"])

    @st.composite
    def one(draw: st.DrawFn) -> list[str]:
        spec = draw(st.sampled_from(specs))
        form = draw(st.integers(0, 4))
        name = spec.name.replace("-", "_") if draw(st.booleans()) and form < 2 else spec.name
        if form == 0:
            return [f"--{name}"]
        if form == 1:
            return [f"--{name}={draw(values)}"]
        if form == 2:
            return [f"--{name}", draw(values)]
        if spec.short:
            return [f"-{spec.short}{draw(values)}" if form == 3 else f"-{spec.short}"]
        return [draw(st.sampled_from(["-A", "-it", "-itn", "-x", "-"]))]

    return st.lists(one(), max_size=4).map(lambda xs: [t for x in xs for t in x])


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    path = draw(st.sampled_from(_PATHS))
    words = st.sampled_from(["pods", "x", "deploy/x", "a,b", "GET", "—n", "get", "create", "", "-"])
    flags = draw(_flag_tokens(path))
    positional = draw(st.lists(words, max_size=2))
    argv = [*path, *positional, *flags]
    if draw(st.booleans()):  # move some flags in front of the command words
        k = draw(st.integers(0, len(flags)))
        argv = [*flags[:k], *path, *positional, *flags[k:]]
    return argv


@pytest.fixture(scope="module")
def kubectl_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    kubeconfig = home / "config"
    # A server on the discard port: if jitkube ever erred, kubectl could not reach anything.
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    return {
        "HOME": str(home), "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(home / "cache"),
        "KUBECTL_KUBERC": "false", "KUBECTL_ENABLE_CMD_SHADOW": "false", "PATH": os.defpath,
        "LANG": "C.UTF-8",
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.integration
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(argv=_argv())
def test_kubectl_agrees_with_the_parser_on_random_argv(
    kubectl_bin: Path, kubectl_env: dict[str, str], argv: list[str]
) -> None:
    full = [*argv, "--help"]
    inv = parse(full)
    assume(inv.help or inv.problems)  # otherwise kubectl would run the command itself
    # Deliberately stricter than kubectl here: `create X` (X not built in) is a plugin call
    # whenever kubectl-create-X is on PATH, even with --help; without one kubectl prints help.
    assume(not any("kubectl-create-" in p for p in inv.problems))
    proc = subprocess.run(
        [str(kubectl_bin), *full], capture_output=True, text=True, env=kubectl_env,
        timeout=20, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    # A bare group (`kubectl auth`) prints its help and exits 1: that is help, not an error.
    printed_help = proc.returncode == 0 or "Usage:\n" in out
    assert printed_help == (not inv.problems), (full, inv.problems, out[:300])
    if printed_help:
        usage = out.split("Usage:\n", 1)[1].split("\n", 1)[0].split()
        assert usage[: 1 + len(inv.command)] == ["kubectl", *inv.command], full
