"""`plan_masking`: which masker each output stream of one kubectl run gets.

Pure: reads the parsed invocation and its assessment only.
"""

from __future__ import annotations

import re

from jitkube.dataclass_lite import dataclass, field
from jitkube.kubectl.invocation import Invocation
from jitkube.risk import Assessment, RiskClass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    # The engine is imported only when a masker is built: deciding that `get pods` needs
    # none must not cost the masking modules' start-up (~10 ms of regexes and classes).
    from jitkube.masking.stream import Masker, Mode

_TEXT_COMMANDS = frozenset(
    {("describe",), ("logs",), ("exec",), ("attach",), ("debug",), ("run",), ("diff",),
     ("set", "env"), ("port-forward",), ("proxy",), ("cp",)}
)  # fmt: skip
_INTERACTIVE = frozenset({("edit",), ("apply", "edit-last-applied")})
_TTY_COMMANDS = frozenset({("exec",), ("attach",), ("debug",), ("run",)})
# Fields a template may print without masking: metadata that never holds a value.
_SAFE_LEAVES = frozenset(
    {
        "name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation",
        "deletionTimestamp", "generateName", "type", "kind", "apiVersion", "labels", "image",
        "imageID", "phase", "podIP", "hostIP", "nodeName", "replicas", "readyReplicas",
        "availableReplicas", "updatedReplicas", "restartCount", "ready", "started",
        "serviceAccountName", "clusterIP", "containerPort", "port", "targetPort",
        "protocol", "reason", "lastTransitionTime", "startTime", "qosClass", "immutable",
        "storageClassName", "volumeName", "capacity", "accessModes", "ownerReferences",
    }
)  # fmt: skip
# Fields a template may walk through (never print whole).
_SAFE_PATH = _SAFE_LEAVES | {
    "items", "metadata", "status", "spec", "containers", "initContainers",
    "containerStatuses", "initContainerStatuses", "conditions", "ports", "template",
    "podIPs", "addresses", "state", "running", "terminated", "waiting", "lastState",
}  # fmt: skip
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_PATH = re.compile(r"(\brange\s+)?((?:\.[A-Za-z_][\w-]*(?:\[[^\]]*\])*)+)")
_INDEX = re.compile(r"\[[\d*:\s-]*\]")


@dataclass(frozen=True, slots=True)
class MaskPlan:
    """How to mask one kubectl run's output.

    `stdout`/`stderr` are `Masker` modes. `assume_secret`: an object whose kind is not
    printed (jsonpath pieces, `--raw`) counts as a Secret. `keep`: tokens the values
    mode leaves visible (names and namespace from argv, custom-columns headers).
    `interactive`: kubectl needs the terminal (`exec -t`, `edit`): its output cannot be
    piped through a masker, so policy must decide whether it may run unmasked.
    """

    stdout: Mode
    stderr: Mode = "text"
    assume_secret: bool = True
    keep: frozenset[bytes] = field(default_factory=frozenset)
    interactive: bool = False
    reason: str = ""
    columns: tuple[bytes, ...] = ()  # custom-columns headers, in order
    safe_columns: int = 0  # how many leading columns print only metadata

    def stdout_masker(self, key: bytes | None = None) -> Masker:
        """A fresh masker for kubectl's stdout (key: the installation's masking key)."""
        from jitkube.masking.stream import Masker

        return Masker(
            self.stdout,
            key=key,
            assume_secret=self.assume_secret,
            keep=self.keep,
            columns=self.columns,
            safe_columns=self.safe_columns,
        )

    def stderr_masker(self, key: bytes | None = None) -> Masker:
        """A fresh masker for kubectl's stderr (warnings, -v logs with bodies)."""
        from jitkube.masking.stream import Masker

        return Masker(self.stderr, key=key, assume_secret=self.assume_secret, keep=self.keep)


def plan_masking(invocation: Invocation, assessment: Assessment) -> MaskPlan | None:
    """The masking plan for this run, or None when its output cannot carry values.

    Masking applies when the assessment says the output may expose secret values, and
    to every `sensitive_read` (logs, configmaps, -v bodies: the default policy lets
    agents read those outside protected namespaces because they are masked) and
    anything riskier: a cheap free-text pass costs little where nothing matches.
    """
    inv = invocation
    risk = assessment.risk
    if not assessment.exposes_secret_values and risk in (
        RiskClass.READ,
        RiskClass.WRITE,
        RiskClass.DESTRUCTIVE,
    ):
        return None
    interactive = inv.command in _INTERACTIVE or (
        inv.command in _TTY_COMMANDS and inv.has_true("tty")
    )
    secrets = any(k in ("secrets", "*") for k in assessment.kinds) or any(
        not r.known for r in inv.resources
    )
    assume = secrets or inv.raw_path is not None or not assessment.kinds
    keep = _keep_tokens(inv)
    mode, why = _stdout_mode(inv)
    columns, safe = _custom_columns(inv) if mode == "values" else ((), 0)
    return MaskPlan(
        stdout=mode,
        stderr="text",
        assume_secret=assume,
        keep=keep,
        interactive=interactive,
        reason=why,
        columns=columns,
        safe_columns=safe,
    )


