"""Generate completions/jitkube.bash, completions/_jitkube (zsh) and completions/jitkube.fish.

The scripts are static: the command tree is read here from the Typer app (plus the
hot-path commands `kubectl` and `check` and jitkube's global options, which Typer does not
see), so a TAB never builds the app. `jitkube kubectl …` words are completed by the
hidden hot-path helper `jitkube __complete-kubectl` (src/jitkube/completion.py).
tests/test_completions.py fails when the files drift: run `python scripts/gen_completions.py`.

Usage: gen_completions.py [OUTPUT_DIR]   (default: completions/ in the repository)
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jitkube.entry import KUBECTL_BOOL_OPTIONS, KUBECTL_VALUE_OPTIONS

REPO = Path(__file__).resolve().parents[1]
ROOT = "jitkube"


@dataclass(frozen=True)
class OptionSpec:
    names: tuple[str, ...]
    takes_value: bool
    kind: str = "none"  # none | files | dirs | choices
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandSpec:
    path: str  # "jitkube", "jitkube sandbox", …
    subcommands: tuple[tuple[str, str], ...]  # (name, one-line help)
    options: tuple[OptionSpec, ...]


HELP_OPTION = OptionSpec(("--help",), False)
# Global options jitkube.entry accepts after any of jitkube's own subcommands.
ANYWHERE_OPTIONS = (
    OptionSpec(("--debug",), False),
    OptionSpec(("--non-interactive",), False),
    OptionSpec(("--output", "-o"), True, "choices", ("json", "text")),
)
# Before the command word (jitkube.entry._take_global_options).
ROOT_OPTIONS = (
    *ANYWHERE_OPTIONS,
    *(OptionSpec((name,), True) for name in KUBECTL_VALUE_OPTIONS),
    *(OptionSpec((name,), False) for name in KUBECTL_BOOL_OPTIONS),
    OptionSpec(("--version",), False),
    HELP_OPTION,
)
HOT_COMMANDS = (
    ("check", "Judge a kubectl command without running it."),
    ("kubectl", "Run a guarded kubectl."),
)


def _option_spec(param: Any) -> OptionSpec:
    names = tuple(sorted([*param.opts, *param.secondary_opts]))
    if param.is_flag or param.count:
        return OptionSpec(names, False)
    annotation = param.type_descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return OptionSpec(names, True, "choices", tuple(str(m.value) for m in annotation))
    if annotation is Path:
        kind = "dirs" if any("dir" in n for n in names) else "files"
        return OptionSpec(names, True, kind)
    return OptionSpec(names, True)


def _merge(options: list[OptionSpec]) -> tuple[OptionSpec, ...]:
    seen: dict[tuple[str, ...], OptionSpec] = {}
    for option in options:
        seen.setdefault(option.names, option)
    return tuple(sorted(seen.values(), key=lambda o: o.names))


def collect() -> list[CommandSpec]:
    """Walk the Typer command tree (and add what only jitkube.entry knows)."""
    import typer

    from jitkube.check import _BOOL_OPTIONS, _VALUE_OPTIONS
    from jitkube.cli.app import build_app
    from jitkube.environment import Environment

    root = typer.main.get_command(build_app(Environment(environ={})))
    specs: list[CommandSpec] = []

    def walk(command: Any, path: str) -> None:
        subs = {
            name: sub
            for name, sub in sorted(getattr(command, "commands", {}).items())
            if not sub.hidden
        }
        options = [
            _option_spec(p)
            for p in command.params
            if p.param_type_name == "option" and not p.hidden
        ]
        sub_list = [(name, sub.get_short_help_str(70)) for name, sub in subs.items()]
        if path == ROOT:
            sub_list = sorted([*sub_list, *HOT_COMMANDS])
            merged = _merge(list(ROOT_OPTIONS))
        else:
            merged = _merge([*options, *ANYWHERE_OPTIONS, HELP_OPTION])
        specs.append(CommandSpec(path, tuple(sub_list), merged))
        for name, sub in subs.items():
            walk(sub, f"{path} {name}")

    walk(root, ROOT)
    check_options = [
        *(OptionSpec((n,), False) for n in _BOOL_OPTIONS),
        *(
            OptionSpec((n,), True, "files" if n in ("--policy", "--kubectl") else "none")
            for n in _VALUE_OPTIONS
        ),
        OptionSpec(("--help",), False),
        OptionSpec(("--debug",), False),
        OptionSpec(("--output",), True, "choices", ("json", "text")),
    ]
    specs.append(CommandSpec(f"{ROOT} check", (), _merge(check_options)))
    return sorted(specs, key=lambda s: s.path)


# --- bash and zsh share one walker, written in the subset both run (zsh under `emulate ksh`).

WALKER = r"""
# _jitkube_walk: from _jk_words/_jk_cword (0-based, word 0 is the program) decide what to
# complete. Sets _jk_mode (words|files|dirs|kubectl|none), _jk_cands and _jk_kargs.
_jitkube_walk() {
    local _jk_path=jitkube i=1 w cur prev n j
    cur=${_jk_words[_jk_cword]}
    prev=''
    if [ "$_jk_cword" -gt 1 ]; then prev=${_jk_words[_jk_cword-1]}; fi
    _jk_mode=none
    _jk_cands=''
    _jk_kargs=()
    while [ "$i" -lt "$_jk_cword" ]; do
        w=${_jk_words[i]}
        if [ "$_jk_path" = jitkube ] && [ "$w" = kubectl ]; then
            _jitkube_kargs_from $((i + 1))
            return
        fi
        if [ "$_jk_path" = jitkube ] && [ "$w" = check ]; then
            _jk_path='jitkube check'
            i=$((i + 1))
            while [ "$i" -lt "$_jk_cword" ]; do
                w=${_jk_words[i]}
                if [ "$w" = -- ]; then
                    _jitkube_kargs_from $((i + 1))
                    return
                fi
                case "$w" in
                    -*)
                        _jitkube_value_kind "$_jk_path" "$w"
                        if [ "$_jk_kind" != flag ]; then i=$((i + 1)); fi
                        ;;
                    *)
                        _jitkube_kargs_from "$i"
                        return
                        ;;
                esac
                i=$((i + 1))
            done
            break
        fi
        case "$w" in
            -*=*) ;;
            -*)
                _jitkube_value_kind "$_jk_path" "$w"
                if [ "$_jk_kind" != flag ]; then i=$((i + 1)); fi
                ;;
            *)
                _jitkube_spec "$_jk_path"
                case " $_jk_subs " in
                    *" $w "*) _jk_path="$_jk_path $w" ;;
                esac
                ;;
        esac
        i=$((i + 1))
    done
    case "$prev" in
        -*=*) ;;
        -*)
            _jitkube_value_kind "$_jk_path" "$prev"
            case "$_jk_kind" in
                flag) ;;
                choices:*) _jk_mode=words; _jk_cands=${_jk_kind#choices:}; return ;;
                files|dirs) _jk_mode=$_jk_kind; return ;;
                *) _jk_mode=none; return ;;
            esac
            ;;
    esac
    _jitkube_spec "$_jk_path"
    case "$cur" in
        -*) _jk_mode=words; _jk_cands=$_jk_opts ;;
        *)
            if [ "$_jk_path" = 'jitkube check' ]; then
                _jk_kargs=("$cur")
                _jk_mode=kubectl
            elif [ -n "$_jk_subs" ]; then
                _jk_mode=words
                _jk_cands=$_jk_subs
            fi
            ;;
    esac
}

