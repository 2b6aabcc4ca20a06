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


# jitkube.front.MARKER, which front.c compiles into the binary (kept here: this module
# is on the hot path and jitkube.front is not).
COMPILED_MARKER = b"# jitkube-shim: compiled front end"
_MAX_FRONT_SIZE = 1 << 18


def is_shim(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a kubectl shim (or compiled front end) written by jitkube."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
            if head.startswith(b"\x7fELF"):
                # The front end is ~20 KiB; a real kubectl (~50 MiB) is not read at all.
                if os.fstat(fh.fileno()).st_size > _MAX_FRONT_SIZE:
                    return False
                return COMPILED_MARKER in head + fh.read()
    except OSError:
        return False
    return head.startswith(b"#!") and MARKER in head


def is_compiled(path: str | os.PathLike[str]) -> bool:
    """True when `path` is jitkube's compiled front end (not the shell script)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF" and is_shim(path)
    except OSError:
        return False


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
    return [sys.executable, "-P", "-m", "jitkube"]  # -P: never a `jitkube` of the cwd


FRONTS = ("auto", "compiled", "script")


def install(directory: Path, *, force: bool = False, front: str = "auto") -> list[Path]:
    """Write `DIRECTORY/kubectl` (0755) and, with the compiled front end, a `jitkube`
    beside it. Refuses to overwrite files jitkube did not write.

    front: "compiled" builds front.c (fails without a C compiler), "script" writes the
    shell script, "auto" compiles where a compiler is found and works.
    """
    from jitkube import front as compiled
    from jitkube.errors import ConfigError, UsageError

    if front not in FRONTS:
        raise UsageError(f"--front must be one of {', '.join(FRONTS)}, not {front!r}")
    cc = compiled.compiler() if front != "script" else None
    if front == "compiled" and cc is None:
        raise ConfigError(
            "no C compiler found to build jitkube's front end (looked for $CC, cc, gcc, clang)",
            hint="install gcc, or use the script shim: --front script",
        )
    directory.mkdir(parents=True, exist_ok=True)
    targets = [directory / "kubectl"] + ([directory / "jitkube"] if cc else [])
    for target in targets:
        if target.exists() and not is_shim(target) and not force:
            raise UsageError(
                f"{target} exists and was not written by jitkube; refusing to overwrite it",
                hint="choose another --dir (one that comes first on the agent's PATH)",
            )
    command = jitkube_command()
    if cc is not None:
        try:
            for target in targets:
                compiled.build(
                    target, fallback=command, kubectl_shim=target.name == "kubectl", cc=cc
                )
            return targets
        except ConfigError:
            if front == "compiled":
                raise
        targets = targets[:1]  # auto: the compiler failed; the script still guards
    target = targets[0]
    tmp = target.with_name(".kubectl.jitkube-shim.tmp")
    tmp.write_text(shim_script(command))
    tmp.chmod(0o755)
    os.replace(tmp, target)
    beside = directory / "jitkube"  # a compiled one from an earlier install: now stale
    if beside.exists() and is_shim(beside):
        beside.unlink()
    return [target]
