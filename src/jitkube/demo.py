"""`jitkube demo`: the whole story against a throw-away sandbox, with real kubectl.

Every step runs the real CLI in a subprocess (`python -m jitkube …`) as one of the
sandbox's users, each with a private HOME/XDG tree, checks the outcome (exit code and a
key string), narrates it with Rich and records pass/fail. The sandbox is always stopped
and the directory removed afterwards, unless `keep` is set.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from jitkube.errors import ConfigError

CMD_TIMEOUT = 60.0
WAIT_FOR_PROMPT = 20.0
PREVIEW_NAMESPACE = "preview-pr-42"
USERS = {
    "alice": "engineer",
    "bob": "reviewer / SRE",
    "carol": "auditor",
}


class StepFailedError(Exception):
    """A step did not behave as narrated; the message says how."""


@dataclass
class Run:
    """One finished CLI run."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass
class StepResult:
    number: int
    title: str
    passed: bool
    seconds: float
    detail: str


@dataclass
class DemoResult:
    steps: list[StepResult] = field(default_factory=list)
    directory: Path | None = None

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.passed for s in self.steps)


def find_kubectl() -> Path:
    """The real kubectl: the versioned binary beside a version dispatcher, when present."""
    override = os.environ.get("JITKUBE_KUBECTL")
    if override:
        return Path(override)
    on_path = shutil.which("kubectl")
    if not on_path:
        raise ConfigError("the demo needs kubectl on PATH", hint="install kubectl 1.32")
    real = Path(on_path).resolve()
    versioned = real.with_name("kubectl.1.32")
    return versioned if versioned.is_file() else Path(on_path)


