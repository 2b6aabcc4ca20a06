"""Parse a kubectl argv exactly as kubectl 1.32 (cobra + pflag) would.

A parser that disagrees with kubectl is a security hole, so this module mirrors cobra's
`Find` (stripFlags / argsMinusFirstX), pflag's `parseArgs`, kubectl's plugin dispatch and
the resource builder's TYPE/NAME rules line by line; comments name the Go function each
piece copies. Whatever kubectl would reject, or whatever jitkube cannot interpret, ends in
`Invocation.problems` (judged `unknown`, refused). It never raises on any argv.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jitkube.kubectl.grammar import ROOT, CommandNode, FlagSpec
from jitkube.kubectl.invocation import FileSource, Invocation, ResourceRef
from jitkube.kubectl.resources import CATEGORIES, resolve_type

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Final

    from jitkube.kubectl.invocation import DryRun

_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})

# Commands whose words after `--` are a container command, not kubectl arguments.
_CONTAINER_CMD: Final = frozenset({("exec",), ("run",), ("debug",), ("attach",)})
# Commands addressing one pod (or TYPE/NAME resolving to one), builder.ResourceNames("pods").
_POD_TARGET: Final = frozenset({("exec",), ("attach",), ("logs",), ("port-forward",)})
# Generic `TYPE[,TYPE] NAME... | TYPE/NAME...` commands (builder.ResourceTypeOrNameArgs).
_GENERIC: Final = frozenset(
    {
        ("get",), ("describe",), ("delete",), ("edit",), ("patch",), ("wait",),
        ("scale",), ("autoscale",), ("expose",), ("taint",),
        ("rollout", "history"), ("rollout", "pause"), ("rollout", "restart"),
        ("rollout", "resume"), ("rollout", "status"), ("rollout", "undo"),
        ("set", "resources"), ("set", "subject"),
        ("apply", "view-last-applied"), ("apply", "edit-last-applied"),
    }
)  # fmt: skip
# TYPE NAME... followed by KEY=VALUE / KEY- pairs (cmdutil.GetResourcesAndPairs).
_PAIRS: Final = frozenset({("label",), ("annotate",), ("set", "env"), ("set", "image")})
# Commands whose positionals name objects of one fixed kind (builder.ResourceNames(kind)).
_NAMES_OF: Final[dict[tuple[str, ...], str]] = {
    ("drain",): "nodes",
    ("cordon",): "nodes",
    ("uncordon",): "nodes",
    ("certificate", "approve"): "certificatesigningrequests",
    ("certificate", "deny"): "certificatesigningrequests",
    ("top", "pod"): "pods",
    ("top", "node"): "nodes",
}
# `create <sub> NAME` -> the kind it creates.
_CREATE_KIND: Final[dict[tuple[str, ...], str]] = {
    ("create", "clusterrole"): "clusterroles",
    ("create", "clusterrolebinding"): "clusterrolebindings",
    ("create", "configmap"): "configmaps",
    ("create", "cronjob"): "cronjobs",
    ("create", "deployment"): "deployments",
    ("create", "ingress"): "ingresses",
    ("create", "job"): "jobs",
    ("create", "namespace"): "namespaces",
    ("create", "poddisruptionbudget"): "poddisruptionbudgets",
    ("create", "priorityclass"): "priorityclasses",
    ("create", "quota"): "resourcequotas",
    ("create", "role"): "roles",
    ("create", "rolebinding"): "rolebindings",
    ("create", "secret", "docker-registry"): "secrets",
    ("create", "secret", "generic"): "secrets",
    ("create", "secret", "tls"): "secrets",
    ("create", "service", "clusterip"): "services",
    ("create", "service", "externalname"): "services",
    ("create", "service", "loadbalancer"): "services",
    ("create", "service", "nodeport"): "services",
    ("create", "serviceaccount"): "serviceaccounts",
    ("create", "token"): "serviceaccounts",  # the token is minted for this SA
}
# `create <sub> NAME -- COMMAND [args...]`: the words after `--` are the container command.
_CREATE_WITH_COMMAND: Final = frozenset(
    {("create", "deployment"), ("create", "job"), ("create", "cronjob")}
)
# Group nodes that run something themselves (the rest only print help).
_RUNNABLE_GROUPS: Final = frozenset({(), ("create",), ("apply",), ("cluster-info",)})
# Groups without a Run function: cobra prints their help whatever the arguments (the other
# groups use kubectl's DefaultSubCommandRun, which fails on an unknown subcommand).
_HELP_ONLY_GROUPS: Final = frozenset({("certificate",)})
# Commands whose positionals are not Kubernetes objects (local names, paths, queries).
_NO_OBJECTS: Final = frozenset(
    {
        ("auth", "can-i"), ("auth", "whoami"), ("auth", "reconcile"), ("api-resources",),
        ("api-versions",), ("version",), ("completion",), ("options",), ("help",),
        ("plugin", "list"), ("kustomize",), ("diff",), ("replace",), ("apply",),
        ("cluster-info",), ("cluster-info", "dump"), ("events",), ("proxy",), ("alpha",),
        ("apply", "set-last-applied"), ("create",), ("config", "current-context"),
        ("config", "delete-cluster"), ("config", "delete-context"), ("config", "delete-user"),
        ("config", "get-clusters"), ("config", "get-contexts"), ("config", "get-users"),
        ("config", "rename-context"), ("config", "set"), ("config", "set-cluster"),
        ("config", "set-context"), ("config", "set-credentials"), ("config", "unset"),
        ("config", "use-context"), ("config", "view"),
    }
)  # fmt: skip


# How each command's positionals address objects, one lookup (`_resources`); where a
# command is in several tables above, the first that `_resources` names wins.
_FORMS: Final[dict[tuple[str, ...], str]] = {
    **dict.fromkeys(_NO_OBJECTS, "none"),
    ("explain",): "explain",
    ("cp",): "cp",
    **dict.fromkeys(_CREATE_KIND, "create"),
    **dict.fromkeys(_NAMES_OF, "names"),
    ("set", "selector"): "all-but-last",
    ("set", "serviceaccount"): "all-but-last",
    **dict.fromkeys(_PAIRS, "pairs"),
    **dict.fromkeys(_GENERIC, "generic"),
    ("taint",): "taint",
    **dict.fromkeys(_POD_TARGET, "pod"),
    **dict.fromkeys(_CONTAINER_CMD, "container"),
}


class _Problem(Exception):
    """Internal: parsing stops here; the message lands in Invocation.problems."""


def _has_no_opt_def_val(node: CommandNode, token: str) -> bool:
    """cobra hasNoOptDefVal / shortHasNoOptDefVal: does this flag token stand alone?

    cobra adds `-h/--help` only after Find, so during the lookup they are unknown flags,
    assumed to take a value (`kubectl -h get pods` fails like `-A get pods`).
    """
    spec = node.flag(token[2:]) if token.startswith("--") else node.short(token[1:2])
    return spec is not None and spec.takes_bare and spec.name != "help"


def _consumes_next(node: CommandNode, s: str) -> bool:
    # The two fallthrough cases of cobra's stripFlags/argsMinusFirstX.
    if not s.startswith("-") or "=" in s:
        return False
    if s.startswith("--"):
        return not _has_no_opt_def_val(node, s)
    return len(s) == 2 and not _has_no_opt_def_val(node, s)


def _strip_flags(args: list[str], node: CommandNode) -> list[str]:
    """cobra stripFlags: the non-flag words, as the command lookup sees them."""
    commands: list[str] = []
    i, n = 0, len(args)
    while i < n:
        s = args[i]
        i += 1
        if s == "--":
            break
        if _consumes_next(node, s):
            if n - i <= 1:
                break
            i += 1
            continue
        if s and not s.startswith("-"):
            commands.append(s)
    return commands


def _args_minus_first(args: list[str], node: CommandNode, word: str) -> list[str]:
    """cobra argsMinusFirstX: drop the first non-flag-value occurrence of `word`."""
    pos, n = 0, len(args)
    while pos < n:
        s = args[pos]
        if s == "--":
            break
        if _consumes_next(node, s):
            pos += 2
            continue
        if not s.startswith("-") and s == word:
            return args[:pos] + args[pos + 1 :]
        pos += 1
    return args


def _first_word(args: list[str], node: CommandNode) -> str | None:
    """The first word of `_strip_flags(args, node)` (None: no word), all that Find needs."""
    i, n = 0, len(args)
    while i < n:
        s = args[i]
        i += 1
        if s[:1] != "-":
            if s:
                return s
            continue
        if s == "--":
            return None
        if _consumes_next(node, s):
            if n - i <= 1:
                return None
            i += 1
    return None


def _find(args: list[str]) -> tuple[CommandNode, list[str], bool]:
    """cobra Command.Find: (node, remaining args, lookup error?)."""
    node = ROOT
    while True:
        word = _first_word(args, node)
        if word is None:
            return node, args, False
        child = node.child(word)
        if child is None:
            # legacyArgs: only the root errors on an unknown word.
            return node, args, node is ROOT
        # argsMinusFirstX; most often the word is the first argument
        args = args[1:] if args[0] == word else _args_minus_first(args, node, word)
        node = child


def _split_slice(value: str) -> list[str]:
    """pflag readAsCSV: comma-separated, with CSV quoting."""
    if not value:
        return []
    if '"' not in value:
        return value.split(",")
    import csv  # rare: quoted slice values

    try:
        rows = list(csv.reader([value], strict=True))
    except csv.Error as exc:
        raise _Problem(f"invalid argument {value!r}: {exc}") from None
    return rows[0] if rows else []


def _go_int(value: str, base: int) -> int | None:
    """strconv.ParseInt(value, base, 64), or None; Python's int() is laxer (spaces,
    non-ASCII digits), so the token is checked to be plain ASCII first."""
    if not value.isascii() or value != value.strip() or not value:
        return None
    try:
        n = int(value, base)
    except ValueError:
        return None
    if base == 10 and "_" in value:
        return None
    return n if -(2**63) <= n < 2**63 else None


_UNITS: Final = ("ns", "us", "µs", "μs", "ms", "s", "m", "h")


def _go_duration(value: str) -> bool:
    """time.ParseDuration accepts `value` ([-+]? (number unit)+, or a bare 0)."""
    s = value[1:] if value[:1] in ("-", "+") else value
    if s == "0":
        return True
    if not s:
        return False
    i, n = 0, len(s)
    while i < n:
        start = i
        while i < n and s[i] in "0123456789":
            i += 1
        digits = i - start
        if i < n and s[i] == ".":
            i += 1
            frac = i
            while i < n and s[i] in "0123456789":
                i += 1
            digits += i - frac
        if digits == 0:
            return False
        unit_start = i
        while i < n and s[i] not in "0123456789.":
            i += 1
        if s[unit_start:i] not in _UNITS:
            return False
    return True


def _klog_vmodule(value: str) -> bool:
    """klog moduleSpec.Set: comma-separated pattern=N, N a non-negative int32."""
    for pat in value.split(","):
        if not pat:
            continue
        parts = pat.split("=")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            return False
        level = _go_int(parts[1], 10)
        if level is None or not 0 <= level < 2**31:
            return False
    return True


def _string_to_string(value: str) -> bool:
    """pflag stringToString: every comma-separated item is key=value."""
    return all("=" in item for item in _split_slice(value)) if value else True


_CHECKS: Final[dict[str, Callable[[str], bool]]] = {
    "int": lambda v: _go_int(v, 0) is not None,
    "level": lambda v: (n := _go_int(v, 10)) is not None and -(2**31) <= n < 2**31,
    "duration": _go_duration,
    "vmodule": _klog_vmodule,
    "map": _string_to_string,
}
# kubectl profiling.go initProfiling (PersistentPreRun, so after --help): accepted names.
_PPROF: Final = frozenset({"none", "cpu", "heap", "goroutine", "threadcreate", "block", "mutex"})


class _Flags:
    """Collected flag values: canonical long name -> values, in order."""

    __slots__ = ("global_values", "values")

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}
        self.global_values: dict[str, list[str]] = {}

    def set(self, spec: FlagSpec, value: str, shown: str) -> None:
        if spec.kind == "bool":
            if value in _TRUE:
                value = "true"
            elif value in _FALSE:
                value = "false"
            else:
                raise _Problem(f'invalid argument "{value}" for "{shown}" flag: not a boolean')
        elif spec.check and not _CHECKS[spec.check](value):
            raise _Problem(f'invalid argument "{value}" for "{shown}" flag')
        if spec.multi == "slice":
            if "\n" in value or "\r" in value:
                # Go's csv reader would keep only the first line: refuse rather than guess.
                raise _Problem(f'newline in list value of "{shown}" flag')
            parts = _split_slice(value)
        else:
            parts = [value]
        self.values.setdefault(spec.name, []).extend(parts)
        if spec.is_global:
            self.global_values.setdefault(spec.name, []).extend(parts)


def _parse_flags(node: CommandNode, args: list[str], flags: _Flags) -> tuple[list[str], int]:
    """pflag FlagSet.Parse (interspersed): positionals and the index of `--` (-1: none)."""
    positionals: list[str] = []
    dash = -1
    i, n = 0, len(args)
    while i < n:
        s = args[i]
        i += 1
        if len(s) < 2 or s[0] != "-":
            positionals.append(s)
            continue
        if s[1] == "-":
            if len(s) == 2:  # "--" ends flags
                dash = len(positionals)
                positionals.extend(args[i:])
                break
            body = s[2:]
            if body[0] in "-=":
                raise _Problem(f"bad flag syntax: {s}")
            name, eq, value = body.partition("=")
            if not name.isascii():
                raise _Problem(f"non-ASCII flag name: {s!r}")
            spec = node.flag(name)
            if spec is None:
                raise _Problem(f"unknown flag: --{name}")
            if eq:
                pass
            elif spec.takes_bare:
                value = spec.bare
            elif i < n:
                value = args[i]
                i += 1
            else:
                raise _Problem(f"flag needs an argument: --{name}")
            flags.set(spec, value, name)
            continue
        shorthands = s[1:]  # a non-ASCII letter is simply an unknown shorthand
        while shorthands:  # pflag parseSingleShortArg, one letter at a time
            letter = shorthands[0]
            spec = node.short(letter)
            if spec is None:
                raise _Problem(f"unknown shorthand flag: {letter!r} in {s}")
            if len(shorthands) > 2 and shorthands[1] == "=":
                value, shorthands = shorthands[2:], ""
            elif spec.takes_bare:
                value, shorthands = spec.bare, shorthands[1:]
            elif len(shorthands) > 1:
                value, shorthands = shorthands[1:], ""
            elif i < n:
                value, shorthands = args[i], ""
                i += 1
            else:
                raise _Problem(f"flag needs an argument: {letter!r} in {s}")
            flags.set(spec, value, letter)
    return positionals, dash


_TypeInfo = tuple[tuple[str, str, "bool | None", bool], ...]
_TYPE_CACHE: dict[str, _TypeInfo] = {}


def _type_info(token: str) -> _TypeInfo:
    """(resource, group, namespaced, known) for each type a TYPE token names; memoized."""
    info = _TYPE_CACHE.get(token)
    if info is not None:
        return info
    if not token.isascii():
        raise _Problem(f"non-ASCII resource type: {token!r}")
    members = CATEGORIES.get(token)
    if members is not None:
        info = tuple((r.plural, r.group, r.namespaced, True) for r in members)
    else:
        rtype = resolve_type(token)
        if rtype is None:
            info = ((token.lower(), "", None, False),)
        else:
            info = ((rtype.plural, rtype.group, rtype.namespaced, True),)
    if len(_TYPE_CACHE) < 4096:  # bounded: argv is attacker-controlled
        _TYPE_CACHE[token] = info
    return info


def _type_ref(token: str, name: str | None, out: list[ResourceRef]) -> None:
    """Append refs for one TYPE token (category, built-in, or unknown custom resource)."""
    if name == "":
        raise _Problem("resource name may not be empty")
    for resource, group, namespaced, known in _type_info(token):
        out.append(ResourceRef(resource, group, name, namespaced, known, token))


def _split_types(token: str) -> list[str]:
    """SplitResourceArgument, stricter: an empty element (space or stray comma) is refused."""
    if token and "," not in token:
        return [token]
    parts = token.split(",")
    if "" in parts:
        raise _Problem(f"empty resource type in {token!r}")
    seen: dict[str, None] = {}
    for p in parts:
        seen.setdefault(p, None)
    return list(seen)


def _tuple(arg: str) -> tuple[str, str]:
    """splitResourceTypeName for a TYPE/NAME argument."""
    seg = arg.split("/")
    if len(seg) != 2:
        raise _Problem(f"arguments in resource/name form may not have more than one slash: {arg}")
    rtype, name = seg
    if not rtype or not name or len([p for p in rtype.split(",") if p]) != 1 or "," in rtype:
        raise _Problem(
            f"arguments in resource/name form must have a single resource and name: {arg}"
        )
    return rtype, name


def _generic(args: Sequence[str]) -> list[ResourceRef]:
    """builder.ResourceTypeOrNameArgs: `TYPE[,TYPE] [NAME...]` or `TYPE/NAME...`."""
    out: list[ResourceRef] = []
    if not args:
        return out
    slashed = 0
    for a in args:
        if "/" in a:
            slashed += 1
    if slashed and slashed != len(args):
        raise _Problem("TYPE NAME cannot be mixed with TYPE/NAME arguments")
    if slashed:
        for a in args:
            rtype, name = _tuple(a)
            _type_ref(rtype, name, out)
        return out
    types = _split_types(args[0])
    if len(types) > 1 and len(args) > 1:
        # normalizeMultipleResourcesArgs: `a,b x y` -> a/x a/y b/x b/y
        for t in types:
            for name in args[1:]:
                if "/" in name:
                    raise _Problem(f"more than one slash in {t}/{name}")
                _type_ref(t, name, out)
        return out
    names: Sequence[str | None] = args[1:] or [None]
    for t in types:
        for maybe_name in names:
            _type_ref(t, maybe_name, out)
    return out


def _names_of(kind: str, args: Sequence[str]) -> list[ResourceRef]:
    """builder.ResourceNames(kind, args...): NAME means `kind`, TYPE/NAME its own type."""
    out: list[ResourceRef] = []
    for a in args:
        if "/" in a:
            rtype, name = _tuple(a)
            _type_ref(rtype, name, out)
        else:
            _type_ref(kind, a, out)
    return out


def _pairs(command: tuple[str, ...], args: Sequence[str]) -> list[str]:
    """cmdutil.GetResourcesAndPairs: the resource part, before the first KEY=VAL / KEY-."""
    resources: list[str] = []
    found = False
    for s in args:
        pair = ("=" in s and s[0] != "=") or (s.endswith("-") and s != "-")
        if pair:
            found = True
        elif found:
            raise _Problem(f"all resources must be specified before {command[-1]} changes: {s}")
        else:
            resources.append(s)
    return resources


def _taint_resources(args: Sequence[str]) -> list[str]:
    """taint Complete: resources come before the first taint spec."""
    resources: list[str] = []
    found = False
    for s in args:
        spec = "=" in s or ":" in s or s.endswith("-")
        if spec:
            found = True
        elif found:
            raise _Problem(f"all resources must be specified before taint changes: {s}")
        else:
            resources.append(s)
    return resources


def _cp_namespace(args: Sequence[str]) -> tuple[list[ResourceRef], str | None]:
    """cp extractFileSpec: `[[namespace/]pod:]path`; the spec's namespace wins over -n."""
    refs: list[ResourceRef] = []
    namespace: str | None = None
    if len(args) != 2:
        raise _Problem("cp needs exactly a source and a destination")
    for arg in args:
        i = arg.find(":")
        if i == 0:
            raise _Problem(f"filespec must match the canonical format: {arg}")
        if i < 0:
            continue
        pieces = arg[:i].split("/")
        if len(pieces) > 2:
            raise _Problem(f"filespec must match the canonical format: {arg}")
        if len(pieces) == 2:
            namespace = pieces[0] or None
        _type_ref("pods", pieces[-1], refs)
    if len(refs) == 2:
        raise _Problem("one of src or dest must be a local file specification")
    return refs, namespace


