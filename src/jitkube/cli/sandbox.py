"""`jitkube sandbox up|down|status|env|approve-device`: the local EKS-like world."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from jitkube import envelope
from jitkube.environment import Environment
from jitkube.errors import ConfigError

# `jitkube sandbox env` exports it, so the commands after an `eval` find the same sandbox
# even from another HOME (a second user's shell, `jitkube demo --keep`).
DIR_VARIABLE = "JITKUBE_SANDBOX_DIR"

if TYPE_CHECKING:
    from jitkube.sandbox.control import SandboxStatus


def register(app: typer.Typer, env: Environment) -> None:
    sandbox = typer.Typer(
        help="A local EKS-like world: simulated cluster, STS emulator, identity provider.",
        no_args_is_help=True,
    )
    app.add_typer(sandbox, name="sandbox")

    def _dir(directory: Path | None) -> Path:
        from jitkube.sandbox.control import default_dir

        if directory is None and env.environ.get(DIR_VARIABLE):
            directory = Path(env.environ[DIR_VARIABLE])
        return (directory or default_dir(env.environ)).resolve()

    def _running(directory: Path | None) -> SandboxStatus:
        """The sandbox's status; a usage error naming the directory when none runs there."""
        from jitkube.sandbox import control

        current = control.status(_dir(directory))
        if not current.running:
            raise ConfigError(
                f"no sandbox is running in {current.directory}",
                hint="start one with `jitkube sandbox up`, or point at a running one with"
                f" --dir DIR or {DIR_VARIABLE}=DIR (`jitkube sandbox up` printed its directory)",
            )
        return current

    def _emit(command: str, data: dict[str, object], text: str) -> None:
        if env.json_output:
            env.stdout.write(envelope.dumps(envelope.build(command, "ok", 0, data)) + "\n")
        else:
            env.stdout.write(text)

    dir_option = typer.Option(
        None, "--dir", help=f"Sandbox directory (default: ${DIR_VARIABLE}, else the state dir)."
    )

    @sandbox.command()
    def up(
        directory: Path | None = dir_option,
        auto_approve: str | None = typer.Option(
            None, "--auto-approve", help="Approve every device login as this sandbox user."
        ),
    ) -> None:
        """Start the sandbox in the background (does nothing if it already runs)."""
        from jitkube.sandbox import control

        current, started = control.up(_dir(directory), auto_approve=auto_approve)
        state = current.state
        verb = "started" if started else "already running"
        _emit(
            "sandbox up",
            {"started": started, "directory": str(current.directory), **state},
            f"sandbox {verb} in {current.directory}"
            + (f" ({state['startup_seconds']:.2f} s)\n" if started else "\n")
            + f"  cluster   {state['cluster_name']} at {state['cluster_url']}\n"
            + f"  STS       {state['sts_url']}\n"
            + f"  identity  {state['issuer']}\n"
            + 'point jitkube at it with:  eval "$(jitkube sandbox env)"\n',
        )

    @sandbox.command()
    def down(directory: Path | None = dir_option) -> None:
        """Stop the sandbox and every process it started."""
        from jitkube.sandbox import control

        target = _dir(directory)
        stopped = control.down(target)
        _emit(
            "sandbox down",
            {"stopped": stopped, "directory": str(target)},
            f"sandbox stopped ({target})\n" if stopped else f"no sandbox was running in {target}\n",
        )

    @sandbox.command()
    def status(directory: Path | None = dir_option) -> None:
        """Show whether the sandbox runs, and where its services listen."""
        from jitkube.sandbox import control

        current = control.status(_dir(directory))
        text = f"sandbox: {'running' if current.running else 'not running'} ({current.directory})\n"
        if current.running:
            text += _status_details(current.state)
        _emit(
            "sandbox status",
            {"running": current.running, "directory": str(current.directory), **current.state},
            text,
        )

    @sandbox.command("env")
    def env_command(directory: Path | None = dir_option) -> None:
        """Print shell exports that point jitkube at the sandbox."""
        from jitkube.sandbox import control

        lines = control.env_lines(_running(directory))
        _emit("sandbox env", {"exports": lines}, "\n".join(lines) + "\n")

    @sandbox.command("approve-device")
    def approve_device(
        user_code: str = typer.Argument(..., help="The code `jitkube login` shows."),
        user: str = typer.Option(..., "--user", help="Sandbox user who logs in (e.g. alice)."),
        deny: bool = typer.Option(False, "--deny", help="Deny the login instead."),
        directory: Path | None = dir_option,
    ) -> None:
        """Approve (or deny) a pending device login, as the sandbox user would in a browser."""
        from jitkube.sandbox import control

        control.approve_device(_running(directory), user_code, user, deny=deny)
        action = "denied" if deny else f"approved as {user}"
        _emit(
            "sandbox approve-device",
            {"user_code": user_code, "user": user, "denied": deny},
            f"device login {user_code} {action}\n",
        )


# What an operator copies into a broker.yaml of their own (docs/getting-started.md).
_STATUS_FIELDS = (
    ("cluster_name", "cluster"),
    ("cluster_url", "cluster_url"),
    ("sts_url", "sts_url"),
    ("region", "region"),
    ("issuer", "issuer"),
    ("ca_bundle", "ca_bundle"),
    ("broker_url", "broker_url"),
    ("broker_config", "broker_config"),
    ("config", "config"),
)


def _status_details(state: Mapping[str, Any]) -> str:
    text = ""
    for key, label in _STATUS_FIELDS:
        if key in state:
            text += f"  {label:13s} {state[key]}\n"
    roles = state.get("roles")
    if isinstance(roles, dict):
        for name, arn in roles.items():
            text += f"  {'role ' + str(name):13s} {arn}\n"
    return text
