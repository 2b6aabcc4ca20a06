"""Build jitkube's compiled front end (front.c) with the machine's C compiler.

`jitkube shim install` uses it: the `kubectl` shim (and a `jitkube` beside it) then hand
hot calls to the warm server without starting Python, ~12-16 ms less per call than the
console script (benchmarks/kubectl_overhead.py). Where no compiler is found, or it
fails, the shim is the shell script of jitkube.shim and nothing else changes.

The binary is tied to this installation: its socket tag (warm._tag: interpreter,
package directory, version) and the Python jitkube it falls back to are compiled in.
After an upgrade the front end still works — every call falls back to Python — and
says how to rebuild it (warm._front_outcome).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from jitkube.errors import ConfigError

SOURCE = Path(__file__).with_name("front.c")
# jitkube.shim.is_shim() looks for this in an ELF file; front.c compiles it in.
MARKER = "# jitkube-shim: compiled front end"
# Common hardening where the compiler knows it; tried first, dropped if it fails.
_HARDENING = [
    "-fstack-protector-strong",
    "-D_FORTIFY_SOURCE=2",
    "-fPIE",
    "-pie",
    "-Wl,-z,relro,-z,now",
]


def compiler(environ: dict[str, str] | None = None) -> str | None:
    """$CC (a program name or path, no flags), else cc, gcc or clang on PATH."""
    environ = dict(os.environ) if environ is None else environ
    configured = environ.get("CC", "").strip()
    if configured:
        return shutil.which(configured)
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _c_string(value: str) -> str:
    """A C string literal of `value`'s bytes: every byte but letters, digits and `/._-: #`
    as an octal escape, so no path can end the literal or the header."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-: #"
    return '"' + "".join(chr(b) if b in safe else f"\\{b:03o}" for b in os.fsencode(value)) + '"'


def config_header(*, tag: str, fallback: list[str], kubectl_shim: bool) -> str:
    if not fallback or not all(fallback) or not os.path.isabs(fallback[0]):
        raise ValueError("the fallback must start with an absolute path")
    items = ", ".join(_c_string(part) for part in fallback)
    return (
        "/* written by jitkube.front: this installation's front end */\n"
        f"#define JK_TAG {_c_string(tag)}\n"
        f"#define JK_MARKER {_c_string(MARKER)}\n"
        f"#define JK_KUBECTL_SHIM {int(kubectl_shim)}\n"
        f"static const char *const jk_fallback[] = {{{items}, 0}};\n"
    )


def build(
    target: Path, *, fallback: list[str], kubectl_shim: bool, cc: str, tag: str | None = None
) -> None:
    """Compile front.c into `target` (0755, replaced atomically). Raises ConfigError
    with the compiler's message when it fails. `tag` defaults to this installation's
    (tests build one for another installation)."""
    from jitkube.warm import _tag

    with tempfile.TemporaryDirectory(prefix="jitkube-front-") as tmp:
        header = Path(tmp) / "front_config.h"
        header.write_text(
            config_header(tag=tag or _tag(), fallback=fallback, kubectl_shim=kubectl_shim)
        )
        out = target.with_name(f".{target.name}.jitkube-front.tmp")
        base = [cc, "-std=c99", "-O2", "-Wall", "-I", tmp, "-o", str(out), str(SOURCE)]
        errors = ""
        for flags in (_HARDENING, []):
            done = subprocess.run([*base[:1], *flags, *base[1:]], capture_output=True, text=True)
            if done.returncode == 0:
                break
            errors = done.stderr
        else:
            out.unlink(missing_ok=True)
            last = errors.strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(
                f"the C compiler {cc} could not build jitkube's front end: {last[0]}",
                hint="install a C compiler (gcc), or use the script shim: --front script",
            )
        out.chmod(0o755)
        os.replace(out, target)
