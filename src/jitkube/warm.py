"""The warm server: a per-user process that keeps the hot path imported and forks one
worker per `jitkube kubectl` / `jitkube check` call.

Why: a cold `jitkube kubectl get pods` spends ~35 ms importing the stdlib and jitkube
before kubectl starts (measured: `python -X importtime`, benchmarks/kubectl_overhead.py),
on top of Python's own ~12 ms start-up. A forked worker of a process that has already
imported everything starts in ~1 ms. The worker runs exactly the code an in-process call
runs (`jitkube.entry.main`) with the caller's argv, environment, working directory, umask
and file descriptors 0, 1, 2 (and its /dev/tty, for `confirm`), passed over a Unix socket
with SCM_RIGHTS. The caller ("front end") forwards the signals it receives (SIGINT,
SIGTERM, SIGHUP, SIGQUIT, SIGWINCH) and exits with the worker's exit code.

Safety: the socket lives in the caller's private runtime directory; each side checks the
other's uid with SO_PEERCRED, so the server only ever works for its own user — who could
run jitkube in-process anyway. A server whose code changed on disk refuses (the caller
then runs in-process), and it exits after `JITKUBE_WARM_IDLE` seconds without calls
(default 900). `JITKUBE_WARM=0` (or `warm = false` in config.toml) turns it off.

The front end (`attempt`) imports only `os`, `sys`, `_socket` and `_signal`: the
`socket` and `signal` wrappers cost ~4-5 ms each for their enums (measured with
`python -X importtime`), which is the whole budget this module exists to save.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from _socket import socket as Socket
    from collections.abc import Mapping, Sequence

MAGIC = b"JKW1"
STATUS = b"JKW1-status"
STOP = b"JKW1-stop"
DEFAULT_IDLE = 900.0
MAX_FRAME = 4 * 1024 * 1024  # argv + environment; Linux caps both together at ~2 MiB
# Set by the compiled front end (front.c) when it runs the Python jitkube: what it tried.
FRONT_VARIABLE = "JITKUBE_WARM_FRONT"
_OFF = ("0", "false", "no", "off")
# Set by attempt(): no server answered, so the in-process run may start one afterwards.
server_absent = False


def enabled(environ: Mapping[str, str]) -> bool:
    return environ.get("JITKUBE_WARM", "").strip().lower() not in _OFF


def _tag() -> str:
    """Which installation a server belongs to (interpreter, package dir, version): a
    64-bit FNV-1a of them, so two virtualenvs never share a server."""
    from jitkube import __version__

    h = 0xCBF29CE484222325
    for byte in f"{sys.executable}\0{os.path.dirname(__file__)}\0{__version__}".encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"[:12]


def socket_dir(environ: Mapping[str, str]) -> str:
    """`$XDG_RUNTIME_DIR/jitkube` (per-user tmpfs), else jitkube's state directory."""
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/") and os.path.isdir(runtime):
        return runtime + "/jitkube"
    state = environ.get("XDG_STATE_HOME", "")
    if not state.startswith("/"):
        state = (environ.get("HOME") or os.path.expanduser("~")) + "/.local/state"
    return state + "/jitkube"


def supported() -> bool:
    """Linux only: the peers check each other's uid with SO_PEERCRED."""
    return sys.platform.startswith("linux")


def socket_path(environ: Mapping[str, str]) -> str | None:
    """None where unsupported, or when the path would not fit a sockaddr_un."""
    if not supported():
        return None
    path = f"{socket_dir(environ)}/warm-{_tag()}.sock"
    return path if len(os.fsencode(path)) < 104 else None


def hot_command(argv: Sequence[str]) -> bool:
    """`jitkube [global options] kubectl|check …`: a cheap look at the command word
    (argv is parsed for real later)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--agent", "--reason", "--approval-timeout", "--output", "-o"):
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return arg in ("kubectl", "check")
    return False


def _frame(argv: Sequence[str], environ: Mapping[str, str]) -> bytes:
    """NUL-separated fields (argv and environment entries cannot contain NUL)."""
    umask = os.umask(0o077)
    os.umask(umask)
    fields = [MAGIC, os.fsencode(os.getcwd()), str(umask).encode(), str(len(argv)).encode()]
    fields += [os.fsencode(a) for a in argv]
    fields += [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in environ.items()]
    payload = b"\0".join(fields)
    return len(payload).to_bytes(4, "big") + payload


def _connect(path: str) -> Socket:
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        if int.from_bytes(cred[4:8], sys.byteorder) != os.getuid():
            raise OSError("the warm server's socket belongs to another user")
    except OSError:
        sock.close()
        raise
    return sock


def _front_outcome(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """What the compiled front end (front.c) already tried before it ran this process:
    "absent" (no server answered, or it refused), "failed", or None (nothing, or a front
    end built for another installation, which is told how to rebuild it)."""
    note = environ.pop(FRONT_VARIABLE, None)
    if note is None:
        return None
    outcome, _, tag = note.partition(":")
    if tag != _tag():
        os.write(
            2,
            b"jitkube: the compiled front end (kubectl shim) was built for another jitkube "
            b"installation; every call takes the slow path until you run "
            b"`jitkube shim install` again\n",
        )
        return None
    return outcome


def _foreground_tty() -> int | None:
    """The controlling terminal (-1 without one), or None when this process is a
    background job of it: run in-process then, so that a prompt read from the terminal
    stops the job (SIGTTIN) as usual instead of taking keystrokes from the foreground
    (a worker is in another session, where job control does not reach)."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return -1
    try:
        if os.tcgetpgrp(tty) == os.getpgrp():
            return tty
    except OSError:
        pass
    os.close(tty)
    return None


