"""`jitkube demo [--keep] [--dir DIR]`: the whole story against a throw-away sandbox."""

from __future__ import annotations

from pathlib import Path

import typer

from jitkube.environment import Environment


def register(app: typer.Typer, env: Environment) -> None:
    keep_option = typer.Option(
        False, "--keep", help="Leave the sandbox running and print how to use it."
    )
    dir_option = typer.Option(None, "--dir", help="Work here instead of a new temporary directory.")

    @app.command()
    def demo(keep: bool = keep_option, directory: Path | None = dir_option) -> None:
        """Start a sandbox and walk through login, request, kubectl, approvals and audit."""
        from jitkube.demo import make_console, run_demo

        console = make_console(env.environ, env.stdout)
        code = run_demo(console, env.environ, keep=keep, directory=directory)
        if code:
            raise typer.Exit(code)
