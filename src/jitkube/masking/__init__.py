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

from jitkube.masking.digest import PLACEHOLDER_RE, PLACEHOLDER_RE_TEXT, Digester
from jitkube.masking.key import load_or_create_key
from jitkube.masking.plan import MaskPlan, plan_masking, template_is_safe
from jitkube.masking.stream import MAX_LINE, MODES, Masker, Mode

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