def attempt(argv: Sequence[str]) -> int | None:
    """Run this call in the warm server; None means "run it here" (nothing ran yet)."""
    global server_absent
    environ = os.environ
    if not hot_command(argv) or not enabled(environ):
        return None
    front = _front_outcome(environ)
    if front is not None:  # the front end tried already: do not knock twice
        server_absent = front == "absent"
        return None
    path = socket_path(environ)
    if path is None:
        return None
    # stdin, stdout and stderr are open here: entry.main put /dev/null on a closed one, so
    # the socket cannot take its number and reach the worker as a standard stream.
    tty = _foreground_tty()
    if tty is None:
        return None
    import _socket

    try:
        sock = _connect(path)
    except OSError:
        server_absent = True
        if tty >= 0:
            os.close(tty)
        return None
    try:
        frame = _frame(argv, environ)
        fds = [0, 1, 2] if tty < 0 else [0, 1, 2, tty]
        ancillary = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        sent = sock.sendmsg([frame], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, ancillary)])
        if sent < len(frame):
            sock.sendall(frame[sent:])
        if sock.recv(1) != b"A":
            server_absent = True  # it refused (its code changed) and exits: start anew
            return None  # nothing ran yet: run in-process
    except OSError:
        sock.close()
        return None
    finally:
        if tty >= 0:
            os.close(tty)
    return _follow(sock)


def _follow(sock: Socket) -> int:
    """Forward signals to the worker until it reports its exit code."""
    import _signal  # type: ignore[import-not-found]

    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - contextlib is an import this path does without
            sock.send(bytes((signum,)))
        except OSError:
            pass

    def suspend(signum: int, _frame: object) -> None:
        # Ctrl-Z: the worker stops kubectl, then this process stops as usual; once the
        # shell continues it (fg/bg), kubectl continues too.
        forward(signum, None)
        _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
        os.kill(os.getpid(), _signal.SIGTSTP)
        _signal.signal(_signal.SIGTSTP, suspend)
        forward(_signal.SIGCONT, None)

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGWINCH):
        _signal.signal(sig, forward)
    _signal.signal(_signal.SIGTSTP, suspend)
    received = b""
    while True:
        try:
            chunk = sock.recv(2)
        except InterruptedError:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            break
        received += chunk
        deadly = (_signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)
        if len(received) >= 2 and received[0:1] == b"K" and received[1] in deadly:
            # The worker died of this signal where an in-process call would have: so do we.
            _signal.signal(received[1], _signal.SIG_DFL)
            os.kill(os.getpid(), received[1])
            os._exit(128 + received[1])  # only if the signal was blocked
        if len(received) >= 2 and received[0:1] == b"X":
            # Done: exit now. This process wrote nothing through Python's streams and
            # registered no atexit handler, so interpreter finalization would only cost
            # time (measured: 3.5 ms from the exit code to the caller seeing the exit,
            # 0.8 ms with os._exit).
            os._exit(received[1])
    os.write(
        2,
        b"jitkube: the warm server's worker ended without an exit code; "
        b"run again with JITKUBE_WARM=0 and report it\n",
    )
    return 71  # ExitCode.INTERNAL


# --- starting, asking and stopping a server (not on the hot path) ---------------------


def idle_seconds(environ: Mapping[str, str]) -> float:
    raw = environ.get("JITKUBE_WARM_IDLE", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_IDLE
    except ValueError:
        return DEFAULT_IDLE
    return value if 1 <= value <= 86400 else DEFAULT_IDLE


# What the server process itself keeps of the environment that started it: enough to
# import jitkube and pick a locale. Each call brings its own environment to its worker,
# so nothing else (tokens, keys) needs to live in a long-lived process.
_SERVER_ENV_PREFIXES = ("LC_", "PYTHON", "XDG_")
_SERVER_ENV = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV")


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in environ.items() if k in _SERVER_ENV or k.startswith(_SERVER_ENV_PREFIXES)
    }


def spawn_server(environ: Mapping[str, str]) -> None:
    """Start a detached server for the next calls; never fails the caller."""
    path = socket_path(environ)
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.posix_spawn(
                sys.executable,
                # -P: the caller's working directory is not put first on sys.path, so a
                # `jitkube` package there is never imported into the server.
                [sys.executable, "-P", "-m", "jitkube.warm", path, str(idle_seconds(environ))],
                server_environment(environ),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(devnull)
    except OSError:
        pass


def _control(environ: Mapping[str, str], request: bytes) -> bytes | None:
    path = socket_path(environ)
    if path is None:
        return None
    try:
        sock = _connect(path)
    except OSError:
        return None
    try:
        sock.sendall(len(request).to_bytes(4, "big") + request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply
    except OSError:
        return None
    finally:
        sock.close()


def status(environ: Mapping[str, str]) -> dict[str, object] | None:
    """The running server's pid, calls served, start time; None when none runs."""
    import json

    reply = _control(environ, STATUS)
    if not reply:
        return None
    try:
        data = json.loads(reply)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def stop(environ: Mapping[str, str]) -> bool:
    """Ask the server to exit; True if one was running."""
    return _control(environ, STOP) == b"stopping"


if __name__ == "__main__":  # python -m jitkube.warm SOCKET IDLE_SECONDS
    from jitkube.warm_server import serve

    sys.exit(serve(sys.argv[1], float(sys.argv[2])))
