"""`memcli mem` end to end, with exact output: data on stdout, messages on stderr."""

from __future__ import annotations

import json

import pytest

from tests.cli_helpers import run


def test_add_prints_id_and_duplicate_says_so():
    first = run("mem", "add", "Rihanna", "record label", "Def Jam")
    assert (first.exit_code, first.stdout) == (0, "1\n")
    again = run("mem", "add", "rihanna", "Record Label", "def jam")
    assert again.exit_code == 0 and again.stdout == "1\n"
    assert again.stderr == "already in memory as 1: Rihanna >> record label >> Def Jam\n"


def test_unknown_relation_is_one_line_error_with_suggestion():
    result = run("mem", "add", "Rihanna", "record labl", "Def Jam")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "memcli: error: unknown relation 'record labl' (did you mean: record label, creator?); "
        "use --new-relation to add it\n"
    )
    assert run("mem", "add", "A", "likes", "B", "--new-relation").exit_code == 0


def test_bad_name_is_refused_with_reason():
    result = run("mem", "add", "a>>b", "country", "France")
    assert result.exit_code == 2
    assert result.stderr == (
        "memcli: error: subject 'a>>b' contains '>>', a memory-command delimiter\n"
    )


def test_ls_table_and_json_and_filters():
    run("mem", "add", "Paris", "country", "France")
    run("mem", "add", "Lyon", "country", "France", "--source", "atlas")
    table = run("mem", "ls")
    assert table.stdout.splitlines() == [
        "id   subject   relation   object   source",
        "─────────────────────────────────────────",
        " 1   Paris     country    France   manual",
        " 2   Lyon      country    France   atlas",
    ]
    rows = [
        json.loads(x) for x in run("mem", "ls", "--json", "--source", "atl").stdout.splitlines()
    ]
    assert [(r["id"], r["subject"]) for r in rows] == [(2, "Lyon")]
    assert len(run("mem", "ls", "--json", "--limit", "1").stdout.splitlines()) == 1
    assert run("mem", "ls", "--json", "--subject", "PARIS").stdout.count("\n") == 1


def test_edit_show_and_history():
    run("mem", "add", "Rihanna", "record label", "Def Jam")
    assert run("mem", "edit", "1", "--object", "Roc Nation").exit_code == 0
    shown = run("mem", "show", "1").stdout.splitlines()
    assert shown[0] == "1: Rihanna >> record label >> Roc Nation"
    assert shown[1] == "  source:  manual"
    assert shown[4] == "  current: yes"
    assert shown[5].endswith("added Rihanna >> record label >> Def Jam")
    assert shown[6].endswith(
        "Rihanna >> record label >> Def Jam  →  Rihanna >> record label >> Roc Nation"
    )
    assert run("mem", "edit", "1").exit_code == 2
    missing = run("mem", "show", "9")
    assert (missing.exit_code, missing.stderr) == (1, "memcli: error: no fact with id 9\n")


def test_rm_by_id_and_by_match_with_dry_run_and_yes():
    for city in ("Paris", "Lyon", "Nice"):
        run("mem", "add", city, "country", "France")
    run("mem", "add", "Rome", "country", "Italy")
    assert run("mem", "rm", "1").stderr == "removed 1 fact; `memcli mem undo` restores them\n"
    dry = run("mem", "rm", "--object", "france", "--dry-run", "--json")
    assert [json.loads(x)["subject"] for x in dry.stdout.splitlines()] == ["Lyon", "Nice"]
    refused = run("mem", "rm", "--object", "France")  # stdin is not a terminal: no prompt
    assert refused.exit_code == 2 and "pass --yes" in refused.stderr
    assert run("mem", "rm", "--object", "France", "--yes").exit_code == 0
    assert [json.loads(x)["subject"] for x in run("mem", "ls", "--json").stdout.splitlines()] == [
        "Rome"
    ]
    assert run("mem", "rm", "1", "--subject", "x").exit_code == 2


