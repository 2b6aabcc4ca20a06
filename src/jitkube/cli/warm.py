"""`jitkube warm start|status|stop`: the per-user warm server (see jitkube.warm)."""

from __future__ import annotations

import time

import typer

from jitkube import envelope, warm
from jitkube.environment import Environment
from jitkube.errors import ConfigError


def _print(env: Environment, command: str, data: dict[str, object], text: str) -> None:
    if env.json_output:
        env.stdout.write(envelope.dumps(envelope.build(command, "ok", 0, data)) + "\n")
    else:
        env.stdout.write(text + "\n")


def register(app: typer.Typer, env: Environment) -> None:
    group = typer.Typer(
        help="The warm server: keeps `jitkube kubectl` start-up near Python's own "
        "(started on first use; JITKUBE_WARM=0 or `warm = false` turns it off)."
    )
    app.add_typer(group, name="warm")

    @group.command()
    def start(
        wait: float = typer.Option(10.0, "--wait", help="Seconds to wait until it answers."),
    ) -> None:
        """Start the warm server now (it is otherwise started after the first call)."""
        if not warm.enabled(env.environ):
            raise ConfigError("JITKUBE_WARM is off in this environment", hint="unset it")
        if not warm.supported():
            raise ConfigError("the warm server runs on Linux only")
        if warm.socket_path(env.environ) is None:
            raise ConfigError(
                f"the socket path under {warm.socket_dir(env.environ)} is too long for a "
                "Unix socket",
                hint="set XDG_RUNTIME_DIR to a shorter private directory",
            )
        info = warm.status(env.environ)
        if info is None:
            warm.spawn_server(env.environ)
            deadline = time.monotonic() + wait
            while info is None and time.monotonic() < deadline:
                time.sleep(0.05)
                info = warm.status(env.environ)
        if info is None:
            raise ConfigError(f"the warm server did not answer within {wait:g} s")
        _print(env, "warm start", info, f"warm server running (pid {info['pid']})")

    @group.command()
    def status() -> None:
        """Show whether a warm server runs, its pid and how many calls it served."""
        info = warm.status(env.environ)
        if info is None:
            _print(env, "warm status", {"running": False}, "no warm server is running")
            return
        _print(
            env,
            "warm status",
            {"running": True, **info},
            f"warm server running: pid {info['pid']}, {info['served']} calls served, "
            f"socket {info['socket']}",
        )

    @group.command()
    def stop() -> None:
        """Stop the warm server (the next call runs in-process and starts a new one)."""
        stopped = warm.stop(env.environ)
        _print(
            env,
            "warm stop",
            {"stopped": stopped},
            "warm server stopped" if stopped else "no warm server was running",
        )
