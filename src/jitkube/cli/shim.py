"""`jitkube shim install [--dir DIR]`: guard agents that call `kubectl` directly."""

from __future__ import annotations

from pathlib import Path

import typer

from jitkube import envelope
from jitkube.environment import Environment

DEFAULT_DIR = Path("~/.local/share/jitkube/shim")
DIR_OPTION = typer.Option(
    DEFAULT_DIR,
    "--dir",
    help="Where to write `kubectl`; put this directory first on the agent's PATH.",
)


def register(app: typer.Typer, env: Environment) -> None:
    shim = typer.Typer(help="A `kubectl` for an agent's PATH that runs `jitkube kubectl`.")
    app.add_typer(shim, name="shim")

    @shim.command()
    def install(
        directory: Path = DIR_OPTION,
        force: bool = typer.Option(False, "--force", help="Overwrite a non-shim kubectl."),
        front: str = typer.Option(
            "auto",
            "--front",
            help="compiled: build the C front end (hot calls skip Python's start-up; needs a "
            "C compiler); script: a shell script; auto: compiled where a compiler works.",
        ),
    ) -> None:
        """Write the kubectl shim."""
        from jitkube.shim import install as do_install
        from jitkube.shim import is_compiled

        written = do_install(directory.expanduser(), force=force, front=front)
        kind = "compiled" if is_compiled(written[0]) else "script"
        if env.json_output:
            data = {
                "path": str(written[0]),
                "path_entry": str(written[0].parent),
                "front": kind,
                "files": [str(p) for p in written],
            }
            env.stdout.write(envelope.dumps(envelope.build("shim install", "ok", 0, data)) + "\n")
        else:
            for path in written:
                env.stdout.write(f"wrote {path} ({kind})\n")
            env.stdout.write(
                f'put it first on the agent\'s PATH:  export PATH="{written[0].parent}:$PATH"\n'
            )
