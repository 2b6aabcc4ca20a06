"""`python -m jitkube.audit.background`: the detached child of `spawn_background_flush`.

Reads `{directory, broker_url, auth_header, ca_bundle}` as JSON from stdin, flushes, then
lingers: while new records keep arriving (an agent running command after command) it
flushes them too, and exits after LINGER seconds without any, or as soon as the spool's
directory is gone. It holds `flusher.lock`
for its whole life, so a command that finds it held starts no second child: a burst of
commands costs one background process, not one each. Silent: its stdout/stderr are
/dev/null; the outcome is in `delivery.json`.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

from jitkube.audit.spool import FLUSHER_LOCK, AuditSpool

LINGER = 15.0  # seconds without new records before the flusher exits
POLL = 1.0


def main() -> int:
    try:
        job = json.loads(sys.stdin.buffer.read(1_000_000))
        spool = AuditSpool(Path(job["directory"]))
        presence = os.open(spool.directory / FLUSHER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(presence, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another flusher is alive and will pick our records up
        ok = True
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < LINGER:
            if not os.path.isdir(spool.directory):
                break  # its directory was removed (a demo or test HOME): nothing to serve
            if spool.flush_due():
                result = spool.flush(
                    str(job["broker_url"]),
                    str(job["auth_header"]),
                    job.get("ca_bundle"),
                    timeout=5.0,
                    wait_for_lock=True,
                    max_seconds=20.0,
                )
                ok = result.error is None
                if not ok:
                    break  # back-off is recorded; a later command starts a new flusher
                idle_since = time.monotonic()
            time.sleep(POLL)
    except (ValueError, KeyError, OSError):
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