def _resources(
    command: tuple[str, ...], pos: list[str], dash: int, flags: dict[str, list[str]]
) -> tuple[list[ResourceRef], tuple[str, ...], str | None]:
    """Objects addressed by the positionals: (refs, container command, cp namespace)."""
    form = _FORMS.get(command)
    if form == "generic":
        return _generic(pos), (), None
    if form == "pod":  # logs POD [CONTAINER], port-forward POD PORT...
        return _names_of("pods", pos[:1]), (), None
    if form == "none":
        return [], (), None
    before = pos if dash < 0 else pos[:dash]
    after = () if dash < 0 else tuple(pos[dash:])
    refs: list[ResourceRef] = []
    if form == "container":
        if command == ("run",):
            if not before:
                raise _Problem("NAME is required for run")
            refs = _names_of("pods", before[:1])
            # run: everything after NAME is the container's command/args, `--` or not.
            return refs, (*before[1:], *after), None
        if command == ("debug",):
            return _names_of("pods", before), after, None
        if command == ("exec",) and len(before) > 1:
            raise _Problem("exec POD COMMAND without `--` is not supported by kubectl 1.32")
        return _names_of("pods", before[:1]), after, None
    if form == "taint":
        return _generic(_taint_resources(pos)), (), None
    if form == "pairs":
        return _generic(_pairs(command, pos)), (), None
    if form == "all-but-last":
        # last positional is the selector / service account, the rest are resources
        return _generic(pos[:-1]), (), None
    if form == "names":
        return _names_of(_NAMES_OF[command], pos), (), None
    if form == "create":
        kind = _CREATE_KIND[command]
        if len(before) > 1:
            raise _Problem(f"{' '.join(command)} takes one NAME, got {len(before)}")
        if after and command not in _CREATE_WITH_COMMAND:
            raise _Problem(f"{' '.join(command)} takes no arguments after `--`")
        _type_ref(kind, before[0] if before else None, refs)
        # create deployment/job/cronjob NAME --image=X -- COMMAND: the container's command
        return refs, after, None
    if form == "cp":
        refs, ns = _cp_namespace(pos)
        return refs, (), ns
    if form == "explain":
        if pos:
            _type_ref(pos[0].split(".", 1)[0], None, refs)
        return refs, (), None
    raise _Problem(f"no resource rules for command {' '.join(command)!r}")


