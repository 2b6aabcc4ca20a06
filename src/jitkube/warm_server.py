"""The warm server's process (see jitkube.warm for what it is and why).

It imports the whole hot path once and keeps one forked *spare* waiting on its Unix
socket. The spare checks the peer's uid, reads the caller's argv, environment, working
directory, umask and file descriptors, and becomes the caller's jitkube: it takes the
descriptors as 0, 1, 2, enters the working directory, replaces its environment and runs
`jitkube.entry.main` — the same code an in-process call runs — while the server forks
the next spare. The server itself never runs a command, reads a session or holds a
token: it only imports and forks.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import io
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

from jitkube.warm import MAGIC, MAX_FRAME, STATUS, STOP

_MAX_FDS = 4
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH)
_READ_TIMEOUT = 5.0
SPARE_DELAY = 0.25


def _preload() -> None:
    """Import everything a call may need, so that no worker pays for it."""
    import tomllib  # noqa: F401 - config.toml, read by every call

    import jitkube.audit
    import jitkube.audit.background
    import jitkube.audit.chain
    import jitkube.audit.spool
    import jitkube.broker.fingerprint
    import jitkube.broker_http
    import jitkube.check
    import jitkube.command_approval
    import jitkube.config
    import jitkube.entry
    import jitkube.envelope
    import jitkube.hotpath
    import jitkube.kubectl.manifests
    import jitkube.masking
    import jitkube.masking.digest
    import jitkube.masking.json_lines
    import jitkube.masking.key
    import jitkube.masking.objects
    import jitkube.masking.patterns
    import jitkube.masking.stream
    import jitkube.masking.structured
    import jitkube.masking.yaml_lines
    import jitkube.policy
    import jitkube.prompt
    import jitkube.runner
    import jitkube.session_cache
    import jitkube.shim

    jitkube.policy.default_policy()


def _code_snapshot() -> dict[str, tuple[int, int]]:
    """(mtime, size) of every jitkube module loaded: a changed file means new code."""
    root = os.path.dirname(os.path.abspath(__file__))
    snap: dict[str, tuple[int, int]] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and os.path.abspath(path).startswith(root):
            try:
                st = os.stat(path)
            except OSError:
                continue
            snap[path] = (st.st_mtime_ns, st.st_size)
    return snap


def _stale(snapshot: dict[str, tuple[int, int]]) -> bool:
    for path, (mtime, size) in snapshot.items():
        try:
            st = os.stat(path)
        except OSError:
            return True
        if (st.st_mtime_ns, st.st_size) != (mtime, size):
            return True
    return False


def _peer_uid(conn: socket.socket) -> int:
    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(cred[4:8], sys.byteorder)


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    """One length-prefixed frame and the descriptors that came with it."""
    fds: list[int] = []
    data = b""
    conn.settimeout(_READ_TIMEOUT)
    try:
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            if len(data) >= 4 and int.from_bytes(data[:4], "big") > MAX_FRAME:
                raise ValueError("frame too large")
            chunk, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(_MAX_FDS * 4))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(payload) - len(payload) % 4
                    fds += [
                        int.from_bytes(payload[i : i + 4], sys.byteorder)
                        for i in range(0, usable, 4)
                    ]
            if not chunk:
                raise ValueError("connection closed mid-frame")
            data += chunk
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    finally:
        conn.settimeout(None)
    return data[4:], fds


def _parse(payload: bytes) -> tuple[str, int, list[str], dict[str, str]]:
    fields = payload.split(b"\0")
    if fields[0] != MAGIC or len(fields) < 4:
        raise ValueError("not a jitkube call")
    cwd = os.fsdecode(fields[1])
    umask = int(fields[2])
    count = int(fields[3])
    argv = [os.fsdecode(a) for a in fields[4 : 4 + count]]
    if len(argv) != count:
        raise ValueError("truncated argv")
    environ: dict[str, str] = {}
    for item in fields[4 + count :]:
        key, eq, value = item.partition(b"=")
        if eq and key:
            environ[os.fsdecode(key)] = os.fsdecode(value)
    return cwd, umask, argv, environ


def _std_streams(encoding: str) -> None:
    """Fresh sys.stdin/stdout/stderr over the caller's descriptors, set up the way the
    interpreter sets them up at start-up (line-buffered stdout only on a terminal)."""
    sys.stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=encoding
    )
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
        encoding=encoding,
        line_buffering=os.isatty(1),
    )
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding=encoding,
        errors="backslashreplace",
        line_buffering=True,
    )


def _watch_caller(conn: socket.socket) -> None:
    """Signals the front end forwards arrive as bytes; its end of the socket closing means
    the caller is gone (killed): hang up, as a closing terminal would."""
    while True:
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        if not data:
            os.kill(os.getpid(), signal.SIGHUP)
            return
        for signum in data:
            if signum in _FORWARDED:
                os.kill(os.getpid(), signum)
            elif signum in (signal.SIGTSTP, signal.SIGCONT):
                # The caller was suspended (Ctrl-Z) or resumed: so is kubectl, as it
                # would be in the caller's process group. This worker only waits.
                from jitkube.runner import running_child

                child = running_child()
                if child is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGSTOP if signum == signal.SIGTSTP else signum)


# Signals whose default action ends an in-process call wherever no handler of jitkube's
# runs (outside kubectl's run: judging, waiting for an approval, calling the broker).
_DEADLY = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _die_of(conn: socket.socket) -> Callable[[int, object], None]:
    def handler(signum: int, _frame: object) -> None:
        """Die of the signal, as an in-process call would, and tell the caller ("K" and
        the signal) so that it dies of it too: the caller's parent sees the same end."""
        with contextlib.suppress(OSError):
            conn.sendall(b"K" + bytes((signum,)))
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return handler