# The kubectl words from index $1 to the current word; a leading `kubectl` word is dropped
# (`jitkube check -- kubectl get …` means `… -- get …`).
_jitkube_kargs_from() {
    local j=$1 n=0
    if [ "$j" -lt "$_jk_cword" ] && [ "${_jk_words[j]}" = kubectl ]; then j=$((j + 1)); fi
    while [ "$j" -le "$_jk_cword" ]; do
        _jk_kargs[n]=${_jk_words[j]}
        n=$((n + 1))
        j=$((j + 1))
    done
    _jk_mode=kubectl
}
"""


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _sh_data(specs: list[CommandSpec]) -> str:
    out = [
        "# _jitkube_spec PATH: sets _jk_subs (subcommands) and _jk_opts (options) of PATH.",
        "_jitkube_spec() {",
        '    case "$1" in',
    ]
    for spec in specs:
        subs = " ".join(name for name, _ in spec.subcommands)
        opts = " ".join(n for o in spec.options for n in o.names)
        out.append(
            f"        {_sh_quote(spec.path)}) _jk_subs={_sh_quote(subs)}; "
            f"_jk_opts={_sh_quote(opts)} ;;"
        )
    out += ["        *) _jk_subs=''; _jk_opts='' ;;", "    esac", "}", ""]
    out += [
        "# _jitkube_value_kind PATH OPTION: sets _jk_kind to flag, none, files, dirs or",
        "# choices:VALUES (unknown options count as flags).",
        "_jitkube_value_kind() {",
        '    case "$1|$2" in',
    ]
    for spec in specs:
        for option in spec.options:
            if not option.takes_value:
                continue
            kind = option.kind
            if kind == "choices":
                kind = "choices:" + " ".join(option.choices)
            for name in option.names:
                out.append(
                    f"        {_sh_quote(spec.path + '|' + name)}) _jk_kind={_sh_quote(kind)} ;;"
                )
    out += ["        *) _jk_kind=flag ;;", "    esac", "}"]
    return "\n".join(out)


HEADER = "# Generated by scripts/gen_completions.py from jitkube's CLI; do not edit.\n"

BASH_FRONT = r"""
# Run kubectl's own completion through `jitkube __complete-kubectl` (no cluster contact).
_jitkube_kubectl_reply() {
    local out line directive=0 cur=$1
    local -a cands=()
    out=$("${_jk_words[0]}" __complete-kubectl "${_jk_kargs[@]}" 2>/dev/null) || return
    [ -n "$out" ] || return
    while IFS= read -r line; do
        case "$line" in
            :*) directive=${line#:} ;;
            *) cands+=("${line%%$'\t'*}") ;;
        esac
    done <<< "$out"
    if (( directive & 1 )); then return; fi
    if (( directive & 2 )); then compopt -o nospace 2>/dev/null; fi
    if (( directive & 8 )); then
        local ext filter=''
        for ext in "${cands[@]}"; do filter+="${filter:+|}$ext"; done
        compopt -o filenames 2>/dev/null
        local had_extglob=1
        shopt -q extglob || { had_extglob=0; shopt -s extglob; }
        COMPREPLY=($(compgen -f -X "!*.@($filter)" -- "$cur") $(compgen -d -- "$cur"))
        [ "$had_extglob" = 1 ] || shopt -u extglob
        return
    fi
    if (( directive & 16 )); then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur"))
        return
    fi
    local c
    for c in "${cands[@]}"; do
        [[ $c == "$cur"* ]] && COMPREPLY+=("$c")
    done
    if [ "${#COMPREPLY[@]}" -eq 0 ] && ! (( directive & 4 )); then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

