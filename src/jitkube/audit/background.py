"""`python -m jitkube.audit.background`: the detached child of `spawn_background_flush`.

Reads `{directory, broker_url, auth_header, ca_bundle}` as JSON from stdin, flushes once
(without waiting for another flush's lock, at most ~20 s of batches) and exits. Silent:
its stdout/stderr are /dev/null; the outcome is in `delivery.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jitkube.audit.spool import AuditSpool


def main() -> int:
    try:
        job = json.loads(sys.stdin.buffer.read(1_000_000))
        spool = AuditSpool(Path(job["directory"]))
        result = spool.flush(
            str(job["broker_url"]),
            str(job["auth_header"]),
            job.get("ca_bundle"),
            timeout=5.0,
            wait_for_lock=False,
            max_seconds=20.0,
        )
    except (ValueError, KeyError, OSError):
        return 1
    return 0 if result.error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
