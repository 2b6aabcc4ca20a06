"""What a person sees: the device-code panel and `whoami`, rendered at 80 columns."""

from __future__ import annotations

import io
import time

import pytest

from jitkube.cli.login import ConsoleLoginUI, make_console, render_identity, render_qr
from jitkube.environment import Environment
from jitkube.identity.claims import Identity
from jitkube.identity.login import DevicePrompt

DEVICE = "https://idp.example.test/realms/engineering/protocol/openid-connect/auth/device"
PANEL = """\
╭────────────────── jitkube login ───────────────────╮
│                                                    │
│  Open the sign-in page below and enter this code:  │
│                                                    │
│                     WDJB-MJHT                      │
│                                                    │
│  The code expires in about 5 min. Ctrl-C cancels.  │
│                                                    │
╰────────────────────────────────────────────────────╯
"""


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _env(stream: io.StringIO, **environ: str) -> Environment:
    return Environment(stdin=io.BytesIO(), stdout=stream, stderr=stream, environ=environ)


def _prompt() -> DevicePrompt:
    return DevicePrompt(
        DEVICE, "WDJB-MJHT", f"{DEVICE}?user_code=WDJB-MJHT", time.time() + 300, None
    )


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def test_device_prompt_panel_and_unbroken_urls_at_80_columns() -> None:
    err = io.StringIO()
    with ConsoleLoginUI(_env(err, NO_COLOR="1")).waiting(_prompt()):
        pass

    text = err.getvalue()
    assert text.startswith(PANEL)
    lines = text.splitlines()
    # URLs longer than the terminal stay on one line, so copy-paste and link detection work.
    assert f"Sign-in page: {DEVICE}" in lines
    assert f"Or open (code included): {DEVICE}?user_code=WDJB-MJHT" in lines
    assert lines[-1] == "Waiting for the sign-in to be approved…"
    assert "\x1b[" not in text


@pytest.mark.parametrize(("no_color", "coloured"), [(True, False), (False, True)])
def test_no_color_turns_colour_off_on_a_terminal(no_color: bool, coloured: bool) -> None:
    out = Tty()
    env = _env(out, **({"NO_COLOR": "1"} if no_color else {}))
    identity = Identity("alice", None, (), None, None, "device_code", "file")

    make_console(env).print(render_identity(identity, "Logged in."))

    assert ("\x1b[32m" in out.getvalue() or "\x1b[1;32m" in out.getvalue()) is coloured


def test_whoami_table() -> None:
    out = io.StringIO()
    identity = Identity(
        "alice",
        "alice@example.test",
        ("engineers", "sre"),
        "https://idp.example.test/realms/engineering",
        time.time() + 630,
        "device_code",
        "keyring",
        "jitkube-cli",
    )
    make_console(_env(out, NO_COLOR="1")).print(render_identity(identity, "Logged in."))

    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    assert lines[:8] == [
        "Logged in.",
        "subject      alice",
        "email        alice@example.test",
        "groups       engineers, sre",
        "issuer       https://idp.example.test/realms/engineering",
        "client       jitkube-cli",
        "credential   device_code",
        "token store  keyring",
    ]
    assert lines[8].startswith("expires      ")
    assert lines[8].endswith("UTC (in 10 min)")


def test_a_terminal_gets_a_qr_code_of_the_complete_url() -> None:
    tty, plain = Tty(), io.StringIO()
    with ConsoleLoginUI(_env(tty, NO_COLOR="1")).waiting(_prompt()):
        pass
    with ConsoleLoginUI(_env(plain, NO_COLOR="1")).waiting(_prompt()):
        pass

    qr = render_qr(f"{DEVICE}?user_code=WDJB-MJHT")
    assert qr is not None
    assert tty.getvalue().startswith(qr)
    assert "▀" not in plain.getvalue()  # not a terminal: no QR code
    assert max(len(line) for line in qr.splitlines()) <= 80