def _dry_run(values: list[str] | None, bare: str) -> DryRun:
    """cmdutil.GetDryRunStrategy."""
    if not values:
        return "none"
    v = values[-1]
    if v in _TRUE:
        return "client"
    if v in _FALSE:
        return "none"
    if v == bare or v == "client":
        return "client"
    if v == "server":
        return "server"
    if v == "none":
        return "none"
    raise _Problem(f'invalid dry-run value ({v}). Must be "none", "server", or "client"')


def _sources(flags: dict[str, list[str]]) -> tuple[FileSource, ...]:
    recursive = (flags.get("recursive") or ["false"])[-1] == "true"
    out: list[FileSource] = []
    for path in flags.get("filename", ()):
        if path == "-":
            out.append(FileSource(path, "stdin", recursive))
        elif path.startswith(("http://", "https://")):
            out.append(FileSource(path, "url", recursive))
        else:
            out.append(FileSource(path, "dir" if path.endswith("/") else "file", recursive))
    kustomize = flags.get("kustomize")
    if kustomize and kustomize[-1]:
        k = kustomize[-1]
        out.append(FileSource(k, "url" if k.startswith(("http://", "https://")) else "dir",
                              False, True))  # fmt: skip
    return tuple(out)


def _last(flags: dict[str, list[str]], name: str) -> str | None:
    values = flags.get(name)
    return values[-1] if values else None


