"""Facts that change: relation cardinality, superseded facts kept as history, reads that
see current facts only, undo, import conflicts, snapshots and the schema migration."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from memcli.cli.app import app
from memcli.errors import ImportFailed, UndoError, UsageError
from memcli.store import csvio, snapshots
from memcli.store.core import TripleStore, builtin_relations
from memcli.store.schema import SCHEMA_VERSION

FIXTURES = Path(__file__).parent / "fixtures"

# What a person expects of a few relations; the seeds must agree.
EXPECTED_CARDINALITY = {
    "date of birth": "single",
    "place of birth": "single",
    "date of death": "single",
    "place of death": "single",
    "residence": "single",
    "headquarters location": "single",
    "chairperson": "single",
    "father": "single",
    "mother": "single",
    "inception": "single",
    "author": "multi",
    "country": "multi",
    "member of": "multi",
    "employer": "multi",
    "educated at": "multi",
    "record label": "multi",
    "spouse": "multi",
    "child": "multi",
    "country of citizenship": "multi",
    "languages spoken, written or signed": "multi",
}


@pytest.fixture
def store(tmp_path: Path):
    with TripleStore(tmp_path / "memory.db") as s:
        yield s


def rows(store: TripleStore) -> list[tuple]:
    """Everything about every fact, history included, as plain tuples."""
    return [
        (
            t.id,
            t.subject,
            t.relation,
            t.object,
            t.source,
            t.created_at,
            t.updated_at,
            t.superseded_at,
            t.superseded_by,
        )
        for t in store.find(history=True)
    ]


# -- cardinality ---------------------------------------------------------------------------


def test_every_docred_relation_has_a_cardinality(store: TripleStore) -> None:
    seeded = {row["name"]: row["cardinality"] for row in store.relations()}
    assert set(seeded) == set(builtin_relations().values())
    assert set(seeded.values()) == {"single", "multi"}
    for name, expected in EXPECTED_CARDINALITY.items():
        assert seeded[name] == expected, name


def test_cardinality_change_is_a_logged_undoable_batch(store: TripleStore) -> None:
    batch = store.set_cardinality(["employer"], single=True)
    assert batch is not None and store.cardinality("employer") == "single"
    assert store.log(limit=1)[0].changes == 1
    assert store.set_cardinality(["employer"], single=True) is None  # already
    store.undo()
    assert store.cardinality("employer") == "multi"
    undo = store.log(limit=1)[0]
    assert undo.kind == "undo" and undo.changes == 1


# -- supersede -----------------------------------------------------------------------------


def test_single_valued_add_supersedes_in_the_same_batch(store: TripleStore) -> None:
    oslo = store.add("Dana Whitfield", "residence", "Oslo").triple
    result = store.add("Dana Whitfield", "residence", "Bergen")
    assert [t.id for t in result.superseded] == [oslo.id]
    old = store.get(oslo.id)
    assert not old.current
    assert old.superseded_by == result.triple.id
    assert old.superseded_batch == result.triple.batch_id
    assert [t.object for t in store.find(subject="Dana Whitfield")] == ["Bergen"]
    assert [t.object for t in store.find(subject="Dana Whitfield", history=True)] == [
        "Oslo",
        "Bergen",
    ]
    assert [t.object for t in store.chain(oslo.id)] == ["Oslo", "Bergen"]
    assert store.get(oslo.id).as_dict()["current"] is False
    assert store.get(oslo.id).as_dict()["superseded_by"] == result.triple.id


def test_multi_valued_add_keeps_both(store: TripleStore) -> None:
    store.add("Dana Whitfield", "employer", "Arcwise Labs")
    result = store.add("Dana Whitfield", "employer", "Nordhavn Academy")
    assert result.superseded == ()
    assert len(store.find(subject="Dana Whitfield")) == 2


def test_explicit_supersede_works_for_multi_valued(store: TripleStore) -> None:
    old = store.add("Dana Whitfield", "employer", "Arcwise Labs").triple
    result = store.supersede(old.id, object="Nordhavn Academy")
    assert [t.id for t in result.superseded] == [old.id]
    assert [t.object for t in store.find(subject="Dana Whitfield")] == ["Nordhavn Academy"]
    with pytest.raises(UsageError, match="already superseded"):
        store.supersede(old.id, object="Elsewhere")


def test_undo_of_the_superseding_batch_restores_exactly(store: TripleStore) -> None:
    store.add("Dana Whitfield", "residence", "Oslo")
    store.add("Rolf Aasen", "residence", "Hamar")
    before = rows(store)
    store.add("Dana Whitfield", "residence", "Bergen")
    store.undo()
    assert rows(store) == before
    undo = store.log(limit=1)[0]
    assert undo.kind == "undo" and undo.changes == 2  # Bergen removed, Oslo current again
    ops = sorted(c.op for c in store.batch_changes(undo.id))
    assert ops == ["unadd", "unsupersede"]


def test_redo_after_undo_and_a_value_that_comes_back(store: TripleStore) -> None:
    store.add("Dana Whitfield", "residence", "Oslo")
    store.add("Dana Whitfield", "residence", "Bergen")
    store.undo()
    store.add("Dana Whitfield", "residence", "Bergen")  # redo, as a new fact
    again = store.add("Dana Whitfield", "residence", "Oslo")  # back to Oslo
    assert again.created
    assert [t.object for t in store.find(subject="Dana Whitfield")] == ["Oslo"]
    assert [t.object for t in store.chain(again.triple.id)] == ["Oslo", "Bergen", "Oslo"]


def test_undo_of_a_superseded_fact_addition_is_refused_until_later_undone(
    store: TripleStore,
) -> None:
    first = store.add("Dana Whitfield", "residence", "Oslo").triple
    store.add("Dana Whitfield", "residence", "Bergen")
    with pytest.raises(UndoError, match="undo batch"):
        store.undo(first.batch_id)


def test_reads_never_return_superseded_facts(store: TripleStore) -> None:
    store.add("Dana Whitfield", "residence", "Oslo")
    store.add("Dana Whitfield", "residence", "Bergen")
    assert [t.object for t in store.lookup("Dana Whitfield", "residence", None)] == ["Bergen"]
    assert store.lookup(None, "residence", "Oslo") == []
    assert [t.object for t in store.facts_about("Dana Whitfield")] == ["Bergen"]
    assert store.facts_about("Oslo") == []
    assert "Oslo" not in store.entity_names()  # the read grammar cannot name it
    assert store.count() == 1 and store.count(history=True) == 2


def test_editing_history_does_not_clash_with_current(store: TripleStore) -> None:
    old = store.add("Dana Whitfield", "residence", "Oslo").triple
    store.add("Dana Whitfield", "residence", "Bergen")
    edited = store.edit(old.id, object="Bergen")  # fixing a typo in history is allowed
    assert edited.object == "Bergen" and not edited.current


# -- import -----------------------------------------------------------------------------------


def test_import_conflict_in_file_is_a_located_error(store: TripleStore, tmp_path: Path) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "subject,relation,object\n"
        "Dana Whitfield,residence,Oslo\n"
        "Rolf Aasen,country,Norway\n"
        "Dana Whitfield,residence,Bergen\n"
    )
    with pytest.raises(ImportFailed) as failed:
        csvio.import_triples(store, str(csv_file))
    assert failed.value.errors == [
        f"{csv_file}:4: object: Dana Whitfield >> residence is 'Oslo' on line 2, and "
        "'residence' is single-valued (--supersede lets the later row win)"
    ]
    assert store.count(history=True) == 0


def test_import_conflict_with_memory_and_supersede(store: TripleStore, tmp_path: Path) -> None:
    held = store.add("Dana Whitfield", "residence", "Oslo").triple
    csv_file = tmp_path / "moves.csv"
    csv_file.write_text(
        "subject,relation,object\nDana Whitfield,residence,Bergen\n"
        "Dana Whitfield,residence,Trondheim\n"
    )
    with pytest.raises(ImportFailed) as failed:
        csvio.import_triples(store, str(csv_file))
    assert failed.value.errors[0] == (
        f"{csv_file}:2: object: Dana Whitfield >> residence is 'Oslo' in memory (fact "
        f"{held.id}), and 'residence' is single-valued (--supersede lets the later row win)"
    )
    assert len(failed.value.errors) == 2
    dry = csvio.import_triples(store, str(csv_file), supersede=True, dry_run=True)
    assert (dry.added, dry.superseded) == (2, 2)
    assert store.count(history=True) == 1
    report = csvio.import_triples(store, str(csv_file), supersede=True)
    assert (report.added, report.superseded) == (2, 2)
    assert [t.object for t in store.chain(held.id)] == ["Oslo", "Bergen", "Trondheim"]
    store.undo()
    assert [t.object for t in store.find(history=True)] == ["Oslo"]
    assert store.get(held.id).current


# -- snapshots --------------------------------------------------------------------------------

changes = st.lists(
    st.tuples(
        st.sampled_from(["Dana Whitfield", "Rolf Aasen", "Ingrid"]),
        st.sampled_from(["residence", "employer", "date of birth"]),
        st.sampled_from(["Oslo", "Bergen", "Hamar", "Arcwise Labs", "1990"]),
        st.booleans(),  # supersede explicitly (multi-valued too)
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=changes)
def test_history_survives_every_snapshot_round_trip(tmp_path_factory, changes) -> None:
    folder = tmp_path_factory.mktemp("snap")
    with TripleStore(folder / "memory.db") as source:
        for subject, relation, obj, explicit in changes:
            current = source.current_objects(subject, relation)
            if explicit and current and current[0].object != obj:
                source.supersede(current[0].id, object=obj)
            else:
                source.add(subject, relation, obj)
        expected = rows(source)
        succession = [
            (t.subject, t.relation, t.object, t.current) for t in source.find(history=True)
        ]
        for fmt in ("jsonl", "sqlite", "csv"):
            path = folder / f"snap.{fmt}"
            snapshots.export(source, str(path), fmt)
            with TripleStore(folder / f"restored-{fmt}.db") as target:
                target.add("Someone", "country", "Elsewhere")
                snapshots.restore(target, str(path))
                got = rows(target)
                if fmt == "csv":  # no timestamps or ids in CSV: the chains, in order
                    assert [
                        (t.subject, t.relation, t.object, t.current)
                        for t in target.find(history=True)
                    ] == succession
                    for t in target.find(history=True):
                        if not t.current:
                            assert target.get(t.superseded_by).subject == t.subject
                else:
                    assert got == expected, fmt


def test_ntriples_holds_current_facts_only(store: TripleStore, tmp_path: Path) -> None:
    store.add("Dana Whitfield", "residence", "Oslo")
    store.add("Dana Whitfield", "residence", "Bergen")
    out = tmp_path / "m.nt"
    assert snapshots.export(store, str(out), "nt") == 1
    text = out.read_text()
    assert "Bergen" in text and "Oslo" not in text


def test_jsonl_export_marks_superseded_facts(store: TripleStore, tmp_path: Path) -> None:
    store.add("Dana Whitfield", "residence", "Oslo")
    new = store.add("Dana Whitfield", "residence", "Bergen").triple
    out = tmp_path / "m.jsonl"
    snapshots.export(store, str(out), "jsonl")
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["superseded_by"] == new.id and first["superseded_at"]
    assert "superseded_at" not in second


def test_import_refuses_history_rows(store: TripleStore, tmp_path: Path) -> None:
    store.add("Dana Whitfield", "residence", "Oslo")
    store.add("Dana Whitfield", "residence", "Bergen")
    out = tmp_path / "m.csv"
    snapshots.export(store, str(out), "csv")
    with TripleStore(tmp_path / "other.db") as other:
        with pytest.raises(ImportFailed) as failed:
            csvio.import_triples(other, str(out))
        assert failed.value.errors == [
            f"{out}:2: superseded_at: a superseded fact (history); `mem restore` reads those"
        ]


# -- migration ---------------------------------------------------------------------------------


def test_migration_upgrades_a_memory_made_by_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    shutil.copy(FIXTURES / "memory_v1.db", path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1
    with TripleStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        facts = store.find()
        assert [(t.subject, t.object) for t in facts] == [
            ("Dana Whitfield", "Oslo"),
            ("Dana Whitfield", "Bergen"),  # both stay current: nothing is guessed
            ("Rihanna", "Def Jam"),
            ("Lake Geneva", "Switzerland"),
        ]
        assert all(t.current for t in facts)
        assert store.cardinality("residence") == "single"
        assert store.cardinality("country") == "multi"
        assert [c.op for c in store.history(4)] == ["add", "edit"]
        # The next addition settles the conflict the old file had.
        result = store.add("Dana Whitfield", "residence", "Trondheim")
        assert sorted(t.object for t in result.superseded) == ["Bergen", "Oslo"]
        # Batch ids go on from the old file's, never reusing one.
        assert result.triple.batch_id == 8
        store.undo()
        assert [t.object for t in store.find(subject="Dana Whitfield")] == ["Oslo", "Bergen"]


def test_old_sqlite_snapshot_restores(tmp_path: Path) -> None:
    with TripleStore(tmp_path / "memory.db") as store:
        snapshots.restore(store, str(FIXTURES / "memory_v1.db"))
        assert len(store.find()) == 4


# -- CLI ---------------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_relations_supersede_history_and_show() -> None:
    code, out, _ = run("mem", "relations")
    assert code == 0 and "values" in out
    line = next(x for x in out.splitlines() if " residence " in f" {x} ")
    assert "single" in line
    code, _, err = run("mem", "relations", "--single", "employer")
    assert code == 0 and "employer: single-valued; batch" in err
    code, out, _ = run("mem", "relations", "--json")
    employer = next(json.loads(x) for x in out.splitlines() if '"employer"' in x)
    assert employer["cardinality"] == "single"
    run("mem", "undo")

    assert run("mem", "add", "Dana Whitfield", "residence", "Oslo")[1].strip() == "1"
    code, out, err = run("mem", "add", "Dana Whitfield", "residence", "Bergen")
    assert out.strip() == "2"
    assert "superseded 1: Dana Whitfield >> residence: Oslo → Bergen" in err
    code, out, _ = run("mem", "ls")
    assert "Bergen" in out and "Oslo" not in out
    code, out, _ = run("mem", "ls", "--history")
    assert "Oslo" in out and "no → 2" in out
    code, out, _ = run("mem", "ls", "--json")
    fact = json.loads(out.splitlines()[0])
    assert (fact["current"], fact["superseded_at"], fact["superseded_by"]) == (True, None, None)
    code, out, _ = run("mem", "show", "1")
    assert code == 0
    assert "current: no, superseded" in out
    batch = json.loads(run("mem", "show", "1", "--json")[1])["history"][-1]["batch_id"]
    assert f"values:  Oslo (until {fact['created_at'][:10]}, batch {batch}) → Bergen" in out
    code, out, err = run("mem", "supersede", "2", "--object", "Trondheim")
    assert code == 0 and out.strip() == "3"
    code, out, _ = run("mem", "log")
    assert "supersede" in out


def test_cli_import_supersede_flag(tmp_path: Path) -> None:
    csv_file = tmp_path / "moves.csv"
    csv_file.write_text(
        "subject,relation,object\nDana Whitfield,residence,Oslo\nDana Whitfield,residence,Bergen\n"
    )
    code, _, err = run("mem", "import", str(csv_file))
    assert code != 0 and ":3: object:" in err and "Traceback" not in err
    code, _, err = run("mem", "import", "--supersede", str(csv_file))
    assert code == 0 and "superseded 1" in err


def test_search_finds_current_facts_only(store: TripleStore) -> None:
    from memcli.store.matching import search

    store.add("Dana Whitfield", "residence", "Oslo")
    store.add("Dana Whitfield", "residence", "Bergen")
    names = {(m.kind, m.name): m.triples for m in search(store, "Oslo", limit=20)}
    assert ("entity", "Oslo") not in names
    hits = {(m.kind, m.name): m.triples for m in search(store, "Dana Whitfield")}
    assert hits[("entity", "Dana Whitfield")] == 1
