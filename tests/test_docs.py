"""The docs keep up with the code (after simonw/sqlite-utils' tests/test_docs.py).

Every command and option has help; every exit code is explained where cron's reader looks (README,
crontab.example, `reconcile --help`); config.example.toml names every key the loader accepts, and
the loader accepts every key (and example value) it shows, commented-out ones included.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

import click
import pytest

from reconcile import cli
from reconcile.config import SECTIONS, parse_config
from reconcile.exitcodes import ExitCode

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CRONTAB = (ROOT / "crontab.example").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "config.example.toml").read_text(encoding="utf-8")

COMMANDS = {"reconcile": cli.main} | {f"reconcile {name}": command for name, command in cli.main.commands.items()}


def _options(command: click.Command) -> list[click.Option]:
    # get_params adds --help, which click words itself.
    return [p for p in command.get_params(click.Context(command)) if isinstance(p, click.Option)]


@pytest.mark.parametrize("name", COMMANDS)
def test_commands_have_help(name: str) -> None:
    assert COMMANDS[name].help, f"`{name}` has no help (its docstring)"


@pytest.mark.parametrize(
    "name,option",
    [(name, option.opts[-1]) for name, command in COMMANDS.items() for option in _options(command)],
)
def test_options_have_help(name: str, option: str) -> None:
    (param,) = [p for p in _options(COMMANDS[name]) if p.opts[-1] == option]
    assert param.help, f"`{name} {option}` has no help text"


@pytest.mark.parametrize("name", cli.main.commands)
def test_commands_are_in_the_readme(name: str) -> None:
    assert re.search(rf"\breconcile {name}\b", README), f"`reconcile {name}` is not in README.md"


def _codes(text: str) -> set[int]:
    """Codes such as `5` or `130/143` / `130 / 143` at the start of an explanation."""
    return {int(code) for group in text for code in re.split(r"\s*/\s*", group)}


def _readme_codes() -> set[int]:
    section = README.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    return _codes(re.findall(r"^\| (\d+(?: / \d+)*) \|", section, re.MULTILINE))


def _crontab_codes() -> set[int]:
    block = CRONTAB.split("# Exit codes", 1)[1].split("\n#\n", 1)[0]
    # Each code starts a line of the block or follows a wide gap: "#   0  nothing ...     1  discrepancies ..."
    return _codes(re.findall(r"(?:^#\s+|\S\s{3,})(\d+(?:/\d+)*)\s+[A-Za-z(]", block, re.MULTILINE))


def _help_codes() -> set[int]:
    return _codes(re.findall(r"(?:: |; )(\d+(?:/\d+)*) ", cli.EXIT_CODES_HELP))


WHERE = {"README.md": _readme_codes, "crontab.example": _crontab_codes, "reconcile --help": _help_codes}


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda c: f"{c.name}={c.value}")
@pytest.mark.parametrize("where", WHERE)
def test_exit_codes_are_explained(code: ExitCode, where: str) -> None:
    assert int(code) in WHERE[where](), f"exit code {int(code)} ({code.name}) is not explained in {where}"


@pytest.mark.parametrize("where", WHERE)
def test_no_exit_code_explained_that_does_not_exist(where: str) -> None:
    assert WHERE[where]() <= {int(c) for c in ExitCode}, f"{where} explains a code that reconcile/exitcodes.py lacks"


ACCEPTED = sorted(f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls))


def _example_with_every_key() -> dict[str, dict[str, object]]:
    """config.example.toml with its commented-out settings (`# key = value`) switched on."""
    on = re.sub(r"^# ?(\w+ *= *)", r"\1", EXAMPLE, flags=re.MULTILINE)
    return tomllib.loads(on)


EXAMPLE_FULL = _example_with_every_key()
SHOWN = sorted(f"{section}.{key}" for section, table in EXAMPLE_FULL.items() for key in table)


@pytest.mark.parametrize("key", ACCEPTED)
def test_every_config_key_is_in_the_example(key: str) -> None:
    assert key in SHOWN, f"config key {key} is not in config.example.toml"


@pytest.mark.parametrize("key", SHOWN)
def test_every_example_key_is_accepted(key: str) -> None:
    assert key in ACCEPTED, f"config.example.toml shows {key}, which the loader rejects"


def test_example_values_are_valid_with_every_key_on() -> None:
    # Commented-out examples too: a reader who uncomments one gets a config that loads.
    config = parse_config(EXAMPLE_FULL, "config.example.toml with every key on")
    assert config.mongodb.database == "shop"


def test_commented_settings_are_read() -> None:
    # Most keys are shown commented out: the key checks above must see them, not only the active ones.
    assert len(SHOWN) > len([k for t in tomllib.loads(EXAMPLE).values() for k in t])
