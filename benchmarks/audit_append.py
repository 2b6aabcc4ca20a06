"""Cost of recording one `jitkube kubectl` invocation in the local audit trail.

Three in-process figures (median and p90 over many appends, fresh directory under
$TMPDIR, no fsync — as on the hot path): building the event (redaction, agent
detection), appending it to the chain (lock, head read, O_APPEND write, head rewrite),
and both together (`record_invocation`). Plus the one-off cost of importing
`jitkube.audit` in a fresh interpreter, which every hot-path run also pays.

    .venv/bin/python benchmarks/audit_append.py [--appends 5000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit
from jitkube.audit import AuditEntry, AuditLog, build_event, record_invocation

ENTRY = AuditEntry(
    argv=["create", "secret", "generic", "db", "-n", "prod", "--from-literal=password=x"],
    outcome="approved",
    sub="alice",
    email="alice@example.test",
    groups=("engineers", "sre"),
    agent="claude-code",
    session_id="s-0123456789abcdef",
    cluster="prod",
    role="admin",
    command="create secret generic",
    invocation={"kinds": ["secrets"], "names": ["db"], "namespace": "prod"},
    risk="write",
    reasons=("creates a Secret (values travel in argv or local files)",),
    decision="approve",
    rule="secrets-need-approval",
    approval_id="c-42",
    approver="bob",
    exit_code=0,
    duration_ms=118.2,
    stdout_bytes=27,
    masked=0,
)


def _stats(label: str, samples: list[float]) -> tuple[float, float]:
    med = statistics.median(samples) * 1e6
    p90 = statistics.quantiles(samples, n=10)[-1] * 1e6
    print(f"{label:<32} median {med:7.1f} µs   p90 {p90:7.1f} µs   (n={len(samples)})")
    return med, p90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "audit"
        log = AuditLog(directory)
        build, append, both = [], [], []
        for _ in range(args.appends):
            t0 = time.perf_counter()
            event = build_event(ENTRY, {})
            t1 = time.perf_counter()
            log.append(event)
            t2 = time.perf_counter()
            build.append(t1 - t0)
            append.append(t2 - t1)
        for _ in range(args.appends):
            t0 = time.perf_counter()
            record_invocation(ENTRY, {}, directory=directory)
            both.append(time.perf_counter() - t0)
        build_med, _ = _stats("build_event", build)
        append_med, _ = _stats("AuditLog.append", append)
        both_med, both_p90 = _stats("record_invocation (both)", both)
        size = sum(p.stat().st_size for p in directory.glob("audit-*.jsonl"))
        print(f"bytes per record                 {size / (2 * args.appends):7.0f}")
    emit(
        "audit record (build + append), median",
        both_med,
        "µs",
        detail=(
            f"p90 {both_p90:.0f} µs; build {build_med:.0f} + append {append_med:.0f} µs;"
            f" {size / (2 * args.appends):.0f} bytes/record; no fsync"
        ),
    )
    _import_cost()


def _import_cost(runs: int = 30) -> None:
    """Extra start-up of `import jitkube.audit` over the hot path's own imports."""
    import os

    # Users' installs have compiled bytecode; this machine sets PYTHONDONTWRITEBYTECODE.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="jk-pyc-")
    base = [sys.executable, "-c", "import jitkube.hotpath"]
    with_audit = [sys.executable, "-c", "import jitkube.hotpath, jitkube.audit"]
    for cmd in (base, with_audit):  # compile once
        subprocess.run(cmd, check=True, env=env)
    samples: dict[str, list[float]] = {"hot path imports": [], "+ jitkube.audit": []}
    for _ in range(runs):  # interleaved: the machine is shared and noisy
        for label, cmd in zip(samples, (base, with_audit), strict=True):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            samples[label].append((time.perf_counter() - t0) * 1e3)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    for label, value in medians.items():
        print(f"{label:<32} median {value:7.1f} ms   (interpreter start included)")
    extra = medians["+ jitkube.audit"] - medians["hot path imports"]
    print(f"{'import jitkube.audit costs':<32} {extra:+7.1f} ms")
    emit(
        "import jitkube.audit, over the hot path's imports",
        extra,
        "ms",
        detail=f"{medians['+ jitkube.audit']:.1f} vs {medians['hot path imports']:.1f} ms,"
        f" medians of {runs}",
    )


if __name__ == "__main__":
    main()
