"""`make bench`: every benchmark in one go, one table.

Each script measures side by side in its own run (a baseline next to the figure, or a
rate) and prints its results as `BENCH {json}` lines (`_common.emit`); this gathers them
into one table with the goals of issue #7, headed by the date and the machine.

    .venv/bin/python benchmarks/run_all.py [--verbose] [--markdown] [--only NAME ...]

`--verbose` also shows each script's own report; `--markdown` prints the table for the
README; `--only classify_rate` (repeatable, or comma-separated) runs a subset. The exit
code is 1 only when a script crashed or gave no figure: a missed goal is reported in the
table, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import BENCH_PREFIX

HERE = Path(__file__).resolve().parent
TAIL_LINES = 20  # of a crashed script's output, shown when not --verbose


@dataclass(frozen=True)
class Script:
    name: str  # file stem, what --only takes
    title: str
    args: tuple[str, ...] = ()
    directory: Path = HERE

    @property
    def path(self) -> Path:
        return self.directory / f"{self.name}.py"


SCRIPTS = (
    Script("kubectl_overhead", "jitkube kubectl vs bare kubectl vs exec plugin"),
    Script("classify_rate", "classification rate"),
    Script("broker_sessions", "broker session creation, 50 clients"),
    Script("broker_audit_ingest", "broker audit ingest"),
    Script("masking_throughput", "masking throughput"),
    Script("check_startup", "jitkube check start-up"),
    Script("audit_append", "audit append"),
    Script("sandbox_startup", "sandbox start-up"),
)


@dataclass
class Result:
    """What one script left behind: its BENCH records, exit code and whole output."""

    script: Script
    returncode: int
    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.returncode != 0 or not self.records or bool(self.bad_lines)


def parse_bench_lines(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The `BENCH {json}` records in a script's output, and the lines that were not JSON."""
    records: list[dict[str, Any]] = []
    bad: list[str] = []
    for line in text.splitlines():
        if not line.startswith(BENCH_PREFIX):
            continue
        try:
            record = json.loads(line[len(BENCH_PREFIX) :])
        except ValueError:
            bad.append(line)
            continue
        if (
            not isinstance(record, dict)
            or not {"metric", "value", "unit"} <= record.keys()
            or isinstance(record["value"], bool)
            or not isinstance(record["value"], int | float)
        ):
            bad.append(line)
            continue
        records.append(record)
    return records, bad


def run_script(script: Script, *, verbose: bool = False) -> Result:
    """Run one benchmark in its own interpreter; with `verbose` echo its output live."""
    # Installed jitkube has compiled bytecode; this machine sets PYTHONDONTWRITEBYTECODE.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # Each script starts on a quiet disk: data the previous one left dirty is written
    # back now, not during this one's fsyncs (the broker commits with synchronous=FULL).
    os.sync()
    time.sleep(1.0)
    start = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(script.path), *script.args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=script.directory,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if verbose and not line.startswith(BENCH_PREFIX):
                sys.stdout.write(line)
                sys.stdout.flush()
    output = "".join(lines)
    records, bad = parse_bench_lines(output)
    return Result(script, proc.returncode, records, bad, output, time.perf_counter() - start)


# --- the table ------------------------------------------------------------------------------

Row = tuple[str, str, str, str, str]  # metric, value, goal, met?, detail
HEADINGS: Row = ("metric", "value", "goal", "met?", "detail")


def format_number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_value(value: float, unit: str) -> str:
    if unit == "x":
        return f"{format_number(value)}x"
    return f"{format_number(value)} {unit}".rstrip()


def format_goal(goal: str | None, unit: str) -> str:
    """`"<= 1.2"` as emitted → `≤ 1.20x`; no goal → empty."""
    if not goal:
        return ""
    op, _, number = goal.partition(" ")
    try:
        value = float(number)
    except ValueError:
        return goal
    # Goals are round numbers: `≤ 3 s`, `≥ 30 MB/s`, but `≤ 1.20x`.
    target = f"{value:,.0f}" if value.is_integer() else format_number(value)
    target = f"{target}x" if unit == "x" else f"{target} {unit}".rstrip()
    symbol = {"<=": "≤", ">=": "≥"}.get(op, op)
    return f"{symbol} {target}"


