"""Lookup API over the generated kubectl grammar tables (`_grammar_data`).

Every command node gets, on first lookup, one merged flag table: its local flags, cobra's
`-h/--help`, and kubectl's global flags, where a local flag of the same long name shadows
the global one everywhere on the line (pflag merges persistent flags only when the name is
free). Lookups on the parser's hot path are then single dict hits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from jitkube.dataclass_lite import dataclass
from jitkube.kubectl import _grammar_data as _data

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Literal

    FlagKind = Literal["bool", "value", "optional"]
    Multi = Literal["", "slice", "array"]

KUBECTL_VERSION: str = _data.KUBECTL_VERSION


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One kubectl flag as a command sees it.

    `kind`: "bool" (never consumes the next token), "value" (needs a value, takes the
    next token when none is attached), "optional" (a value flag with a bare form that
    means `bare`). `multi`: "slice" (repeatable, splits on commas), "array" (repeatable,
    no split), "" (scalar: last wins). `is_global`: the flag belongs to kubectl's global
    set (after shadowing), i.e. it can change cluster, identity or logging.
    """

    name: str
    short: str
    kind: FlagKind
    default: str
    bare: str
    multi: Multi
    is_global: bool
    # How pflag checks the value while parsing: "int", "level" (klog -v), "duration",
    # "vmodule", "map" (key=value list) or "" (any string). Derived from the help default.
    check: str = ""

    @property
    def takes_bare(self) -> bool:
        """True when `--flag` alone is complete (bool or optional-value)."""
        return self.kind != "value"


@dataclass(frozen=True, slots=True)
class CommandNode:
    """A kubectl command node (`()` is the root, `("rollout", "restart")` a leaf)."""

    path: tuple[str, ...]
    aliases: tuple[str, ...]
    subcommands: tuple[str, ...]
    children: dict[str, str]  # name or alias -> canonical child name
    long_flags: dict[str, FlagSpec]  # merged: local, help, then unshadowed globals
    short_flags: dict[str, FlagSpec]
    local_flags: frozenset[str]

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def child(self, word: str) -> CommandNode | None:
        """The subcommand `word` names (canonical name or alias; case-sensitive)."""
        canonical = self.children.get(word)
        return COMMANDS[(*self.path, canonical)] if canonical is not None else None

    def flag(self, name: str) -> FlagSpec | None:
        """Flag by long name (`_` normalized to `-` like kubectl's WordSepNormalizeFunc)."""
        spec = self.long_flags.get(name)
        if spec is None and "_" in name:
            spec = self.long_flags.get(name.replace("_", "-"))
        return spec

    def short(self, letter: str) -> FlagSpec | None:
        """Flag by one-letter shorthand."""
        return self.short_flags.get(letter)


def _check_of(name: str, kind: str, default: str, multi: str) -> str:
    if kind != "value":
        return ""
    if name in ("env", "set-image") and multi == "slice":  # debug: stringToString
        return "map"
    if name == "v":  # klog Level: strconv.ParseInt(value, 10, 32)
        return "level"
    if name == "vmodule":
        return "vmodule"
    if name == "aggregation-rule":  # mapStringString, shown with an empty default
        return "map"
    if default.lstrip("-").isdigit():
        return "int"
    if default[:1].isdigit() and default.endswith("s"):  # 0s, 1m0s, 20s: time.Duration
        return "duration"
    return ""


def _spec(name: str, raw: tuple[str, str, str, str, str], is_global: bool) -> FlagSpec:
    short, kind, default, bare, multi = raw
    check = _check_of(name, kind, default, multi)
    return FlagSpec(name, short, kind, default, bare, multi, is_global, check)  # type: ignore[arg-type]


GLOBAL_FLAGS: dict[str, FlagSpec] = {
    name: _spec(name, raw, True) for name, raw in _data.GLOBAL_FLAGS.items()
}
_HELP = FlagSpec("help", "h", "bool", "false", "true", "", False)


def _build_node(path: tuple[str, ...]) -> CommandNode:
    raw_nodes: dict[tuple[str, ...], dict[str, object]] = _data.COMMANDS  # type: ignore[assignment]
    raw = raw_nodes[path]
    local: dict[str, tuple[str, str, str, str, str]] = raw["flags"]  # type: ignore[assignment]
    long_flags = {name: _spec(name, spec, False) for name, spec in local.items()}
    long_flags.setdefault("help", _HELP)
    for name, spec in GLOBAL_FLAGS.items():
        long_flags.setdefault(name, spec)
    short_flags: dict[str, FlagSpec] = {}
    # Locals first so a local shorthand wins (none collide in 1.32; keep it explicit).
    for spec in sorted(long_flags.values(), key=lambda s: s.is_global):
        if spec.short:
            short_flags.setdefault(spec.short, spec)
    children: dict[str, str] = {}
    subs: tuple[str, ...] = raw["subcommands"]  # type: ignore[assignment]
    for sub in subs:
        children[sub] = sub
        sub_raw = raw_nodes.get((*path, sub))
        if sub_raw is not None:
            for alias in sub_raw["aliases"]:  # type: ignore[attr-defined]
                children.setdefault(alias, sub)
    return CommandNode(
        path=path,
        aliases=raw["aliases"],  # type: ignore[arg-type]
        subcommands=subs,
        children=children,
        long_flags=long_flags,
        short_flags=short_flags,
        local_flags=frozenset(local) | {"help"},
    )


class _CommandTable(Mapping[tuple[str, ...], CommandNode]):
    """Every command node, each built on first lookup.

    Building all ~110 nodes (~900 flag specs) costs ~3 ms of start-up; one `kubectl get`
    needs two of them.
    """

    def __init__(self) -> None:
        self._built: dict[tuple[str, ...], CommandNode] = {}

    def __getitem__(self, path: tuple[str, ...]) -> CommandNode:
        node = self._built.get(path)
        if node is None:
            node = self._built[path] = _build_node(path)  # KeyError for an unknown path
        return node

    def __contains__(self, path: object) -> bool:
        return path in _data.COMMANDS

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return iter(_data.COMMANDS)

    def __len__(self) -> int:
        return len(_data.COMMANDS)


COMMANDS: Mapping[tuple[str, ...], CommandNode] = _CommandTable()
ROOT: CommandNode = COMMANDS[()]


def command(path: tuple[str, ...] | str) -> CommandNode | None:
    """Command node by canonical path (tuple, or space-separated string); aliases resolve."""
    words = tuple(path.split()) if isinstance(path, str) else path
    node: CommandNode | None = ROOT
    for word in words:
        if node is None:
            return None
        node = node.child(word)
    return node


def flag(path: tuple[str, ...] | str, name: str) -> FlagSpec | None:
    """Flag `name` (long name, or a one-letter shorthand) as command `path` sees it."""
    node = command(path)
    if node is None:
        return None
    if len(name) == 1:
        return node.short(name)
    return node.flag(name)


def shadowing_flags() -> dict[str, frozenset[str]]:
    """Command path -> local flags that shadow a global flag of the same name."""
    return {path: frozenset(names) for path, names in _data.SHADOWED_GLOBALS.items()}
