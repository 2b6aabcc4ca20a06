"""The fingerprint a per-command approval is bound to. Stdlib only: the CLI computes it too.

sha256 over the canonical JSON of the exact argv (without the leading `kubectl`), the
cluster, the effective namespace and the manifest digest (`ManifestSet.digest`, "" when
the command reads no manifests). Any change to any of them is a different command.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence


def command_fingerprint(
    argv: Sequence[str], cluster: str, namespace: str, manifest_digest: str
) -> str:
    """Hex sha256 of the canonical (argv, cluster, namespace, manifest digest)."""
    canonical = json.dumps(
        {
            "v": 1,
            "argv": list(argv),
            "cluster": cluster,
            "namespace": namespace,
            "manifest_digest": manifest_digest,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
