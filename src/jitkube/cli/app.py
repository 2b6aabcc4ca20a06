"""Builds the Typer app; one module per command group registers its commands here.

Click's own error printing is bypassed (standalone_mode=False) so every error goes
through jitkube.entry's single mapper, and pretty exceptions never show locals: tokens
live in local variables.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

try:  # Typer >= 0.22 vendors Click as typer._click; its exceptions are not re-exported.
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer uses the click package
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from jitkube import __version__
from jitkube.environment import Environment
from jitkube.errors import ExitCode, UsageError

HELP = (
    "Just-in-time, guarded, audited kubectl for AI agents, engineers and CI.\n\n"
    "Hot-path commands (not listed by Typer): `jitkube kubectl ARGS…` runs a guarded "
    "kubectl; `jitkube check [--agent] [--policy FILE] [--output json] -- kubectl ARGS…` "
    "judges a command without running it."
)


def build_app(env: Environment) -> typer.Typer:
    app = typer.Typer(
        name="jitkube",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
    )

    @app.callback()
    def root(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
        output: str = typer.Option("text", "--output", help="text or json (envelope)."),
        non_interactive: bool = typer.Option(
            False,
            "--non-interactive",
            help="Never prompt (also JITKUBE_NON_INTERACTIVE=1, CI=true).",
        ),
    ) -> None:
        """Global options are applied by jitkube.entry before Typer runs."""

    @app.command()
    def version() -> None:
        """Print jitkube's version."""
        env.stdout.write(f"jitkube {__version__}\n")

    from jitkube.cli import audit, broker, demo, login, sandbox, sessions, shim, warm

    login.register(app, env)
    sessions.register(app, env)
    sandbox.register(app, env)
    broker.register(app, env)
    shim.register(app, env)
    audit.register(app, env)
    demo.register(app, env)
    warm.register(app, env)
    return app


def run_app(args: Sequence[str], env: Environment) -> int:
    command = typer.main.get_command(build_app(env))
    try:
        result = command.main(args=list(args), prog_name="jitkube", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        env.stdout.write(exc.ctx.get_help() + "\n")
        return int(ExitCode.OK)
    except click_exceptions.UsageError as exc:
        raise UsageError(exc.format_message()) from exc
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort as exc:
        raise KeyboardInterrupt from exc
    return int(result) if isinstance(result, int) else int(ExitCode.OK)
