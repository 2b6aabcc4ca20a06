"""Wall time of `jitkube check -- kubectl get pods` next to `python -c pass`, same run:
in-process (a cold start, JITKUBE_WARM=0) and through the warm server (jitkube.warm),
which this script starts in a private runtime directory and stops at the end.

.venv/bin/python benchmarks/check_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import emit, time_commands

SRC = Path(__file__).resolve().parents[1] / "src" / "jitkube"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    py = sys.executable
    # Users' installs have compiled bytecode; this machine sets PYTHONDONTWRITEBYTECODE.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JITKUBE_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["JITKUBE_WARM"] = "0"  # a cold start (no warm server is started or asked)
    subprocess.run([py, "-m", "compileall", "-q", str(SRC)], check=True, env=env)
    jitkube = str(Path(py).with_name("jitkube"))  # the console script, as users type it
    runtime = tempfile.mkdtemp(prefix="jkb-", dir="/tmp")
    warm_env = {**env, "XDG_RUNTIME_DIR": runtime, "JITKUBE_WARM": "1"}
    try:
        subprocess.run([jitkube, "warm", "start"], env=warm_env, check=True, capture_output=True)
        t = time_commands(
            {
                "python -c pass": [py, "-c", "pass"],
                "jitkube check -- get pods": [jitkube, "check", "--", "get", "pods"],
                "jitkube --version (typer not built)": [jitkube, "--version"],
            },
            runs=args.runs,
            env=env,
        )
        t.update(
            time_commands(
                {"jitkube check, warm server": [jitkube, "check", "--", "get", "pods"]},
                runs=args.runs,
                env=warm_env,
            )
        )
    finally:
        subprocess.run([jitkube, "warm", "stop"], env=warm_env, capture_output=True, check=False)
        shutil.rmtree(runtime, ignore_errors=True)
    base = t["python -c pass"].median
    for label, timing in t.items():
        print(
            f"{label:40s} median {timing.median:7.1f} ms"
            f"  ({timing.median / base:4.2f}x python -c pass)"
        )
    check = t["jitkube check -- get pods"].median
    emit(
        "jitkube check start-up, in-process / python -c pass",
        check / base,
        "x",
        detail=f"{check:.1f} vs {base:.1f} ms, medians of {args.runs}",
    )
    warm = t["jitkube check, warm server"].median
    emit(
        "jitkube check start-up, warm server / python -c pass",
        warm / base,
        "x",
        detail=f"{warm:.1f} vs {base:.1f} ms, medians of {args.runs}",
    )
    version = t["jitkube --version (typer not built)"].median
    emit(
        "jitkube --version start-up / python -c pass",
        version / base,
        "x",
        detail=f"{version:.1f} vs {base:.1f} ms, medians of {args.runs}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