def rows_for(results: Sequence[Result]) -> list[Row]:
    rows: list[Row] = []
    for result in results:
        for record in result.records:
            unit = str(record["unit"])
            met = record.get("met")
            rows.append(
                (
                    str(record["metric"]),
                    format_value(float(record["value"]), unit),
                    format_goal(record.get("goal"), unit),
                    "" if met is None else ("yes" if met else "NO"),
                    str(record.get("detail") or ""),
                )
            )
        if result.failed:
            if result.returncode != 0:
                why = f"crashed (exit {result.returncode})"
            elif result.bad_lines:
                why = f"unreadable BENCH line: {result.bad_lines[0][:60]}"
            else:
                why = "printed no BENCH line"
            rows.append((result.script.title, "—", "", "FAILED", f"{result.script.name}.py {why}"))
    return rows


def text_table(rows: Sequence[Row]) -> str:
    widths = [max(len(r[i]) for r in (HEADINGS, *rows)) for i in range(len(HEADINGS))]

    def line(row: Row) -> str:
        cells = [
            cell.rjust(w) if i == 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADINGS), rule, *(line(r) for r in rows)])


def markdown_table(rows: Sequence[Row]) -> str:
    def line(row: Row) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    return "\n".join([line(HEADINGS), "|---|---:|---|---|---|", *(line(r) for r in rows)])


# --- the header -----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except (OSError, ValueError, IndexError):
        pass
    return None


def kubectl_binary() -> str | None:
    """JITKUBE_KUBECTL, else kubectl on PATH (its pinned kubectl.1.32 if it is a dispatcher,
    as benchmarks/kubectl_overhead.py picks it)."""
    configured = os.environ.get("JITKUBE_KUBECTL")
    if configured:
        return configured
    found = shutil.which("kubectl")
    if found is None:
        return None
    real = Path(found).resolve()
    versioned = real.with_name("kubectl.1.32")
    return str(versioned if versioned.exists() else real)


def kubectl_version() -> str:
    binary = kubectl_binary()
    if binary is None:
        return "kubectl not found"
    try:
        done = subprocess.run(
            [binary, "version", "--client", "-o", "json"],
            capture_output=True,
            timeout=20,
            check=False,
        )
        return f"kubectl {json.loads(done.stdout)['clientVersion']['gitVersion']}"
    except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
        return "kubectl version unknown"


@dataclass(frozen=True)
class Header:
    when: str
    machine: str
    load: str

    def text(self) -> str:
        lines = [f"jitkube benchmarks, {self.when}", f"machine: {self.machine}"]
        if self.load:
            lines.append(f"load average at start: {self.load}")
        return "\n".join(lines)

    def markdown(self) -> str:
        load = f" (load average at start {self.load})" if self.load else ""
        return f"Figures from {self.when} on {self.machine}{load}:"


def header() -> Header:
    cores = os.cpu_count() or 0
    memory = memory_gb()
    machine = [cpu_model(), f"{cores} core{'s' if cores != 1 else ''}"]
    if memory is not None:
        machine.append(f"{memory:.0f} GB")
    machine += [f"Python {platform.python_version()}", kubectl_version()]
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = ""
    return Header(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), ", ".join(machine), load)


# --- main -----------------------------------------------------------------------------------


def select(scripts: Sequence[Script], only: Sequence[str]) -> list[Script]:
    wanted = [n.strip().removesuffix(".py") for item in only for n in item.split(",")]
    wanted = [n for n in wanted if n]
    if not wanted:
        return list(scripts)
    known = {s.name for s in scripts}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(
            f"no benchmark named {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return [s for s in scripts if s.name in wanted]


def main(argv: Sequence[str] | None = None, scripts: Sequence[Script] = SCRIPTS) -> int:
    ap = argparse.ArgumentParser(description="Run every benchmark and print one table.")
    ap.add_argument("--verbose", "-v", action="store_true", help="also show each script's report")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only these scripts"
    )
    args = ap.parse_args(argv)
    try:
        chosen = select(scripts, args.only)
    except ValueError as exc:
        ap.error(str(exc))
    head = header()
    if args.verbose:
        print(head.text())
    results = []
    for script in chosen:
        if args.verbose:
            print(f"\n== {script.title} ({script.name}.py)", flush=True)
        else:
            print(f"running {script.name}.py …", file=sys.stderr, flush=True)
        result = run_script(script, verbose=args.verbose)
        results.append(result)
        if result.failed and not args.verbose:
            tail = result.output.splitlines()[-TAIL_LINES:]
            print("\n".join(f"  {script.name}: {line}" for line in tail), file=sys.stderr)
        print(f"  {script.name}.py took {result.seconds:.1f} s", file=sys.stderr, flush=True)
    rows = rows_for(results)
    if args.verbose:
        print()
    if args.markdown:
        print(head.markdown() + "\n\n" + markdown_table(rows))
    else:
        print(head.text() + "\n\n" + text_table(rows))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
