"""`make bench` report: the BENCH line protocol from `_common.emit` to run_all's one table."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def run_all() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))  # run_all imports _common as its scripts do
        spec = importlib.util.spec_from_file_location("run_all", BENCHMARKS / "run_all.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        mp.setitem(sys.modules, "run_all", module)  # dataclasses look their module up here
        spec.loader.exec_module(module)
        yield module


def _line(metric: str, value: float, unit: str, goal: str | None, met: bool | None) -> str:
    record = {"metric": metric, "value": value, "unit": unit, "goal": goal, "met": met}
    return "BENCH " + json.dumps(record | {"detail": "d"})


CANNED = "\n".join(
    [
        "some human-readable report line",
        _line("jitkube kubectl / bare kubectl", 1.47, "x", "<= 1.2", False),
        _line("classification rate", 30246.4, "argv/s", ">= 20000", True),
        "BENCH-ish line that is not one",
        _line("audit record, median", 41.23, "µs", None, None),
    ]
)


def test_bench_lines_are_read_and_other_lines_ignored(run_all: ModuleType) -> None:
    records, bad = run_all.parse_bench_lines(CANNED)
    assert [r["metric"] for r in records] == [
        "jitkube kubectl / bare kubectl",
        "classification rate",
        "audit record, median",
    ]
    assert bad == []


def test_table_rows_show_value_goal_and_whether_it_is_met(run_all: ModuleType) -> None:
    records, _ = run_all.parse_bench_lines(CANNED)
    result = run_all.Result(run_all.Script("x", "x"), 0, records)
    assert run_all.rows_for([result]) == [
        ("jitkube kubectl / bare kubectl", "1.47x", "≤ 1.20x", "NO", "d"),
        ("classification rate", "30,246 argv/s", "≥ 20,000 argv/s", "yes", "d"),
        ("audit record, median", "41.2 µs", "", "", "d"),
    ]


@pytest.mark.parametrize(
    ("returncode", "output", "why"),
    [
        (0, "report without figures\n", "printed no BENCH line"),
        (1, "Traceback …\n", "crashed (exit 1)"),
        (0, "BENCH {not json\n", "unreadable BENCH line"),
        (0, 'BENCH {"metric": "m", "value": null, "unit": "x"}\n', "unreadable BENCH line"),
    ],
)
def test_a_script_without_figures_is_a_failed_row(
    run_all: ModuleType, returncode: int, output: str, why: str
) -> None:
    records, bad = run_all.parse_bench_lines(output)
    script = run_all.Script("sandbox_startup", "sandbox start-up")
    result = run_all.Result(script, returncode, records, bad, output)
    assert result.failed
    [row] = run_all.rows_for([result])
    assert row[:4] == ("sandbox start-up", "—", "", "FAILED")
    assert why in row[4]


def test_a_crash_after_figures_keeps_them_and_adds_a_failed_row(run_all: ModuleType) -> None:
    records, _ = run_all.parse_bench_lines(CANNED)
    result = run_all.Result(run_all.Script("x", "the x bench"), 2, records)
    rows = run_all.rows_for([result])
    assert len(rows) == 4
    assert rows[-1][0] == "the x bench"
    assert rows[-1][3] == "FAILED"


def test_text_table_is_aligned(run_all: ModuleType) -> None:
    records, _ = run_all.parse_bench_lines(CANNED)
    rows = run_all.rows_for([run_all.Result(run_all.Script("x", "x"), 0, records)])
    lines = run_all.text_table(rows).splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    assert len(spans) == 5
    for line, row in zip([lines[0], *lines[2:]], [run_all.HEADINGS, *rows], strict=True):
        cells = [line[a:b] for a, b in spans[:-1]] + [line[spans[-1][0] :]]
        assert [c.strip() for c in cells] == list(row)
        assert cells[1] == cells[1].strip().rjust(len(cells[1]))  # numbers right-aligned


def test_markdown_table_has_one_row_per_figure(run_all: ModuleType) -> None:
    rows = [("a | b", "1.00x", "≤ 1.20x", "yes", "")]
    assert run_all.markdown_table(rows).splitlines() == [
        "| metric | value | goal | met? | detail |",
        "|---|---:|---|---|---|",
        "| a \\| b | 1.00x | ≤ 1.20x | yes |  |",
    ]


def test_emit_prints_a_line_the_table_reads(
    run_all: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    common = sys.modules["_common"]
    common.emit("session p99", 61.0, "ms", goal=("<=", 50), detail="50 clients")
    common.emit("ingest", 18839.2, "events/s", goal=(">=", 5000))
    records, bad = run_all.parse_bench_lines(capsys.readouterr().out)
    assert bad == []
    rows = run_all.rows_for([run_all.Result(run_all.Script("x", "x"), 0, records)])
    assert rows == [
        ("session p99", "61.0 ms", "≤ 50 ms", "NO", "50 clients"),
        ("ingest", "18,839 events/s", "≥ 5,000 events/s", "yes", ""),
    ]


def test_a_real_benchmark_speaks_the_protocol(run_all: ModuleType) -> None:
    script = run_all.Script("classify_rate", "classification rate", ("--seconds", "0.2"))
    result = run_all.run_script(script)
    assert result.returncode == 0, result.output
    [record] = result.records
    assert record["unit"] == "argv/s"
    assert record["goal"] == ">= 20000"
    assert record["value"] > 0
    assert record["met"] is (record["value"] >= 20_000)
    assert not result.failed


FAKE = """\
import sys
sys.path.insert(0, {benchmarks!r})
from _common import emit
emit("fake figure", 2.0, "x", goal=("<=", 1.2))
{tail}
"""


@pytest.fixture
def fake_scripts(run_all: ModuleType, tmp_path: Path) -> list[object]:
    tails = {"missed": "", "crash": "raise SystemExit(3)", "silent": None}
    scripts = []
    for name, tail in tails.items():
        text = "print('nothing to report')\n" if tail is None else FAKE
        (tmp_path / f"{name}.py").write_text(
            text.format(benchmarks=str(BENCHMARKS), tail=tail or "")
        )
        scripts.append(run_all.Script(name, f"{name} bench", directory=tmp_path))
    return scripts


@pytest.mark.parametrize(
    ("only", "code", "shows"),
    [
        ("missed", 0, "fake figure"),  # a missed goal is reported, not a failure
        ("crash", 1, "crashed (exit 3)"),
        ("silent", 1, "printed no BENCH line"),
    ],
)
def test_exit_code_is_non_zero_only_when_a_script_fails(
    run_all: ModuleType,
    fake_scripts: list[object],
    capsys: pytest.CaptureFixture[str],
    only: str,
    code: int,
    shows: str,
) -> None:
    assert run_all.main(["--only", only], scripts=fake_scripts) == code
    out = capsys.readouterr().out
    assert shows in out
    assert "machine: " in out
    if only == "missed":
        assert out.splitlines()[-1].split()[-1] == "NO"


def test_only_refuses_unknown_names(run_all: ModuleType, fake_scripts: list[object]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_all.main(["--only", "nope"], scripts=fake_scripts)
    assert exc.value.code == 2


def test_every_benchmark_script_is_in_the_report(run_all: ModuleType) -> None:
    on_disk = {p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_")}
    assert {s.name for s in run_all.SCRIPTS} == on_disk - {"run_all"}
