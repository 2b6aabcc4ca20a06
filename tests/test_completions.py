"""Shell completions: generated from the CLI, driven in real shells, and cut off from clusters.

bash is always driven for real. zsh and fish are driven when installed (apt: zsh, fish);
otherwise those cases skip with the reason, while the drift test still covers their files.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from fixtures.env import IsolatedEnv
from jitkube.completion import redirects_kubectl

REPO = Path(__file__).resolve().parents[1]
COMPLETIONS = REPO / "completions"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
SCRIPT_FILES = ("jitkube.bash", "_jitkube", "jitkube.fish")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_completions", REPO / "scripts" / "gen_completions.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_completions"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


# --- drift and syntax --------------------------------------------------------------------


def test_generated_scripts_match_the_cli(tmp_path: Path) -> None:
    _generator().main([str(tmp_path)])
    for name in SCRIPT_FILES:
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (COMPLETIONS / name).read_text(encoding="utf-8")
        assert fresh == committed, (
            f"completions/{name} is stale: run `python scripts/gen_completions.py`"
        )


def test_generation_is_deterministic(tmp_path: Path) -> None:
    gen = _generator()
    assert gen.render_all() == gen.render_all()


def test_scripts_know_every_visible_command() -> None:
    text = (COMPLETIONS / "jitkube.bash").read_text(encoding="utf-8")
    for path in ("'jitkube sandbox up'", "'jitkube broker serve'", "'jitkube approvals status'"):
        assert path in text


@pytest.mark.parametrize(
    ("shell", "args", "name"),
    [
        ("bash", ("-n",), "jitkube.bash"),
        ("zsh", ("-n",), "_jitkube"),
        ("fish", ("-n",), "jitkube.fish"),
    ],
)
def test_script_parses_in_its_shell(shell: str, args: tuple[str, ...], name: str) -> None:
    binary = shutil.which(shell)
    if binary is None:
        pytest.skip(f"{shell} is not installed (apt package {shell}); drift test covers {name}")
    result = subprocess.run(
        [binary, *args, str(COMPLETIONS / name)], capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr.decode()


# --- driving the shells -------------------------------------------------------------------


@dataclass
class Shells:
    """A `jitkube` on PATH (this checkout) and a pinned kubectl, in an isolated environment."""

    env: dict[str, str]
    cwd: Path = REPO

    def bash(self, *words: str, bash_completion: bool = False) -> list[str]:
        """COMPREPLY of `_jitkube` for `words` (the last one is being completed).

        With `bash_completion`, the bash-completion package is loaded first, so the script
        re-splits the line with its `_get_comp_words_by_ref` as it does on most desktops.
        """
        preamble = ""
        if bash_completion:
            if not BASH_COMPLETION.is_file():
                pytest.skip("bash-completion is not installed (apt package bash-completion)")
            preamble = f"source {BASH_COMPLETION}; "
        driver = (
            preamble + 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
            'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _jitkube; '
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        out = self._run(["bash", "-c", driver, "bash", str(COMPLETIONS / "jitkube.bash"), *words])
        return [line for line in out.splitlines() if line]

    def zsh_compsys(self, line: str, expected: str, timeout: float = 20) -> bool:
        """Type `line` TAB TAB in a real interactive zsh (compinit, zpty); True when
        `expected` shows up on the terminal."""
        binary = shutil.which("zsh")
        if binary is None:
            pytest.skip("zsh is not installed (apt package zsh)")
        driver = (
            "zmodload zsh/zpty; zpty -b z 'zsh -f -i'; "
            "zpty -w z \"PS1='%% '; fpath=($1 \\$fpath); autoload -U compinit; "
            'compinit -u -D; setopt nobeep; LISTMAX=0"; '
            "zpty -w -n z \"$2\"$'\\t\\t'; "
            'zpty -r z out "*$3*" && print -r -- FOUND; zpty -d z'
        )
        proc = subprocess.Popen(
            [binary, "-f", "-c", driver, "zsh", str(COMPLETIONS), line, expected],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=REPO,
            start_new_session=True,  # the pseudo-terminal's zsh is killed with its group
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return False
        return b"FOUND" in out

    def zsh(self, *words: str) -> list[str]:
        """What `_jitkube` hands to compsys (compadd/_describe/_files stubbed to print it)."""
        binary = shutil.which("zsh")
        if binary is None:
            pytest.skip("zsh is not installed (apt package zsh)")
        driver = (
            # compsys keeps the candidates matching the typed prefix; so does this stub.
            'compadd() { local c; for c in "${@:2}"; do '
            '[[ $c == "${words[CURRENT]}"* ]] && print -r -- "$c"; done; true }; '
            '_describe() { local n; for n in "${(@P)4}"; do print -r -- "${n%%:*}"; done }; '
            '_files() { print -r -- "<files $*>" }; '
            'source "$1"; shift; words=("$@"); CURRENT=$#; _jitkube'
        )
        out = self._run([binary, "-f", "-c", driver, "zsh", str(COMPLETIONS / "_jitkube"), *words])
        return [line for line in out.splitlines() if line]

    def fish(self, line: str) -> list[str]:
        """Candidates fish itself computes for the command line `line` (`complete -C`)."""
        binary = shutil.which("fish")
        if binary is None:
            pytest.skip("fish is not installed (apt package fish)")
        script = f"source {COMPLETIONS / 'jitkube.fish'}; complete -C {_fish_str(line)}"
        out = self._run([binary, "-N", "-c", script])
        return [c.split("\t")[0] for c in out.splitlines() if c]

    def _run(self, argv: list[str]) -> str:
        result = subprocess.run(
            argv, capture_output=True, env=self.env, timeout=60, check=False, cwd=self.cwd
        )
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()


def _fish_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.fixture
def shells(isolated_env: IsolatedEnv, tmp_path: Path, kubectl_bin: Path) -> Shells:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "jitkube"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m jitkube "$@"\n')
    launcher.chmod(0o755)
    env = dict(isolated_env.env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["JITKUBE_KUBECTL"] = str(kubectl_bin)
    env["PYTHONPATH"] = str(REPO / "src")
    return Shells(env)


STATIC_CASES = [
    (("jitkube", "sa"), ["sandbox"]),
    (("jitkube", "sandbox", ""), ["approve-device", "down", "env", "status", "up"]),
    (("jitkube", "broker", ""), ["serve"]),
    (("jitkube", "approvals", "st"), ["status"]),
    (("jitkube", "--output", ""), ["json", "text"]),
    (("jitkube", "--agent", "bot", "ku"), ["kubectl"]),
    (("jitkube", "check", "--pol"), ["--policy"]),
    (("jitkube", "sandbox", "up", "--auto"), ["--auto-approve"]),
    (("jitkube", "request", "--no-w"), ["--no-wait"]),
    (("jitkube", "broker", "serve", "--tls-c"), ["--tls-cert"]),
]

KUBECTL_CASES = [
    (("jitkube", "kubectl", "ro"), ["rollout"]),
    (("jitkube", "kubectl", "get", "--out"), ["--output", "--output-watch-events"]),
    (("jitkube", "--agent", "bot", "kubectl", "rollout", "und"), ["undo"]),
    (("jitkube", "check", "--", "kubectl", "ro"), ["rollout"]),
    (("jitkube", "check", "--policy", "p.yaml", "--", "ro"), ["rollout"]),
    (("jitkube", "check", "ro"), ["rollout"]),
]


@pytest.mark.parametrize(("words", "expected"), STATIC_CASES + KUBECTL_CASES)
def test_bash_completes(shells: Shells, words: tuple[str, ...], expected: list[str]) -> None:
    assert shells.bash(*words) == expected


@pytest.mark.parametrize(("words", "expected"), STATIC_CASES + KUBECTL_CASES[:3])
def test_bash_completes_with_bash_completion_loaded(
    shells: Shells, words: tuple[str, ...], expected: list[str]
) -> None:
    assert shells.bash(*words, bash_completion=True) == expected


def test_bash_completion_keeps_equals_values_in_one_word(shells: Shells) -> None:
    words = ("jitkube", "kubectl", "get", "pods", "--output=json", "--show-l")
    assert shells.bash(*words, bash_completion=True) == ["--show-labels"]


def test_bash_completes_kubectl_flag_values(shells: Shells) -> None:
    assert {"json", "yaml", "wide"} <= set(
        shells.bash("jitkube", "kubectl", "get", "pods", "-o", "")
    )


@pytest.fixture
def manifest_dir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    for name in ("a.yaml", "b.txt", "c.json"):
        (work / name).write_text("")
    return work


def test_bash_kubectl_filename_flag_offers_manifests_and_directories(
    shells: Shells, manifest_dir: Path
) -> None:
    shells.cwd = manifest_dir
    assert sorted(shells.bash("jitkube", "kubectl", "apply", "-f", "")) == [
        "a.yaml",
        "c.json",
        "sub",
    ]


def test_zsh_kubectl_filename_flag_offers_manifests(shells: Shells) -> None:
    assert shells.zsh("jitkube", "kubectl", "apply", "-f", "") == ["<files -g *.(json|yaml|yml)>"]


def test_fish_kubectl_filename_flag_offers_manifests_and_directories(
    shells: Shells, manifest_dir: Path
) -> None:
    shells.cwd = manifest_dir
    assert sorted(shells.fish("jitkube kubectl apply -f ")) == ["a.yaml", "c.json", "sub/"]


def test_bash_completes_directories_for_dir_options(shells: Shells) -> None:
    assert "src" in shells.bash("jitkube", "sandbox", "up", "--dir", "sr")


def test_bash_completes_nothing_when_kubectl_is_pointed_elsewhere(shells: Shells) -> None:
    assert shells.bash("jitkube", "kubectl", "--server", "https://x", "get", "--out") == []


@pytest.mark.parametrize(("words", "expected"), STATIC_CASES + KUBECTL_CASES[:3])
def test_zsh_completes(shells: Shells, words: tuple[str, ...], expected: list[str]) -> None:
    assert shells.zsh(*words) == expected


@pytest.mark.parametrize(("words", "expected"), STATIC_CASES + KUBECTL_CASES[:3])
def test_fish_completes(shells: Shells, words: tuple[str, ...], expected: list[str]) -> None:
    assert shells.fish(" ".join(words)) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("jitkube sandbox ", "approve-device"),
        ("jitkube --output ", "text"),
        ("jitkube kubectl rollout ", "undo"),
    ],
)
def test_zsh_compsys_lists(shells: Shells, line: str, expected: str) -> None:
    assert shells.zsh_compsys(line, expected)


def test_zsh_compsys_check_can_fail(shells: Shells) -> None:
    """Guard the guard: a word no completion offers is not found."""
    assert not shells.zsh_compsys("jitkube sandbox ", "no-such-command", timeout=4)


# --- the helper contacts nothing ----------------------------------------------------------


class Listener:
    """A loopback socket that counts connections (kubectl would open one to talk to it)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _kubeconfig_for(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {{token: secret-token}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
"""
    )
    return path


# `get <TAB>` and `get pods <TAB>` need discovery / a list call: the server would be asked.
DISCOVERY_ARGS = [("get", ""), ("get", "pods", ""), ("logs", "")]


@pytest.mark.parametrize("args", DISCOVERY_ARGS)
def test_plain_kubectl_completion_would_contact_the_server(
    isolated_env: IsolatedEnv,
    tmp_path: Path,
    kubectl_bin: Path,
    listener: Listener,
    args: tuple[str, ...],
) -> None:
    """Guard the guard: the same completion run directly does reach the listener."""
    env = dict(isolated_env.env, KUBECONFIG=str(_kubeconfig_for(tmp_path, listener.port)))
    proc = subprocess.Popen(
        [str(kubectl_bin), "__complete", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while listener.connections == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # kubectl would go on retrying for a while; one connection proves the point
    proc.wait()
    assert listener.connections > 0


@pytest.mark.parametrize("args", DISCOVERY_ARGS)
def test_helper_never_contacts_the_users_cluster_or_broker(
    isolated_env: IsolatedEnv,
    tmp_path: Path,
    kubectl_bin: Path,
    listener: Listener,
    args: tuple[str, ...],
) -> None:
    env = {
        "KUBECONFIG": str(_kubeconfig_for(tmp_path, listener.port)),
        "JITKUBE_KUBECTL": str(kubectl_bin),
        "JITKUBE_BROKER_URL": f"http://127.0.0.1:{listener.port}",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(listener.port),
        "HTTPS_PROXY": f"http://127.0.0.1:{listener.port}",
    }
    result = isolated_env.run("__complete-kubectl", *args, extra_env=env)
    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout.decode().splitlines()[-1].startswith(":")
    assert listener.connections == 0
    # Nothing written either: no login record, session cache or audit trail.
    assert not [p for p in isolated_env.home.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "args",
    [
        ("--kubeconfig", "KCFG", "get", ""),
        ("--kubeconfig=KCFG", "get", "pods", ""),
        ("--server", "URL", "get", ""),
        ("-s", "URL", "get", ""),
        ("get", "pods", "-sURL", ""),
    ],
)
def test_helper_refuses_words_that_point_kubectl_at_a_server(
    isolated_env: IsolatedEnv,
    tmp_path: Path,
    kubectl_bin: Path,
    listener: Listener,
    args: tuple[str, ...],
) -> None:
    kubeconfig = str(_kubeconfig_for(tmp_path, listener.port))
    url = f"https://127.0.0.1:{listener.port}"
    argv = [a.replace("KCFG", kubeconfig).replace("URL", url) for a in args]
    result = isolated_env.run(
        "__complete-kubectl", *argv, extra_env={"JITKUBE_KUBECTL": str(kubectl_bin)}
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert listener.connections == 0


@pytest.mark.parametrize(
    ("word", "redirects"),
    [
        ("--kubeconfig", True),
        ("--kubeconfig=/x", True),
        ("--server=https://x", True),
        ("-s", True),
        ("-shttps://x", True),
        ("-is", True),  # a shorthand group ending in -s
        ("--namespace", False),
        ("-n", False),
        ("-nkube-system", False),  # `s` is part of -n's value
        ("-ojson", False),
        ("-lapp=s", False),
        ("--context=prod", False),  # names a context the helper's kubeconfig lacks
        ("pods", False),
    ],
)
def test_redirecting_words_are_recognised(word: str, redirects: bool) -> None:
    assert redirects_kubectl(word) is redirects


@pytest.mark.parametrize(
    "extra_env",
    [
        {"JITKUBE_KUBECTL": "/nonexistent/kubectl"},
        {"JITKUBE_KUBECTL": "/bin/false"},
        {"JITKUBE_CONFIG": "/nonexistent/config.toml"},
    ],
)
def test_helper_is_silent_on_failure(isolated_env: IsolatedEnv, extra_env: dict[str, str]) -> None:
    result = isolated_env.run("__complete-kubectl", "get", "", extra_env=extra_env)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


PROBE = r"""
import io, sys
from jitkube.entry import main
from jitkube.environment import Environment
out = io.StringIO()
environ = {"JITKUBE_KUBECTL": sys.argv[1]}
env = Environment(stdin=io.BytesIO(b""), stdout=out, stderr=io.StringIO(), environ=environ)
main(["__complete-kubectl", "ro"], env)
heavy = {"typer", "rich", "click", "requests", "boto3", "botocore", "msal", "keyring"}
heavy |= {"pydantic", "yaml"}
print(sorted(heavy & {m.split(".")[0] for m in sys.modules}))
print(out.getvalue().splitlines()[0].split("\t")[0])
"""


def test_helper_stays_on_the_hot_path(kubectl_bin: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(kubectl_bin)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.decode().splitlines() == ["[]", "rollout"]
