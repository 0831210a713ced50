"""The chat's `/mem`: the `memcli mem` commands' own work and output functions on the
chat's memory, shown in its view, with standard input and output left alone."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from memcli.cli.app import app
from memcli.store.core import TripleStore
from tests.test_repl import Chat

FACTS = (
    ("Rihanna", "record label", "Def Jam"),
    ("Lake Geneva", "country", "Switzerland"),
    ("Dana Whitfield", "residence", "Oslo"),
    ("The Very Long Name Of A Research Institute In Bergen", "country", "Norway"),
)


@pytest.fixture
def chat(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # the CLI's width off a terminal; the view's is 80
    chat = Chat("Fine.", facts=FACTS)
    chat.store.add("Dana Whitfield", "residence", "Bergen", source="letter p. 2")  # supersedes
    chat.store.add("[bold]Markup[/]", "country", "Norway")  # a name, never markup
    chat.store.remove([2])
    chat.store.undo()
    return chat


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result


def _mem(chat: Chat, line: str) -> str:
    chat.buffer.seek(0)
    chat.buffer.truncate()
    chat.session.handle(line)
    return chat.output


@pytest.mark.parametrize(
    "args",
    [
        ["ls"],
        ["ls", "--history"],
        ["ls", "--json"],
        ["show", "3"],
        ["show", "5"],
        ["show", "3", "--json"],
        ["log"],
        ["log", "--batch", "2"],
        ["search", "dana"],
        ["relations", "--json"],
    ],
)
def test_mem_shows_what_the_cli_prints(chat, args):
    cli = _cli("mem", *args)
    assert cli.stdout.strip()
    assert _mem(chat, "/mem " + " ".join(args)) == cli.stdout


def test_mem_leaves_stdin_and_stdout_alone(chat, monkeypatch, capsys):
    seen = []
    find = TripleStore.find

    def spy(self, *args, **kwargs):
        seen.append((sys.stdin, sys.stdout, sys.stderr))
        return find(self, *args, **kwargs)

    monkeypatch.setattr(TripleStore, "find", spy)
    before = (sys.stdin, sys.stdout, sys.stderr)
    out = _mem(chat, "/mem ls --subject rihanna")
    assert seen == [before]
    assert "Def Jam" in out
    _mem(chat, "/mem export -f csv")  # a snapshot to stdout goes to the view instead
    assert "Rihanna,record label,Def Jam,manual" in chat.output
    assert capsys.readouterr().out == ""


def test_mem_notes_errors_and_help(chat):
    out = _mem(chat, '/mem add "Lake Geneva" country France')
    assert out.splitlines()[0] == "7"
    assert "superseded" not in out
    assert _mem(chat, "/mem ls --bogus") == "error: /mem ls: No such option: --bogus\n"
    assert _mem(chat, "/mem lss") == "error: /mem lss: No such command 'lss'. Did you mean 'ls'?\n"
    assert _mem(chat, "/mem show") == "error: /mem show: Missing argument 'ID'.\n"
    assert _mem(chat, "/mem show 99") == "error: no fact with id 99\n"
    assert _mem(chat, "/mem").startswith("Usage: /mem [OPTIONS] COMMAND [ARGS]...")
    assert "ls         List current facts" in _mem(chat, "/mem --help")
    assert _mem(chat, "/mem ls --help").startswith("Usage: /mem ls [OPTIONS]")
    assert "--history" in chat.output


def test_mem_never_asks_and_never_reads_the_chats_input(chat, tmp_path):
    held = chat.facts()
    out = _mem(chat, "/mem rm --subject Rihanna")
    assert out == "error: 1 fact match (see --dry-run); pass --yes to do so\n"
    assert _mem(chat, "/mem restore snapshot.jsonl").startswith(
        "error: /mem restore replaces all of memory: add --yes (or --merge)"
    )
    refused = "error: /mem import: - is the chat's own input; give a file\n"
    assert _mem(chat, "/mem import -") == refused
    assert _mem(chat, "/mem restore - --merge").startswith("error: /mem restore: - is the chat's")
    assert chat.facts() == held
    assert "removed 1 fact" in _mem(chat, "/mem rm --subject Rihanna --yes")
    assert chat.session.memory_size == len(held) - 1


def test_mem_uses_another_memory_only_when_db_is_given(chat, tmp_path, monkeypatch):
    other = tmp_path / "other.db"
    with TripleStore(other) as store:
        store.add("Ada Lovelace", "country of citizenship", "United Kingdom")
    monkeypatch.setenv("MEMCLI_DB", str(other))  # the chat's memory stays the one meant
    assert "Ada Lovelace" not in _mem(chat, "/mem ls")
    assert "Ada Lovelace" in _mem(chat, f"/mem ls --db {other}")
