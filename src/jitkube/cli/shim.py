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
    ) -> None:
        """Write the kubectl shim."""
        from jitkube.shim import install as do_install

        target = do_install(directory.expanduser(), force=force)
        if env.json_output:
            data = {"path": str(target), "path_entry": str(target.parent)}
            env.stdout.write(envelope.dumps(envelope.build("shim install", "ok", 0, data)) + "\n")
        else:
            env.stdout.write(
                f"wrote {target}\n"
                f'put it first on the agent\'s PATH:  export PATH="{target.parent}:$PATH"\n'
            )
