#!/usr/bin/env python3
"""Generate jitkube's kubectl grammar tables from the pinned kubectl's own help text.

Runs `kubectl --help`, `kubectl options` and `kubectl <path> --help` for every command
node, and writes

- src/jitkube/kubectl/_grammar_data.py: plain Python literals (no JSON/YAML parse on the
  hot path), sorted, with the kubectl version;
- tests/data/kubectl_help_examples.txt: every example command line of every `Examples:`
  section, with the command it came from.

Optional-value flags (a string flag with a bare form, pflag's NoOptDefVal) are invisible
in help text. They are found by probing `kubectl <path> --help --flag`: pflag parses every
flag before cobra looks at --help, so a value flag fails with "flag needs an argument"
and an optional-value flag prints help. Nothing is ever run (help wins), so `proxy` or
`port-forward` cannot start listening. The bare value itself is not visible either: it
comes from `_BARE_VALUES` below, and the generator fails if the probe finds a flag that
table does not know.

Usage: scripts/gen_kubectl_grammar.py [--kubectl PATH] [--data-out F] [--examples-out F]
"""

from __future__ import annotations

import argparse
import functools
import operator
import os
import pprint
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_OUT = ROOT / "src" / "jitkube" / "kubectl" / "_grammar_data.py"
EXAMPLES_OUT = ROOT / "tests" / "data" / "kubectl_help_examples.txt"
PINNED_MINOR = "1.32"

# Bare value (pflag NoOptDefVal) of each optional-value flag, by long name.
# Source: kubernetes release-1.32 staging/src/k8s.io/kubectl/pkg/cmd/util/helpers.go
# (AddDryRunFlag: "unchanged"; AddValidateFlags: "strict"), delete/flags.go (cascade:
# "background"). The probe proves which flags have a bare form; this table gives its value.
_BARE_VALUES: dict[str, str] = {
    "dry-run": "unchanged",
    "validate": "strict",
    "cascade": "background",
}

# Repeatable flags that do NOT split on commas (pflag stringArray). Every other flag whose
# help default is `[]` is a stringSlice/stringToString and splits on commas. Help text
# cannot tell them apart. Source: release-1.32 flag definitions (StringArrayVar calls):
#   global --as-group (cmd/util/... genericclioptions ConfigFlags; verified: one group);
#   create rolebinding/clusterrolebinding and set subject --user/--group/--serviceaccount;
#   create configmap / secret generic --from-literal; create role/clusterrole
#   --resource-name; create ingress --rule/--annotation; create token --audience;
#   run --env/--annotations; set env -e/--env; apply/diff --prune-allowlist;
#   kustomize -e/--env and --mount; config set-credentials --exec-env.
# (debug --env/--set-image are stringToString: they split on commas like a slice.)
# Key: command path ("" = global) -> flag names.
_STRING_ARRAY: dict[str, frozenset[str]] = {
    "": frozenset({"as-group"}),
    "create rolebinding": frozenset({"user", "group", "serviceaccount"}),
    "create clusterrolebinding": frozenset({"user", "group", "serviceaccount"}),
    "set subject": frozenset({"user", "group", "serviceaccount"}),
    "create configmap": frozenset({"from-literal"}),
    "create secret generic": frozenset({"from-literal"}),
    "create role": frozenset({"resource-name"}),
    "create clusterrole": frozenset({"resource-name"}),
    "create ingress": frozenset({"rule", "annotation"}),
    "create token": frozenset({"audience"}),
    "run": frozenset({"env", "annotations"}),
    "set env": frozenset({"env"}),
    "apply": frozenset({"prune-allowlist"}),
    "diff": frozenset({"prune-allowlist"}),
    "kustomize": frozenset({"env", "mount"}),
    "config set-credentials": frozenset({"exec-env"}),
}

# Command nodes that the root help does not list but kubectl accepts.
_EXTRA_ROOT_COMMANDS = ("alpha", "help", "options")

_FLAG_RE = re.compile(r"^\s+(?:-(?P<short>\S), )?--(?P<long>[A-Za-z0-9][\w-]*)=(?P<default>.*):$")
_CMD_RE = re.compile(r"^  ([a-z][a-z0-9-]*)\s+\S")


def default_kubectl() -> Path:
    """The pinned versioned binary beside the kubectl dispatcher on PATH."""
    on_path = shutil.which("kubectl")
    if not on_path:
        raise SystemExit("kubectl not found on PATH; pass --kubectl")
    real = Path(on_path).resolve()
    pinned = real.with_name(f"kubectl.{PINNED_MINOR}")
    return pinned if pinned.is_file() else real