def parse(argv: Sequence[str]) -> Invocation:
    """Parse kubectl arguments (without the leading `kubectl`) as kubectl 1.32 would.

    Never raises: anything kubectl would reject, or whose meaning jitkube cannot pin down
    (plugins, unknown commands or flags, non-ASCII flag/TYPE tokens), is reported in
    `Invocation.problems` and must be judged `unknown`.
    """
    args = list(argv)
    flags = _Flags()
    command: tuple[str, ...] = ()
    try:
        if "\0" in "".join(args):
            raise _Problem("NUL byte in an argument")
        node, rest, failed = _find(args)
        command = node.path
        if failed:
            if args[0].startswith("-"):
                # kubectl HandlePluginCommand: no plugin name before the first flag
                raise _Problem(f"flags cannot be placed before plugin name: {args[0]}")
            word = _strip_flags(args, ROOT)[0]
            raise _Problem(f"plugin or unknown command: {word!r} (plugins are never run)")
        if command[:1] == ("help",):
            # cobra adds `help` only at Execute; kubectl skips plugin lookup for it only
            # when it is the first word not starting with "-" (`-n x help` is a plugin call).
            first = next((a for a in args if not a.startswith("-")), None)
            if first != "help":
                raise _Problem(f"flags cannot be placed before plugin name: {args[0]}")
        if command == ("create",) and rest and not rest[0].startswith("-"):
            # kubectl's command-shadow dispatch runs before flag parsing and --help: `create X`
            # with X not built in execs kubectl-create-X when such a plugin is on PATH.
            raise _Problem(
                f"create {rest[0]!r}: not a built-in create subcommand "
                f"(kubectl would run plugin kubectl-create-{rest[0]})"
            )
        positionals, dash = _parse_flags(node, rest, flags)
        values = flags.values
        if _last(values, "help") == "true" or node.path in _HELP_ONLY_GROUPS:
            return _build(args, command, flags, positionals, help_only=True)
        # From here on cobra runs PersistentPreRun (profile check), then the command.
        profile = _last(flags.global_values, "profile")
        if profile is not None and profile not in _PPROF:
            raise _Problem(f"unknown profile {profile!r}")
        if node.subcommands and node.path not in _RUNNABLE_GROUPS:
            if positionals:
                raise _Problem(f"unknown subcommand {positionals[0]!r} for {node.name!r}")
            # a bare group (`kubectl rollout`) only prints its help
            return _build(args, command, flags, positionals, help_only=True)
        if node.path in (("create",), ("apply",), ("cluster-info",)) and positionals:
            raise _Problem(f"unexpected arguments for {node.name!r}: {positionals}")
        return _build(args, command, flags, positionals, dash=dash)
    except _Problem as exc:
        return Invocation(
            argv=tuple(args),
            command=command,
            flags={k: tuple(v) for k, v in flags.values.items()},
            global_flags={k: tuple(v) for k, v in flags.global_values.items()},
            problems=(str(exc),),
        )