_jitkube() {
    local _jk_mode _jk_cands _jk_kind _jk_subs _jk_opts _jk_cword cur
    local -a _jk_words _jk_kargs
    COMPREPLY=()
    if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
        local words cword
        _get_comp_words_by_ref -n =: words cword
        _jk_words=("${words[@]}")
        _jk_cword=$cword
    else
        _jk_words=("${COMP_WORDS[@]}")
        _jk_cword=$COMP_CWORD
    fi
    cur=${_jk_words[_jk_cword]}
    _jitkube_walk
    case "$_jk_mode" in
        words) COMPREPLY=($(compgen -W "$_jk_cands" -- "$cur")) ;;
        files) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
        dirs) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
        kubectl) _jitkube_kubectl_reply "$cur" ;;
    esac
}

# No `-o default`: an empty answer (e.g. resource names, which need a cluster) stays empty.
complete -F _jitkube jitkube
"""

ZSH_FRONT = r"""
# Run kubectl's own completion through `jitkube __complete-kubectl` (no cluster contact).
_jitkube_kubectl_reply() {
    local out line directive=0 cand
    local -a described plain
    out=$("${_jk_words[1]}" __complete-kubectl "${_jk_kargs[@]}" 2>/dev/null) || return 1
    [[ -n $out ]] || return 1
    for line in "${(@f)out}"; do
        if [[ $line == :* ]]; then
            directive=${line#:}
        else
            cand=${line%%$'\t'*}
            plain+=("$cand")
            if [[ $line == *$'\t'* ]]; then
                described+=("${cand//:/\\:}:${line#*$'\t'}")
            else
                described+=("${cand//:/\\:}")
            fi
        fi
    done
    (( directive & 1 )) && return 1
    if (( directive & 8 )); then
        _files -g "*.(${(j:|:)plain})"
        return
    fi
    if (( directive & 16 )); then
        _files -/
        return
    fi
    if (( ${#plain} )); then
        if (( directive & 2 )); then
            _describe -t kubectl 'kubectl' described -S ''
        else
            _describe -t kubectl 'kubectl' described
        fi
    elif ! (( directive & 4 )); then
        _files
    fi
}

_jitkube() {
    local _jk_mode _jk_cands _jk_kind _jk_subs _jk_opts _jk_cword
    local -a _jk_words _jk_kargs
    _jk_words=("${words[@]}")
    _jk_cword=$((CURRENT - 1))
    _jitkube_walk_ksh
    case $_jk_mode in
        words) compadd -- ${=_jk_cands} ;;
        files) _files ;;
        dirs) _files -/ ;;
        kubectl) _jitkube_kubectl_reply ;;
    esac
}

