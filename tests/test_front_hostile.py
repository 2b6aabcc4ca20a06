"""Hostile inputs for the compiled front end (src/jitkube/front.c).

The front end is built by `jitkube.front.build` — with AddressSanitizer and UBSan where
the compiler can link them — and meets a listener of its own uid on the real socket path
that records what it receives (argv, environment, and what the passed descriptors are)
and answers as a test tells it. The Python jitkube it falls back to is a stand-in that
writes down how it was called, so every outcome is visible: served, handed to Python (and
with which JITKUBE_WARM_FRONT note), or an exit code.

What must hold, whatever the caller or the listener does: no memory error; a call is
either answered by "A" or handed to Python untouched; what goes to the server is exactly
what the Python front end (warm.attempt) would send; and the caller's own descriptors are
the only descriptors passed as its stdin, stdout and stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.env import isolated_environment
from jitkube.errors import ConfigError
from jitkube.front import build, compiler
from jitkube.shim import install, jitkube_command
from jitkube.warm import MAX_FRAME, socket_path

HOT = ["check", "--", "kubectl", "get", "pods"]
SANITIZER_EXITS = (86, 87)  # ASAN_OPTIONS / UBSAN_OPTIONS below
FALLBACK_EXIT = 42  # the stand-in Python jitkube

# Runs a program with exactly the argv and environment entries given (duplicates,
# entries without "=", non-UTF-8 bytes), after closing descriptors, leaving a deleted
# working directory or raising the stack limit (which raises the kernel's argv+env cap).
LAUNCHER = r"""
import ctypes, json, os, resource, sys
spec = json.load(open(sys.argv[1]))
raw = lambda items: [bytes.fromhex(x) for x in items]
argv, env = raw(spec["argv"]), raw(spec["env"])
if spec.get("stack"):
    resource.setrlimit(resource.RLIMIT_STACK, (spec["stack"], resource.RLIM_INFINITY))
if spec.get("deleted_cwd"):
    os.mkdir(spec["deleted_cwd"])
    os.chdir(spec["deleted_cwd"])
    os.rmdir(spec["deleted_cwd"])
for fd in spec.get("close", []):
    os.close(fd)
