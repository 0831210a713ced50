"""The TripleStore API: names, add/edit/remove, lookups, the change log and undo, and
refusing files that are not (or not yet) a memcli memory."""

from __future__ import annotations

import sqlite3

import pytest

from memcli.errors import (
    DatabaseError,
    InvalidNameError,
    NotFoundError,
    UndoError,
    UnknownRelationError,
    UsageError,
)
from memcli.store.core import TripleStore, builtin_relations
from memcli.store.schema import SCHEMA_VERSION


@pytest.fixture
def store(tmp_path):
    with TripleStore(tmp_path / "m.db") as s:
        yield s


def facts(store):
    return [(t.subject, t.relation, t.object) for t in store.find()]


def test_default_location_is_memcli_home(memcli_home):
    with TripleStore() as s:
        assert s.path == memcli_home / "memory.db"
    assert (memcli_home / "memory.db").exists()


def test_memcli_db_overrides_location(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMCLI_DB", str(tmp_path / "other.db"))
    with TripleStore() as s:
        assert s.path == tmp_path / "other.db"


def test_new_memory_knows_the_96_docred_relations(store):
    assert len(builtin_relations()) == 96
    assert len(store.relation_names()) == 96
    assert "country" in store.relation_names()
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_add_returns_triple_and_is_idempotent_ignoring_case_and_spaces(store):
    first = store.add("Rihanna", "record label", "Def Jam")
    assert first.created and first.triple.id == 1
    again = store.add("  rihanna", "Record   Label", "DEF jam ")
    assert not again.created and again.triple.id == 1
    assert facts(store) == [("Rihanna", "record label", "Def Jam")]


def test_entities_keep_first_spelling(store):
    store.add("New  York", "country", "USA")
    store.add("new york", "capital of", "New York State", new_relation=False)
    assert store.entity_names()[0] == "New  York"
    assert {t.subject for t in store.find()} == {"New  York"}


def test_unknown_relation_refused_with_suggestions(store):
    with pytest.raises(UnknownRelationError) as info:
        store.add("Rihanna", "record labels", "Def Jam")
    assert "record label" in info.value.suggestions
    assert store.count() == 0
    store.add("Rihanna", "favourite colour", "red", new_relation=True)
    assert "favourite colour" in store.relation_names()


@pytest.mark.parametrize(
    "bad, why",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 257, "longer than 256"),
        ("a\nb", "control character"),
        ("a\tb", "control character"),
        ("a>>b", "'>>'"),
        ("a;b", "';'"),
        ("a({b", "'({'"),
        ("a})b", "'})'"),
        ("a-->b", "'-->'"),
    ],
)
def test_bad_names_refused_with_reason(store, bad, why):
    with pytest.raises(InvalidNameError, match="subject") as info:
        store.add(bad, "country", "France")
    assert why in str(info.value)
    assert store.count() == 0


def test_names_up_to_256_chars_and_unicode_accepted(store):
    name = "é" * 256
    store.add(name, "country", "日本")
    assert facts(store) == [(name, "country", "日本")]


def test_lookup_by_subject_or_object(store):
    store.add("Lake Geneva", "country", "Switzerland")
    store.add("Lake Geneva", "country", "France")
    store.add("Paris", "country", "France")
    assert [t.object for t in store.lookup("lake geneva", "Country", None)] == [
        "Switzerland",
        "France",
    ]
    assert [t.subject for t in store.lookup(None, "country", "france")] == ["Lake Geneva", "Paris"]
    with pytest.raises(UsageError):
        store.lookup("a", "country", "b")


def test_find_filters(store):
    store.add("A", "country", "B", source="manual")
    store.add("A", "capital", "C", source="import x.csv:2")
    assert len(store.find(subject="a")) == 2
    assert [t.object for t in store.find(relation="capital")] == ["C"]
    assert [t.object for t in store.find(source="x.csv")] == ["C"]
    assert [t.object for t in store.find(source="%")] == []
    assert len(store.find(limit=1)) == 1


def test_edit_changes_in_place_and_records_history(store):
    t = store.add("Rihanna", "record label", "Def Jam").triple
    edited = store.edit(t.id, object="Roc Nation")
    assert edited.id == t.id and edited.object == "Roc Nation"
    history = store.history(t.id)
    assert [c.op for c in history] == ["add", "edit"]
    assert history[1].before == ("Rihanna", "record label", "Def Jam")
    assert history[1].after == ("Rihanna", "record label", "Roc Nation")
    assert "Def Jam" not in store.entity_names()  # orphans go


def test_edit_refuses_noop_clash_and_unknown(store):
    a = store.add("A", "country", "B").triple
    store.add("A", "country", "C")
    with pytest.raises(UsageError, match="already reads"):
        store.edit(a.id, object="b")
    with pytest.raises(UsageError, match="already states"):
        store.edit(a.id, object="C")
    with pytest.raises(NotFoundError):
        store.edit(99, object="X")
    assert facts(store) == [("A", "country", "B"), ("A", "country", "C")]


