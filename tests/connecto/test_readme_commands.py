"""Every `connecto …` command and flag that the README shows exists in that command's --help."""

import re

import click
import pytest

from connecto.cli import cli
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def _commands(words: list[str]) -> list[click.Command]:
    """The commands that ``words`` (after ``connecto``) name; ``proofread merge|split`` names two."""
    commands = [cli]
    for word in words:
        names = word.split("|")
        if not all(isinstance(c, click.Group) and n in c.commands for c in commands for n in names):
            break
        commands = [c.commands[n] for c in commands for n in names]
    return commands


def _flags(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


SPANS = re.findall(r"`(connecto [^`]+)`", README)


def test_the_readme_shows_commands():
    assert len(SPANS) >= 15, SPANS


@pytest.mark.parametrize("span", SPANS)
def test_every_flag_in_a_readme_command_exists(span):
    words = span.split()[1:]
    assert words[0].split("|")[0] in cli.commands, f"`{span}`: connecto has no command {words[0]!r}"
    for command in _commands(words):
        missing = sorted(set(FLAG.findall(span)) - _flags(command))
        assert not missing, f"`{span}`: `{command.name} --help` has no {missing}"


def test_the_blockwise_commands_have_the_shared_engine_flags():
    found = re.search(r"The blockwise commands\s+\(([^)]*)\)\s+share(.*?)\.\s", README, re.DOTALL)
    assert found, "the README's paragraph on the blockwise commands' shared flags"
    names, flags = re.findall(r"`([a-z-]+)`", found.group(1)), set(FLAG.findall(found.group(2)))
    assert flags >= {"--scheduler", "--workers", "--block-shape", "--overwrite", "--progress", "--no-progress"}
    for name in names:
        missing = sorted(flags - _flags(cli.commands[name]))
        assert not missing, f"README: `connecto {name}` shares the engine flags, but its --help lacks {missing}"


def test_reconstruct_takes_the_flags_the_readme_gives_it():
    found = re.search(r"`connecto reconstruct` takes(.*?);", README, re.DOTALL)
    assert found
    missing = sorted(set(FLAG.findall(found.group(1))) - _flags(cli.commands["reconstruct"]))
    assert not missing, f"README: `connecto reconstruct --help` lacks {missing}"