def test_import_dry_run_errors_and_undo(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("subject,relation,object\nA,country,B\nC,country,D\nA,country,B\n")
    dry = run("mem", "import", str(good), "--dry-run")
    assert dry.stderr == (
        "would add 2 of 3 rows; duplicates: 1 in file, 0 already in memory; errors: 0\n"
    )
    done = run("mem", "import", str(good))
    assert done.stderr == (
        "added 2 of 3 rows; duplicates: 1 in file, 0 already in memory; errors: 0; batch 1\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,relation,object\nE,country,F\nG,country\n")
    failed = run("mem", "import", str(bad))
    assert failed.exit_code == 1
    assert failed.stderr == (
        f"memcli: error: {bad}:3: expected 3 fields, found 2; memory unchanged\n"
    )
    assert run("mem", "undo").stderr == f"undid batch 1 (import: import {good} (2 rows))\n"
    assert run("mem", "ls", "--json").stdout == ""


def test_import_from_stdin():
    result = run("mem", "import", "-", input="subject,relation,object\nA,country,B\n")
    assert result.exit_code == 0
    assert json.loads(run("mem", "ls", "--json").stdout)["source"] == "import <stdin>:2"


def test_export_restore_round_trip_through_cli(tmp_path):
    run("mem", "add", "A", "country", "B")
    run("mem", "add", "C", "country", "D")
    snap = tmp_path / "snap.jsonl"
    assert run("mem", "export", "-o", str(snap)).stderr == (
        f"exported 2 facts as jsonl to {snap}\n"
    )
    before = run("mem", "ls", "--json").stdout
    run("mem", "rm", "1")
    run("mem", "add", "X", "country", "Y")
    refused = run("mem", "restore", str(snap))  # stdin is not a terminal: needs --yes
    assert refused.exit_code == 2 and "pass --yes" in refused.stderr
    restored = run("mem", "restore", "--yes", str(snap))
    assert restored.exit_code == 0
    assert run("mem", "ls", "--json").stdout == before
    csv_out = run("mem", "export", "--format", "csv")
    assert (
        csv_out.stdout == "subject,relation,object,source,id,superseded_at,superseded_by\n"
        "A,country,B,manual,1,,\nC,country,D,manual,2,,\n"
    )


def test_log_and_undo_batch():
    run("mem", "add", "A", "country", "B")
    run("mem", "add", "C", "country", "D")
    batches = [json.loads(x) for x in run("mem", "log", "--json").stdout.splitlines()]
    assert [(b["id"], b["kind"], b["changes"]) for b in batches] == [(2, "add", 1), (1, "add", 1)]
    assert run("mem", "undo", "--batch", "1").exit_code == 0
    assert run("mem", "undo", "--batch", "1").stderr.startswith(
        "memcli: error: batch 1 was already undone"
    )
    changes = run("mem", "log", "--batch", "2").stdout
    assert changes == "2: added C >> country >> D\n"


def test_search_stats_relations():
    run("mem", "add", "Rihanna", "record label", "Def Jam")
    hits = [json.loads(x) for x in run("mem", "search", "rihana", "--json").stdout.splitlines()]
    assert hits[0]["name"] == "Rihanna" and hits[0]["kind"] == "entity"
    stats = json.loads(run("mem", "stats", "--json").stdout)
    assert (stats["triples"], stats["entities"], stats["relations"]) == (1, 2, 96)
    rels = [json.loads(x) for x in run("mem", "relations", "--json").stdout.splitlines()]
    assert len(rels) == 96 and rels[1] == {
        "id": 2,
        "name": "country",
        "wikidata_id": "P17",
        "cardinality": "multi",
        "triples": 0,
    }
    assert run("mem", "relations", "--add", "likes").stderr == "added relation 97: likes\n"


def test_db_option_and_env(tmp_path, monkeypatch):
    other = tmp_path / "other.db"
    run("mem", "add", "A", "country", "B", "--db", str(other))
    assert run("mem", "ls", "--json").stdout == ""
    monkeypatch.setenv("MEMCLI_DB", str(other))
    assert json.loads(run("mem", "ls", "--json").stdout)["subject"] == "A"


def test_not_a_database_is_one_line_error(tmp_path):
    bogus = tmp_path / "x.db"
    bogus.write_text("hello")
    result = run("mem", "ls", "--db", str(bogus))
    assert result.exit_code == 1
    assert result.stderr == f"memcli: error: {bogus}: not an SQLite database; file left untouched\n"
    assert bogus.read_text() == "hello"


@pytest.mark.parametrize("group", [[], ["mem"]])
def test_every_command_has_help(group):
    from typer.main import get_command

    from memcli.cli.app import app

    command = get_command(app)
    for name in group:
        command = command.commands[name]  # type: ignore[attr-defined]
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        assert sub.help or sub.short_help, f"{name} has no help"
        assert run(*group, name, "--help").exit_code == 0