def _build(
    args: list[str],
    command: tuple[str, ...],
    flags: _Flags,
    positionals: list[str],
    *,
    dash: int = -1,
    help_only: bool = False,
) -> Invocation:
    values = flags.values
    refs: list[ResourceRef] = []
    container: tuple[str, ...] = ()
    cp_ns: str | None = None
    if not help_only and command:
        refs, container, cp_ns = _resources(command, positionals, dash, values)
    # Only the global --namespace sets the request namespace (config set-context shadows it).
    namespace = cp_ns if cp_ns is not None else (_last(flags.global_values, "namespace") or None)
    last = {k: v[-1] for k, v in values.items() if v}.get  # kubectl: the last value wins
    verbosity = 0
    v = last("v")
    if v is not None:
        verbosity = _go_int(v, 10) or 0  # checked ("level") when the flag was set
    dry: DryRun = "none"
    if not help_only and "dry-run" in values:
        dry = _dry_run(values["dry-run"], "unchanged")
    # Positional (in field order): the keyword form costs twice as much.
    return Invocation(
        tuple(args),  # argv
        command,
        {k: tuple(v) for k, v in values.items()},  # flags
        {k: tuple(v) for k, v in flags.global_values.items()},  # global_flags
        tuple(positionals),
        tuple(refs),  # resources
        namespace,
        last("all-namespaces") == "true",  # all_namespaces
        last("all") == "true",  # select_all
        last("selector") or None,
        last("field-selector") or None,
        last("output") or None,
        last("template") or None,
        dry,  # dry_run
        last("raw") or None,  # raw_path
        container,  # container_command
        _sources(values) if "filename" in values or "kustomize" in values else (),  # files
        verbosity,
        (),  # problems
        help_only,  # help
    )