def _worker(
    conn: socket.socket, fds: list[int], payload: bytes, encoding: str, inherited: list[int]
) -> NoReturn:
    code = 71
    try:
        for fd in inherited:  # the listener and the server's lock stay the server's
            with contextlib.suppress(OSError):
                os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for sig in _DEADLY:
            signal.signal(sig, _die_of(conn))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        cwd, umask, argv, environ = _parse(payload)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        tty = fds[3] if len(fds) > 3 else None
        for fd in fds[:3]:
            if fd > 2:
                os.close(fd)
        os.chdir(cwd)
        os.umask(umask)
        os.environ.clear()
        os.environ.update(environ)
        sys.argv = ["jitkube", *argv]
        _std_streams(encoding)
        from jitkube import entry, prompt

        prompt.TTY_FD = tty
        conn.sendall(b"A")
        threading.Thread(target=_watch_caller, args=(conn,), daemon=True).start()
        code = entry.main(argv) & 0xFF
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # Let go of the caller's descriptors before it learns the exit code: a caller
        # that reads our output through a pipe sees end-of-file when the front end
        # exits, not when this process has finished tearing down its memory.
        for fd in (0, 1, 2, *([tty] if tty is not None else [])):
            with contextlib.suppress(OSError):
                os.close(fd)
    except BaseException:  # a worker must always report its exit code and exit
        with contextlib.suppress(Exception):
            os.write(2, b"jitkube: internal error in the warm server's worker\n")
    finally:
        with contextlib.suppress(Exception):
            conn.sendall(b"X" + bytes((code,)))
        os._exit(code)


class _Server:
    """The parent keeps one forked *spare* waiting in accept(): a call finds a process
    that is already forked and warmed, so neither fork nor the first copy-on-write page
    faults are on the caller's path (they cost 2-5 ms per call on a busy 2-core machine,
    timed from fork to the worker's first line). The spare tells the
    parent over a pipe when it took a call (T), when asked to stop (S) or when the code
    on disk changed (R); the parent then forks the next spare or shuts down."""

    def __init__(self, path: str, idle: float, listener: socket.socket, lock: int) -> None:
        self.path = path
        self.idle = idle
        self.listener = listener
        self.lock = lock
        self.served = 0
        self.started = time.time()
        self.children: set[int] = set()
        self.spare: int | None = None
        self.stopping = False
        self.last_call = time.monotonic()
        self.encoding = sys.stdout.encoding if sys.stdout else "utf-8"
        self.notify_r, self.notify_w = os.pipe()
        os.set_blocking(self.notify_w, False)  # signal.set_wakeup_fd needs it

    def reap(self) -> None:
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)
                if pid == self.spare:
                    self.spare = None  # it died without taking a call: fork another

    def fork_spare(self, snapshot: dict[str, tuple[int, int]]) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(self.notify_r)
                _Spare(self, snapshot).run()
            finally:
                os._exit(code)
        self.spare = pid
        self.children.add(pid)

    def on_notice(self, notices: bytes) -> None:
        for notice in notices:
            if notice == ord("T"):
                self.served += 1
                self.last_call = time.monotonic()
                self.spare = None
            elif notice in (ord("S"), ord("R")):
                self.stopping = True

    def spare_due(self) -> bool:
        """Fork the next spare once the last call's worker is done (or after a moment):
        forking and warming it while kubectl runs would take a core from that call."""
        if self.stopping or self.spare is not None:
            return False
        busy = self.children - {self.spare}
        return not busy or time.monotonic() - self.last_call > SPARE_DELAY


