"""Export and restore: every format, exact round trips, consistency and bad snapshots."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memcli.errors import DatabaseError, ImportFailed, MemcliError, UsageError
from memcli.store import snapshots
from memcli.store.core import TripleStore
from tests import strategies


@pytest.fixture
def store(tmp_path):
    with TripleStore(tmp_path / "m.db") as s:
        s.add("Lake Geneva", "country", "Switzerland", source="wiki")
        s.add("Lake Geneva", "country", "France")
        s.add('Say "hi", Zoë', "author", "東京")
        s.remove([2])
        yield s


def test_jsonl_export_lines(store, tmp_path):
    snapshots.export(store, str(tmp_path / "m.jsonl"), "jsonl")
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text("utf-8").splitlines()]
    assert [(x["id"], x["subject"], x["object"], x["source"]) for x in lines] == [
        (1, "Lake Geneva", "Switzerland", "wiki"),
        (3, 'Say "hi", Zoë', "東京", "manual"),
    ]
    assert set(lines[0]) == {
        "id",
        "subject",
        "relation",
        "object",
        "source",
        "created_at",
        "updated_at",
    }


def test_csv_export(store, tmp_path):
    snapshots.export(store, str(tmp_path / "m.csv"), "csv")
    assert (tmp_path / "m.csv").read_text("utf-8") == (
        "subject,relation,object,source,id,superseded_at,superseded_by\n"
        "Lake Geneva,country,Switzerland,wiki,1,,\n"
        '"Say ""hi"", Zoë",author,東京,manual,3,,\n'
    )


def test_ntriples_export_uses_wikidata_properties(store, tmp_path):
    snapshots.export(store, str(tmp_path / "m.nt"), "nt")
    text = (tmp_path / "m.nt").read_text("utf-8")
    assert (
        "<urn:memcli:entity:Lake%20Geneva> <http://www.wikidata.org/prop/direct/P17> "
        "<urn:memcli:entity:Switzerland> .\n" in text
    )
    assert '<http://www.w3.org/2000/01/rdf-schema#label> "Say \\"hi\\", Zoë" .' in text
    assert all(line.endswith(" .") for line in text.splitlines())


@pytest.mark.parametrize("fmt, name", [("jsonl", "s.jsonl"), ("sqlite", "s.db")])
def test_export_then_restore_gives_back_exactly_the_same_memory(store, tmp_path, fmt, name):
    before = store.find()
    snapshots.export(store, str(tmp_path / name), fmt)
    store.add("Extra", "country", "Fact")
    store.remove([1])
    batch, removed, added = snapshots.restore(store, str(tmp_path / name))
    assert (removed, added) == (2, 2)
    assert store.find() == [t for t in before]
    # The restore is one batch: undo brings back what was there before it.
    store.undo(batch)
    assert [(t.subject, t.object) for t in store.find()] == [
        ('Say "hi", Zoë', "東京"),
        ("Extra", "Fact"),
    ]


def test_restore_merge_adds(store, tmp_path):
    snapshots.export(store, str(tmp_path / "s.jsonl"), "jsonl")
    with TripleStore(tmp_path / "other.db") as other:
        other.add("A", "country", "B")
        other.add("Lake Geneva", "country", "Switzerland")
        _, removed, added = snapshots.restore(other, str(tmp_path / "s.jsonl"), merge=True)
        assert (removed, added) == (0, 1)
        assert [t.subject for t in other.find()] == ["A", "Lake Geneva", 'Say "hi", Zoë']


def test_restore_from_csv(store, tmp_path):
    snapshots.export(store, str(tmp_path / "s.csv"), "csv")
    with TripleStore(tmp_path / "other.db") as other:
        snapshots.restore(other, str(tmp_path / "s.csv"))
        assert [(t.subject, t.source) for t in other.find()] == [
            ("Lake Geneva", "wiki"),
            ('Say "hi", Zoë', "manual"),
        ]


def test_sqlite_export_while_another_connection_writes(store, tmp_path):
    writer = TripleStore(store.path)
    with writer.transaction():
        writer.add("Uncommitted", "country", "Fact")
        snapshots.export(store, str(tmp_path / "s.db"), "sqlite")
    writer.close()
    copy = sqlite3.connect(tmp_path / "s.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT count(*) FROM triples").fetchone()[0] == 2


def test_sqlite_export_needs_a_file(store):
    with pytest.raises(UsageError):
        snapshots.export(store, None, "sqlite")


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"subject": "A", "relation": "country"}\n', ":1: object: missing"),
        ('{"subject": "A", "relation": "country", "object": "B;C"}\n', ":1: object: contains"),
        ('{"subject": "A", "relation": "country", "object": "B"}\nnot json\n', ":2: not JSON"),
        ("[1, 2]\n", "expected a JSON object"),
        (
            '{"id": -1, "subject": "A", "relation": "country", "object": "B"}\n',
            "id: not a positive",
        ),
    ],
)
def test_bad_jsonl_snapshot_refused_and_memory_unchanged(store, tmp_path, content, message):
    before = store.find()
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFailed, match=message):
        snapshots.restore(store, str(path))
    assert store.find() == before


def test_restore_refuses_foreign_sqlite_file(store, tmp_path):
    path = tmp_path / "foreign.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(DatabaseError):
        snapshots.restore(store, str(path))
    with pytest.raises(MemcliError, match="no such file"):
        snapshots.restore(store, str(tmp_path / "missing.jsonl"))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            strategies.names,
            st.sampled_from(["country", "author"]),
            strategies.names,
            strategies.names,
        ),
        max_size=12,
    )
)
def test_jsonl_round_trip_property(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("rt")
    with TripleStore(folder / "a.db") as a, TripleStore(folder / "b.db") as b:
        for s, r, o, source in rows:
            a.add(s, r, o, source=source)
        snapshots.export(a, str(folder / "x.jsonl"), "jsonl")
        snapshots.restore(b, str(folder / "x.jsonl"))
        assert a.find() == b.find()
