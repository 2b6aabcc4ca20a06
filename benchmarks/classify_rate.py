"""How many kubectl argv per second parse + risk + policy judge in-process (one core).

Goal (issue "Foundation"): >= 20,000 argv/s. Input: every example of kubectl's help
(tests/data/kubectl_help_examples.txt) plus a few hand-picked risky lines, cycled.

    .venv/bin/python benchmarks/classify_rate.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from _common import emit
from jitkube.judge import judge
from jitkube.policy import DecisionContext, default_policy

REPO = Path(__file__).resolve().parents[1]
EXTRA = [
    "get pods -n prod",
    "-n prod delete deploy web",
    "get secret db -o jsonpath={.data.password}",
    "exec -itn prod web -- sh",
    "--kubeconfig /tmp/x get pods",
    "delete ns prod --force --grace-period=0",
]


def corpus() -> list[list[str]]:
    lines = []
    path = REPO / "tests" / "data" / "kubectl_help_examples.txt"
    if path.exists():
        for raw in path.read_text().splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            line = raw.split("\t", 1)[-1]
            try:
                words = shlex.split(line.split(" | ")[0], comments=False)
            except ValueError:
                continue
            if words and words[0] == "kubectl":
                lines.append(words[1:])
    lines.extend(shlex.split(x) for x in EXTRA)
    # -f files are read from disk; the in-process rate is about judgement, not I/O.
    return [a for a in lines if not any(t in ("-f", "-k", "--filename", "--kustomize") for t in a)]


def measure(seconds: float) -> tuple[float, int]:
    argvs = corpus()
    policy = default_policy()
    ctx = DecisionContext(agent=True)
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for argv in argvs:
            judge(argv, ctx, policy)
        n += len(argvs)
    return n / (time.perf_counter() - start), len(argvs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    rate, distinct = measure(args.seconds)
    print(
        f"classify: {rate:,.0f} argv/s (parse+risk+policy, {distinct} distinct argv,"
        " goal >= 20,000)"
    )
    emit(
        "classification rate (parse + risk + policy)",
        rate,
        "argv/s",
        goal=(">=", 20_000),
        detail=f"in-process, one core, {distinct} distinct argv",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
