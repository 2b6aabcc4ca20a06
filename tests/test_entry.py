"""The entry point: version, help, unknown commands, and the one error mapper."""

from __future__ import annotations

import json

from fixtures.env import IsolatedEnv
from jitkube import __version__


def test_version_fast_path(isolated_env: IsolatedEnv) -> None:
    for args in (("--version",), ("version",)):
        r = isolated_env.run(*args)
        assert r.returncode == 0
        assert r.stdout.decode() == f"jitkube {__version__}\n"


def test_no_arguments_prints_help(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run()
    assert r.returncode == 0
    assert "Usage:" in r.stdout.decode()


def test_unknown_command_is_a_usage_error(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run("frobnicate")
    assert r.returncode == 64
    err = r.stderr.decode()
    assert err.startswith("jitkube: ")
    assert "frobnicate" in err
    assert "Traceback" not in err


def test_usage_error_as_json_envelope(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run("--output", "json", "frobnicate")
    assert r.returncode == 64
    env = json.loads(r.stdout)
    assert env["status"] == "error"
    assert env["exit_code"] == 64
    assert env["errors"][0]["code"] == "usage"


def test_kubectl_denied_command_exits_65(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run("kubectl", "--token", "s3cr3t-T0KEN-value", "get", "pods")
    assert r.returncode == 65
    assert "denied" in r.stderr.decode()
    assert "s3cr3t-T0KEN-value" not in r.stderr.decode()


def test_json_output_from_environment(isolated_env: IsolatedEnv) -> None:
    r = isolated_env.run("check", "--", "get", "pods", extra_env={"JITKUBE_OUTPUT": "json"})
    assert json.loads(r.stdout)["data"]["decision"] == "allow"