array = lambda items: (ctypes.c_char_p * (len(items) + 1))(*items, None)
ctypes.CDLL(None).execve(bytes.fromhex(spec["program"]), array(argv), array(env))
os._exit(99)
"""


class Call:
    def __init__(self, payload: bytes, kinds: list[str]) -> None:
        self.payload = payload
        self.kinds = kinds  # what each passed descriptor is: "socket:[…]", "pipe:[…]", …

    @property
    def fields(self) -> list[bytes]:
        return self.payload.split(b"\0")

    @property
    def environment(self) -> list[bytes]:
        count = int(self.fields[3])
        return self.fields[4 + count :]


Reply = Callable[[socket.socket], None]


class Listener:
    """A process of the caller's uid listening where the server would: records each
    call (frame and descriptors) and answers with `reply`."""

    def __init__(self, path: str, reply: Reply, *, read: bool = True) -> None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.path = path
        self.reply, self.read = reply, read
        self.calls: list[Call] = []
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.read:
                    self.calls.append(_receive(conn))
                with contextlib.suppress(OSError):
                    self.reply(conn)

    def close(self) -> None:
        self.release.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.sock.close()
        self.thread.join(10)
        os.unlink(self.path)


def _receive(conn: socket.socket) -> Call:
    data, fds = b"", []
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        chunk, ancdata, _flags, _addr = conn.recvmsg(1 << 20, socket.CMSG_SPACE(16))
        for _level, _kind, payload in ancdata:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
        if not chunk:
            break
        data += chunk
    kinds = []
    for fd in fds:
        kinds.append(os.readlink(f"/proc/self/fd/{fd}"))
        os.close(fd)
    return Call(data[4:], kinds)


def _send(*parts: bytes) -> Reply:
    def reply(conn: socket.socket) -> None:
        for part in parts:
            conn.sendall(part)

    return reply


class Fallback:
    def __init__(self, record: dict[str, str | list[str] | None]) -> None:
        self.argv = [bytes.fromhex(a) for a in record["argv"] or []]
        note = record["front"]
        assert note is None or isinstance(note, str)
        self.note = note

    @property
    def tried(self) -> str | None:
        return None if self.note is None else self.note.split(":")[0]


class Fronts:
    """Front ends built for this installation (its socket tag) whose Python jitkube is
    a stand-in that records its argv and the JITKUBE_WARM_FRONT note."""

    def __init__(self, root: Path) -> None:
        cc = compiler()
        if cc is None:
            pytest.skip("no C compiler")
        self.report = root / "fallback.jsonl"
        stand_in = root / "python-jitkube"
        stand_in.write_text(
            f"#!{sys.executable}\nimport json, os, sys\n"
            f"with open({str(self.report)!r}, 'a') as fh:\n"
            "    fh.write(json.dumps({'argv': [os.fsencode(a).hex() for a in sys.argv[1:]],"
            " 'front': os.environ.get('JITKUBE_WARM_FRONT')}) + '\\n')\n"
            f"sys.exit({FALLBACK_EXIT})\n"
        )
        stand_in.chmod(0o755)
        self.sanitized = True
        wrapper = root / "cc-sanitized"
        wrapper.write_text(
            "#!/bin/sh\nexec "
            + shlex.quote(cc)
            + ' -fsanitize=address,undefined -fno-sanitize-recover=all -g "$@"\n'
        )
        wrapper.chmod(0o755)
        self.jitkube, self.kubectl = root / "jitkube", root / "kubectl"
        for target, shim in ((self.jitkube, False), (self.kubectl, True)):
            try:
                build(target, fallback=[str(stand_in)], kubectl_shim=shim, cc=str(wrapper))
            except ConfigError:  # no sanitizer runtime: the plain build still runs it all
                self.sanitized = False
                build(target, fallback=[str(stand_in)], kubectl_shim=shim, cc=cc)

    def fallbacks(self) -> list[Fallback]:
        """How the stand-in Python jitkube was run, in order (and forget it)."""
        if not self.report.exists():
            return []
        lines = self.report.read_text().splitlines()
        self.report.unlink()
        return [Fallback(json.loads(line)) for line in lines]

    def notes(self) -> list[str | None]:
        """What each fallback was told was tried ("absent", "failed"; None: nothing)."""
        return [ran.tried for ran in self.fallbacks()]


@pytest.fixture(scope="module")
def fronts(tmp_path_factory: pytest.TempPathFactory) -> Fronts:
    return Fronts(tmp_path_factory.mktemp("fronts"))


class Caller:
    """A private runtime directory short enough for any socket path, and a raw launcher."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = tempfile.mkdtemp(prefix="jkh-", dir="/tmp")
        os.chmod(self.runtime, 0o700)
        self.env = {
            "XDG_RUNTIME_DIR": self.runtime,
            "HOME": str(root / "home"),
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "JITKUBE_WARM_IDLE": "1",  # a server Python may start ends at once
            "ASAN_OPTIONS": "detect_leaks=0:exitcode=86",
            "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87:print_stacktrace=1",
        }

    @property
    def path(self) -> str:
        path = socket_path(self.env)
        assert path is not None
        return path

    def entries(self, extra: list[bytes] | None = None) -> list[bytes]:
        return [f"{k}={v}".encode() for k, v in self.env.items()] + (extra or [])

    def _spec(self, spec: dict[str, object]) -> Path:
        path = self.root / "launch.json"
        path.write_text(json.dumps(spec))
        return path

    def launch(
        self,
        program: str | Path,
        argv: list[bytes],
        env: list[bytes] | None = None,
        **options: object,
    ) -> subprocess.CompletedProcess[bytes]:
        spec = {
            "program": os.fsencode(program).hex(),
            "argv": [a.hex() for a in argv],
            "env": [e.hex() for e in (self.entries() if env is None else env)],
            **options,
        }
        return subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(self._spec(spec))],
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def caller(tmp_path: Path) -> Iterator[Caller]:
    who = Caller(tmp_path)
    try:
        yield who
    finally:
        shutil.rmtree(who.runtime, ignore_errors=True)


@contextlib.contextmanager
def listening(path: str, reply: Reply, *, read: bool = True) -> Iterator[Listener]:
    listener = Listener(path, reply, read=read)
    try:
        yield listener
    finally:
        listener.close()


