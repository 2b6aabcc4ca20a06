"""`jitkube __complete-kubectl ARGS… CURRENT`: kubectl's own completion, cut off from clusters.

The shell scripts in completions/ call this for `jitkube kubectl <TAB>`. It runs the real
kubectl's cobra `__complete` (candidate lines, then `:<directive>`) so commands, flags and
static flag values complete, while anything that would need a cluster (resource types and
names) simply yields nothing: kubectl gets a scrubbed environment, a throw-away HOME and a
kubeconfig whose only server is `https://127.0.0.1:0`, a port nobody can listen on.
No login, no broker, no session cache, no audit. Stdlib only; every failure is silent
because a shell prints whatever a completion writes.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence

from jitkube.environment import Environment

TIMEOUT_SECONDS = 3.0

# Port 0 cannot be listened on, so a connection attempt fails locally and nothing (not even
# DNS) leaves the machine. The dummy token stops kubectl prompting for a username.
_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: jitkube-completion
  cluster:
    server: https://127.0.0.1:0
users:
- name: jitkube-completion
  user:
    token: none
contexts:
- name: jitkube-completion
  context:
    cluster: jitkube-completion
    user: jitkube-completion
current-context: jitkube-completion
"""

# Shorthands that take a value in every kubectl command, so `s` after them is part of the
# value (`-ojson`); any other single-dash group containing `s` may be `-s` (`--server`).
_VALUE_SHORTHANDS = frozenset("nol")


def redirects_kubectl(word: str) -> bool:
    """True when `word` could point kubectl at another server or kubeconfig.

    Such words are refused rather than rewritten: completion is never worth a connection.
    """
    if word.startswith("--"):
        name = word.partition("=")[0]
        return name in ("--kubeconfig", "--server")
    if word.startswith("-") and len(word) > 1:
        for char in word[1:]:
            if char == "s":
                return True
            if char in _VALUE_SHORTHANDS or char == "=":
                return False
    return False


def _scrubbed_environ(home: str, environ: dict[str, str]) -> dict[str, str]:
    """Only what kubectl needs to print completions; nothing that reaches a cluster."""
    clean = {
        "HOME": home,
        "KUBECONFIG": os.path.join(home, "kubeconfig"),
        "KUBECACHEDIR": os.path.join(home, "cache"),
        "KUBECTL_KUBERC": "false",
        "KUBECTL_ENABLE_CMD_SHADOW": "false",
        # An empty directory: kubectl would otherwise list and run `kubectl_complete-*` plugins.
        "PATH": os.path.join(home, "bin"),
    }
    for key in ("LANG", "LC_ALL", "SYSTEMROOT"):  # SYSTEMROOT: Windows processes need it
        if key in environ:
            clean[key] = environ[key]
    return clean


def kubectl_candidates(words: Sequence[str], kubectl: str, environ: dict[str, str]) -> str:
    """kubectl's `__complete` output for `words` (the last one is being completed), or ""."""
    if not words or any(redirects_kubectl(w) for w in words):
        return ""
    with tempfile.TemporaryDirectory(prefix="jitkube-complete-") as home:
        os.mkdir(os.path.join(home, "bin"))
        with open(os.path.join(home, "kubeconfig"), "w", encoding="utf-8") as f:
            f.write(_KUBECONFIG)
        try:
            result = subprocess.run(
                [kubectl, "__complete", *words],
                env=_scrubbed_environ(home, environ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
    text = result.stdout.decode("utf-8", errors="replace")
    lines = text.splitlines()
    # Only a complete answer counts: candidates then the `:<directive>` line.
    if result.returncode != 0 or not lines or not lines[-1].startswith(":"):
        return ""
    if not lines[-1][1:].isdigit():
        return ""
    return "\n".join(lines) + "\n"


def complete_kubectl_main(args: Sequence[str], env: Environment) -> int:
    """Print kubectl's completion candidates for `args`; print nothing on any failure."""
    try:
        from jitkube import config as config_module
        from jitkube.runner import resolve_kubectl

        environ = dict(env.environ)
        config = config_module.load(environ)
        kubectl = resolve_kubectl(config.kubectl or "kubectl", environ)
        env.stdout.write(kubectl_candidates(list(args), kubectl, environ))
        env.stdout.flush()
    except Exception:  # noqa: S110 - a shell would show any message mid-command-line
        pass
    return 0
