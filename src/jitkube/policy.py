"""Policy: ordered rules that turn an assessment into allow / confirm / approve / deny.

A policy is YAML with a versioned schema (reference: docs/policy.md). It is validated
strictly when loaded: an unknown key, a wrong type, an unknown class, action, kind or
command is an error naming the line and the field, and nothing of the policy applies.
A typo must never silently weaken a policy.

`decide()` is pure and fast: globs are compiled when the policy is loaded, so the hot
path only compares strings. The broker hands clients the policy as JSON
(`Policy.to_dict()` / `policy_from_dict()`), which loads without PyYAML.

Evaluation: the first matching rule wins (like a firewall). A command that touches
several namespaces or kinds is judged once per (namespace, kind) and the strictest
outcome wins. Hard floors no policy can lower: `bypass` and `unknown` are always
denied; agents never get `confirm` and neither does a caller without a terminal
(`confirm` becomes `approve`).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path

from jitkube.dataclass_lite import dataclass, field
from jitkube.errors import PolicyError
from jitkube.kubectl.resources import BUILTIN_RESOURCES, resolve_type
from jitkube.risk import Assessment, RiskClass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any, NoReturn


class Action(IntEnum):
    """Ordered: a later rule or modifier may raise, never silently lower."""

    ALLOW = 0
    CONFIRM = 1
    APPROVE = 2
    DENY = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Action:
        """The action for a policy word (`allow`, `confirm`, `approve`, `deny`)."""
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"unknown action {label!r}") from None


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """Who asks, where. `interactive` is True only when a human can answer on /dev/tty."""

    agent: bool = False
    interactive: bool = False
    cluster: str = ""
    role: str = ""
    namespace_default: str = "default"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    rule: str  # name of the rule that decided, "default" when none matched, "floor:<class>"
    reasons: tuple[str, ...]


# --------------------------------------------------------------------------- schema

SCHEMA_VERSION = 1
MAX_POLICY_BYTES = 256 * 1024
MAX_RULES = 500
MAX_REASON_CHARS = 500
_MAX_DEPTH = 10

TOP_LEVEL_KEYS = ("version", "protected_namespaces", "default", "unmask", "rules")
RULE_KEYS = ("name", "match", "action", "reason")
MATCH_KEYS = (
    "commands",
    "kinds",
    "namespaces",
    "protected",
    "class",
    "min_class",
    "clusters",
    "roles",
    "agent",
    "mutating",
    "exposes_secret_values",
    "cluster_scoped",
    "wide_scope",
    "codes",
)
_LIST_MATCH_KEYS = ("commands", "kinds", "namespaces", "class", "clusters", "roles", "codes")
_BOOL_MATCH_KEYS = (
    "protected",
    "agent",
    "mutating",
    "exposes_secret_values",
    "cluster_scoped",
    "wide_scope",
)

# Used when a policy omits `protected_namespaces`; `[]` switches protection off explicitly.
DEFAULT_PROTECTED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")

_ACTIONS = tuple(a.label for a in Action)
_CLASSES = tuple(c.label for c in RiskClass)
_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CUSTOM_TYPE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
_BUILTIN_GROUPS = frozenset(r.group for r in BUILTIN_RESOURCES)

# kubectl 1.32's command tree ("parent: children"; checked against `kubectl --help` by a
# test), so a misspelt command in a rule is an error instead of a rule that never matches.
_COMMAND_TREE = """
annotate api-resources api-versions attach autoscale completion cordon cp debug delete
describe diff drain edit events exec explain expose get help kustomize label logs options
patch port-forward proxy replace run scale taint uncordon version wait
apply: edit-last-applied set-last-applied view-last-applied
auth: can-i reconcile whoami
certificate: approve deny
cluster-info: dump
config: current-context delete-cluster delete-context delete-user get-clusters get-contexts
config: get-users rename-context set set-cluster set-context set-credentials unset
config: use-context view
create: clusterrole clusterrolebinding configmap cronjob deployment ingress job namespace
create: poddisruptionbudget priorityclass quota role rolebinding secret service
create: serviceaccount token
create secret: docker-registry generic tls
create service: clusterip externalname loadbalancer nodeport
plugin: list
rollout: history pause restart resume status undo
set: env image resources selector serviceaccount subject
top: node pod
"""


def _command_paths(tree: str) -> frozenset[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    for line in tree.strip().splitlines():
        parent, colon, children = line.rpartition(":")
        if not colon:
            paths.update((word,) for word in children.split())
            continue
        prefix = tuple(parent.split())
        paths.add(prefix)
        paths.update((*prefix, word) for word in children.split())
    return frozenset(paths)


KNOWN_COMMANDS = _command_paths(_COMMAND_TREE)

# Subcommand aliases kubectl accepts (from `kubectl <cmd> --help`, "Aliases:").
COMMAND_ALIASES: dict[tuple[str, ...], dict[str, str]] = {
    ("create",): {
        "cm": "configmap",
        "cj": "cronjob",
        "deploy": "deployment",
        "ing": "ingress",
        "ns": "namespace",
        "pdb": "poddisruptionbudget",
        "pc": "priorityclass",
        "resourcequota": "quota",
        "svc": "service",
        "sa": "serviceaccount",
    },
    ("set",): {"sa": "serviceaccount"},
    ("top",): {"nodes": "node", "no": "node", "pods": "pod", "po": "pod"},
    ("config",): {"use": "use-context"},
}


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions of one rule; all must hold. An empty tuple / None means "any"."""

    commands: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    protected: bool | None = None
    classes: tuple[RiskClass, ...] = ()
    min_class: RiskClass | None = None
    clusters: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    agent: bool | None = None
    mutating: bool | None = None
    exposes_secret_values: bool | None = None
    cluster_scoped: bool | None = None
    wide_scope: bool | None = None
    codes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Canonical form: lists always, kinds and commands normalized, absent keys left out."""
        out: dict[str, Any] = {}
        for key in ("commands", "kinds", "namespaces"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.protected is not None:
            out["protected"] = self.protected
        if self.classes:
            out["class"] = [c.label for c in self.classes]
        if self.min_class is not None:
            out["min_class"] = self.min_class.label
        for key in ("clusters", "roles"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        for key in ("agent", "mutating", "exposes_secret_values", "cluster_scoped", "wide_scope"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.codes:
            out["codes"] = list(self.codes)
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    match: Match
    action: Action
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "match": self.match.to_dict()}
        out["action"] = self.action.label
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Policy:
    """A validated policy. Build it with `load_policy`, `policy_from_dict` or `default_policy`."""

    rules: tuple[Rule, ...]
    default: Action
    protected_namespaces: tuple[str, ...] = DEFAULT_PROTECTED_NAMESPACES
    version: int = SCHEMA_VERSION
    # The least action for `jitkube --unmask kubectl …` (output without masking): a
    # reviewer approves by default; raise it to deny, or lower it where people may.
    unmask: Action = Action.APPROVE
    source: str = field(default="<policy>", compare=False)
    _compiled: _CompiledPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", _compile(self))

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-able form (what the broker sends; `policy_from_dict` reads it)."""
        return {
            "version": self.version,
            "protected_namespaces": list(self.protected_namespaces),
            "default": self.default.label,
            "unmask": self.unmask.label,
            "rules": [r.to_dict() for r in self.rules],
        }

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the canonical JSON form; equal policies have equal digests."""
        return policy_digest(self)


def policy_digest(policy: Policy) -> str:
    """`sha256:<hex>` of the canonical JSON of `policy` (for audit records)."""
    canonical = json.dumps(policy.to_dict(), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- loading

_Path = tuple[str | int, ...]


class _Locator:
    """Turns a path inside the policy into `source:line: field:` for error messages."""

    def __init__(self, source: str, lines: Mapping[_Path, int] | None = None) -> None:
        self.source = source
        self.lines = lines or {}

    def fail(self, path: _Path, message: str) -> NoReturn:
        line = self.lines.get(path)
        where = f"{self.source}:{line}" if line else self.source
        name = _format_path(path)
        raise PolicyError(f"{where}: {name}: {message}" if name else f"{where}: {message}")


def _format_path(path: _Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def load_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate a YAML policy. Any problem raises PolicyError; nothing is half-applied.

    Errors read like ``policy.yaml:12: rules[3].match.class: unknown class 'destructve'``
    (rule indexes count from 0).
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_POLICY_BYTES:
        raise PolicyError(
            f"{source}: policy file is too large ({size} bytes; the limit is {MAX_POLICY_BYTES})"
        )
    data, lines = _yaml_to_plain(text, source)
    return _build(data, _Locator(source, lines), source)


def load_policy_file(path: Path) -> Policy:
    """Read and validate a YAML policy file; unreadable or oversized files are PolicyErrors."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file ({exc.strerror})") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: policy file is too large (more than {MAX_POLICY_BYTES} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: the policy file is not UTF-8 text") from None
    return load_policy(text, str(path))


def policy_from_dict(data: Any, source: str = "<policy snapshot>") -> Policy:
    """Validate a policy given as plain data (the JSON snapshot the broker hands to clients)."""
    return _build(data, _Locator(source), source)


DEFAULT_POLICY_FILE = "default_policy.yaml"
# The same policy as canonical JSON, generated by scripts/gen_default_policy_json.py (a test
# fails when it drifts): `jitkube check` and `jitkube kubectl` must not need PyYAML.
DEFAULT_POLICY_SNAPSHOT = "default_policy.json"


@functools.cache
def default_policy() -> Policy:
    """The policy shipped with jitkube (`default_policy.yaml`), loaded once per process."""
    # A plain path beside this module: importlib.resources alone costs ~4 ms of start-up,
    # and jitkube is never run from a zip.
    text = Path(__file__).with_name(DEFAULT_POLICY_SNAPSHOT).read_text(encoding="utf-8")
    return policy_from_dict(json.loads(text), DEFAULT_POLICY_FILE)


def default_policy_snapshot_text(yaml_text: str) -> str:
    """The JSON snapshot file's content for the shipped YAML (used by the generator script)."""
    policy = load_policy(yaml_text, DEFAULT_POLICY_FILE)
    return json.dumps(policy.to_dict(), indent=2) + "\n"


def _yaml_to_plain(text: str, source: str) -> tuple[Any, dict[_Path, int]]:
    """YAML → plain Python data plus the line of every key/item, refusing unsafe YAML.

    Anchors and aliases are refused outright (YAML bombs, and shared nodes make no sense
    in a policy); only plain scalars, sequences and mappings with string keys pass.
    """
    import yaml  # lazily: the hot path reads the JSON snapshot instead

    def line_of(mark: Any) -> str:
        return f"{source}:{mark.line + 1}" if mark is not None else source

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: faster
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise PolicyError(
                    f"{line_of(event.start_mark)}: YAML anchors and aliases are not allowed in "
                    "a policy"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _MAX_DEPTH:  # before composing: the composer recurses
                    raise PolicyError(f"{line_of(event.start_mark)}: YAML nesting is too deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        root = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise PolicyError(f"{line_of(mark)}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise PolicyError(f"{source}: YAML nesting is too deep") from None
    if root is None:
        raise PolicyError(f"{source}: the policy is empty (it needs at least 'version: 1')")

    constructor = yaml.SafeLoader("")
    lines: dict[_Path, int] = {(): root.start_mark.line + 1}

    def scalar(node: Any, path: _Path) -> Any:
        try:
            value = constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc
            raise PolicyError(f"{line_of(node.start_mark)}: {problem}") from None
        if value is not None and not isinstance(value, str | int | float | bool):
            where = _format_path(path) or "value"
            raise PolicyError(
                f"{line_of(node.start_mark)}: {where}: unsupported YAML value of type "
                f"{type(value).__name__} (quote it to make it a string)"
            )
        return value

    def convert(node: Any, path: _Path, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise PolicyError(f"{line_of(node.start_mark)}: YAML nesting is too deep")
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise PolicyError(f"{line_of(key_node.start_mark)}: keys must be plain strings")
                key = scalar(key_node, path)
                if not isinstance(key, str) or key_node.tag == "tag:yaml.org,2002:merge":
                    raise PolicyError(
                        f"{line_of(key_node.start_mark)}: {_format_path(path) or 'top level'}: "
                        f"key {key!r} must be a plain string"
                    )
                child = (*path, key)
                if key in out:
                    first = lines.get(child)
                    raise PolicyError(
                        f"{line_of(key_node.start_mark)}: {_format_path(child)}: duplicate key "
                        f"(first given on line {first})"
                    )
                lines[child] = key_node.start_mark.line + 1
                out[key] = convert(value_node, child, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                child = (*path, index)
                lines[child] = item.start_mark.line + 1
                items.append(convert(item, child, depth + 1))
            return items
        return scalar(node, path)

    return convert(root, (), 0), lines


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _one_of(word: str, choices: tuple[str, ...]) -> str:
    import difflib  # only on the error path: keeps start-up lean

    close = difflib.get_close_matches(word, choices, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"(expected one of {', '.join(choices)}){hint}"


def _check_keys(data: dict[str, Any], allowed: tuple[str, ...], path: _Path, loc: _Locator) -> None:
    for key in data:
        if key not in allowed:
            loc.fail((*path, key), f"unknown key '{key}' {_one_of(key, allowed)}")


def _string(value: Any, path: _Path, loc: _Locator, what: str = "a string") -> str:
    if isinstance(value, bool):
        loc.fail(
            path, f"expected {what}, got a boolean (YAML reads yes/no/on/off as booleans; quote it)"
        )
    if not isinstance(value, str):
        loc.fail(path, f"expected {what}, got {_type_name(value)}")
    if not value.strip():
        loc.fail(path, "must not be empty")
    return value


def _bool(value: Any, path: _Path, loc: _Locator) -> bool:
    if not isinstance(value, bool):
        loc.fail(path, f"expected true or false, got {_type_name(value)}")
    return value


def _strings(value: Any, path: _Path, loc: _Locator) -> list[tuple[_Path, str]]:
    """A string or a non-empty list of strings (a list means any-of)."""
    if isinstance(value, str):
        return [(path, _string(value, path, loc))]
    if not isinstance(value, list):
        loc.fail(path, f"expected a string or a list of strings, got {_type_name(value)}")
    if not value:
        loc.fail(path, "an empty list would match nothing; remove the key to match anything")
    return [(p, _string(v, p, loc)) for p, v in ((((*path, i)), v) for i, v in enumerate(value))]


def _glob(pattern: str, path: _Path, loc: _Locator) -> str:
    if any(c.isspace() for c in pattern) or not pattern.isprintable():
        loc.fail(path, f"glob {pattern!r} contains whitespace or control characters")
    return pattern


def _action(value: Any, path: _Path, loc: _Locator) -> Action:
    word = _string(value, path, loc, "an action")
    if word not in _ACTIONS:
        loc.fail(path, f"unknown action '{word}' {_one_of(word, _ACTIONS)}")
    return Action.from_label(word)


def _risk_class(value: str, path: _Path, loc: _Locator) -> RiskClass:
    if value not in _CLASSES:
        loc.fail(path, f"unknown class '{value}' {_one_of(value, _CLASSES)}")
    return RiskClass.from_label(value)


def _command(value: str, path: _Path, loc: _Locator) -> str:
    words = value.split()
    resolved: list[str] = []
    for word in words:
        resolved.append(COMMAND_ALIASES.get(tuple(resolved), {}).get(word, word))
    if tuple(resolved) not in KNOWN_COMMANDS:
        known = sorted(" ".join(c) for c in KNOWN_COMMANDS)
        import difflib

        close = difflib.get_close_matches(" ".join(words), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        loc.fail(path, f"unknown kubectl command '{value}'{hint}")
    return " ".join(resolved)


def _kind(value: str, path: _Path, loc: _Locator) -> str:
    if "/" in value:
        loc.fail(path, f"'{value}': subresources are not supported; name the resource type")
    builtin = resolve_type(value)
    if builtin is not None:
        return builtin.qualified
    _plural, _, group = value.partition(".")
    if _CUSTOM_TYPE.fullmatch(value) and "." in group and group not in _BUILTIN_GROUPS:
        return value
    loc.fail(
        path,
        f"unknown kind '{value}' (use a built-in type such as pods, deployments.apps, secrets, "
        "or a custom type fully qualified as <plural>.<group>, e.g. widgets.example.com)",
    )


@functools.cache
def _known_reason_codes() -> frozenset[str]:
    """Reason codes a rule may match: exactly the codes `jitkube.risk.assess` can give."""
    from jitkube.risk import REASON_CODES

    return frozenset(REASON_CODES)


def _reason_code(value: str, path: _Path, loc: _Locator) -> str:
    known = _known_reason_codes()
    if value not in known:
        loc.fail(path, f"unknown reason code '{value}' {_one_of(value, tuple(sorted(known)))}")
    return value


def _build_match(data: Any, path: _Path, loc: _Locator) -> Match:
    if not isinstance(data, dict):
        loc.fail(path, f"expected a mapping of conditions, got {_type_name(data)}")
    _check_keys(data, MATCH_KEYS, path, loc)
    if "class" in data and "min_class" in data:
        loc.fail((*path, "min_class"), "give either 'class' or 'min_class', not both")
    lists: dict[str, tuple[str, ...]] = {}
    for key in _LIST_MATCH_KEYS:
        if key not in data or key == "class":
            continue
        items = _strings(data[key], (*path, key), loc)
        if key == "commands":
            values = [_command(v, p, loc) for p, v in items]
        elif key == "kinds":
            values = [_kind(v, p, loc) for p, v in items]
        elif key == "codes":
            values = [_reason_code(v, p, loc) for p, v in items]
        else:
            values = [_glob(v, p, loc) for p, v in items]
        lists[key] = tuple(dict.fromkeys(values))
    classes: tuple[RiskClass, ...] = ()
    if "class" in data:
        items = _strings(data["class"], (*path, "class"), loc)
        classes = tuple(dict.fromkeys(_risk_class(v, p, loc) for p, v in items))
    min_class = None
    if "min_class" in data:
        p = (*path, "min_class")
        min_class = _risk_class(_string(data["min_class"], p, loc, "a class name"), p, loc)
    flags = {k: _bool(data[k], (*path, k), loc) for k in _BOOL_MATCH_KEYS if k in data}
    return Match(
        commands=lists.get("commands", ()),
        kinds=lists.get("kinds", ()),
        namespaces=lists.get("namespaces", ()),
        protected=flags.get("protected"),
        classes=classes,
        min_class=min_class,
        clusters=lists.get("clusters", ()),
        roles=lists.get("roles", ()),
        agent=flags.get("agent"),
        mutating=flags.get("mutating"),
        exposes_secret_values=flags.get("exposes_secret_values"),
        cluster_scoped=flags.get("cluster_scoped"),
        wide_scope=flags.get("wide_scope"),
        codes=lists.get("codes", ()),
    )


def _build_rule(data: Any, path: _Path, loc: _Locator) -> Rule:
    if not isinstance(data, dict):
        loc.fail(path, f"a rule must be a mapping, got {_type_name(data)}")
    _check_keys(data, RULE_KEYS, path, loc)
    for key in ("name", "match", "action"):
        if key not in data:
            loc.fail(path, f"missing required key '{key}'")
    name = _string(data["name"], (*path, "name"), loc, "a rule name")
    if not _RULE_NAME.fullmatch(name) or name == "default":
        loc.fail(
            (*path, "name"),
            f"rule name {name!r} must be 1-64 letters, digits, '.', '_' or '-' and not 'default'",
        )
    reason = ""
    if "reason" in data:
        reason = _string(data["reason"], (*path, "reason"), loc).strip()
        if len(reason) > MAX_REASON_CHARS or not reason.isprintable():
            loc.fail(
                (*path, "reason"),
                f"must be one printable line of at most {MAX_REASON_CHARS} characters",
            )
    return Rule(
        name=name,
        match=_build_match(data["match"], (*path, "match"), loc),
        action=_action(data["action"], (*path, "action"), loc),
        reason=reason,
    )


def _build(data: Any, loc: _Locator, source: str) -> Policy:
    if not isinstance(data, dict):
        loc.fail((), f"a policy must be a mapping with 'version: 1', got {_type_name(data)}")
    _check_keys(data, TOP_LEVEL_KEYS, (), loc)
    if "version" not in data:
        loc.fail((), f"missing required key 'version' (write 'version: {SCHEMA_VERSION}')")
    version = data["version"]
    if type(version) is not int:
        loc.fail(("version",), f"expected the number {SCHEMA_VERSION}, got {_type_name(version)}")
    if version != SCHEMA_VERSION:
        loc.fail(
            ("version",),
            f"unsupported policy version {version} (this jitkube reads version {SCHEMA_VERSION})",
        )

    protected: tuple[str, ...] = DEFAULT_PROTECTED_NAMESPACES
    if "protected_namespaces" in data:
        value = data["protected_namespaces"]
        path: _Path = ("protected_namespaces",)
        if not isinstance(value, list):
            loc.fail(path, f"expected a list of namespace globs, got {_type_name(value)}")
        protected = tuple(
            dict.fromkeys(
                _glob(_string(v, (*path, i), loc), (*path, i), loc) for i, v in enumerate(value)
            )
        )

    rules: list[Rule] = []
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        loc.fail(("rules",), f"expected a list of rules, got {_type_name(raw_rules)}")
    if len(raw_rules) > MAX_RULES:
        loc.fail(("rules",), f"too many rules ({len(raw_rules)}; the limit is {MAX_RULES})")
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_rules):
        rule = _build_rule(raw, ("rules", index), loc)
        if rule.name in seen:
            loc.fail(
                ("rules", index, "name"),
                f"duplicate rule name '{rule.name}' (also rules[{seen[rule.name]}])",
            )
        seen[rule.name] = index
        rules.append(rule)
    if "default" not in data:
        loc.fail((), "missing required key 'default' (the action when no rule matches)")
    default = _action(data["default"], ("default",), loc)
    unmask = _action(data["unmask"], ("unmask",), loc) if "unmask" in data else Action.APPROVE
    try:
        return Policy(
            rules=tuple(rules),
            default=default,
            protected_namespaces=protected,
            version=version,
            unmask=unmask,
            source=source,
        )
    except _WitnessError as exc:
        raise PolicyError(f"{source}: {exc}") from None


# --------------------------------------------------------------------------- compiling


class _WitnessError(ValueError):
    pass


def _globs_regex(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


_WITNESS_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-."


def _witness(pattern: str) -> str:
    """A namespace name the glob matches, used to judge "all namespaces" (see `decide`)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            i += 1
        elif c == "?":
            out.append("x")
            i += 1
        elif c == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            end = pattern.find("]", j)
            if end < 0:
                out.append("[")
                i += 1
                continue
            bracket = pattern[i : end + 1]
            choice = next((ch for ch in _WITNESS_ALPHABET if fnmatch.fnmatchcase(ch, bracket)), "")
            out.append(choice)
            i = end + 1
        else:
            out.append(c)
            i += 1
    witness = "".join(out)
    if not fnmatch.fnmatchcase(witness, pattern):
        raise _WitnessError(f"cannot find a namespace name that glob {pattern!r} matches")
    return witness


class _CompiledRule:
    """A rule reduced to set lookups and precompiled regexes."""

    __slots__ = (
        "action",
        "agent",
        "anywhere",
        "classes",
        "cluster_re",
        "cluster_scoped",
        "codes",
        "commands",
        "exposes",
        "kinds",
        "mutating",
        "name",
        "ns_re",
        "protected",
        "reason",
        "role_re",
        "wide_scope",
    )

    def __init__(self, rule: Rule) -> None:
        m = rule.match
        self.name = rule.name
        self.action = rule.action
        self.reason = rule.reason
        self.commands = tuple(tuple(c.split()) for c in m.commands) or None
        self.kinds = frozenset(m.kinds) or None
        self.ns_re = _globs_regex(m.namespaces)
        self.protected = m.protected
        classes = set(m.classes)
        if m.min_class is not None:
            classes |= {c for c in RiskClass if c >= m.min_class}
        self.classes = frozenset(classes) or None
        self.cluster_re = _globs_regex(m.clusters)
        self.role_re = _globs_regex(m.roles)
        self.agent = m.agent
        self.mutating = m.mutating
        self.exposes = m.exposes_secret_values
        self.cluster_scoped = m.cluster_scoped
        self.wide_scope = m.wide_scope
        self.codes = frozenset(m.codes) or None
        # No condition on the namespace or kind: matches every pair `decide` judges.
        self.anywhere = self.ns_re is None and self.protected is None and self.kinds is None

    def matches_command_prefix(self, command: tuple[str, ...]) -> bool:
        return self.commands is None or any(command[: len(p)] == p for p in self.commands)

    def matches_context(self, ctx: DecisionContext) -> bool:
        if self.cluster_re is not None and not self.cluster_re.match(ctx.cluster):
            return False
        return self.role_re is None or self.role_re.match(ctx.role) is not None


_Masks = dict[object, int]


class _CompiledPolicy:
    """The rules, plus bit masks (bit i: rule i) of the rules each value of a
    command-wide condition lets through, so `candidates` is a few dict hits and ANDs."""

    __slots__ = (
        "all_namespace_witnesses",
        "any_code",
        "by_agent",
        "by_cluster_scoped",
        "by_code",
        "by_command",
        "by_exposes",
        "by_mutating",
        "by_risk",
        "by_wide_scope",
        "context_rules",
        "decisions",
        "protected_re",
        "rules",
    )

    def __init__(
        self,
        rules: tuple[_CompiledRule, ...],
        protected_re: re.Pattern[str] | None,
        witnesses: tuple[str, ...],
    ) -> None:
        self.rules = rules
        self.protected_re = protected_re
        self.all_namespace_witnesses = witnesses
        self.by_risk = _masks(rules, "classes")
        self.by_agent = _masks(rules, "agent")
        self.by_mutating = _masks(rules, "mutating")
        self.by_exposes = _masks(rules, "exposes")
        self.by_cluster_scoped = _masks(rules, "cluster_scoped")
        self.by_wide_scope = _masks(rules, "wide_scope")
        self.by_code = _masks(rules, "codes")
        self.any_code = self.by_code.pop(None)
        self.by_command: dict[tuple[str, ...], int] = {}  # filled on use
        self.context_rules = tuple(
            (1 << i, r) for i, r in enumerate(rules) if r.cluster_re or r.role_re
        )
        # (action, rule, reason, confirm note) -> Decision; bounded by the rules
        self.decisions: dict[tuple[Action, str, str, str], Decision] = {}

    def candidates(
        self, a: Assessment, ctx: DecisionContext, command: tuple[str, ...]
    ) -> list[_CompiledRule]:
        """The rules whose conditions that do not depend on the namespace or kind being
        judged all hold, in policy order."""
        # A value no rule names matches only the rules without that condition: the mask
        # under the key None.
        by = self.by_risk
        mask = by.get(a.risk, by[None])
        by = self.by_agent
        mask &= by.get(ctx.agent, by[None])
        by = self.by_mutating
        mask &= by.get(a.mutating, by[None])
        by = self.by_exposes
        mask &= by.get(a.exposes_secret_values, by[None])
        by = self.by_cluster_scoped
        mask &= by.get(a.cluster_scoped, by[None])
        by = self.by_wide_scope
        mask &= by.get(a.wide_scope, by[None])
        if mask:
            codes = self.any_code
            by = self.by_code
            for reason in a.reasons:  # a.codes, without building the set
                if reason.code:
                    codes |= by.get(reason.code, 0)
            mask &= codes
        if mask:
            mask &= self._command_mask(command)
        for bit, rule in self.context_rules:
            if mask & bit and not rule.matches_context(ctx):
                mask &= ~bit
        rules = self.rules
        out: list[_CompiledRule] = []
        while mask:
            low = mask & -mask
            out.append(rules[low.bit_length() - 1])
            mask ^= low
        return out

    def _command_mask(self, command: tuple[str, ...]) -> int:
        mask = self.by_command.get(command)
        if mask is None:
            mask = 0
            for i, rule in enumerate(self.rules):
                if rule.matches_command_prefix(command):
                    mask |= 1 << i
            if len(self.by_command) < 1024:  # bounded: `command` may come from anywhere
                self.by_command[command] = mask
        return mask


def _masks(rules: tuple[_CompiledRule, ...], attr: str) -> _Masks:
    """value -> mask of the rules whose condition `attr` is absent (None) or accepts the
    value (a bool equal to it, a set holding it). Under None, and so for any value no rule
    names, the rules without the condition."""
    wants = [getattr(rule, attr) for rule in rules]
    unconditional = 0
    for i, want in enumerate(wants):
        if want is None:
            unconditional |= 1 << i
    out: _Masks = {None: unconditional}
    for i, want in enumerate(wants):
        if want is not None:
            for value in want if isinstance(want, frozenset) else (want,):
                out[value] = out.get(value, unconditional) | 1 << i
    return out


ALL_NAMESPACES = "*"


def _compile(policy: Policy) -> _CompiledPolicy:
    patterns = list(policy.protected_namespaces)
    for rule in policy.rules:
        patterns.extend(rule.match.namespaces)
    # "*" itself stands for a namespace that no specific glob names.
    witnesses = tuple(dict.fromkeys([ALL_NAMESPACES, *(_witness(p) for p in patterns)]))
    return _CompiledPolicy(
        tuple(_CompiledRule(r) for r in policy.rules),
        _globs_regex(policy.protected_namespaces),
        witnesses,
    )


# --------------------------------------------------------------------------- deciding

_FLOOR_REASONS = {
    RiskClass.BYPASS: "refused: the command would change which cluster or identity kubectl "
    "uses (no policy can allow this)",
    RiskClass.UNKNOWN: "refused: jitkube cannot tell what this command does (no policy can "
    "allow this)",
}


_NO_RULE = "no policy rule matched; the default applies"


def decide(
    assessment: Assessment,
    context: DecisionContext,
    policy: Policy,
    *,
    command: tuple[str, ...],
) -> Decision:
    """Judge one assessed command under `policy`. Pure; no I/O.

    `command` is the kubectl command path (`Invocation.command`, e.g. ``("rollout",
    "restart")``). Each (namespace, kind) the command touches is judged by the first
    matching rule (or `default`); the strictest of those wins. Namespace "" means the
    context default; "*" (all namespaces) is judged as every namespace glob the policy
    names plus one it does not name. Then the hard floors apply.
    """
    risk = assessment.risk
    if risk >= RiskClass.BYPASS:
        return Decision(Action.DENY, f"floor:{risk.label}", (_FLOOR_REASONS[risk],))

    compiled = policy._compiled
    candidates = compiled.candidates(assessment, context, command)
    if not candidates:
        best = (policy.default, "default", _NO_RULE)  # the same for every pair
    elif candidates[0].anywhere:
        first = candidates[0]
        best = (first.action, first.name, first.reason)  # the first match for every pair
    else:
        best = _strictest(assessment, context, policy, candidates)
    action, rule_name, reason = best
    note = ""
    if action is Action.CONFIRM and (context.agent or not context.interactive):
        who = "the caller is an agent" if context.agent else "no human can answer a prompt here"
        note = f"confirm becomes approve: {who}"
    key = (action, rule_name, reason, note)
    decision = compiled.decisions.get(key)
    if decision is None:
        reasons = [reason] if reason else []
        if note:
            action = Action.APPROVE
            reasons.append(note)
        decision = compiled.decisions[key] = Decision(action, rule_name, tuple(reasons))
    return decision


def _strictest(
    assessment: Assessment,
    context: DecisionContext,
    policy: Policy,
    candidates: list[_CompiledRule],
) -> tuple[Action, str, str]:
    """(action, rule, reason): the strictest first match over the (namespace, kind) pairs."""
    compiled = policy._compiled
    namespaces: list[str | None] = []
    for ns in assessment.namespaces:
        if ns == ALL_NAMESPACES:
            namespaces.extend(compiled.all_namespace_witnesses)
        else:
            namespaces.append(ns if ns else (context.namespace_default or "default"))
    if not namespaces:
        namespaces.append(None)
    kinds: tuple[str | None, ...] = assessment.kinds or (None,)
    protected_re = compiled.protected_re

    best: tuple[Action, str, str] | None = None
    for namespace in dict.fromkeys(namespaces):
        is_protected = namespace is not None and bool(
            protected_re and protected_re.match(namespace)
        )
        for kind in kinds:
            outcome: tuple[Action, str, str] = (policy.default, "default", _NO_RULE)
            for rule in candidates:
                if rule.ns_re is not None and (
                    namespace is None or not rule.ns_re.match(namespace)
                ):
                    continue
                if rule.protected is not None and rule.protected != is_protected:
                    continue
                if rule.kinds is not None and kind not in rule.kinds:
                    continue
                outcome = (rule.action, rule.name, rule.reason)
                break
            if best is None or outcome[0] > best[0]:
                best = outcome
        if best is not None and best[0] is Action.DENY:
            break
    assert best is not None  # at least one (namespace, kind) pair is judged
    return best
