"""jitkube.config: file < JITKUBE_* environment < flags, validated, stdlib only."""

from __future__ import annotations

from pathlib import Path

import pytest

from jitkube.config import Config, config_path, load, state_dir
from jitkube.errors import ConfigError


def _environ(tmp_path: Path, toml: str | None = None, **extra: str) -> dict[str, str]:
    environ = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    if toml is not None:
        path = tmp_path / "cfg" / "jitkube" / "config.toml"
        path.parent.mkdir(parents=True)
        path.write_text(toml)
    environ.update(extra)
    return environ


def test_no_file_gives_defaults(tmp_path: Path) -> None:
    config = load(_environ(tmp_path))
    assert config == Config()
    assert config.token_store == "keyring"


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    environ = _environ(
        tmp_path,
        'broker_url = "https://file.example"\ncluster = "file"\nrole = "file"\n'
        'scopes = ["jitkube", "email"]\n',
        JITKUBE_CLUSTER="env",
        JITKUBE_ROLE="env",
    )
    config = load(environ, {"role": "flag", "cluster": None})
    assert config.broker_url == "https://file.example"
    assert config.cluster == "env"
    assert config.role == "flag"
    assert config.scopes == ("jitkube", "email")
    assert config.sources == {
        "broker_url": "file",
        "cluster": "env",
        "role": "flag",
        "scopes": "file",
    }


@pytest.mark.parametrize(
    ("raw", "scopes"),
    [("openid jitkube", ("openid", "jitkube")), ("a,b , c", ("a", "b", "c")), ("", ())],
)
def test_scopes_from_the_environment_split_on_spaces_and_commas(
    tmp_path: Path, raw: str, scopes: tuple[str, ...]
) -> None:
    assert load(_environ(tmp_path, JITKUBE_SCOPES=raw)).scopes == scopes


@pytest.mark.parametrize(
    ("raw", "agent"),
    [("1", "agent"), ("true", "agent"), ("claude-code", "claude-code"), ("0", None), ("", None)],
)
def test_agent_is_a_name_or_a_switch(tmp_path: Path, raw: str, agent: str | None) -> None:
    assert load(_environ(tmp_path, JITKUBE_AGENT=raw)).agent == agent


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('token_stor = "file"\n', {}, "unknown key(s) token_stor"),
        ("broker_url = [\n", {}, "is not valid TOML"),
        ("cluster = 3\n", {}, "cluster must be a string"),
        ("", {"JITKUBE_TOKEN_STORE": "disk"}, "token_store must be one of"),
        ("", {"JITKUBE_BROKER_URL": "http://broker.example"}, "plain http:// to a non-loopback"),
        ("", {"JITKUBE_BROKER_URL": "ftp://broker.example"}, "must be an https:// URL"),
        ("", {"JITKUBE_BROKER_URL": "https://u:p@broker.example"}, "must not carry credentials"),
        ("", {"JITKUBE_ISSUER": "http://127.0.0.1:8080/idp"}, "issuer"),
    ],
)
def test_bad_settings_are_refused(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load(_environ(tmp_path, toml, **env))
    assert message in err.value.message


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:9/", "http://[::1]:8080", "https://b.example/"],
)
def test_loopback_http_and_any_https_broker_are_accepted(tmp_path: Path, url: str) -> None:
    assert load(_environ(tmp_path, JITKUBE_BROKER_URL=url)).broker_url == url.rstrip("/")


def test_jitkube_config_names_another_file_and_must_exist(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('role = "admin"\n')
    assert load(_environ(tmp_path, JITKUBE_CONFIG=str(other))).role == "admin"
    with pytest.raises(ConfigError, match="does not exist"):
        load(_environ(tmp_path, JITKUBE_CONFIG=str(tmp_path / "missing.toml")))


def test_paths_follow_xdg_and_ignore_relative_values(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": "rel", "XDG_STATE_HOME": "/st"}
    assert config_path(environ) == tmp_path / ".config" / "jitkube" / "config.toml"
    assert state_dir(environ) == Path("/st/jitkube")
    assert state_dir({"HOME": str(tmp_path)}) == tmp_path / ".local/state/jitkube"


def test_paths_expand_the_home_directory(tmp_path: Path) -> None:
    config = load(_environ(tmp_path, 'ca_bundle = "~/ca.pem"\n'))
    assert config.ca_bundle is not None
    assert not config.ca_bundle.startswith("~")
