"""The `jitkube` entry point: global options, hot-path dispatch, one error mapper.

`jitkube kubectl …` and `jitkube check …` are dispatched here before anything heavy is
imported (no typer, rich, requests, boto3, msal, keyring): they run on every command an
agent types. Every other command builds the Typer app in jitkube.cli.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hot path)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from jitkube.environment import Environment
    from jitkube.errors import JitkubeError

HOT_COMMANDS = ("kubectl", "check")
# Options for the guarded kubectl path; they go before `kubectl` (after it, all is kubectl's).
# scripts/gen_completions.py reads these two tuples.
KUBECTL_BOOL_OPTIONS = ("--no-wait", "--unmask")
KUBECTL_VALUE_OPTIONS = ("--agent", "--reason", "--approval-timeout")


def _take_global_options(argv: Sequence[str], env: Environment) -> list[str]:
    """Remove jitkube's global options and apply them to `env`.

    Before the command word they are always ours; after it they are ours only for
    jitkube's own subcommands (never for `kubectl …`, and for `check` only before `--`).
    """
    from jitkube.environment import parse_duration
    from jitkube.errors import UsageError

    out: list[str] = []
    command: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or command == "kubectl" or (command == "check" and not arg.startswith("-")):
            # kubectl's argv is never ours to rewrite.
            out.extend(argv[i:])
            break
        if arg == "--debug":
            env.debug = True
        elif arg == "--non-interactive":
            env.non_interactive = True
        elif arg in KUBECTL_BOOL_OPTIONS and command is None:
            setattr(env, arg[2:].replace("-", "_"), True)
        elif arg.partition("=")[0] in KUBECTL_VALUE_OPTIONS and command is None:
            name, eq, value = arg.partition("=")
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                i += 1
                value = argv[i]
            if name == "--agent":
                env.agent = value
            elif name == "--reason":
                env.reason = value
            else:
                env.approval_timeout = parse_duration(value, name)
        elif arg in ("--output", "-o") or arg.startswith("--output="):
            if arg.startswith("--output="):
                value = arg.partition("=")[2]
            else:
                if i + 1 >= len(argv):
                    raise UsageError(f"{arg} needs a value: json or text")
                i += 1
                value = argv[i]
            if value not in ("json", "text"):
                raise UsageError(f"--output must be json or text, not {value!r}")
            env.json_output = value == "json"
        else:
            if command is None and not arg.startswith("-"):
                command = arg
            out.append(arg)
        i += 1
    return out


def _command_name(argv: Sequence[str]) -> str:
    return next((a for a in argv if not a.startswith("-")), "jitkube")


def report_error(env: Environment, command: str, error: JitkubeError) -> int:
    """Print one clear line (and the JSON envelope when asked); return the exit code.

    On the kubectl path stdout belongs to kubectl's output, so the envelope goes to
    stderr, and it is printed for agents even without --output json: it is what a
    program acts on (class, decision, reasons, rule, what a human can do).
    """
    from jitkube import envelope
    from jitkube.errors import ExitCode

    code = int(error.exit_code)
    kubectl_path = command == "kubectl"
    if env.json_output or (kubectl_path and env.agent):
        status = {
            ExitCode.DENIED: "denied",
            ExitCode.APPROVAL_REQUIRED: "pending",
            ExitCode.APPROVAL_REFUSED: "refused",
        }.get(error.exit_code, "error")
        line = envelope.dumps(
            envelope.build(
                command, status, code, data=error.data, errors=[envelope.error_entry(error)]
            )
        )
        (env.stderr if kubectl_path else env.stdout).write(line + "\n")
    line = f"jitkube: {error.message}"
    if error.hint:
        line += f"\n  hint: {error.hint}"
    env.stderr.write(line + "\n")
    return code


def run_guarded(env: Environment, command: str, body: Callable[[], int]) -> int:
    """Run `body`, mapping every exception to one stderr line and a documented exit code."""
    from jitkube.errors import ExitCode, JitkubeError

    try:
        return body()
    except JitkubeError as exc:
        if env.debug:
            import traceback

            traceback.print_exc(file=env.stderr)
        return report_error(env, command, exc)
    except KeyboardInterrupt:
        env.stderr.write("jitkube: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as exc:
        if env.debug:
            import traceback

            traceback.print_exc(file=env.stderr)
        internal = JitkubeError(
            f"internal error ({type(exc).__name__}); run again with --debug and report it"
        )
        return report_error(env, command, internal)


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Console-script entry; returns the process exit code.

    A real process (no `argv`/`env` given) first offers `jitkube kubectl`/`check` to the
    warm server (jitkube.warm): same code, forked from a process that has it imported.
    """
    if argv is None and env is None:
        from jitkube import warm

        _std_fds_open()
        served = warm.attempt(sys.argv[1:])
        if served is not None:
            return served
        code = _main(sys.argv[1:], None)
        if warm.server_absent:
            _start_warm_server()
        if warm.hot_command(sys.argv[1:]):
            _exit_now(code)
        return code
    return _main(argv, env)


def _std_fds_open() -> None:
    """Put /dev/null on a closed stdin, stdout or stderr, as OpenSSH and sudo do: else the
    next file jitkube opens (the socket to the warm server, the private kubeconfig) takes
    that number, and kubectl or a worker would read or write it as a standard stream."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


def _exit_now(code: int) -> None:
    """End a hot call without interpreter finalization, which costs 4-7 ms after
    `jitkube kubectl`/`check` (measured side by side): their files are closed as they
    are written, their one thread is a daemon, and nothing registers atexit handlers."""
    import contextlib

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe
            stream.flush()
    os._exit(code)


def _start_warm_server() -> None:
    """After an in-process hot call found no server: start one for the next call, unless
    config.toml says `warm = false` (the environment's JITKUBE_WARM=0 was checked before)."""
    from jitkube import warm
    from jitkube.config import load
    from jitkube.errors import JitkubeError

    try:
        allowed = load().warm is not False
    except JitkubeError:
        return
    if allowed:
        warm.spawn_server(os.environ)


def _main(argv: Sequence[str] | None, env: Environment | None) -> int:
    from jitkube.environment import Environment
    from jitkube.errors import ExitCode, JitkubeError

    env = env or Environment.from_process()
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["__complete-kubectl"]:  # shell completion: kubectl's argv, not ours
        from jitkube.completion import complete_kubectl_main

        return complete_kubectl_main(raw[1:], env)
    try:
        args = _take_global_options(raw, env)
    except JitkubeError as exc:
        return report_error(env, _command_name(raw), exc)
    command = _command_name(args)

    if command in HOT_COMMANDS:
        rest = args[args.index(command) + 1 :]
        if command == "kubectl":
            from jitkube.hotpath import kubectl_main

            return run_guarded(env, "kubectl", lambda: kubectl_main(rest, env))
        from jitkube.check import check_main

        return run_guarded(env, "check", lambda: check_main(rest, env))
    if args in (["--version"], ["version"]):
        from jitkube import __version__

        env.stdout.write(f"jitkube {__version__}\n")
        return int(ExitCode.OK)

    from jitkube.cli.app import run_app

    return run_guarded(env, command, lambda: run_app(args, env))
