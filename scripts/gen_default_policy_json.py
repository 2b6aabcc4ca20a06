"""Regenerate src/jitkube/default_policy.json from src/jitkube/default_policy.yaml.

The YAML is what people read and edit; the JSON is what the hot path loads (no PyYAML).
tests/test_policy.py fails when the two drift.
"""

from __future__ import annotations

from pathlib import Path

from jitkube.policy import default_policy_snapshot_text

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "jitkube"


def main() -> None:
    yaml_text = (PACKAGE / "default_policy.yaml").read_text(encoding="utf-8")
    (PACKAGE / "default_policy.json").write_text(
        default_policy_snapshot_text(yaml_text), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
