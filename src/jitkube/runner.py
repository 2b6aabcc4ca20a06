"""Run the real kubectl with a private kubeconfig, a scrubbed environment and pass-through.

Stdlib only (hot path). The bearer token only ever lives in a 0600 kubeconfig inside a
0700 directory that is removed on every exit path jitkube controls (normal, error,
Ctrl-C, SIGTERM, an exception); directories left by a process that was SIGKILLed are
swept by the next run. The token is never on a command line or in an environment.

Two ways to run:
- pass-through (no masking, no buffered stdin): `os.posix_spawn` with the caller's own
  stdin/stdout/stderr, so TTYs, window size and job control behave as with bare kubectl,
  and `subprocess` is never imported (≈7 ms of start-up saved);
- filtered: stdout and stderr through pipes and a masker, streamed chunk by chunk so
  `logs -f` and `get -w` stay live; buffered stdin (`-f -`) is written to kubectl.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from jitkube.dataclass_lite import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from typing import Protocol

# kubectl's environment is built from an allowlist, never by subtracting from the
# caller's: the caller may be a manipulated agent, and anything kubectl (or Go, or an
# editor/diff program it starts) reads from the environment could defeat jitkube —
# GODEBUG=http2debug=1 prints the bearer token, KUBE_EDITOR/EDITOR/SHELL/PATH run a
# program of the caller's choosing next to the kubeconfig, proxies see the traffic.
_KEEP = frozenset({"LANG", "LANGUAGE", "TERM", "TZ", "COLUMNS", "LINES", "NO_COLOR"})
_KEEP_PREFIXES = ("LC_",)
# Editors (`kubectl edit`) and `diff` are found only in system directories.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PINNED = {"KUBECTL_KUBERC": "false", "KUBECTL_ENABLE_CMD_SHADOW": "false"}

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH)
_CHUNK = 65536


if TYPE_CHECKING:

    class Masker(Protocol):
        """What the runner needs of a stream masker (jitkube.masking)."""

        @property
        def masked_count(self) -> int: ...

        def feed(self, chunk: bytes) -> bytes: ...

        def close(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Target:
    """Where kubectl talks to and with which bearer token."""

    server: str
    ca_pem: bytes
    token: str
    namespace: str = "default"
    cluster_name: str = "jitkube"

    def __repr__(self) -> str:  # the token must never reach a log or traceback
        return f"Target(server={self.server!r}, cluster_name={self.cluster_name!r})"


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_code: int
    duration_ms: int
    # None: kubectl wrote straight to the caller's descriptors (nothing to mask), so
    # jitkube did not see, and cannot count, the bytes.
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    masked_count: int = 0


def child_environment(environ: Mapping[str, str], run_dir: Path, cache_dir: Path) -> dict[str, str]:
    """kubectl's environment: a few harmless variables of the caller's, the rest pinned."""
    env = {k: v for k, v in environ.items() if k in _KEEP or k.startswith(_KEEP_PREFIXES)}
    tmpdir = environ.get("TMPDIR", "")
    if os.path.isabs(tmpdir) and os.path.isdir(tmpdir):
        env["TMPDIR"] = tmpdir  # where `kubectl edit` writes its temporary file
    env.update(_PINNED)
    env["PATH"] = SAFE_PATH
    env["KUBECONFIG"] = str(run_dir / "kubeconfig")
    env["KUBECACHEDIR"] = str(cache_dir)
    # HOME pins ~/.kube (config, cache, kuberc) to the private directory.
    env["HOME"] = str(run_dir)
    return env


def kubeconfig_document(target: Target) -> str:
    """A kubeconfig (JSON is valid YAML) with one cluster, one user, one context."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": target.cluster_name,
                    "cluster": {
                        "server": target.server,
                        "certificate-authority-data": base64.b64encode(target.ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "jitkube", "user": {"token": target.token}}],
            "contexts": [
                {
                    "name": "jitkube",
                    "context": {
                        "cluster": target.cluster_name,
                        "user": "jitkube",
                        "namespace": target.namespace,
                    },
                }
            ],
            "current-context": "jitkube",
        }
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(path: Path) -> None:
    """Remove a run directory (flat, plus kubectl's ~/.kube below it)."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, name))
        for name in dirs:
            full = os.path.join(root, name)
            try:
                if os.path.islink(full):
                    os.unlink(full)
                else:
                    os.rmdir(full)
            except FileNotFoundError:
                pass
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)


def sweep_stale(base: Path) -> None:
    """Remove run directories whose jitkube process died without cleaning up (SIGKILL)."""
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return
    for name in entries:
        pid_text = name.partition("-")[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            _remove_tree(base / name)


class PrivateRunDir:
    """A 0700 directory holding the 0600 kubeconfig, removed on exit."""

    def __init__(self, base: Path, target: Target) -> None:
        self.base = base
        self.target = target
        self.path = base / f"{os.getpid()}-{os.urandom(6).hex()}"

    def __enter__(self) -> Path:
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.base, 0o700)
        sweep_stale(self.base)
        os.mkdir(self.path, 0o700)
        fd = os.open(self.path / "kubeconfig", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(kubeconfig_document(self.target))
        return self.path

    def __exit__(self, *exc: object) -> None:
        _remove_tree(self.path)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def running_child() -> int | None:
    """The kubectl process this jitkube is waiting for (None between runs): the warm
    server's worker stops and continues it when the caller is suspended (Ctrl-Z)."""
    return _Forwarder.current.pid if _Forwarder.current is not None else None