def _clean(done: subprocess.CompletedProcess[bytes]) -> None:
    assert done.returncode not in SANITIZER_EXITS, done.stderr.decode(errors="replace")
    assert b"Sanitizer" not in done.stderr, done.stderr
    assert b"runtime error" not in done.stderr, done.stderr


def _argv(*words: str) -> list[bytes]:
    return [b"jitkube", *(w.encode() for w in words)]


# --- a listener that misbehaves ---------------------------------------------------------

SERVED_71 = (71, b"ended without an exit code")


@pytest.mark.parametrize(
    ("reply", "expect"),
    [
        (_send(b"R"), "absent"),  # a refusal (its code changed)
        (_send(b"\0garbage" * 8), "absent"),
        (_send(), "absent"),  # reads the call, closes
        (_send(b"A"), SERVED_71),  # accepted, then gone
        (_send(b"AX"), SERVED_71),  # "X" without a code
        (_send(b"AYZ" + b"Q" * 64), SERVED_71),  # not "X" after "A"
        (_send(b"A" + b"\1" * (1 << 20)), SERVED_71),  # a flood
        (_send(b"A", b"X", b"\xfe"), (254, b"")),  # the code in pieces
        (_send(b"AX\0"), (0, b"")),
        (_send(b"AK\x0f"), (-15, b"")),  # the worker died of SIGTERM: so does the caller
        (_send(b"AK\x09"), SERVED_71),  # only TERM, HUP and QUIT are passed on
    ],
    ids=[
        "refuse",
        "garbage",
        "close",
        "A-close",
        "X-nocode",
        "not-X",
        "flood",
        "split",
        "zero",
        "K-term",
        "K-kill",
    ],
)
def test_a_misbehaving_listener_never_crashes_it_or_runs_a_call_twice(
    fronts: Fronts, caller: Caller, reply: Reply, expect: str | tuple[int, bytes]
) -> None:
    with listening(caller.path, reply) as listener:
        done = caller.launch(fronts.jitkube, _argv(*HOT))
    _clean(done)
    assert len(listener.calls) == 1
    assert listener.calls[0].fields[3:9] == [b"5", *(w.encode() for w in HOT)]
    ran = fronts.fallbacks()
    if isinstance(expect, str):  # nothing ran: Python gets the call, told what was tried
        assert done.returncode == FALLBACK_EXIT, done
        assert [r.tried for r in ran] == [expect]
    else:  # the server took it: its code, and Python never runs it again
        code, message = expect
        assert (done.returncode, ran) == (code, [])
        assert message in done.stderr


def test_a_listener_that_hangs_up_unread_sends_the_call_to_python(
    fronts: Fronts, caller: Caller
) -> None:
    with listening(caller.path, _send(), read=False):
        done = caller.launch(fronts.jitkube, _argv(*HOT))
    _clean(done)
    assert done.returncode == FALLBACK_EXIT
    assert fronts.notes() in (["absent"], ["failed"])


# --- a caller that is odd -------------------------------------------------------------


def test_no_argv_at_all(fronts: Fronts, caller: Caller) -> None:
    """execve with argc 0 (Linux supplies an empty argv[0] since 5.18; older kernels not)."""
    for front, argv in ((fronts.jitkube, []), (fronts.kubectl, [b"kubectl"])):
        done = caller.launch(front, [])
        _clean(done)
        assert done.returncode == FALLBACK_EXIT
        assert [ran.argv for ran in fronts.fallbacks()] == [argv]


def test_many_and_long_arguments_arrive_whole(fronts: Fronts, caller: Caller) -> None:
    many = [b"x" * 10] * 100_000
    long = [bytes([65 + i]) * (128 * 1024 - 1) for i in range(12)]  # MAX_ARG_STRLEN - 1
    with listening(caller.path, _send(b"AX\7")) as listener:
        for extra in (many, long):
            done = caller.launch(fronts.kubectl, [b"kubectl", b"get", *extra])
            _clean(done)
            assert done.returncode == 7
    for call, extra in zip(listener.calls, (many, long), strict=True):
        count = int(call.fields[3])
        assert call.fields[4 : 4 + count] == [b"kubectl", b"get", *extra]