def test_remove_unknown_id_removes_nothing(store):
    store.add("A", "country", "B")
    with pytest.raises(NotFoundError, match="7"):
        store.remove([1, 7])
    assert store.count() == 1


def test_undo_reverts_each_kind_of_batch_exactly(store):
    store.add("A", "country", "B")
    before = store.find()
    t = store.add("C", "country", "D").triple
    store.edit(t.id, subject="E")
    store.remove([1])
    assert facts(store) == [("E", "country", "D")]
    assert store.undo().kind == "rm"
    assert facts(store) == [("A", "country", "B"), ("E", "country", "D")]
    assert store.find()[0] == before[0]  # same id, source and timestamps
    assert store.undo().kind == "edit"
    assert facts(store) == [("A", "country", "B"), ("C", "country", "D")]
    assert store.undo().kind == "add"
    assert store.find() == before
    assert store.entity_names() == ["A", "B"]
    store.undo()
    assert store.count() == 0
    with pytest.raises(UndoError, match="nothing to undo"):
        store.undo()


def test_undo_batch_refused_when_later_batch_depends(store):
    t = store.add("A", "country", "B").triple
    store.add("X", "country", "Y")
    store.edit(t.id, object="C")
    with pytest.raises(UndoError, match="undo batch 3 first"):
        store.undo(1)
    store.undo(2)  # independent of batch 3
    assert facts(store) == [("A", "country", "C")]
    store.undo(3)
    store.undo(1)
    assert store.count() == 0
    with pytest.raises(UndoError, match="already undone"):
        store.undo(1)
    with pytest.raises(NotFoundError):
        store.undo(42)


def test_undo_refused_when_fact_was_added_again(store):
    t = store.add("A", "country", "B").triple
    store.remove([t.id])
    store.add("A", "country", "B")
    with pytest.raises(UndoError, match="in memory again"):
        store.undo(2)
    assert facts(store) == [("A", "country", "B")]


def test_undo_removes_relation_created_in_batch(store):
    store.add("A", "likes", "B", new_relation=True)
    assert "likes" in store.relation_names()
    store.undo()
    assert "likes" not in store.relation_names()


def test_add_many_is_one_batch_and_all_or_nothing(store):
    batch, created = store.add_many(
        [("A", "country", "B", "turn 1"), ("C", "country", "D", "turn 1")], "model", "turn 1"
    )
    assert batch is not None and len(created) == 2
    with pytest.raises(InvalidNameError):
        store.add_many([("E", "country", "F", "t"), ("G;", "country", "H", "t")], "model", "t2")
    assert store.count() == 2
    store.undo()
    assert store.count() == 0


def test_noop_batches_leave_no_log_line(store):
    store.add("A", "country", "B")
    store.add("A", "country", "B")
    store.add_many([("A", "country", "B", "x")], "model", "dup")
    assert len(store.log()) == 1


def test_log_lists_batches_newest_first(store):
    store.add("A", "country", "B")
    store.remove([1])
    store.undo()
    kinds = [(b.kind, b.undone_by) for b in store.log()]
    assert kinds == [("undo", None), ("rm", 3), ("add", None)]


def test_not_sqlite_file_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"hello, this is not a database" * 10)
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="not an SQLite database"):
        TripleStore(path)
    assert path.read_bytes() == before


def test_foreign_sqlite_file_refused(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(DatabaseError, match="not a memcli memory"):
        TripleStore(path)


def test_newer_schema_refused_untouched(tmp_path):
    path = tmp_path / "m.db"
    TripleStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(DatabaseError, match="newer memcli"):
        TripleStore(path)
    assert path.read_bytes() == before


def test_migrations_are_recorded(store):
    rows = store.db.execute("SELECT version, name FROM _memcli_migrations").fetchall()
    assert rows == [(1, "initial"), (2, "supersede"), (3, "batch ids")]
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_file_is_readable_by_sqlite_utils(store):
    import sqlite_utils

    store.add("Rihanna", "record label", "Def Jam")
    db = sqlite_utils.Database(store.path)
    assert {"entities", "relations", "triples", "changes", "batches"} <= set(db.table_names())
    rows = list(db["facts"].rows)
    assert rows[0]["subject"] == "Rihanna" and rows[0]["object"] == "Def Jam"


def test_search_ranks_entities_and_relations(store):
    store.add("Rihanna", "record label", "Def Jam")
    from memcli.store.matching import closest, search

    matches = search(store, "Rihana")
    assert matches[0].name == "Rihanna" and matches[0].kind == "entity"
    assert matches[0].score > 80
    assert search(store, "record lable")[0].name == "record label"
    assert closest(["Rihanna", "Def Jam"], "rihana", 85) == "Rihanna"
    assert closest(["Rihanna", "Def Jam"], "Beyonce", 85) is None