def _custom_columns(inv: Invocation) -> tuple[tuple[bytes, ...], int]:
    """Headers of `-o custom-columns=` and the number of leading metadata-only columns.

    Only without --no-headers (the header gives the widths) and without a watch
    (rows printed later are aligned on their own).
    """
    out = inv.output or ""
    fmt, _, spec = out.partition("=")
    if fmt.strip().lower() != "custom-columns" or inv.has_true("no-headers"):
        return (), 0
    if inv.has_true("watch") or inv.has_true("watch-only"):
        return (), 0
    headers: list[bytes] = []
    safe = 0
    leading = True
    for column in spec.split(","):
        name, sep, expr = column.partition(":")
        if not sep or not name.strip():
            return (), 0
        headers.append(name.strip().encode())
        if leading and template_is_safe(expr):
            safe += 1
        else:
            leading = False
    return tuple(headers), safe


def _stdout_mode(inv: Invocation) -> tuple[Mode, str]:
    if inv.raw_path is not None:
        return "raw", "--raw prints API JSON: documents are masked by structure"
    out = (inv.output or "").strip()
    fmt, _, expr = out.partition("=")
    fmt = fmt.lower()
    if inv.template and fmt in ("", "go-template", "template"):
        fmt, expr = "go-template", inv.template
    if fmt == "yaml":
        return "yaml", "-o yaml: structured masking"
    if fmt == "json":
        return "json", "-o json: structured masking"
    if fmt in ("jsonpath", "jsonpath-as-json", "go-template", "template", "custom-columns"):
        if template_is_safe(expr):
            return "text", f"-o {fmt} prints only metadata fields: free-text patterns"
        return "values", f"-o {fmt} prints values without structure: every non-key token"
    if fmt.endswith("-file") or fmt == "templatefile":
        return "values", f"-o {fmt}: the template is not read: every non-key token"
    if inv.command in (("apply", "view-last-applied"), ("config", "view")):
        return "yaml", f"{' '.join(inv.command)} prints YAML: structured masking"
    if inv.command == ("cluster-info", "dump"):
        return "json", "cluster-info dump prints JSON documents and logs"
    return "text", "free-text credential patterns"


def template_is_safe(expr: str) -> bool:
    """True when a jsonpath/go-template/custom-columns expression can only print
    metadata (names, labels, kinds…), never data, annotations or env values.

    Conservative: variables, `@`/`$`, recursive descent, filters, quoted keys, bare `.`
    and any field outside a small allow-list make it unsafe.
    """
    body = _STRING_LITERAL.sub("", expr)
    if any(c in body for c in "$@'\"?") or ".." in body or "index" in body:
        return False
    # custom-columns: NAME:.path,NAME:.path
    paths = list(_PATH.finditer(body))
    leftover = _PATH.sub("", body)
    if re.search(r"(?<![\w])\.(?![A-Za-z_])", leftover):
        return False  # a bare `.` prints the whole object
    if not paths:
        return True
    for m in paths:
        if any(_INDEX.fullmatch(ix) is None for ix in re.findall(r"\[[^\]]*\]", m.group(2))):
            return False
        fields = [f for f in re.split(r"\[[^\]]*\]|\.", m.group(2)) if f]
        if any(f not in _SAFE_PATH for f in fields):
            return False
        if m.group(1) is None and fields[-1] not in _SAFE_LEAVES:
            return False
    return True


def _keep_tokens(inv: Invocation) -> frozenset[bytes]:
    words: set[str] = set()
    for ref in inv.resources:
        if ref.name:
            words.add(ref.name)
    if inv.namespace:
        words.add(inv.namespace)
    out = inv.output or ""
    if out.lower().startswith("custom-columns="):
        for column in out.partition("=")[2].split(","):
            header = column.partition(":")[0].strip()
            if header:
                words.add(header)
    return frozenset(w.encode() for w in words)
