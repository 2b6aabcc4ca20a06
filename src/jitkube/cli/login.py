"""`jitkube login`, `logout` and `whoami`: thin adapters over jitkube.identity.

Each command turns its options into a `Config`, calls one core function and renders
the result as text (Rich, built lazily, honouring NO_COLOR) or as the JSON envelope.
The device-code prompt always goes to stderr, so stdout stays the command's result.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jitkube import envelope
from jitkube.config import Config, load
from jitkube.environment import Environment
from jitkube.errors import ExitCode, JitkubeError
from jitkube.identity.claims import Identity

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from jitkube.identity.login import DevicePrompt


class LoginCancelledError(JitkubeError):
    """Ctrl-C while waiting for the sign-in; nothing was stored."""

    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"


def make_console(env: Environment, *, stderr: bool = False) -> Console:
    """A Rich console on env's stream; NO_COLOR (any value) turns colour off."""
    from rich.console import Console

    return Console(
        file=env.stderr if stderr else env.stdout,
        no_color="NO_COLOR" in env.environ,
        highlight=False,
        soft_wrap=False,
    )


def render_device_prompt(prompt: DevicePrompt, now: float) -> RenderableType:
    """The panel with the user code (URLs are printed beside it, never wrapped)."""
    from rich.align import Align
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    minutes = max(1, round((prompt.expires_at - now) / 60))
    body = Group(
        Text("Open the sign-in page below and enter this code:"),
        Text(""),
        Align.center(Text(prompt.user_code, style="bold")),
        Text(""),
        Text(f"The code expires in about {minutes} min. Ctrl-C cancels.", style="dim"),
    )
    return Panel(body, title="jitkube login", expand=False, padding=(1, 2))


def render_qr(url: str) -> str | None:
    """`url` as a QR code in Unicode half blocks, or None when segno is not installed."""
    try:
        import segno
    except ImportError:  # optional: the URL and code are always printed
        return None
    import io

    out = io.StringIO()
    segno.make(url, error="l").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def _qr_fits(console: Console, qr: str) -> bool:
    lines = qr.splitlines()
    return (
        console.is_terminal
        and console.encoding.lower().replace("-", "") == "utf8"
        and max(map(len, lines), default=0) <= console.width
    )


