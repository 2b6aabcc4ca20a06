"""`jitkube broker serve`: run the broker service (thin adapter over jitkube.broker.server)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jitkube.environment import Environment


def broker_app(env: Environment) -> typer.Typer:
    """The `broker` command group."""
    group = typer.Typer(
        name="broker",
        help="Run the jitkube broker (sessions, STS, approvals, audit).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
    )

    @group.callback()
    def broker() -> None:
        """Run the jitkube broker (sessions, STS, approvals, audit)."""

    @group.command("serve")
    def serve(
        config: Annotated[
            Path, typer.Option("--config", "-c", help="broker.yaml (docs/broker-config.md).")
        ],
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8080,
        tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate (chain).")] = None,
        tls_key: Annotated[Path | None, typer.Option(help="PEM private key.")] = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
        workers: Annotated[
            int,
            typer.Option(
                help="Worker processes sharing the socket and the database (1-64); "
                "rate limits apply per worker."
            ),
        ] = 1,
    ) -> None:
        """Serve the broker API until interrupted (prints the listening URL first)."""
        from jitkube.broker.server import ServeOptions
        from jitkube.broker.server import serve as run

        options = ServeOptions(config, host, port, tls_cert, tls_key, log_level, workers)
        run(options, announce=env.stdout)

    return group


def register(app: typer.Typer, env: Environment) -> None:
    """Add `jitkube broker …` to the main app."""
    app.add_typer(broker_app(env), name="broker")
