"""The JSON envelope is an interface: its keys, order and version are pinned here."""

from __future__ import annotations

import json

import pytest

from jitkube import envelope
from jitkube.errors import DeniedError


def test_envelope_keys_and_order_are_pinned() -> None:
    env = envelope.build("check", "ok", 0, {"class": "read"})
    assert list(env) == [
        "jitkube_result_version",
        "command",
        "status",
        "exit_code",
        "data",
        "errors",
    ]
    assert env["jitkube_result_version"] == "1"


def test_envelope_is_one_ascii_line() -> None:
    env = envelope.build("check", "denied", 65, {"reason": "naméspace\u202e"}, [])
    text = envelope.dumps(env)
    assert "\n" not in text
    assert text.isascii()
    assert json.loads(text)["data"]["reason"] == "naméspace\u202e"


def test_error_entries_carry_stable_codes() -> None:
    err = DeniedError("denied by rule x", hint="ask a human")
    env = envelope.build("kubectl", "denied", err.exit_code, errors=[envelope.error_entry(err)])
    assert env["errors"] == [
        {"code": "denied", "message": "denied by rule x", "hint": "ask a human"}
    ]


def test_unknown_status_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown envelope status"):
        envelope.build("check", "maybe", 0)