class _Forwarder:
    """Forward termination and window-size signals to the child while it runs."""

    current: _Forwarder | None = None

    def __init__(self) -> None:
        self.pid: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def __enter__(self) -> _Forwarder:
        for sig in _FORWARDED:
            self._previous[sig] = signal.signal(sig, self._handle)
        _Forwarder.current = self
        return self

    def __exit__(self, *exc: object) -> None:
        _Forwarder.current = None
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]


def run_kubectl(
    kubectl: str,
    argv: Sequence[str],
    target: Target,
    *,
    environ: Mapping[str, str],
    run_base: Path,
    cache_dir: Path,
    stdin_bytes: bytes | None = None,
    maskers: tuple[Callable[[], Masker], Callable[[], Masker]] | None = None,
    stdout_fd: int = 1,
    stderr_fd: int = 2,
) -> RunResult:
    """Run `kubectl ARGV` against `target`; kubectl's exit code is returned unchanged.

    `maskers` are factories for the stdout and the stderr masker (None: no filtering).
    """
    started = time.monotonic()
    kubectl_path = resolve_kubectl(kubectl, environ)
    with PrivateRunDir(run_base, target) as run_dir, _Forwarder() as forwarder:
        env = child_environment(environ, run_dir, cache_dir)
        args = [kubectl_path, *argv]
        if maskers is None and stdin_bytes is None:
            pid = os.posix_spawn(kubectl_path, args, env)
            forwarder.pid = pid
            _, status = os.waitpid(pid, 0)
            return RunResult(_exit_code(status), int((time.monotonic() - started) * 1000))
        return _run_filtered(
            args, env, forwarder, started, stdin_bytes, maskers, stdout_fd, stderr_fd
        )


def check_kubectl_setting(kubectl: str) -> None:
    """Refuse a kubectl path that cannot be kubectl (no PATH search, no I/O but the shim
    check). Whatever runs as kubectl holds the private kubeconfig, and the setting can come
    from JITKUBE_KUBECTL, which an agent can set: /bin/sh or /usr/bin/env must not run."""
    from jitkube.errors import ConfigError
    from jitkube.shim import is_shim

    if not os.path.basename(kubectl).startswith("kubectl"):
        raise ConfigError(
            f"the kubectl setting {kubectl!r} does not name a kubectl binary",
            hint="point `kubectl` (or JITKUBE_KUBECTL) at a file named kubectl…",
        )
    if os.sep in kubectl and is_shim(kubectl):
        raise ConfigError(
            f"the kubectl setting {kubectl!r} is jitkube's own shim",
            hint="point `kubectl` in config.toml (or JITKUBE_KUBECTL) at the real binary",
        )


