"""What a kubectl argv means, as kubectl itself would understand it."""

from __future__ import annotations

from jitkube.dataclass_lite import dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Literal

    DryRun = Literal["none", "client", "server"]
    SourceKind = Literal["file", "dir", "url", "stdin"]


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """One TYPE[/NAME] the command addresses.

    `resource` is the canonical plural (`pods`, `deployments`); `group` is the API group
    ("" for core). `known` is False for a TYPE jitkube's tables do not know (a custom
    resource, or a typo): its scope and meaning are then unknown.
    """

    resource: str
    group: str = ""
    name: str | None = None
    namespaced: bool | None = None
    known: bool = True
    as_typed: str = ""  # the TYPE token as the user wrote it

    @property
    def qualified(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


@dataclass(frozen=True, slots=True)
class FileSource:
    """One -f/--filename (or -k) argument."""

    path: str
    kind: SourceKind
    recursive: bool = False
    kustomize: bool = False


@dataclass(frozen=True, slots=True)
class Invocation:
    """A parsed kubectl command line.

    `problems` non-empty means kubectl's meaning could not be established: the command is
    judged `unknown` and refused. `flags` maps canonical long flag names (local and global
    after shadowing) to every value given, in order; boolean flags hold "true"/"false".
    `global_flags` holds only flags that resolved to kubectl's global flag set (these are
    the ones that can change cluster or identity).
    """

    argv: tuple[str, ...]
    command: tuple[str, ...] = ()
    flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    global_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    positionals: tuple[str, ...] = ()
    resources: tuple[ResourceRef, ...] = ()
    namespace: str | None = None  # effective namespace set by argv; None = context default
    all_namespaces: bool = False
    select_all: bool = False  # --all
    selector: str | None = None  # -l/--selector
    field_selector: str | None = None
    output: str | None = None  # -o/--output value, e.g. "yaml", "jsonpath={.data}"
    template: str | None = None  # --template value
    dry_run: DryRun = "none"
    raw_path: str | None = None  # --raw URI
    # after `--` for exec/run/debug/attach and create deployment/job/cronjob; for run also
    # every positional after NAME
    container_command: tuple[str, ...] = ()
    files: tuple[FileSource, ...] = ()
    verbosity: int = 0
    problems: tuple[str, ...] = ()
    help: bool = False  # -h/--help given: kubectl only prints the command's help

    @property
    def command_name(self) -> str:
        """The command path as kubectl prints it, e.g. ``rollout restart``."""
        return " ".join(self.command)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Distinct qualified resource types addressed by TYPE arguments, in order."""
        seen: dict[str, None] = {}
        for ref in self.resources:
            seen.setdefault(ref.qualified, None)
        return tuple(seen)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(ref.name for ref in self.resources if ref.name is not None)

    def flag(self, name: str) -> str | None:
        """Last value of a flag (kubectl: last wins), or None when absent."""
        values = self.flags.get(name)
        return values[-1] if values else None

    def has_true(self, name: str) -> bool:
        """True when a boolean flag is present and its last value is true."""
        values = self.flags.get(name)
        return values[-1].lower() in ("true", "1", "t") if values else False