# The shared walker indexes arrays from 0, as in bash.
_jitkube_walk_ksh() {
    emulate -L ksh
    _jitkube_walk
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _jitkube "$@"
elif (( $+functions[compdef] )); then
    compdef _jitkube jitkube
fi
"""


def render_bash(specs: list[CommandSpec]) -> str:
    return (
        HEADER
        + "# bash: source this file (bash-completion's _get_comp_words_by_ref is used if loaded).\n"
        + WALKER
        + "\n"
        + _sh_data(specs)
        + "\n"
        + BASH_FRONT
    )


def render_zsh(specs: list[CommandSpec]) -> str:
    return (
        "#compdef jitkube\n"
        + HEADER
        + "# zsh: put this file, named _jitkube, in a directory on $fpath.\n"
        + WALKER
        + "\n"
        + _sh_data(specs)
        + "\n"
        + ZSH_FRONT
    )


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


FISH_FRONT = r"""
# Run kubectl's own completion through `jitkube __complete-kubectl` (no cluster contact).
function __jitkube_kubectl_reply
    set -l prog $argv[1]
    set -e argv[1]
    set -l out (command $prog __complete-kubectl $argv 2>/dev/null)
    or return
    test (count $out) -gt 0; or return
    set -l directive (string replace -r '^:' '' -- $out[-1])
    string match -qr '^[0-9]+$' -- $directive; or return
    set -e out[-1]
    if test (math "bitand($directive, 1)") -ne 0
        return
    end
    if test (math "bitand($directive, 8)") -ne 0
        # The candidates are file extensions: offer directories and files that have one.
        set -l exts (string join '|' -- (string escape --style=regex -- $out))
        __fish_complete_path $argv[-1] | string match -r -- "^[^\t]*(?:/|\.(?:$exts))(?:\t.*)?\$"
        return
    end
    if test (math "bitand($directive, 16)") -ne 0
        __fish_complete_directories $argv[-1]
        return
    end
    if test (count $out) -gt 0
        printf '%s\n' $out
    else if test (math "bitand($directive, 4)") -eq 0
        __fish_complete_path $argv[-1]
    end
end

function __jitkube_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l path jitkube
    set -l i 2
    set -l n (count $words)
    while test $i -le $n
        set -l w $words[$i]
        if test "$path" = jitkube; and test "$w" = kubectl
            set -l kargs $words[(math $i + 1)..-1]
            __jitkube_kubectl_reply $words[1] $kargs $cur
            return
        end
        if test "$path" = jitkube; and test "$w" = check
            set path 'jitkube check'
            set i (math $i + 1)
            while test $i -le $n
                set -l w $words[$i]
                if test "$w" = --
                    set -l kargs $words[(math $i + 1)..-1]
                    test "$kargs[1]" = kubectl; and set -e kargs[1]
                    __jitkube_kubectl_reply $words[1] $kargs $cur
                    return
                else if string match -q -- '-*' $w
                    if test (__jitkube_value_kind $path $w) != flag
                        set i (math $i + 1)
                    end
                else
                    set -l kargs $words[$i..-1]
                    test "$kargs[1]" = kubectl; and set -e kargs[1]
                    __jitkube_kubectl_reply $words[1] $kargs $cur
                    return
                end
                set i (math $i + 1)
            end
            break
        end
        if string match -q -- '-*=*' $w
        else if string match -q -- '-*' $w
            if test (__jitkube_value_kind $path $w) != flag
                set i (math $i + 1)
            end
        else if contains -- $w (__jitkube_subs $path)
            set path "$path $w"
        end
        set i (math $i + 1)
    end
    set -l prev ''
    test $n -gt 1; and set prev $words[-1]
    if string match -q -- '-*' $prev; and not string match -q -- '-*=*' $prev
        set -l kind (__jitkube_value_kind $path $prev)
        switch $kind
            case flag
            case 'choices:*'
                string split ' ' -- (string replace 'choices:' '' -- $kind)
                return
            case files
                __fish_complete_path $cur
                return
            case dirs
                __fish_complete_directories $cur
                return
            case '*'
                return
        end
    end
    if string match -q -- '-*' $cur
        __jitkube_opts $path
    else if test "$path" = 'jitkube check'
        __jitkube_kubectl_reply $words[1] $cur
    else
        __jitkube_subs_described $path
    end
end

complete -c jitkube -e
complete -c jitkube -f -a '(__jitkube_complete)'
"""


def render_fish(specs: list[CommandSpec]) -> str:
    subs = ["function __jitkube_subs", "    switch $argv[1]"]
    described = ["function __jitkube_subs_described", "    switch $argv[1]"]
    opts = ["function __jitkube_opts", "    switch $argv[1]"]
    kinds = [
        "# Prints flag, none, files, dirs or choices:VALUES.",
        "function __jitkube_value_kind",
        '    switch "$argv[1]|$argv[2]"',
    ]
    for spec in specs:
        case = f"        case {_fish_quote(spec.path)}"
        if spec.subcommands:
            subs += [
                case,
                "            printf '%s\\n' "
                + " ".join(_fish_quote(n) for n, _ in spec.subcommands),
            ]
            described += [
                case,
                "            printf '%s\\n' "
                + " ".join(_fish_quote(f"{n}\t{h}" if h else n) for n, h in spec.subcommands),
            ]
        opts += [
            case,
            "            printf '%s\\n' "
            + " ".join(_fish_quote(n) for o in spec.options for n in o.names),
        ]
        for option in spec.options:
            if not option.takes_value:
                continue
            kind = option.kind
            if kind == "choices":
                kind = "choices:" + " ".join(option.choices)
            for name in option.names:
                kinds += [
                    f"        case {_fish_quote(spec.path + '|' + name)}",
                    f"            echo {_fish_quote(kind)}",
                ]
    kinds += ["        case '*'", "            echo flag"]
    body = []
    for block in (subs, described, opts, kinds):
        body.append("\n".join([*block, "    end", "end"]))
    return (
        HEADER
        + "# fish: copy to ~/.config/fish/completions/jitkube.fish.\n\n"
        + "\n\n".join(body)
        + "\n"
        + FISH_FRONT
    )


def render_all() -> dict[str, str]:
    """File name → content, for every completion script."""
    specs = collect()
    return {
        "jitkube.bash": render_bash(specs),
        "_jitkube": render_zsh(specs),
        "jitkube.fish": render_fish(specs),
    }


def main(argv: list[str]) -> None:
    out_dir = Path(argv[0]) if argv else REPO / "completions"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out_dir / name).write_text(text, encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main(sys.argv[1:])
