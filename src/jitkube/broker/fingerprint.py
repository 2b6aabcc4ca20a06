"""The fingerprint a per-command approval is bound to. Stdlib only: the CLI computes it too.

sha256 over the canonical JSON of the exact argv (without the leading `kubectl`), the
cluster, the effective namespace, the manifest digest (`ManifestSet.digest`, "" when the
command reads no manifests) and whether the output is shown unmasked (`--unmask`). Any
change to any of them is a different command: an approval to run a command with masked
output is not one to see its values, and the other way round.

`"unmask": true` enters the canonical form only for unmasked runs, so a masked command's
fingerprint is the same as before `unmask` was bound (clients and brokers of either
version agree on it). tests/data/command_fingerprint_vectors.json pins the canonical form.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence


def command_fingerprint(
    argv: Sequence[str],
    cluster: str,
    namespace: str,
    manifest_digest: str,
    unmask: bool = False,
) -> str:
    """Hex sha256 of the canonical (argv, cluster, namespace, manifest digest, unmask)."""
    fields: dict[str, object] = {
        "v": 1,
        "argv": list(argv),
        "cluster": cluster,
        "namespace": namespace,
        "manifest_digest": manifest_digest,
    }
    if unmask:
        fields["unmask"] = True
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
