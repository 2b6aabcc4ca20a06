"""`jitkube shim install`: a `kubectl` on the agent's PATH that runs `jitkube kubectl`.

An agent that calls `kubectl` directly is then guarded too. The runner recognises the
shim by its marker line and never runs it as "the real kubectl" (no recursion).
Stdlib only: the runner's PATH search reads the marker on the hot path.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

MARKER = b"# jitkube-shim"


def is_shim(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a kubectl shim written by jitkube."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return head.startswith(b"#!") and MARKER in head


def shim_script(jitkube_command: list[str]) -> str:
    command = " ".join(shlex.quote(part) for part in jitkube_command)
    return (
        "#!/bin/sh\n"
        f"{MARKER.decode()}: kubectl through jitkube (written by `jitkube shim install`)\n"
        f'exec {command} kubectl "$@"\n'
    )


def jitkube_command() -> list[str]:
    """How the shim should start this jitkube: its console script, else `python -m`."""
    script = Path(sys.executable).with_name("jitkube")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "jitkube"]


def install(directory: Path, *, force: bool = False) -> Path:
    """Write `DIRECTORY/kubectl` (0755). Refuses to overwrite a real kubectl."""
    from jitkube.errors import UsageError

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "kubectl"
    if target.exists() and not is_shim(target) and not force:
        raise UsageError(
            f"{target} exists and is not a jitkube shim; refusing to overwrite it",
            hint="choose another --dir (one that comes first on the agent's PATH)",
        )
    tmp = target.with_name(".kubectl.jitkube-shim.tmp")
    tmp.write_text(shim_script(jitkube_command()))
    tmp.chmod(0o755)
    os.replace(tmp, target)
    return target
