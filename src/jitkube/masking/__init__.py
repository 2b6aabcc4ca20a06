"""Output masking for `jitkube kubectl`: secret values never reach the caller.

Stdlib only (this runs on the hot path). The runner calls::

    plan = plan_masking(invocation, assessment)     # None: nothing to mask
    out, err = plan.stdout_masker(key), plan.stderr_masker(key)
    write(out.feed(chunk)) … write(out.close()); audit(out.masked_count + err.masked_count)

Modes: `yaml`/`json` mask by structure (Secret data, last-applied annotations, secret-
like env values and credential keys) and free-text patterns elsewhere; `values`
(jsonpath/go-template/custom-columns that may print values) masks every token that is
not a key; `text` (logs, exec, describe, stderr) masks credential patterns; `raw`
parses each JSON line (`--raw`).
"""

from __future__ import annotations

from jitkube.masking.plan import MaskPlan, plan_masking, template_is_safe

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Any

    from jitkube.masking.digest import PLACEHOLDER_RE, PLACEHOLDER_RE_TEXT, Digester
    from jitkube.masking.key import load_or_create_key
    from jitkube.masking.stream import MAX_LINE, MODES, Masker, Mode

# The engine loads on first use: deciding that `get pods` needs no masking must not pay
# for the masking modules' regexes and classes (~10 ms of start-up).
_LAZY = {
    "PLACEHOLDER_RE": "jitkube.masking.digest",
    "PLACEHOLDER_RE_TEXT": "jitkube.masking.digest",
    "Digester": "jitkube.masking.digest",
    "load_or_create_key": "jitkube.masking.key",
    "MAX_LINE": "jitkube.masking.stream",
    "MODES": "jitkube.masking.stream",
    "Masker": "jitkube.masking.stream",
    "Mode": "jitkube.masking.stream",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jitkube.masking' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "MAX_LINE",
    "MODES",
    "PLACEHOLDER_RE",
    "PLACEHOLDER_RE_TEXT",
    "Digester",
    "MaskPlan",
    "Masker",
    "Mode",
    "load_or_create_key",
    "plan_masking",
    "template_is_safe",
]