def test_a_call_larger_than_a_frame_goes_to_python_unsent(fronts: Fronts, caller: Caller) -> None:
    """With a large stack limit the kernel takes up to 6 MiB of argv + environment: more
    than the server's 4 MiB frame. Nothing is sent; Python runs it."""
    big = [b"BIG%d=" % i + b"q" * 100_000 for i in range(MAX_FRAME // 100_000 + 2)]
    with listening(caller.path, _send(b"AX\7")) as listener:
        done = caller.launch(fronts.jitkube, _argv(*HOT), caller.entries(big), stack=1 << 28)
    _clean(done)
    assert done.returncode == FALLBACK_EXIT
    assert fronts.notes() == ["failed"]
    assert [call.payload for call in listener.calls] == [b""]  # connected, sent nothing


def test_a_deleted_working_directory_goes_to_python(fronts: Fronts, caller: Caller) -> None:
    with listening(caller.path, _send(b"AX\7")):
        done = caller.launch(fronts.jitkube, _argv(*HOT), deleted_cwd=str(caller.root / "gone"))
    _clean(done)
    assert done.returncode == FALLBACK_EXIT
    assert fronts.notes() == ["failed"]


@pytest.mark.parametrize("length", [103, 104, 108])
def test_the_socket_path_limit_is_python_s(fronts: Fronts, caller: Caller, length: int) -> None:
    """warm.socket_path: a path of 104 bytes or more is never used (sun_path is 108)."""
    name = Path(caller.path).name  # warm-<tag>.sock
    runtime = Path(caller.runtime) / ("r" * (length - len(caller.runtime) - len(name) - 10))
    runtime.mkdir(mode=0o700)
    caller.env["XDG_RUNTIME_DIR"] = str(runtime)
    path = f"{runtime}/jitkube/{name}"
    assert len(path) == length
    assert socket_path(caller.env) == (path if length < 104 else None)
    if length >= 108:  # no one can listen there
        done = caller.launch(fronts.jitkube, _argv(*HOT))
        calls: list[Call] = []
    else:
        with listening(path, _send(b"AX\7")) as listener:
            done = caller.launch(fronts.jitkube, _argv(*HOT))
        calls = listener.calls
    _clean(done)
    if length < 104:
        assert (done.returncode, len(calls)) == (7, 1)
    else:  # no path it can use: Python decides, nothing was tried
        assert (done.returncode, calls) == (FALLBACK_EXIT, [])
        assert fronts.notes() == [None]


@pytest.mark.parametrize(
    "variables",
    [
        {"HOME": "relative/home"},
        {"HOME": ""},
        {"HOME": "/" + "h" * 100_000},
        {"XDG_RUNTIME_DIR": "/" + "r" * 100_000},
        {"XDG_STATE_HOME": "/" + "s" * 100_000},
        {"XDG_RUNTIME_DIR": "/proc/self/fd/0"},
        {"XDG_RUNTIME_DIR": "relative"},
        {"JITKUBE_WARM": "1" * 100_000},
    ],
    ids=[
        "home-relative",
        "home-empty",
        "home-long",
        "runtime-long",
        "state-long",
        "runtime-fd",
        "runtime-relative",
        "warm-long",
    ],
)
def test_odd_locations_never_crash_it(
    fronts: Fronts, caller: Caller, variables: dict[str, str]
) -> None:
    caller.env.update(variables)
    done = caller.launch(fronts.jitkube, _argv(*HOT))
    _clean(done)
    assert done.returncode == FALLBACK_EXIT
    assert len(fronts.fallbacks()) == 1


# --- descriptors --------------------------------------------------------------------


@pytest.mark.parametrize("closed", [0, 1, 2])
@pytest.mark.parametrize("front", ["compiled", "python"])
def test_a_closed_std_descriptor_is_never_replaced_by_the_socket(
    fronts: Fronts, caller: Caller, front: str, closed: int
) -> None:
    """A caller may run jitkube with stdin, stdout or stderr closed (`<&-`). The socket
    then gets that number, and was sent to the worker as the caller's own descriptor:
    the worker read its stdin from (or wrote its output into) its own control socket —
    a call reading stdin waited forever and outlived its caller, output bytes 1, 2, 3,
    15, 28 turned into signals. Python's front end did the same."""
    program: str | Path = fronts.jitkube if front == "compiled" else jitkube_command()[0]
    argv = _argv(*HOT) if front == "compiled" else [b"jitkube", *(w.encode() for w in HOT)]
    with listening(caller.path, _send(b"AX\7")) as listener:
        done = caller.launch(program, argv, close=[closed])
    _clean(done)
    for call in listener.calls:
        assert not any(kind.startswith("socket:") for kind in call.kinds[:3]), call.kinds


# --- the environment, as Python sends it ----------------------------------------------


def _sent_by_both(caller: Caller, fronts: Fronts, env: list[bytes]) -> tuple[Call, Call]:
    """The frame the compiled and the Python front end send for one raw environment."""
    sent = []
    for program, argv in (
        (fronts.jitkube, _argv(*HOT)),
        (jitkube_command()[0], [b"jitkube", *(w.encode() for w in HOT)]),
    ):
        with listening(caller.path, _send(b"AX\7")) as listener:
            done = caller.launch(program, argv, env)
        _clean(done)
        assert done.returncode == 7, done
        [call] = listener.calls
        sent.append(call)
    return sent[0], sent[1]


def test_odd_environment_entries_are_sent_as_python_sends_them(
    fronts: Fronts, caller: Caller
) -> None:
    odd = [
        b"DUP=first",
        b"NO_EQUALS_SIGN",
        b"=empty-name",
        b"EMPTY=",
        b"DUP=second",
        b"\xff\xfeKEY=\xc3\x28value",
        b"EQ=a=b",
        *(b"V%d=%d" % (i % 2000, i) for i in range(3000)),  # 1000 repeated names
    ]
    compiled, python = _sent_by_both(caller, fronts, caller.entries(odd))
    assert compiled.payload == python.payload
    assert b"DUP=first" in compiled.environment
    assert b"DUP=second" not in compiled.environment


@pytest.mark.parametrize("locale", [None, "C", "POSIX", "xx_YY.UTF-8"])
def test_a_legacy_c_locale_is_sent_as_python_sends_it(
    fronts: Fronts, caller: Caller, locale: str | None
) -> None:
    """Python starts by setting LC_CTYPE=C.UTF-8 in its own environment when the locale
    is the legacy C one (PEP 538), so the Python front end sends it, and kubectl (and the
    editor of `kubectl edit`, which get LC_*) run with it. The compiled front end must
    send the same environment."""
    del caller.env["LANG"]
    if locale is not None:
        caller.env["LANG"] = locale
    compiled, python = _sent_by_both(caller, fronts, caller.entries())
    assert compiled.environment == python.environment


def test_a_callers_own_front_note_never_reaches_the_server(fronts: Fronts, caller: Caller) -> None:
    """JITKUBE_WARM_FRONT is the compiled front end's note to Python. Python removes one
    the caller set (and warns, or runs in-process) before it offers anything to the
    server; the compiled front end must not send it along either."""
    with listening(caller.path, _send(b"AX\7")) as listener:
        caller.launch(fronts.jitkube, _argv(*HOT), caller.entries([b"JITKUBE_WARM_FRONT=x:y"]))
    fronts.fallbacks()
    for call in listener.calls:
        assert not any(e.startswith(b"JITKUBE_WARM_FRONT=") for e in call.environment)


# --- signals ------------------------------------------------------------------------


def _caught(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    return 0


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


@pytest.mark.parametrize("front", ["compiled", "python"])
def test_signals_reach_the_worker_as_bytes_as_from_python(
    fronts: Fronts, caller: Caller, front: str
) -> None:
    """SIGINT, SIGHUP, SIGQUIT, SIGWINCH go over as their numbers; Ctrl-Z as SIGTSTP,
    the front end stops, and SIGCONT follows once it is continued; the exit code comes
    back."""
    heard = bytearray()

    def worker(conn: socket.socket) -> None:
        conn.sendall(b"A")
        while chunk := conn.recv(64):
            heard.extend(chunk)
            if signal.SIGTERM in heard:
                conn.sendall(b"X\x21")
                return

    program = str(fronts.jitkube) if front == "compiled" else jitkube_command()[0]
    env = {**caller.env, "JITKUBE_WARM": "1"}
    with listening(caller.path, worker) as listener:
        proc = subprocess.Popen(
            [program, *HOT],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            process_group=0,  # its own group, not orphaned: SIGTSTP stops it
        )
        try:
            tstp = 1 << (signal.SIGTSTP - 1)
            _wait_for(lambda: bool(_caught(proc.pid) & tstp))  # it follows the worker
            for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH):
                os.kill(proc.pid, sig)
                _wait_for(lambda s=sig: s in heard)  # type: ignore[misc]
            os.kill(proc.pid, signal.SIGTSTP)
            _wait_for(lambda: _state(proc.pid) == "T")
            os.kill(proc.pid, signal.SIGCONT)
            _wait_for(lambda: signal.SIGCONT in heard)
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(30) == 0x21
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(listener.calls) == 1
    assert list(heard) == [2, 1, 3, 28, 20, 18, 15]


# --- the real server ----------------------------------------------------------------


def test_stdin_closed_gives_the_in_process_result_not_a_hang(tmp_path: Path) -> None:
    """End to end with the real warm server: `kubectl apply -f -` with stdin closed."""
    runtime = tempfile.mkdtemp(prefix="jkh-", dir="/tmp")
    os.chmod(runtime, 0o700)
    env = isolated_environment(tmp_path)
    env.update(XDG_RUNTIME_DIR=runtime, JITKUBE_WARM="1", JITKUBE_WARM_IDLE="60")
    install(tmp_path / "bin", front="compiled")
    front = str(tmp_path / "bin" / "jitkube")
    argv = ["check", "--", "kubectl", "apply", "-f", "-"]
    closed = ["sh", "-c", 'exec "$@" <&-', "sh"]

    def python(
        *args: str, warm: str = "1", prefix: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "jitkube", *args],
            env={**env, "JITKUBE_WARM": warm},
            capture_output=True,
            timeout=60,
            check=False,
        )

    def status() -> dict[str, object]:
        data: dict[str, object] = json.loads(python("--output", "json", "warm", "status").stdout)
        return data["data"]  # type: ignore[return-value]

    server = None
    try:
        subprocess.run([front, "warm", "start"], env=env, capture_output=True, check=False)
        _wait_for(lambda: bool(status()["running"]))
        server = status()["pid"]
        in_process = python(*argv, warm="0", prefix=tuple(closed))
        try:
            done = subprocess.run(
                [*closed, front, *argv], env=env, capture_output=True, timeout=10, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.fail("the served call waited forever on its own socket as stdin")
        assert done.returncode == in_process.returncode
    finally:
        # A worker stuck on its own socket outlives its caller and the server's stop.
        children = Path(f"/proc/{server}/task/{server}/children")
        stuck = children.read_text().split() if server and children.exists() else []
        python("warm", "stop")
        for pid in stuck:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_jitkube_package_in_the_callers_directory_is_never_imported(tmp_path: Path) -> None:
    """A checkout with a `jitkube/` directory (or an agent that wrote one) must not get
    its code run by `kubectl get pods`: the server that the first call starts
    (`python -m jitkube.warm`) used to import `jitkube` from the caller's directory."""
    runtime = tempfile.mkdtemp(prefix="jkh-", dir="/tmp")
    os.chmod(runtime, 0o700)
    env = isolated_environment(tmp_path)
    env.update(XDG_RUNTIME_DIR=runtime, JITKUBE_WARM="1", JITKUBE_WARM_IDLE="60")
    install(tmp_path / "bin", front="compiled")
    repo = tmp_path / "repo"
    marker = tmp_path / "imported"
    (repo / "jitkube").mkdir(parents=True)
    (repo / "jitkube" / "__init__.py").write_text("")
    for module in ("warm.py", "__main__.py"):
        (repo / "jitkube" / module).write_text(f"open({str(marker)!r}, 'a').write('x')\n")

    def running() -> bool:
        done = subprocess.run(
            [sys.executable, "-m", "jitkube", "--output", "json", "warm", "status"],
            env=env,
            capture_output=True,
            check=False,
        )
        return bool(json.loads(done.stdout)["data"]["running"])

    try:
        done = subprocess.run(
            [str(tmp_path / "bin" / "jitkube"), *HOT],
            env=env,
            cwd=repo,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done  # Python ran it: no server yet, one started
        _wait_for(lambda: marker.exists() or running())
        assert not marker.exists()
    finally:
        subprocess.run(
            [sys.executable, "-m", "jitkube", "warm", "stop"], env=env, capture_output=True
        )
        shutil.rmtree(runtime, ignore_errors=True)