class Kubectl:
    """Runs kubectl with a throw-away HOME/KUBECONFIG and no server."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "KUBECONFIG": str(home / "no-kubeconfig"),
            "KUBECACHEDIR": str(home / "cache"),
            "KUBECTL_KUBERC": "false",
            "KUBECTL_ENABLE_CMD_SHADOW": "false",
            "LANG": "C",
        }
        self.home = home

    def run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.path), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
            check=False,
        )

    def help(self, path: tuple[str, ...]) -> str:
        proc = self.run([*path, "--help"])
        if proc.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(path)} --help failed: {proc.stderr}")
        return proc.stdout.replace(str(self.home), "$HOME")


def sections(text: str) -> dict[str, list[str]]:
    """Split help text into `Header:` sections (unindented lines ending in ':')."""
    out: dict[str, list[str]] = {}
    current = "_intro"
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
            out.setdefault(current, [])
            continue
        out.setdefault(current, []).append(line)
    return out


def parse_flags(lines: list[str]) -> dict[str, tuple[str, str, str]]:
    """Flag name -> (shorthand, kind, default) from an Options block."""
    flags: dict[str, tuple[str, str, str]] = {}
    for line in lines:
        m = _FLAG_RE.match(line)
        if not m:
            continue
        default = m["default"]
        kind = "bool" if default in ("true", "false") else "value"
        flags[m["long"]] = (m["short"] or "", kind, default)
    return flags


def parse_commands(secs: dict[str, list[str]], root: bool) -> list[str]:
    names: list[str] = []
    for header, lines in secs.items():
        if root:
            if header in ("Usage", "Examples", "Options", "Aliases", "_intro"):
                continue
        elif header != "Available Commands":
            continue
        for line in lines:
            m = _CMD_RE.match(line)
            if m:
                names.append(m[1])
    return names


def parse_examples(lines: list[str]) -> list[str]:
    """Example command lines that invoke kubectl, with `\\` continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in lines:
        line = raw.strip()
        if pending:
            line = pending + " " + line
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if not line or line.startswith("#"):
            continue
        if re.search(r"(^|[|;&(]\s*)kubectl\s", line):
            out.append(" ".join(line.split()))
    return out


