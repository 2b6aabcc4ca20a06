"""Generate docs/cli.md, the command-line reference, from jitkube's real CLI.

The command tree is the one scripts/gen_completions.py walks (`collect()`: the Typer app
plus the hot-path commands `kubectl` and `check` and the global options that only
jitkube.entry knows), so the completions and this page always cover the same commands.
Help texts, arguments and defaults come from the Typer/Click objects; `jitkube check`'s
help is its own `--help` text (jitkube.check.HELP). tests/test_cli_reference.py fails when
docs/cli.md drifts: run `python scripts/gen_cli_reference.py`.

Usage: gen_cli_reference.py [OUTPUT_FILE]   (default: docs/cli.md in the repository)
"""

from __future__ import annotations

import enum
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "cli.md"
HERE = Path(__file__).resolve().parent


def _completions() -> ModuleType:
    """scripts/gen_completions.py, whose walker defines the command tree."""
    if "gen_completions" in sys.modules:
        return sys.modules["gen_completions"]
    spec = importlib.util.spec_from_file_location("gen_completions", HERE / "gen_completions.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_completions"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


# Options jitkube.entry handles itself, before Typer runs (Typer never sees them). A name
# missing here stops the generator: a new option in entry.py cannot go undocumented.
ENTRY_OPTIONS: dict[str, tuple[str, str]] = {  # name → (value placeholder, meaning)
    "--agent": ("NAME", "The caller is this AI agent (also `JITKUBE_AGENT`)."),
    "--reason": (
        "TEXT",
        "Why: shown to the reviewer of a per-command approval (also `JITKUBE_REASON`).",
    ),
    "--approval-timeout": (
        "DURATION",
        "How long to wait for a reviewer, e.g. `15m` (also `JITKUBE_APPROVAL_TIMEOUT`;"
        " default {approval_timeout}).",
    ),
    "--no-wait": (
        "",
        "Do not wait for a reviewer: exit 66 at once with the approval id"
        " (also `JITKUBE_NO_WAIT=1`).",
    ),
    "--unmask": (
        "",
        "Show kubectl's output without masking secret values; the decision is raised to at"
        " least the policy's `unmask` action (approve by default).",
    ),
    "--version": ("", "Print jitkube's version and exit (`jitkube version` does the same)."),
}

KUBECTL_TEXT = """\
Run a guarded kubectl: everything after `kubectl` is kubectl's own argv, passed on
unchanged. The command is parsed as kubectl 1.32 parses it, judged (risk class and
reasons), checked against the policy that came with the session, confirmed on the terminal
or approved by a reviewer when the policy says so, run with a short-lived EKS token in a
private kubeconfig, masked where secret values may appear, and recorded in the audit
trail. kubectl's exit code passes through; jitkube's own outcomes use 64–72
([exit-codes.md](exit-codes.md)). `jitkube kubectl --help` prints kubectl's help."""

CHECK_TEXT = """\
Judge a kubectl command without running it (no session, nothing sent anywhere). Its
options are parsed by hand on the hot path; this is its `--help`:"""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table(headings: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    heads = list(headings)
    out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _anchor(path: str) -> str:
    return "#" + path.replace(" ", "-")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m" if minutes and not rest else f"{int(seconds)}s"


def _value_name(param: Any) -> str:
    """What a value looks like: PATH, N, TEXT, or the choices of an enum."""
    annotation = param.type_descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(m.value) for m in annotation)
    if annotation is Path:
        return "PATH"
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    return "TEXT"


def _default(param: Any) -> str:
    default = param.default
    if param.required or default is None or default is False or default == "":
        return ""
    if param.is_flag and param.secondary_opts:
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if param.is_flag:
        return ""
    if isinstance(default, enum.Enum):
        default = default.value
    return f"`{default}`"


def _option_row(param: Any) -> list[str]:
    names = ", ".join(f"`{n}`" for n in sorted(param.opts, key=len))
    if param.secondary_opts:
        names += " / " + ", ".join(f"`{n}`" for n in param.secondary_opts)
    value = "" if param.is_flag or param.count else _value_name(param)
    if value and param.multiple:
        value += " (repeatable)"
    meaning = param.help or ""
    if param.required:
        meaning += " Required."
    if param.envvar:
        envvars = [param.envvar] if isinstance(param.envvar, str) else param.envvar
        meaning += " Also " + ", ".join(f"`{e}`" for e in envvars) + "."
    return [names, value, _default(param), meaning.strip()]


def _argument_usage(param: Any) -> str:
    name = (param.metavar or param.name).strip("[]{}").upper()
    name += "…" if param.nargs == -1 else ""
    return name if param.required else f"[{name}]"


def _usage(path: str, command: Any) -> str:
    pieces = [path]
    if any(p.param_type_name == "option" and not p.hidden for p in command.params):
        pieces.append("[OPTIONS]")
    pieces += [_argument_usage(p) for p in command.params if p.param_type_name == "argument"]
    if getattr(command, "commands", None):
        invoke_alone = getattr(command, "invoke_without_command", False)
        pieces.append("[COMMAND [ARGS]…]" if invoke_alone else "COMMAND [ARGS]…")
    return " ".join(pieces)


def _typer_section(path: str, command: Any, summaries: dict[str, str]) -> list[str]:
    out = [f"## {path}", ""]
    help_text = (command.help or "").strip()
    if help_text:
        out += [help_text, ""]
    out += ["```text", _usage(path, command), "```", ""]
    subs = {n: s for n, s in sorted(getattr(command, "commands", {}).items()) if not s.hidden}
    if subs:
        rows = [
            [f"[{name}]({_anchor(f'{path} {name}')})", summaries[f"{path} {name}"]] for name in subs
        ]
        out += ["Commands:", "", *_table(["command", "what it does"], rows), ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if arguments:
        rows = [
            [f"`{_argument_usage(p).strip('[]')}`", "yes" if p.required else "no", p.help or ""]
            for p in arguments
        ]
        out += ["Arguments:", "", *_table(["argument", "required", "meaning"], rows), ""]
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    if options:
        rows = [_option_row(p) for p in options]
        out += ["Options:", "", *_table(["option", "value", "default", "meaning"], rows), ""]
    return out


def _summary(command: Any) -> str:
    text = (command.short_help or command.help or "").strip()
    return text.split("\n\n")[0].replace("\n", " ").strip()


def render() -> str:
    import typer

    from jitkube.check import HELP as CHECK_HELP
    from jitkube.cli.app import build_app
    from jitkube.entry import KUBECTL_BOOL_OPTIONS, KUBECTL_VALUE_OPTIONS
    from jitkube.environment import Environment

    gen = _completions()
    specs = {spec.path: spec for spec in gen.collect()}
    root: Any = typer.main.get_command(build_app(Environment(environ={})))
    root_spec = specs[gen.ROOT]
    hot = dict(gen.HOT_COMMANDS)

    def command_at(path: str) -> Any:
        command = root
        for word in path.split()[1:]:
            command = command.commands[word]
        return command

    typer_paths = [p for p in specs if p != gen.ROOT and p.split()[1] not in hot]
    summaries = {p: _summary(command_at(p)) for p in typer_paths}
    summaries |= {f"{gen.ROOT} {name}": text for name, text in hot.items()}

    # Global options: Typer's root callback documents those it declares; entry.py the rest.
    typer_root: dict[str, Any] = {n: p for p in root.params for n in (*p.opts, *p.secondary_opts)}
    anywhere = {n for o in gen.ANYWHERE_OPTIONS for n in o.names}
    kubectl_only = {*KUBECTL_BOOL_OPTIONS, *KUBECTL_VALUE_OPTIONS}
    approval_timeout = _duration(Environment(environ={}).approval_timeout)
    global_rows = []
    for option in root_spec.options:
        if option.names == ("--help",):
            continue
        first = next((n for n in option.names if n.startswith("--")), option.names[0])
        names = ", ".join(f"`{n}`" for n in sorted(option.names, key=len, reverse=True))
        if first in typer_root:
            param = typer_root[first]
            value = "|".join(option.choices) if option.choices else ""
            meaning = param.help or ""
            if _default(param):
                meaning += f" Default: {_default(param)}."
        elif first in ENTRY_OPTIONS:
            value, meaning = ENTRY_OPTIONS[first]
            meaning = meaning.format(approval_timeout=approval_timeout)
        else:
            raise SystemExit(f"gen_cli_reference: no description for the global option {first}")
        if first in anywhere:
            where = "before or after the command word (not after `kubectl` or `--`)"
        elif first in kubectl_only:
            where = "before the command word (before `kubectl`)"
        else:
            where = "alone"
        global_rows.append([names, value, where, meaning.strip()])

    check_spec = specs[f"{gen.ROOT} check"]
    undocumented = [
        n
        for o in check_spec.options
        for n in o.names
        if n not in CHECK_HELP and n not in anywhere and n != "--help"
    ]
    if undocumented:
        raise SystemExit(f"gen_cli_reference: `jitkube check --help` omits {undocumented}")

    out = [
        "# jitkube command-line reference",
        "",
        "<!-- Generated by scripts/gen_cli_reference.py from jitkube's CLI; do not edit."
        " tests/test_cli_reference.py fails when this page drifts. -->",
        "",
        (root.help or "").strip().split("\n\n")[0],
        "",
        "Every command prints its help with `--help`. Exit codes: [exit-codes.md](exit-codes.md);"
        " `--output json` envelope: [json-envelope.md](json-envelope.md).",
        "",
        "## Commands",
        "",
        *_table(
            ["command", "what it does"],
            [
                [
                    f"[jitkube {name}]({_anchor(f'{gen.ROOT} {name}')})",
                    summaries[f"{gen.ROOT} {name}"],
                ]
                for name, _ in root_spec.subcommands
            ],
        ),
        "",
        "## Global options",
        "",
        "jitkube reads these itself before any command runs; after `kubectl` every word is"
        " kubectl's own.",
        "",
        *_table(["option", "value", "where", "meaning"], global_rows),
        "",
        f"## {gen.ROOT} kubectl",
        "",
        KUBECTL_TEXT,
        "",
        "```text",
        " ".join(
            [
                gen.ROOT,
                *(
                    f"[{n} {ENTRY_OPTIONS[n][0]}]".replace(" ]", "]")
                    for n in (*KUBECTL_VALUE_OPTIONS, *KUBECTL_BOOL_OPTIONS)
                ),
                "kubectl ARGS…",
            ]
        ),
        "```",
        "",
        "The options that change how the command is approved and shown ("
        + ", ".join(f"`{n}`" for n in (*KUBECTL_VALUE_OPTIONS, *KUBECTL_BOOL_OPTIONS))
        + ") go before `kubectl`: see [Global options](#global-options).",
        "",
        f"## {gen.ROOT} check",
        "",
        CHECK_TEXT,
        "",
        "```text",
        CHECK_HELP.strip(),
        "```",
        "",
    ]
    for path in typer_paths:
        out += _typer_section(path, command_at(path), summaries)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else OUTPUT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(), encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main(sys.argv[1:])
