"""Docs that users rely on cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from jitkube.envelope import RESULT_VERSION, STATUSES
from jitkube.errors import ExitCode

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = Path(__file__).resolve().parents[1] / "README.md"


def _table_codes(text: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.+?) \|", text, re.M)}


def test_exit_code_doc_lists_every_code_with_its_name() -> None:
    rows = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(
            r"^\| (\d+) \| `([A-Z_]+)` \|", (DOCS / "exit-codes.md").read_text(), re.M
        )
    }
    assert rows == {int(code): code.name for code in ExitCode}


def test_readme_exit_code_table_matches_the_enum() -> None:
    readme = README.read_text()
    section = readme[readme.index("## Exit codes") :]
    assert set(_table_codes(section)) == {int(code) for code in ExitCode}


def test_envelope_doc_names_every_status_and_the_version() -> None:
    text = (DOCS / "json-envelope.md").read_text()
    for status in STATUSES:
        assert f"`{status}`" in text
    assert f'"jitkube_result_version": "{RESULT_VERSION}"' in text
