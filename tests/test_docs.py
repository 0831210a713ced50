"""The README documents every command and option (as sqlite-utils' test_docs.py does),
its generated reference is what the app says today, and `--help` renders cleanly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memcli.cli.app import app, unwrap
from memcli.cli.reference import commands, markdown

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
COMMANDS = list(commands())


def _sections() -> dict[str, str]:
    parts = re.split(r"^### `(memcli[^`]*)`\n", README, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


SECTIONS = _sections()


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS])
def test_every_command_has_a_section(path):
    assert path in SECTIONS, f"{path} is not in the README's command reference (make docs)"


@pytest.mark.parametrize(
    ("path", "option"),
    [
        (path, opt)
        for path, command in COMMANDS
        for param in command.params
        for opt in param.opts
        if opt.startswith("--")
    ],  # fmt: skip
)
def test_every_option_is_documented(path, option):
    assert re.search(rf"`[^`]*{re.escape(option)}\b", SECTIONS.get(path, "")), (
        f"{path} {option} is not in the README's command reference (make docs)"
    )


def test_the_generated_reference_is_current():
    block = README.split("]]] -->\n", 1)[1].split("<!-- [[[end]]] -->", 1)[0]
    assert block == markdown(), "the README's command reference is out of date: make docs"


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS])
def test_help_renders_cleanly(path):
    result = CliRunner().invoke(app, [*path.split()[1:], "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    # a paragraph of the docstring is one paragraph, not lines cut where the source wraps
    command = dict(COMMANDS)[path]
    for paragraph in (command.help or "").split("\n\n"):
        assert "\n" not in paragraph


def test_unwrap_joins_lines_and_keeps_paragraphs():
    assert unwrap("One line\nand the next.\n\nA second\nparagraph.") == (
        "One line and the next.\n\nA second paragraph."
    )
    assert unwrap("\b\nkept\nas is") == "\b\nkept\nas is"