def resolve_kubectl(kubectl: str, environ: Mapping[str, str]) -> str:
    """An absolute path to the real kubectl (posix_spawn does not search PATH).

    jitkube's own `kubectl` shim is skipped: running it would recurse into jitkube.
    """
    from jitkube.errors import ConfigError
    from jitkube.shim import is_shim

    if os.sep in kubectl:
        check_kubectl_setting(kubectl)
        return kubectl
    for directory in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", kubectl)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and not is_shim(candidate):
            return candidate
    raise ConfigError(
        f"kubectl not found: {kubectl!r} is not on PATH",
        hint="install kubectl or set kubectl = '/path/to/kubectl' in config.toml",
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[written:]


def _run_filtered(
    args: list[str],
    env: dict[str, str],
    forwarder: _Forwarder,
    started: float,
    stdin_bytes: bytes | None,
    maskers: tuple[Callable[[], Masker], Callable[[], Masker]] | None,
    stdout_fd: int,
    stderr_fd: int,
) -> RunResult:
    import selectors
    import subprocess
    import threading

    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.PIPE if stdin_bytes is not None else None,
        stdout=subprocess.PIPE if maskers else None,
        stderr=subprocess.PIPE if maskers else None,
        close_fds=True,
    )
    forwarder.pid = proc.pid
    feeder = None
    if stdin_bytes is not None and proc.stdin is not None:
        stdin_pipe = proc.stdin

        def feed_stdin() -> None:
            try:
                stdin_pipe.write(stdin_bytes)
            except BrokenPipeError:
                pass
            finally:
                with contextlib.suppress(BrokenPipeError):
                    stdin_pipe.close()

        feeder = threading.Thread(target=feed_stdin, daemon=True)
        feeder.start()
    counts = {stdout_fd: 0, stderr_fd: 0}
    masked = 0
    if maskers is not None and proc.stdout is not None and proc.stderr is not None:
        active = {stdout_fd: maskers[0](), stderr_fd: maskers[1]()}
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, stdout_fd)
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ, stderr_fd)
        open_streams = 2
        while open_streams:
            for key, _ in sel.select():
                out_fd: int = key.data
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    sel.unregister(key.fd)
                    open_streams -= 1
                    tail = active[out_fd].close()
                    if tail:
                        counts[out_fd] += len(tail)
                        _write_all(out_fd, tail)
                    continue
                cleaned = active[out_fd].feed(chunk)
                if cleaned:
                    counts[out_fd] += len(cleaned)
                    _write_all(out_fd, cleaned)
        sel.close()
        masked = sum(m.masked_count for m in active.values())
    code = proc.wait()
    if feeder is not None:
        feeder.join(timeout=5)
    return RunResult(
        128 - code if code < 0 else code,
        int((time.monotonic() - started) * 1000),
        counts[stdout_fd],
        counts[stderr_fd],
        masked,
    )


def default_run_base(environ: Mapping[str, str]) -> Path:
    """`$XDG_RUNTIME_DIR/jitkube/run` (per-user tmpfs), else the state directory."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / "jitkube" / "run"
    from jitkube.config import state_dir

    return state_dir(environ) / "run"


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """kubectl's discovery cache, kept between runs (warm cache ≈ bare kubectl's speed)."""
    cache = environ.get("XDG_CACHE_HOME")
    base = (
        Path(cache)
        if cache and os.path.isabs(cache)
        else Path(environ.get("HOME") or os.path.expanduser("~")) / ".cache"
    )
    return base / "jitkube" / "kube-cache"


__all__ = [
    "Masker",
    "RunResult",
    "Target",
    "child_environment",
    "default_cache_dir",
    "default_run_base",
    "kubeconfig_document",
    "resolve_kubectl",
    "run_kubectl",
    "sweep_stale",
]
