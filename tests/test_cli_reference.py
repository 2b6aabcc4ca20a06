"""docs/cli.md is generated from the CLI (scripts/gen_cli_reference.py) and cannot drift."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from fixtures.env import IsolatedEnv
from jitkube.check import HELP as CHECK_HELP
from jitkube.entry import KUBECTL_BOOL_OPTIONS, KUBECTL_VALUE_OPTIONS

REPO = Path(__file__).resolve().parents[1]
CLI_MD = REPO / "docs" / "cli.md"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_cli_reference", REPO / "scripts" / "gen_cli_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(gen: ModuleType) -> str:
    text: str = gen.render()
    return text


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_cli_reference_matches_the_cli(gen: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    gen.main([str(out)])
    assert out.read_text(encoding="utf-8") == CLI_MD.read_text(encoding="utf-8"), (
        "docs/cli.md is stale: run `python scripts/gen_cli_reference.py`"
    )


def test_every_command_the_completions_know_has_a_section(gen: ModuleType, rendered: str) -> None:
    """Same tree as completions/: every command, and every option it takes, is documented
    (global options once, under Global options)."""
    sections = _sections(rendered)
    completions = gen._completions()
    global_names = {n for o in completions.ANYWHERE_OPTIONS for n in o.names} | {"--help"}
    specs = completions.collect()
    assert len(specs) > 15
    for spec in specs:
        if spec.path == completions.ROOT:
            for option in spec.options:
                for name in option.names:
                    if name != "--help":
                        assert f"`{name}`" in sections["Global options"], name
            continue
        section = sections[spec.path]
        for option in spec.options:
            for name in set(option.names) - global_names:
                assert name in section, (spec.path, name)


def test_hot_path_options_are_documented(rendered: str) -> None:
    sections = _sections(rendered)
    for name in (*KUBECTL_BOOL_OPTIONS, *KUBECTL_VALUE_OPTIONS):
        assert f"| `{name}` |" in sections["Global options"]
        assert name in sections["jitkube kubectl"]
    assert CHECK_HELP.strip() in sections["jitkube check"]


def test_an_undocumented_entry_option_stops_the_generator(
    gen: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(gen.ENTRY_OPTIONS, "--unmask")
    with pytest.raises(SystemExit, match="--unmask"):
        gen.render()


def test_check_section_is_what_check_help_prints(rendered: str, isolated_env: IsolatedEnv) -> None:
    done = isolated_env.run("check", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() in _sections(rendered)["jitkube check"]


def test_defaults_and_required_flags_come_from_the_app(rendered: str) -> None:
    sections = _sections(rendered)
    assert "| `--port` | N | `8080` |" in sections["jitkube broker serve"]
    assert "| `--wait` / `--no-wait` |  | `--wait` |" in sections["jitkube request"]
    assert "Required." in sections["jitkube deny"]
    assert "jitkube revoke [OPTIONS] [ID]" in sections["jitkube revoke"]


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_internal_links_point_at_headings(rendered: str) -> None:
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", rendered, flags=re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", rendered)
    assert links
    assert set(links) <= anchors


def test_readme_and_architecture_link_the_reference() -> None:
    assert "(docs/cli.md)" in (REPO / "README.md").read_text()
    assert "docs/cli.md" in (REPO / "docs" / "architecture.md").read_text()
