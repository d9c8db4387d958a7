"""The docs keep up with the code (after simonw/sqlite-utils' tests/test_docs.py).

Every command and option has help and is documented (README or docs/); every exit code is explained
where cron's reader looks (README, crontab.example, `reconcile --help`); config.example.toml names
every key the loader accepts, and the loader accepts every key (and example value) it shows,
commented-out ones included. The README stays short and links every page of docs/; every relative
link resolves; every command the docs show parses as written.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
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
DOCS = {f"docs/{p.name}": p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))}
PAGES = {"README.md": README} | DOCS
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
def test_commands_are_documented(name: str) -> None:
    where = [page for page, text in PAGES.items() if re.search(rf"\breconcile {name}\b", text)]
    assert where, f"`reconcile {name}` is in neither README.md nor docs/*.md"


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


# The README fits on a few screens; the rest is in docs/, one page per topic, each linked from the README.
README_MAX_LINES = 250
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def test_readme_fits_on_a_few_screens() -> None:
    lines = len(README.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move a topic to docs/"


def test_readme_starts_with_the_two_commands() -> None:
    """The first two commands are the demo and the tests; CI (`.ci/run`) runs the second as written."""
    demo, tests = re.findall(r"^```sh\n(.*?)\n```", README, re.MULTILINE | re.DOTALL)[:2]
    assert demo == "python3 -m venv .venv && .venv/bin/pip install -q -e '.[demo]' && .venv/bin/reconcile demo"
    assert tests == "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def _links(text: str) -> list[str]:
    """Relative link targets, outside code blocks and code spans."""
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))
    return [target for target in LINK.findall(prose) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", DOCS)
def test_readme_links_every_docs_page(page: str) -> None:
    assert any(target.split("#")[0] == page for target in _links(README)), f"README.md does not link {page}"


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        counts[slug] = counts.get(slug, 0) + 1
        anchors.add(slug if counts[slug] == 1 else f"{slug}-{counts[slug] - 1}")
    return anchors


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page: str) -> None:
    base = (ROOT / page).parent
    for target in _links(PAGES[page]):
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else ROOT / page
        assert file.is_file(), f"{page} links {target}: no such file"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file.read_text(encoding="utf-8")), f"{page} links {target}: no such heading"


def _shown_commands() -> list[tuple[str, str, bool]]:
    """(page, command, run) for each `reconcile ...` or `python ...` of README and docs/: run when it is a
    line of a sh block to type as it is, not when it is a synopsis (`[--option]`) or named in a code span."""
    shown = []
    for page, text in PAGES.items():
        blocks = re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        lines = [line for block in blocks for line in block.splitlines()]
        spans = re.findall(r"`([^`\n]+)`", FENCE.sub("", text))
        for line, run in [(line, "[" not in line) for line in lines] + [(span, False) for span in spans]:
            if re.match(r"(reconcile|python3?)( |$)", line):
                shown.append((page, line, run))
    return shown


def _parse(command: click.Command, name: str, args: list[str], parent: click.Context | None = None) -> None:
    """Parse args as the command line would, down through groups, without running anything."""
    ctx = command.make_context(name, args, parent=parent)
    rest = [*ctx._protected_args, *ctx.args] if isinstance(command, click.Group) else []
    if rest:
        sub_name, sub, more = command.resolve_command(ctx, rest)
        assert sub_name is not None and sub is not None
        _parse(sub, sub_name, more, ctx)


@pytest.mark.parametrize("page,line,run", _shown_commands())
def test_shown_commands_work_as_written(page: str, line: str, run: bool) -> None:
    words = shlex.split(line, comments=True)
    words = words[:-1] if words[-1] == "..." else words  # `reconcile --quiet ...`: and the rest
    if words[0].startswith("python"):
        # `python -m MODULE` or `python PATH`, from the repository root.
        target = words[2] if words[1] == "-m" else words[1]
        found = importlib.util.find_spec(target) if words[1] == "-m" else (ROOT / target).is_file()
        assert found, f"{page} shows `{line}`: {target} does not exist"
    elif run:
        try:
            _parse(cli.main, "reconcile", words[1:])
        except click.ClickException as error:
            pytest.fail(f"{page} shows `{line}`, which does not parse: {error.format_message()}")
    else:
        # Named or a synopsis: every option named is the command's, or a group's it is under (`--config`).
        path: list[click.Command] = [cli.main]
        for word in words[1:]:
            command = path[-1]
            if not (isinstance(command, click.Group) and word in command.commands):
                break
            path.append(command.commands[word])
        known = {opt for c in path for p in c.get_params(click.Context(c)) for opt in p.opts + p.secondary_opts}
        named = set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", line))
        assert named <= known, f"{page} shows `{line}`: {sorted(named - known)} not options of it"
