"""docs/policy.md cannot drift from the code: every key is documented, every example loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jitkube.policy import (
    MATCH_KEYS,
    RULE_KEYS,
    TOP_LEVEL_KEYS,
    Action,
    default_policy,
    load_policy,
)
from jitkube.risk import RiskClass

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "policy.md"
SHIPPED = REPO / "src" / "jitkube" / "default_policy.yaml"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", text, flags=re.M | re.S)


def _documented_table_keys(text: str) -> set[str]:
    """Keys listed in the first column of the reference tables (| `key` | …)."""
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))


def test_every_schema_key_has_a_row_in_the_reference() -> None:
    documented = _documented_table_keys(_doc())
    missing = {*TOP_LEVEL_KEYS, *RULE_KEYS, *MATCH_KEYS} - documented
    assert not missing, f"keys missing from docs/policy.md: {sorted(missing)}"


def test_the_reference_documents_no_key_the_schema_lacks() -> None:
    documented = _documented_table_keys(_doc())
    classes = {c.label for c in RiskClass}
    extra = documented - {*TOP_LEVEL_KEYS, *RULE_KEYS, *MATCH_KEYS} - classes
    assert not extra, f"docs/policy.md documents unknown keys: {sorted(extra)}"


@pytest.mark.parametrize("word", [a.label for a in Action] + [c.label for c in RiskClass])
def test_every_action_and_class_is_named(word: str) -> None:
    assert f"`{word}`" in _doc()


def test_the_doc_has_yaml_examples() -> None:
    assert len(_yaml_blocks(_doc())) >= 4


@pytest.mark.parametrize("index", range(len(_yaml_blocks(DOC.read_text(encoding="utf-8")))))
def test_every_yaml_example_in_the_doc_loads(index: int) -> None:
    block = _yaml_blocks(_doc())[index]
    load_policy(block, f"docs/policy.md example {index}")


def test_the_doc_shows_the_shipped_default_policy_verbatim() -> None:
    shipped = SHIPPED.read_text(encoding="utf-8")
    assert shipped in _yaml_blocks(_doc())
    assert load_policy(shipped, "shipped").digest == default_policy().digest


def test_the_documented_limits_are_the_real_ones() -> None:
    from jitkube.policy import MAX_POLICY_BYTES, MAX_RULES

    text = _doc()
    assert f"more than {MAX_RULES}" in text
    assert f"{MAX_POLICY_BYTES // 1024} KiB" in text
