"""Side-by-side timing helpers: machines here are shared and noisy, so every figure is
reported next to a baseline measured in the same run, interleaved, as a median."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Timing:
    label: str
    samples_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.samples_ms, n=10)[-1]


def time_commands(
    commands: dict[str, Sequence[str]],
    runs: int = 30,
    warmup: int = 3,
    env: dict[str, str] | None = None,
) -> dict[str, Timing]:
    """Run each command `runs` times, interleaved (A B C A B C …), return wall times."""
    result = {label: Timing(label, []) for label in commands}
    for i in range(warmup + runs):
        for label, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
            )
            elapsed = (time.perf_counter() - start) * 1000
            if i >= warmup:
                result[label].samples_ms.append(elapsed)
    return result


BENCH_PREFIX = "BENCH "


def emit(
    metric: str,
    value: float,
    unit: str,
    *,
    goal: tuple[str, float] | None = None,
    detail: str = "",
) -> None:
    """Print one machine-readable result line (`BENCH {json}`) that `run_all.py` gathers
    into the single `make bench` table. `goal` is `("<=", 1.2)` or `(">=", 20000)`."""
    met = None
    if goal is not None:
        op, target = goal
        met = value <= target if op == "<=" else value >= target
    record = {
        "metric": metric,
        "value": value,
        "unit": unit,
        "goal": f"{goal[0]} {goal[1]:g}" if goal else None,
        "met": met,
        "detail": detail,
    }
    print(BENCH_PREFIX + json.dumps(record), flush=True)