def _user_env(
    base: Mapping[str, str], root: Path, config: str, kubectl: Path, columns: int
) -> dict[str, str]:
    """A private HOME/XDG tree for one sandbox user; nothing of the caller's jitkube,
    kubectl or AWS settings leaks in."""
    home = root / "home"
    dirs = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_STATE_HOME": home / ".local" / "state",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_RUNTIME_DIR": root / "run",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {
        k: v
        for k, v in base.items()
        if not k.startswith(("JITKUBE_", "KUBE", "AWS_")) and k != "CI"
    }
    env.update({k: str(v) for k, v in dirs.items()})
    env.update(
        {
            "KUBECACHEDIR": str(home / ".kube" / "cache"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "JITKUBE_CONFIG": config,
            "JITKUBE_TOKEN_STORE": "file",
            "JITKUBE_KUBECTL": str(kubectl),
            "COLUMNS": str(columns),
        }
    )
    return env


def _read_until(proc: subprocess.Popen[bytes], needle: str, timeout: float) -> str:
    """Read the process's stderr until `needle` shows up (or it ends, or time runs out)."""
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while needle.encode() not in seen and time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                chunk = os.read(proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                seen += chunk
    finally:
        selector.close()
    return seen.decode(errors="replace")


def _word_with(text: str, prefix: str) -> str | None:
    for word in text.split():
        word = word.strip("`();,.'\"")
        if word.startswith(prefix):
            return word
    return None


class Demo:
    """The story, step by step. `run()` returns the per-step results."""

    def __init__(
        self,
        console: Console,
        directory: Path,
        *,
        environ: Mapping[str, str],
        kubectl: Path,
    ) -> None:
        self.console = console
        self.directory = directory
        self.sandbox_dir = directory / "sandbox"
        self.environ = environ
        self.kubectl = kubectl
        self.state: dict[str, Any] = {}
        self.users: dict[str, dict[str, str]] = {}
        self.result = DemoResult(directory=directory)
        self.children: list[subprocess.Popen[bytes]] = []
        self.sandbox_pid: int | None = None

    # -- running the CLI --------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.environ.items() if not k.startswith("JITKUBE_")}
        env["JITKUBE_NON_INTERACTIVE"] = "1"
        return env

    def cli(
        self,
        user: str | None,
        *args: str,
        extra_env: Mapping[str, str] | None = None,
        show: bool = True,
    ) -> Run:
        """Run `jitkube ARGS` as `user` (None: the operator running the demo)."""
        env = dict(self.users[user] if user else self._base_env())
        env.update(extra_env or {})
        if show:
            self._show_command(user, args, extra_env)
        done = subprocess.run(
            [sys.executable, "-P", "-m", "jitkube", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            timeout=CMD_TIMEOUT,
            check=False,
        )
        return Run(list(args), done.returncode, done.stdout.decode(), done.stderr.decode())

    def start(
        self, user: str, *args: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = {**self.users[user], **(extra_env or {})}
        self._show_command(user, args, extra_env)
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "jitkube", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.children.append(proc)
        return proc

    def finish(self, proc: subprocess.Popen[bytes], seen: str, args: Sequence[str]) -> Run:
        out, err = proc.communicate(timeout=CMD_TIMEOUT)
        return Run(list(args), proc.returncode, out.decode(), seen + err.decode())

    # -- narration --------------------------------------------------------------------

    def _show_command(
        self, user: str | None, args: Sequence[str], extra_env: Mapping[str, str] | None
    ) -> None:
        prompt = f"{user}$ " if user else "$ "
        # Quoted as a shell would need them, so a shown command can be copied and run.
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in (extra_env or {}).items())
        line = f"{prompt}{envs + ' ' if envs else ''}jitkube {shlex.join(args)}"
        self.console.print(Text(line, style="bold cyan"), soft_wrap=True)

    def say(self, text: str) -> None:
        self.console.print(Text(text))

    def output(self, run: Run, *, stream: str = "stdout", limit: int = 30, title: str = "") -> None:
        text = (run.stdout if stream == "stdout" else run.stderr).rstrip()
        if not text:
            return
        lines = text.splitlines()
        if len(lines) > limit:
            lines = [*lines[:limit], f"… ({len(lines) - limit} more lines)"]
        self.console.print(
            Panel(
                Text("\n".join(lines)),
                title=title or stream,
                title_align="left",
                expand=False,
                border_style="dim",
            )
        )

    @staticmethod
    def expect(run: Run, code: int, needle: str = "", *, stream: str = "stdout") -> None:
        text = run.stdout if stream == "stdout" else run.stderr
        if run.returncode != code:
            tail = (run.stderr.strip().splitlines() or [""])[-1][:200]
            raise StepFailedError(
                f"`jitkube {' '.join(run.argv)}` exited {run.returncode}, expected {code}: {tail}"
            )
        if needle and needle not in text:
            raise StepFailedError(f"`jitkube {' '.join(run.argv)}` did not print {needle!r}")

    # -- the story --------------------------------------------------------------------

    def steps(self) -> list[tuple[str, str, Callable[[], str]]]:
        """(title, what it shows, function returning the detail line); in order."""
        return [
            (
                "Start the sandbox",
                "A simulated EKS cluster, STS, an identity provider and the "
                "broker on SQLite, all on loopback.",
                self.up,
            ),
            (
                "Device-code sign-in",
                "alice (engineer), bob (reviewer) and carol (auditor) "
                "log in with the OIDC device-code flow.",
                self.login,
            ),
            (
                "Request admin for 15 min",
                "alice asks the broker for a time-boxed session.",
                self.request,
            ),
            ("Allowed read", "An everyday read runs at once.", self.get_pods),
            ("Secret values masked", "alice reads the Secrets of prod.", self.get_secret),
            (
                "Preview namespace",
                "Creating a namespace changes the whole cluster: a reviewer approves it.",
                self.namespace,
            ),
            (
                "Agent's delete namespace",
                "An AI agent's destructive command waits for a second person.",
                self.agent_delete,
            ),
            (
                "Bypass refused",
                "Pointing kubectl at another kubeconfig is refused outright.",
                self.bypass,
            ),
            (
                "Audit chain verifies",
                "Every invocation is in alice's hash-chained audit log.",
                self.verify,
            ),
            (
                "Broker's audit view",
                "The broker holds the same trail; an auditor reads it.",
                self.broker_view,
            ),
        ]

    def run(self) -> DemoResult:
        essential = {1, 2, 3}
        for number, (title, what, fn) in enumerate(self.steps(), start=1):
            self.console.rule(Text(f"Step {number}: {title}", style="bold"))
            self.say(what)
            started = time.monotonic()
            try:
                detail = fn()
                passed = True
                self.console.print(Text(f"✔ {detail}", style="green"))
            except (StepFailedError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
                passed, detail = False, str(exc)
                self.console.print(Text(f"✘ {detail}", style="bold red"))
            self.result.steps.append(
                StepResult(number, title, passed, time.monotonic() - started, detail)
            )
            if not passed and number in essential:
                self.say("The rest of the story needs this step; stopping here.")
                break
        return self.result

    def up(self) -> str:
        run = self.cli(None, "sandbox", "up", "--dir", str(self.sandbox_dir))
        self.output(run)
        self.expect(run, 0, "sandbox started")
        self.state = json.loads((self.sandbox_dir / "state.json").read_text())
        self.sandbox_pid = int(self.state["pid"])
        # Their output is shown inside a panel: leave room for its border.
        columns = max(76, self.console.width - 4)
        for name in USERS:
            self.users[name] = _user_env(
                self.environ,
                self.directory / "users" / name,
                str(self.state["config"]),
                self.kubectl,
                columns,
            )
        return (
            f"sandbox pid {self.sandbox_pid}: cluster {self.state['cluster_name']}, "
            f"broker {self.state['broker_url']}"
        )

    def login(self) -> str:
        procs = {name: self.start(name, "login") for name in USERS}
        codes: dict[str, str] = {}
        prompts: dict[str, str] = {}
        for name, proc in procs.items():
            seen = _read_until(proc, "user_code=", WAIT_FOR_PROMPT)
            seen += _read_until(proc, "\n", 2.0) if "user_code=" in seen else ""
            url = next(
                (w for w in seen.split() if w.startswith("https://") and "user_code=" in w), None
            )
            if url is None:
                tail = (seen.strip().splitlines() or [""])[-1][:200]
                raise StepFailedError(f"{name}'s login showed no device code: {tail}")
            codes[name] = parse_qs(urlsplit(url).query)["user_code"][0]
            prompts[name] = seen
        self.output(Run([], 0, "", prompts["alice"]), stream="stderr", title="alice's terminal")
        self.say(
            "The sandbox's identity provider plays the browser: each user approves their code."
        )
        for name, code in codes.items():
            approved = self.cli(
                None,
                "sandbox",
                "approve-device",
                code,
                "--user",
                name,
                "--dir",
                str(self.sandbox_dir),
            )
            self.expect(approved, 0, f"approved as {name}")
        for name, proc in procs.items():
            done = self.finish(proc, prompts[name], ["login"])
            if name == "alice":
                self.output(done, title="alice: jitkube login")
            self.expect(done, 0, f"{name}@example.test")
        return "alice (engineers), bob (reviewers, sre) and carol (auditors) hold OIDC tokens"

    def request(self) -> str:
        run = self.cli(
            "alice",
            "request",
            "--role",
            "admin",
            "--ttl",
            "15m",
            "--reason",
            "INC-4711 api pods restarting",
        )
        self.output(run)
        self.expect(run, 0, "ses_")
        return "session active: the broker holds the AWS credentials, alice only an EKS token"

    def get_pods(self) -> str:
        run = self.cli("alice", "kubectl", "get", "pods", "-n", "prod")
        self.output(run)
        self.expect(run, 0, "api-5c8d7f9b4-x2k9p")
        return "a read: allowed by policy, run by the real kubectl with short-lived credentials"

    def _start_waiting(
        self, user: str, args: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Start a command that must wait for a reviewer; returns it and the approval id."""
        proc = self.start(user, *args, extra_env=extra_env)
        seen = _read_until(proc, "cmd_", WAIT_FOR_PROMPT)
        approval = _word_with(seen, "cmd_")
        if approval is None:
            proc.kill()
            self.finish(proc, seen, args)
            raise StepFailedError(f"`jitkube {' '.join(args)}` did not wait for an approval")
        self.output(Run([], 0, "", seen), stream="stderr", title=f"{user}'s terminal (waiting)")
        return proc, approval

    def _bob_approves(self, approval: str, comment: str) -> Run:
        listed = self.cli("bob", "approvals")
        self.output(listed, limit=40, title="bob: pending approvals")
        self.expect(listed, 0, approval)
        approved = self.cli("bob", "approve", approval, "--comment", comment)
        self.expect(approved, 0, "approved")
        self.say(f"bob approved {approval}.")
        return approved

    def get_secret(self) -> str:
        args = ["kubectl", "get", "secret", "-n", "prod", "-o", "yaml"]
        self.say(
            "At a terminal jitkube would ask alice to confirm. Here nobody can answer a prompt,"
            " so the policy turns the confirmation into a reviewer's approval."
        )
        proc, approval = self._start_waiting("alice", args)
        self._bob_approves(approval, "rotating db credentials, ok")
        run = self.finish(proc, "", args)
        self.output(run, limit=24, title="alice: kubectl get secret -n prod -o yaml")
        self.expect(run, 0, "<masked:hmac-sha256:")
        import yaml

        doc = yaml.safe_load(run.stdout)
        values = [
            v
            for item in (doc or {}).get("items", [])
            for section in ("data", "stringData")
            for v in (item.get(section) or {}).values()
        ]
        clear = [v for v in values if not str(v).startswith("<masked:")]
        if not values or clear:
            raise StepFailedError(f"{len(clear)} of {len(values)} secret values were not masked")
        return (
            f"{len(values)} secret values, every one masked (a keyed digest keeps them comparable)"
        )

    def namespace(self) -> str:
        manifest = self.directory / f"{PREVIEW_NAMESPACE}.yaml"
        manifest.write_text(
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {PREVIEW_NAMESPACE}\n"
        )
        args = ["kubectl", "apply", "-f", str(manifest)]
        proc, approval = self._start_waiting("alice", args)
        approved = self.cli("bob", "approve", approval, "--comment", "preview env for PR 42")
        self.expect(approved, 0, "approved")
        self.say(f"bob approved {approval}.")
        run = self.finish(proc, "", args)
        self.output(run)
        self.expect(run, 0, f"namespace/{PREVIEW_NAMESPACE} created")
        return f"namespace {PREVIEW_NAMESPACE} exists"

    def agent_delete(self) -> str:
        agent = {"JITKUBE_AGENT": "claude"}
        args = ["kubectl", "delete", "namespace", PREVIEW_NAMESPACE]
        self.say("Claude, working in alice's session, cleans up the preview environment.")
        proc, approval = self._start_waiting("alice", args, agent)
        still = self.cli("alice", "kubectl", "get", "namespace", PREVIEW_NAMESPACE)
        self.output(still)
        self.expect(still, 0, PREVIEW_NAMESPACE)
        self.say("While the agent waits, nothing has reached the cluster. alice cannot approve it:")
        own = self.cli("alice", "approve", approval)
        self.output(own, stream="stderr")
        self.expect(own, 65)
        self._bob_approves(approval, "stale preview env, ok")
        run = self.finish(proc, "", args)
        self.output(run)
        self.expect(run, 0, "deleted")
        gone = self.cli("alice", "kubectl", "get", "namespace", PREVIEW_NAMESPACE)
        self.output(gone, stream="stderr")
        self.expect(gone, 1, "not found", stream="stderr")
        return f"deleted after bob's approval ({approval}); the requester could not self-approve"

    def bypass(self) -> str:
        other = "/tmp/x"  # noqa: S108 - never read: refused before kubectl runs
        run = self.cli("alice", "kubectl", "--kubeconfig", other, "get", "pods")
        self.output(run, stream="stderr")
        self.expect(run, 65, "bypass", stream="stderr")
        return "exit 65: refused before kubectl runs; no policy can allow it"

    def verify(self) -> str:
        listed = self.cli("alice", "audit")
        self.output(listed)
        self.expect(listed, 0)
        run = self.cli("alice", "audit", "--verify")
        self.output(run)
        self.expect(run, 0, "intact")
        count = len(listed.stdout.strip().splitlines())
        return f"hash chain intact over {count} records (allowed, approved and denied alike)"

    def broker_view(self) -> str:
        flushed = self.cli("alice", "audit", "--flush")
        self.output(flushed)
        self.expect(flushed, 0)
        local_run = self.cli("alice", "--output", "json", "audit", "--limit", "0", show=False)
        self.expect(local_run, 0)
        local = json.loads(local_run.stdout)["data"]["records"]
        self.say("carol (auditor) reads GET /v1/audit from the broker:")
        items = self._broker_audit("carol")
        by_id = {item.get("id"): item for item in items}
        table = Table(title="the broker's audit trail", title_justify="left")
        for column in ("seq", "user", "agent", "outcome", "class", "command", "approver"):
            table.add_column(column, overflow="fold")
        for item in items:
            table.add_row(
                str(item.get("seq", "")),
                str(item.get("sub", "")),
                str(item.get("agent") or "-"),
                str(item.get("outcome", "")),
                str(item.get("class", "")),
                "kubectl " + " ".join(str(a) for a in item.get("argv") or []),
                str(item.get("approver") or "-"),
            )
        self.console.print(table)
        missing = [r["id"] for r in local if by_id.get(r["id"], {}).get("hash") != r["hash"]]
        if not local or missing:
            raise StepFailedError(
                f"{len(missing)} of {len(local)} local audit records are not at the broker"
            )
        return f"all {len(local)} local records are at the broker, with the same hashes"

    def _broker_audit(self, user: str) -> list[dict[str, Any]]:
        from jitkube.client.sessions import oidc_client
        from jitkube.config import load
        from jitkube.environment import Environment

        env = Environment(environ=self.users[user], stdout=StringIO(), stderr=StringIO())
        env.non_interactive = True
        items: list[dict[str, Any]] = []
        with oidc_client(load(env.environ), env) as client:
            params: dict[str, Any] = {"limit": 1000}
            _, body = client.call("GET", "/v1/audit", params=params)
            items.extend(i for i in body.get("items", []) if isinstance(i, dict))
        return items

    # -- the end ----------------------------------------------------------------------

    def summary(self) -> None:
        table = Table(title="jitkube demo", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("step")
        table.add_column("result")
        table.add_column("time", justify="right")
        table.add_column("what it showed", overflow="fold")
        done = {s.number for s in self.result.steps}
        for s in self.result.steps:
            table.add_row(
                str(s.number),
                s.title,
                Text("passed", style="green") if s.passed else Text("FAILED", style="bold red"),
                f"{s.seconds:.1f}s",
                s.detail,
            )
        for number, (title, _what, _fn) in enumerate(self.steps(), start=1):
            if number not in done:
                table.add_row(str(number), title, Text("skipped", style="yellow"), "-", "")
        self.console.rule()
        self.console.print(table)

    def stop_children(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def down(self) -> None:
        self.stop_children()
        from jitkube import warm

        for environ in self.users.values():  # the users' warm servers (jitkube.warm)
            warm.stop(environ)
        if (self.sandbox_dir / "sandbox.lock").exists():
            self.cli(None, "sandbox", "down", "--dir", str(self.sandbox_dir), show=False)

    @staticmethod
    def _path_line() -> list[str]:
        """`jitkube` is often not on PATH (`make demo` runs it from .venv/bin)."""
        here = Path(sys.executable).parent
        if (here / "jitkube").exists() and shutil.which("jitkube") != str(here / "jitkube"):
            return [f'export PATH={shlex.quote(str(here))}:"$PATH"']
        return []

    def keep_instructions(self) -> None:
        alice = self.users.get("alice", {})
        keys = (
            "HOME",
            "XDG_CONFIG_HOME",
            "XDG_STATE_HOME",
            "XDG_DATA_HOME",
            "XDG_CACHE_HOME",
            "XDG_RUNTIME_DIR",
            "KUBECACHEDIR",
            "JITKUBE_CONFIG",
            "JITKUBE_TOKEN_STORE",
            "JITKUBE_KUBECTL",
        )
        q = shlex.quote
        sandbox = q(str(self.sandbox_dir))
        lines = [
            f"# The sandbox keeps running in {self.sandbox_dir}.",
            "# Work as alice (logged in, admin session for 15 min): paste into a new shell.",
            *(f"export {k}={q(alice[k])}" for k in keys if k in alice),
            *self._path_line(),
            "jitkube status",
            "jitkube kubectl get pods -n prod",
            "# Or start afresh as yourself, approving the device code as a sandbox user:",
            f'eval "$(jitkube sandbox env --dir {sandbox})"',
            "jitkube login",
            f"jitkube sandbox approve-device CODE --user alice --dir {sandbox}",
            "# Users: alice (engineers), bob (reviewers, sre), carol (auditors), agent-claude.",
            "# Stop it and remove everything:",
            f"jitkube sandbox down --dir {sandbox}",
            f"rm -rf {q(str(self.directory))}",
        ]
        self.console.rule(Text("jitkube demo --keep", style="bold"))
        for line in lines:
            # soft_wrap: commands stay one line each, so they can be copied.
            self.console.print(Text(line), soft_wrap=True)


def make_console(environ: Mapping[str, str], file: Any) -> Console:
    """Rich console on `file`; NO_COLOR and non-TTY output stay plain and readable."""
    return Console(file=file, no_color="NO_COLOR" in environ, highlight=False, soft_wrap=False)


def run_demo(
    console: Console,
    environ: Mapping[str, str],
    *,
    keep: bool = False,
    directory: Path | None = None,
) -> int:
    """Run the story; 0 only if every step behaved as narrated. Cleans up unless `keep`."""
    kubectl = find_kubectl()
    created = directory is None or not directory.exists()
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="jitkube-demo-"))
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    demo = Demo(console, directory, environ=environ, kubectl=kubectl)
    started = time.monotonic()
    interrupted = False
    try:
        demo.run()
    except KeyboardInterrupt:
        interrupted = True
        console.print(Text("Interrupted: cleaning up.", style="yellow"))
    finally:
        if keep and not interrupted and demo.state:
            demo.stop_children()
        else:
            demo.down()
            if created:
                shutil.rmtree(directory, ignore_errors=True)
    if interrupted:
        return 130
    demo.summary()
    elapsed = time.monotonic() - started
    ok = demo.result.passed and len(demo.result.steps) == len(demo.steps())
    verdict = "every step behaved as narrated" if ok else "some steps did not behave as narrated"
    console.print(Text(f"{verdict} ({elapsed:.1f} s)", style="bold green" if ok else "bold red"))
    if keep and demo.state:
        demo.keep_instructions()
    return 0 if ok else 1
