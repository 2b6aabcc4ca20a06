"""Every example command line of kubectl's own help must parse cleanly.

tests/data/kubectl_help_examples.txt is generated from `kubectl <cmd> --help` by
scripts/gen_kubectl_grammar.py. Each line is shell-split; pipelines and redirections are
cut, and every `kubectl ...` segment must parse to a known command with no problems.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from jitkube.kubectl.parser import parse

EXAMPLES = Path(__file__).parent / "data" / "kubectl_help_examples.txt"
_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "<(", ">(", "(", ")", ")|", ");"}
# Help text writes placeholders as <some-pod>; they are words, not shell redirections.
_PLACEHOLDER = re.compile(r"<([A-Za-z][\w-]*)>")


def _examples() -> list[tuple[str, str]]:
    out = []
    for line in EXAMPLES.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        source, command = line.split("\t", 1)
        out.append((source, command))
    return out


def _kubectl_segments(command: str) -> list[list[str]]:
    lex = shlex.shlex(_PLACEHOLDER.sub(r"\1", command), posix=True, punctuation_chars="|;&<>()")
    lex.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lex:
        if token in _OPERATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    return [seg[1:] for seg in segments if seg and seg[0] == "kubectl"]


def test_corpus_is_complete() -> None:
    examples = _examples()
    assert len(examples) >= 370
    assert len({src for src, _ in examples}) >= 95


@pytest.mark.parametrize(("source", "command"), _examples())
def test_help_example_parses(source: str, command: str) -> None:
    segments = _kubectl_segments(command)
    assert segments, f"no kubectl invocation found in {command!r} (from {source})"
    for argv in segments:
        inv = parse(argv)
        assert inv.problems == (), f"{source}: {command!r} -> {inv.problems}"
        assert inv.command, f"{source}: {command!r} parsed to the root command"