class ConsoleLoginUI:
    """Shows the device prompt on stderr and a spinner while jitkube polls."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    @contextlib.contextmanager
    def waiting(self, prompt: DevicePrompt) -> Iterator[None]:
        console = make_console(self.env, stderr=True)
        qr = render_qr(prompt.verification_uri_complete or prompt.verification_uri)
        if qr is not None and _qr_fits(console, qr):
            # Block characters, no colour codes: readable whatever NO_COLOR says.
            self.env.stderr.write(qr)
        console.print(render_device_prompt(prompt, time.time()))
        # soft_wrap: a URL must stay one logical line, so copy-paste and link detection work.
        console.print(f"Sign-in page: {prompt.verification_uri}", soft_wrap=True)
        if prompt.verification_uri_complete:
            console.print(
                f"Or open (code included): {prompt.verification_uri_complete}", soft_wrap=True
            )
        self.env.stderr.flush()
        if console.is_terminal:
            with console.status("Waiting for you to approve the sign-in…"):
                yield
        else:
            console.print("Waiting for the sign-in to be approved…")
            self.env.stderr.flush()
            yield


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "unknown"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    left = int(epoch - time.time())
    return f"{stamp} (in {left // 60} min)" if left > 0 else f"{stamp} (expired)"


def render_identity(identity: Identity, heading: str) -> RenderableType:
    """A small key/value table describing who jitkube acts as."""
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("subject", identity.sub or "-"),
        ("email", identity.email or "-"),
        ("groups", ", ".join(identity.groups) or "-"),
        ("issuer", identity.issuer or "-"),
        ("client", identity.client_id or "-"),
        ("credential", identity.source),
        ("token store", identity.token_store),
        ("expires", _when(identity.expires_at)),
    ]
    if identity.is_agent:
        rows.append(("agent", "yes"))
    for key, value in rows:
        table.add_row(key, value)
    from rich.console import Group
    from rich.text import Text

    return Group(Text(heading, style="bold green"), table)


def _emit(env: Environment, command: str, data: dict[str, Any], text: Any) -> int:
    if env.json_output:
        env.stdout.write(envelope.dumps(envelope.build(command, "ok", 0, data)) + "\n")
    else:
        make_console(env).print(text)
    return int(ExitCode.OK)


def _config(env: Environment, **flags: Any) -> Config:
    return load(env.environ, flags)


def register(app: typer.Typer, env: Environment) -> None:
    """Add login, logout and whoami to `app`."""

    @app.command()
    def login(
        broker: str | None = typer.Option(
            None,
            "--broker",
            help="Broker URL (https; plain http only to loopback). Later commands reuse it.",
        ),
        issuer: str | None = typer.Option(None, "--issuer", help="OIDC issuer URL."),
        authority: str | None = typer.Option(None, "--authority", help="Entra ID authority."),
        client_id: str | None = typer.Option(None, "--client-id", help="OAuth client id."),
        scope: Annotated[
            list[str] | None, typer.Option("--scope", help="Scope (repeatable).")
        ] = None,
        ca_bundle: str | None = typer.Option(
            None, "--ca-bundle", help="PEM CA bundle to trust (identity provider and broker)."
        ),
        token_store: str | None = typer.Option(
            None, "--token-store", help="keyring, file (0600; no keyring needed) or memory."
        ),
    ) -> int:
        """Log in with the OAuth device code (or check the configured CI identity)."""
        from jitkube.identity import login as do_login

        config = _config(
            env,
            broker_url=broker,
            issuer=issuer,
            authority=authority,
            client_id=client_id,
            scopes=tuple(scope or ()),
            ca_bundle=ca_bundle,
            token_store=token_store,
        )
        try:
            identity = do_login(config, env, ConsoleLoginUI(env))
        except KeyboardInterrupt:
            # Typer turns Ctrl-C into a silent exit 130; say what happened instead.
            raise LoginCancelledError("login cancelled; nothing was stored") from None
        return _emit(env, "login", identity.as_dict(), render_identity(identity, "Logged in."))

    @app.command()
    def whoami(
        ca_bundle: str | None = typer.Option(None, "--ca-bundle", help="PEM CA bundle."),
    ) -> int:
        """Show who jitkube acts as (refreshing the login silently when due)."""
        from jitkube.identity import current_identity

        identity = current_identity(_config(env, ca_bundle=ca_bundle), env)
        return _emit(env, "whoami", identity.as_dict(), render_identity(identity, "Logged in."))

    @app.command()
    def logout(
        revoke: bool = typer.Option(
            False, "--revoke", help="Also end your sessions at the broker."
        ),
    ) -> int:
        """Remove every stored token (keyring, token file, login record, cached sessions)."""
        from jitkube import session_cache
        from jitkube.identity import logout as do_logout

        revoked: list[str] = []
        problems: list[str] = []
        if revoke:  # before the tokens go: listing your sessions needs your login
            from jitkube.client.sessions import end_all_sessions

            revoked, problems = end_all_sessions(_config(env), env)
        dropped = session_cache.remove(env.environ)  # cached sessions die with the login
        cleared = do_logout(env)
        if dropped:
            cleared.append("session cache")
        text = (
            "Logged out; removed: " + ", ".join(cleared) + "."
            if cleared
            else "Nothing stored; already logged out."
        )
        if revoke:
            text += f" Revoked {len(revoked)} session(s) at the broker."
        for problem in problems:
            env.stderr.write(f"jitkube: could not revoke {problem}\n")
        data: dict[str, Any] = {"removed": cleared}
        if revoke:
            data.update(revoked=revoked, problems=problems)
        return _emit(env, "logout", data, text)
