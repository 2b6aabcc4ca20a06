"""How long `jitkube sandbox up` takes until every service answers (goal: <= 3 s).

Reports the wall time of the CLI call (process start to "ready") and the sandbox
process's own start-up (services started, state written), over several runs, each
followed by `jitkube sandbox down`.

    .venv/bin/python benchmarks/sandbox_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    walls, internals = [], []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="jitkube-sbx-") as tmp:
            directory = Path(tmp) / "sbx"
            start = time.perf_counter()
            up = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "jitkube",
                    "--output",
                    "json",
                    "sandbox",
                    "up",
                    "--dir",
                    str(directory),
                ],
                capture_output=True,
                env=env,
                check=False,
            )
            walls.append(time.perf_counter() - start)
            if up.returncode != 0:
                print(up.stderr.decode())
                return 1
            internals.append(json.loads(up.stdout)["data"]["startup_seconds"])
            subprocess.run(
                [sys.executable, "-m", "jitkube", "sandbox", "down", "--dir", str(directory)],
                capture_output=True,
                env=env,
                check=False,
            )
    print(
        f"sandbox up: median {statistics.median(walls):.2f} s wall "
        f"(max {max(walls):.2f}), services {statistics.median(internals):.2f} s "
        f"over {args.runs} runs (goal <= 3 s)"
    )
    emit(
        "jitkube sandbox up (cluster, STS, IdP, broker)",
        statistics.median(walls),
        "s",
        goal=("<=", 3),
        detail=f"median of {args.runs}, max {max(walls):.2f} s;"
        f" services {statistics.median(internals):.2f} s",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
