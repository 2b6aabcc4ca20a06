"""The compiled front end (src/jitkube/front.c, built by `jitkube shim install`).

It must be indistinguishable from the Python jitkube except in speed: a call the warm
server serves gives the same bytes and exit code as an in-process call; anything it is
not sure about goes to the Python jitkube with the same arguments; it never hands a call
to a socket of another user; and it says how to rebuild itself once it is out of date.
tests/guarded runs the whole guarded-kubectl suite through it as well (mode "compiled").
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.terminal import read_until
from fixtures.warm import WarmCaller
from jitkube.errors import ConfigError, UsageError
from jitkube.front import build, compiler, config_header
from jitkube.shim import install, is_compiled, is_shim, jitkube_command
from jitkube.warm import socket_path

MANIFEST = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: prod\n"


class Caller(WarmCaller):
    """A warm-server user with the compiled front end installed in a directory of their
    own: `run` goes through it, `python` runs the same call in-process."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.bin = root / "bin"
        install(self.bin, front="compiled")
        self.front = self.bin / "jitkube"

    def run(  # type: ignore[override]
        self,
        *args: str,
        front: Path | None = None,
        stdin: bytes = b"",
        extra_env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """`jitkube ARGS` through the compiled front end (or another one given)."""
        return self._spawn([str(front or self.front), *args], stdin, extra_env, cwd)

    def python(
        self,
        *args: str,
        stdin: bytes = b"",
        extra_env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """The same call in-process in the Python jitkube (JITKUBE_WARM=0 unless given)."""
        env = {"JITKUBE_WARM": "0", **(extra_env or {})}
        return self._spawn([sys.executable, "-m", "jitkube", *args], stdin, env, cwd)


@pytest.fixture
def caller(tmp_path: Path) -> Iterator[Caller]:
    with Caller(tmp_path) as who:
        yield who


def _same(a: subprocess.CompletedProcess[bytes], b: subprocess.CompletedProcess[bytes]) -> None:
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


def test_a_served_call_matches_the_in_process_call(caller: Caller, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "cm.yaml").write_bytes(MANIFEST)
    calls: list[tuple[tuple[str, ...], bytes, dict[str, str]]] = [
        (("--output", "json", "check", "--", "kubectl", "apply", "-f", "cm.yaml"), b"", {}),
        (("check", "--", "kubectl", "apply", "-f", "-"), MANIFEST, {"JITKUBE_AGENT": "codex"}),
        (("check", "--", "kubectl", "get", "pods", "--no-such-flag"), b"", {}),  # refused
        (("check",), b"", {}),  # a usage error
        (("--agent", "x", "check", "--", "kubectl", "delete", "ns", "prod"), b"", {}),
    ]
    first = caller.run(*calls[0][0], cwd=work)  # no server yet: Python runs it, starts one
    assert caller.wait_for_server()["served"] == 0
    _same(first, caller.python(*calls[0][0], cwd=work))
    for argv, stdin, env in calls:
        warm = caller.run(*argv, stdin=stdin, extra_env=env, cwd=work)
        _same(warm, caller.python(*argv, stdin=stdin, extra_env=env, cwd=work))
    assert caller.status()["served"] == len(calls)  # each one went through the server
    data = json.loads(first.stdout)["data"]
    assert (first.returncode, data["invocation"]["namespaces"]) == (66, ["prod"])


def test_the_kubectl_shim_puts_kubectl_first(caller: Caller) -> None:
    caller.run("warm", "start")
    shim = caller.bin / "kubectl"
    argv = ("--kubeconfig", "/tmp/stolen", "get", "pods")
    done = caller.run(*argv, front=shim)
    _same(done, caller.python("kubectl", *argv))
    assert done.returncode == 65  # the bypass is refused before anything runs
    assert caller.status()["served"] == 1


def test_what_is_not_a_hot_command_runs_in_python(caller: Caller) -> None:
    caller.run("warm", "start")
    for argv in (("--version",), ("warm", "status"), ("shim", "--help")):
        done = caller.run(*argv)
        assert done.returncode == 0, done
    assert caller.run("--version").stdout.startswith(b"jitkube ")
    assert caller.status()["served"] == 0


@pytest.mark.parametrize("value", ["0", "off", " Off ", "no", "FALSE"])
def test_jitkube_warm_off_is_never_sent_to_the_server(caller: Caller, value: str) -> None:
    caller.run("warm", "start")
    done = caller.run("check", "--", "kubectl", "get", "pods", extra_env={"JITKUBE_WARM": value})
    assert done.returncode == 0, done
    assert caller.status()["served"] == 0


def test_without_a_server_python_runs_the_call_once_and_starts_one(caller: Caller) -> None:
    done = caller.run("check", "--", "kubectl", "get", "pods")
    assert done.returncode == 0, done
    assert b"decision:   allow" in done.stdout
    assert done.stderr == b""
    server = caller.wait_for_server()  # the front end told Python that none answered
    assert server["served"] == 0  # and Python did not knock a second time in vain
    again = caller.run("check", "--", "kubectl", "get", "pods")
    _same(again, done)
    assert caller.status()["served"] == 1


def test_a_front_end_built_for_another_installation_says_how_to_rebuild(
    caller: Caller, tmp_path: Path
) -> None:
    old = tmp_path / "old" / "jitkube"
    old.parent.mkdir()
    cc = compiler()
    assert cc is not None
    build(old, fallback=jitkube_command(), kubectl_shim=False, cc=cc, tag="0123456789ab")
    caller.run("warm", "start")
    done = caller.run("check", "--", "kubectl", "get", "pods", front=old)
    assert done.returncode == 0
    assert b"decision:   allow" in done.stdout
    assert b"run `jitkube shim install` again" in done.stderr
    assert caller.status()["served"] == 1  # Python's own front end found the server


def test_a_moved_jitkube_is_a_clear_error(caller: Caller, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "jitkube").symlink_to(jitkube_command()[0])
    front = tmp_path / "front"
    cc = compiler()
    assert cc is not None
    build(front, fallback=[str(gone / "jitkube")], kubectl_shim=False, cc=cc)
    assert caller.run("--version", front=front).returncode == 0
    shutil.rmtree(gone)
    done = caller.run("--version", front=front)
    assert done.returncode == 71
    assert b"cannot start" in done.stderr
    assert b"jitkube shim install" in done.stderr


def test_arguments_reach_the_fallback_byte_for_byte(tmp_path: Path) -> None:
    """The fallback path is compiled into a C string: quotes, backslashes, newlines and
    non-UTF-8 bytes in it (and in the arguments) must survive."""
    odd = tmp_path / 'we"ird\\ dir\n\xe9'
    odd.mkdir()
    echo = odd / "echo-args"
    echo.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        "sys.stdout.buffer.write(b'\\0'.join(os.fsencode(a) for a in sys.argv[1:]))\n"
    )
    echo.chmod(0o755)
    front = tmp_path / "front"
    cc = compiler()
    assert cc is not None
    build(front, fallback=[str(echo), "--first"], kubectl_shim=True, cc=cc)
    args = [b"get", b"pods", b"a b", b"\"'\\", b"\n", b"\xff\xfe", b""]
    done = subprocess.run([bytes(front), *args], capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done
    assert done.stdout.split(b"\0") == [b"--first", b"kubectl", *args]


def test_the_first_of_two_same_named_variables_wins_as_in_python(caller: Caller) -> None:
    """An environment can hold a name twice; Python's os.environ keeps the first. The
    front end must send the server the same one, or the two paths would disagree."""
    caller.run("warm", "start")
    launcher = (
        "import ctypes, os, sys\n"
        "def arr(items):\n"
        "    a = (ctypes.c_char_p * (len(items) + 1))(*items, None)\n"
        "    return a\n"
        "argv = [os.fsencode(a) for a in sys.argv[1:]]\n"
        "env = [b'%s=%s' % (os.fsencode(k), os.fsencode(v)) for k, v in os.environ.items()]\n"
        "env = [b'JITKUBE_OUTPUT=json'] + env + [b'JITKUBE_OUTPUT=text']\n"
        "ctypes.CDLL(None).execve(argv[0], arr(argv), arr(env))\n"
        "sys.exit(99)\n"
    )
    argv = ("check", "--", "kubectl", "get", "pods")
    served = subprocess.run(
        [sys.executable, "-c", launcher, str(caller.front), *argv],
        capture_output=True,
        env=caller.env,
        timeout=60,
        check=False,
    )
    in_process = subprocess.run(
        [sys.executable, "-c", launcher, sys.executable, "-m", "jitkube", *argv],
        capture_output=True,
        env={**caller.env, "JITKUBE_WARM": "0"},
        timeout=60,
        check=False,
    )
    assert served.returncode == in_process.returncode == 0, (served, in_process)
    assert json.loads(served.stdout) == json.loads(in_process.stdout)  # JSON: the first
    assert caller.status()["served"] == 1


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to listen as another user")
def test_a_socket_of_another_user_gets_nothing(caller: Caller) -> None:
    """Someone else's process listening at the socket path never receives the call, its
    argv, environment or descriptors: the front end checks the listener's uid."""
    directory = Path(caller.runtime) / "jitkube"
    directory.mkdir(mode=0o700)
    path = socket_path(caller.env)  # where the front end connects (same installation)
    assert path is not None
    received = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            os.setresuid(65534, 65534, 65534)
            listener.listen(1)  # SO_PEERCRED reports the uid at listen()
            os.write(received[1], b"L")  # listening: a connection now reaches accept()
            listener.settimeout(20)
            conn, _ = listener.accept()
            conn.settimeout(2)
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            os.write(received[1], b"got:" + data[:64])
        finally:
            os._exit(0)
    os.close(received[1])
    try:
        assert os.read(received[0], 1) == b"L"  # not just bound: before listen() the
        # front end's connect is refused, Python's server replaces the socket and the
        # listener never hears anything, which would prove nothing
        secret = "s3cret-for-the-foreign-listener"
        done = caller.run(
            "check", "--", "kubectl", "get", "pods", extra_env={"JITKUBE_CLIENT_SECRET": secret}
        )
        assert done.returncode == 0, done  # the call still ran, in Python
        assert b"decision:   allow" in done.stdout
        heard = os.read(received[0], 4096)
        assert heard == b"got:", heard  # connected, then nothing: not one byte
    finally:
        os.close(received[0])
        os.waitpid(pid, 0)


@pytest.mark.parametrize("front", ["compiled", "python"])
@pytest.mark.parametrize("background", [False, True])
def test_a_background_job_of_a_terminal_is_never_served(
    caller: Caller, front: str, background: bool
) -> None:
    """A worker is in another session: reading the terminal there would take keystrokes
    meant for the foreground instead of stopping the job (SIGTTIN). So a background job
    runs in-process; a foreground one is served."""
    caller.run("warm", "start")
    argv = [str(caller.front)] if front == "compiled" else [sys.executable, "-m", "jitkube"]
    argv += ["check", "--", "kubectl", "get", "pods"]
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - a session leader on the pty, then the job
        job = os.fork()
        if job == 0:
            if background:
                os.setpgid(0, 0)  # a process group that is not the terminal's foreground
            os.execve(argv[0], argv, caller.env)  # noqa: S606 - no shell, by design
        _, status = os.waitpid(job, 0)
        os._exit(os.waitstatus_to_exitcode(status))
    try:
        seen = read_until(fd, b"reads objects")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"decision:   allow" in seen
    assert caller.status()["served"] == (0 if background else 1)


def test_install_never_overwrites_a_jitkube_it_did_not_write(tmp_path: Path) -> None:
    directory = tmp_path / "bin"
    directory.mkdir()
    foreign = directory / "jitkube"
    foreign.write_bytes(b"#!/bin/sh\necho mine\n")
    with pytest.raises(UsageError, match="not written by jitkube"):
        install(directory, front="compiled")
    assert foreign.read_bytes() == b"#!/bin/sh\necho mine\n"
    assert not (directory / "kubectl").exists()


def test_switching_to_the_script_removes_the_compiled_jitkube(tmp_path: Path) -> None:
    directory = tmp_path / "bin"
    assert install(directory, front="compiled") == [directory / "kubectl", directory / "jitkube"]
    assert install(directory, front="compiled")  # reinstalling over its own files is fine
    assert install(directory, front="script") == [directory / "kubectl"]
    assert is_shim(directory / "kubectl")
    assert not is_compiled(directory / "kubectl")
    assert not (directory / "jitkube").exists()


def test_a_broken_compiler_falls_back_to_the_script_unless_compiled_was_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    written = install(tmp_path / "auto")
    assert written == [tmp_path / "auto" / "kubectl"]
    assert is_shim(written[0])
    assert not is_compiled(written[0])
    with pytest.raises(ConfigError, match="could not build"):
        install(tmp_path / "strict", front="compiled")
    assert not (tmp_path / "strict" / "kubectl").exists()
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with pytest.raises(ConfigError, match="no C compiler"):
        install(tmp_path / "strict", front="compiled")


def test_the_header_rejects_a_relative_fallback() -> None:
    with pytest.raises(ValueError, match="absolute"):
        config_header(tag="0" * 12, fallback=["jitkube"], kubectl_shim=False)