class _Spare:
    """A forked child that accepts calls until one is a command to run, then becomes its
    worker. Status and stop requests are answered without giving up the spare role."""

    def __init__(self, server: _Server, snapshot: dict[str, tuple[int, int]]) -> None:
        self.server = server
        self.snapshot = snapshot

    def _notify(self, notice: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.server.notify_w, notice)

    def run(self) -> None:
        server = self.server
        signal.set_wakeup_fd(-1)  # the parent's notice pipe is not for our signals
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # A caller already waiting (calls back to back) would only wait longer: its own
        # judging faults in the same pages.
        if not select.select([server.listener], [], [], 0)[0]:
            _prewarm()
        while True:
            try:
                conn, _ = server.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    if _peer_uid(conn) != os.getuid():
                        continue
                    payload, fds = _receive(conn)
                except (OSError, ValueError):
                    continue
                if payload not in (STATUS, STOP) and len(fds) < 3:
                    _close_all(fds)  # a call always brings stdin, stdout and stderr
                    continue
                try:
                    if payload == STATUS:
                        conn.sendall(self._status())
                        continue
                    if payload == STOP:
                        conn.sendall(b"stopping")
                        self._notify(b"S")
                        return
                    if _stale(self.snapshot):
                        conn.sendall(b"R")  # the caller runs in-process and starts anew
                        self._notify(b"R")
                        return
                    if _turned_off(payload):
                        conn.sendall(b"R")  # in-process, and no new server (config says)
                        self._notify(b"S")
                        return
                except OSError:
                    _close_all(fds)
                    continue
                self._notify(b"T")
                inherited = [
                    server.listener.fileno(),
                    server.lock,
                    server.notify_w,
                ]
                _worker(conn, fds, payload, server.encoding, inherited)

    def _status(self) -> bytes:
        server = self.server
        return json.dumps(
            {
                "pid": os.getppid(),
                "served": server.served,
                "started_at": server.started,
                "idle_timeout": server.idle,
                "socket": server.path,
            }
        ).encode()


def _turned_off(payload: bytes) -> bool:
    """The caller's config.toml says `warm = false` (set after this server started):
    its calls run in-process from now on, and this server stops."""
    from jitkube.config import load
    from jitkube.errors import JitkubeError

    try:
        _cwd, _umask, _argv, environ = _parse(payload)
        return load(environ).warm is False
    except (JitkubeError, ValueError, OSError):
        return False  # the worker reports a broken config the way an in-process call does


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _prewarm() -> None:
    """Judge one harmless command into a buffer: the spare pays the copy-on-write faults
    of the parser, risk and policy code before a caller waits for it."""
    from jitkube.entry import _main
    from jitkube.environment import Environment

    with contextlib.suppress(Exception):
        _main(
            ["check", "--", "kubectl", "get", "pods"],
            Environment(
                stdin=io.BytesIO(b""),
                stdout=io.StringIO(),
                stderr=io.StringIO(),
                environ={"HOME": os.environ.get("HOME", "/")},
            ),
        )


def _still_ours(path: str, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def serve(path: str, idle: float) -> int:
    """Serve until idle for `idle` seconds, stopped, the code on disk changed, or its
    socket is gone (no caller can reach it any more)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.stat(directory)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return 1  # not a private directory: never listen there
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server already runs for this socket
    _preload()
    # Workers must not walk (and so copy-on-write) the preloaded heap in a GC pass:
    # measured 3–5 ms per call without this.
    gc.collect()
    gc.freeze()
    snapshot = _code_snapshot()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # we hold the lock: whatever is there is a dead server's
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    listener.listen(64)
    inode = os.stat(path).st_ino
    server = _Server(path, idle, listener, lock)

    def _terminate(_signum: int, _frame: object) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    # SIGCHLD (a worker ended) wakes the loop through the notice pipe.
    signal.signal(signal.SIGCHLD, lambda _s, _f: None)
    signal.set_wakeup_fd(server.notify_w, warn_on_full_buffer=False)
    try:
        server.fork_spare(snapshot)
        while not server.stopping:
            timeout = SPARE_DELAY if server.spare is None else 1.0
            ready, _, _ = select.select([server.notify_r], [], [], timeout)
            if ready:
                server.on_notice(os.read(server.notify_r, 64))
            server.reap()
            if server.spare_due():
                server.fork_spare(snapshot)
            busy = server.children - {server.spare}
            if not busy and time.monotonic() - server.last_call > server.idle:
                break
            if not busy and not _still_ours(path, inode):
                break  # its socket was removed (the user's HOME or runtime directory): unreachable
    finally:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        if server.spare is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.spare, signal.SIGTERM)
        listener.close()
        os.close(lock)
    return 0
