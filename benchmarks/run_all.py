"""`make bench`: every benchmark, one after the other, each with its own side-by-side
baseline. Prints each script's report; the figures belong in the issue notes.

    .venv/bin/python benchmarks/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("classification rate", ["classify_rate.py"]),
    ("jitkube check start-up", ["check_startup.py"]),
    ("jitkube kubectl vs bare kubectl vs exec plugin", ["kubectl_overhead.py"]),
    ("masking throughput", ["masking_throughput.py"]),
    ("audit append", ["audit_append.py"]),
    ("sandbox start-up", ["sandbox_startup.py"]),
    ("broker session creation, 50 clients", ["broker_sessions.py"]),
    ("broker audit ingest", ["broker_audit_ingest.py"]),
]


def main() -> int:
    failed = 0
    print(f"jitkube benchmarks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for title, argv in SCRIPTS:
        print(f"\n== {title}")
        sys.stdout.flush()
        done = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], check=False)
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