def collect(kc: Kubectl) -> tuple[dict[tuple[str, ...], dict[str, object]], list[str]]:
    """Walk the command tree breadth-first, one level of `--help` runs in parallel."""
    nodes: dict[tuple[str, ...], dict[str, object]] = {}
    examples: list[str] = []
    level: list[tuple[str, ...]] = [()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        while level:
            texts = list(pool.map(kc.help, level))
            next_level: list[tuple[str, ...]] = []
            for path, text in zip(level, texts, strict=True):
                secs = sections(text)
                subs = parse_commands(secs, root=not path)
                if not path:
                    subs += [c for c in _EXTRA_ROOT_COMMANDS if c not in subs]
                aliases: list[str] = []
                for line in secs.get("Aliases", []):
                    if line.strip():
                        aliases = [a.strip() for a in line.split(",") if a.strip()][1:]
                        break
                nodes[path] = {
                    "aliases": tuple(sorted(aliases)),
                    "subcommands": tuple(sorted(subs)),
                    "flags": parse_flags(secs.get("Options", [])),
                }
                for ex in parse_examples(secs.get("Examples", [])):
                    examples.append(f"{' '.join(path) or '(root)'}\t{ex}")
                next_level.extend((*path, sub) for sub in subs)
            level = next_level
    return nodes, examples


def probe_optional(kc: Kubectl, path: tuple[str, ...], flag: str) -> bool:
    """True when `--flag` parses without a value (pflag NoOptDefVal)."""
    proc = kc.run([*path, "--help", f"--{flag}"])
    if proc.returncode == 0:
        return True
    if "flag needs an argument" in proc.stderr:
        return False
    raise SystemExit(f"unexpected probe result for {path} --{flag}: {proc.stderr}")


def build(kubectl: Path) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="gen-kubectl-") as tmp:
        kc = Kubectl(kubectl, Path(tmp))
        version = kc.run(["version", "--client"]).stdout.split("\n")[0].split(":")[-1].strip()
        nodes, examples = collect(kc)
        gsecs = sections(kc.run(["options"]).stdout.replace(tmp, "$HOME"))
        global_flags = parse_flags(
            gsecs.get("The following options can be passed to any command", [])
            or functools.reduce(operator.iadd, gsecs.values(), [])
        )
        # Probe every value flag for a bare form.
        jobs: list[tuple[tuple[str, ...], str]] = [
            (path, name)
            for path, node in nodes.items()
            for name, (_, kind, _) in node["flags"].items()  # type: ignore[attr-defined]
            if kind == "value"
        ]
        jobs += [(("options",), n) for n, (_, k, _) in global_flags.items() if k == "value"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda j: probe_optional(kc, *j), jobs))
        optional = {j for j, r in zip(jobs, results, strict=True) if r}

    def final(
        path: tuple[str, ...] | None, flags: dict[str, tuple[str, str, str]]
    ) -> dict[str, tuple[str, str, str, str, str]]:
        key = "" if path is None else " ".join(path)
        arrays = _STRING_ARRAY.get(key, frozenset())
        out: dict[str, tuple[str, str, str, str, str]] = {}
        for name, (short, kind, default) in sorted(flags.items()):
            bare = ""
            probe_path = ("options",) if path is None else path
            if kind == "value" and (probe_path, name) in optional:
                if name not in _BARE_VALUES:
                    raise SystemExit(f"optional-value flag with unknown bare value: {key} --{name}")
                kind, bare = "optional", _BARE_VALUES[name]
            elif kind == "bool":
                bare = "true"
            multi = ""
            if default.startswith("[") and default.endswith("]"):
                multi = "array" if name in arrays else "slice"
            elif name in arrays:
                raise SystemExit(f"_STRING_ARRAY names a non-repeatable flag: {key} --{name}")
            out[name] = (short, kind, default, bare, multi)
        return out

    for key, names in _STRING_ARRAY.items():
        flags = global_flags if not key else nodes[tuple(key.split())]["flags"]
        missing = names - set(flags)  # type: ignore[arg-type]
        if missing:
            raise SystemExit(f"_STRING_ARRAY names unknown flags: {key} {sorted(missing)}")

    commands = {
        path: {
            "aliases": node["aliases"],
            "subcommands": node["subcommands"],
            "flags": final(path, node["flags"]),  # type: ignore[arg-type]
        }
        for path, node in sorted(nodes.items())
    }
    gflags = final(None, global_flags)
    # Local flags that shadow a global flag of the same name (pflag: local wins everywhere).
    shadowed = {
        " ".join(path): tuple(sorted(set(node["flags"]) & set(gflags)))  # type: ignore[arg-type]
        for path, node in commands.items()
        if set(node["flags"]) & set(gflags)  # type: ignore[arg-type]
    }
    data = (
        '"""kubectl grammar tables. GENERATED by scripts/gen_kubectl_grammar.py; do not edit.\n\n'
        "Flag tuple: (shorthand, kind, help default, bare value, multi) where kind is\n"
        '"bool" | "value" | "optional" (a value flag with a bare form), bare value is what the\n'
        'bare form means (pflag NoOptDefVal), multi is "slice" (splits on commas), "array"\n'
        '(repeatable, no split) or "" (scalar: last wins).\n"""\n\n'
        f"KUBECTL_VERSION = {version!r}\n\n"
        f"GLOBAL_FLAGS = {pprint.pformat(gflags, width=100, sort_dicts=True)}\n\n"
        f"SHADOWED_GLOBALS = {pprint.pformat(shadowed, width=100, sort_dicts=True)}\n\n"
        f"COMMANDS = {pprint.pformat(commands, width=100, sort_dicts=True)}\n"
    )
    header = (
        f"# Example command lines from every `Examples:` section of kubectl {version} --help.\n"
        "# GENERATED by scripts/gen_kubectl_grammar.py; format: <source command>\\t<line>\n"
    )
    ex_text = header + "".join(line + "\n" for line in sorted(set(examples)))
    return data, ex_text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kubectl", type=Path, default=None)
    ap.add_argument("--data-out", type=Path, default=DATA_OUT)
    ap.add_argument("--examples-out", type=Path, default=EXAMPLES_OUT)
    args = ap.parse_args(argv)
    kubectl = args.kubectl or default_kubectl()
    data, examples = build(kubectl)
    args.data_out.write_text(data)
    args.examples_out.parent.mkdir(parents=True, exist_ok=True)
    args.examples_out.write_text(examples)
    print(f"wrote {args.data_out} and {args.examples_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
