"""CSV/TSV import: all or nothing, every error located, and nothing changed on failure."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memcli.errors import ImportFailed, MemcliError
from memcli.store.core import TripleStore
from memcli.store.csvio import import_triples
from tests import strategies


@pytest.fixture
def store(tmp_path):
    with TripleStore(tmp_path / "m.db") as s:
        yield s


def write(tmp_path, name, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return str(path)


def state(store):
    return store.db.execute("SELECT count(*) FROM triples").fetchone()[0], len(store.log(None))


def test_import_csv_with_bom_crlf_and_quotes(store, tmp_path):
    path = write(
        tmp_path,
        "facts.csv",
        '\ufeffsubject,relation,object\r\n"Smith, John",country,"The ""Big"" Apple"\r\n'
        "Zürich,country,Switzerland\r\n",
    )
    report = import_triples(store, path)
    assert (report.rows, report.added, report.error_count) == (2, 2, 0)
    got = [(t.subject, t.object, t.source) for t in store.find()]
    assert got == [
        ("Smith, John", 'The "Big" Apple', "import facts.csv:2"),
        ("Zürich", "Switzerland", "import facts.csv:3"),
    ]


def test_import_tsv_with_source_column(store, tmp_path):
    path = write(tmp_path, "f.tsv", "subject\trelation\tobject\tsource\nA\tcountry\tB\twiki\n")
    import_triples(store, path)
    assert store.find()[0].source == "wiki"


def test_import_is_one_undoable_batch(store, tmp_path):
    path = write(tmp_path, "f.csv", "subject,relation,object\nA,country,B\nC,country,D\n")
    report = import_triples(store, path)
    assert store.log()[0].id == report.batch_id
    store.undo()
    assert store.count() == 0


def test_bad_rows_abort_with_every_error_located(store, tmp_path):
    store.add("X", "country", "Y")
    path = write(
        tmp_path,
        "bad.csv",
        "subject,relation,object\nA,country,B\nC;D,country,E\nF,colour,G\nH,country\n,country,I\n",
    )
    before = state(store)
    with pytest.raises(ImportFailed) as info:
        import_triples(store, path)
    errors = info.value.errors
    assert errors[0] == f"{path}:3: subject: contains ';', a memory-command delimiter"
    assert errors[1].startswith(f"{path}:4: relation: unknown relation 'colour'")
    assert errors[2:] == [f"{path}:5: expected 3 fields, found 2", f"{path}:6: subject: is empty"]
    assert str(info.value).endswith("(and 3 more errors); memory unchanged")
    assert state(store) == before


def test_error_list_is_capped_then_counted(store, tmp_path):
    rows = "".join(f"A{i},nope,B\n" for i in range(50))
    path = write(tmp_path, "many.csv", "subject,relation,object\n" + rows)
    with pytest.raises(ImportFailed) as info:
        import_triples(store, path)
    assert len(info.value.errors) == 20 and info.value.total == 50


def test_dry_run_counts_duplicates_and_changes_nothing(store, tmp_path):
    store.add("A", "country", "B")
    path = write(
        tmp_path, "f.csv", "subject,relation,object\nA,country,B\nC,country,D\nc,country,d\nE,x,F\n"
    )
    before = state(store)
    report = import_triples(store, path, dry_run=True)
    assert (report.added, report.duplicates_in_file, report.duplicates_in_memory) == (1, 1, 1)
    assert report.error_count == 1
    assert state(store) == before


def test_skip_errors_imports_good_rows_and_writes_rejects(store, tmp_path):
    path = write(tmp_path, "f.csv", "subject,relation,object\nA,country,B\nC,nope,D\n")
    report = import_triples(store, path, skip_errors=True)
    assert report.added == 1 and report.error_count == 1
    with open(report.rejects_file, encoding="utf-8") as handle:
        rejects = list(csv.reader(handle))
    assert rejects[0] == ["line", "error", "subject", "relation", "object"]  # the input header
    assert rejects[1][0] == "3" and rejects[1][2:] == ["C", "nope", "D"]


def test_new_relation_flag_accepts_unknown_relations(store, tmp_path):
    path = write(tmp_path, "f.csv", "subject,relation,object\nA,likes,B\n")
    import_triples(store, path, new_relation=True)
    assert store.find()[0].relation == "likes"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (b"subject,relation,object\nA,country,\xff\xfe\n", ":2: not UTF-8"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", ":1: binary data"),
        (b"name,value\nA,B\n", ":1: header: expected subject,relation,object"),
        (b"A,country,B\n", ":1: header"),
        (b"subject,relation,object,extra\nA,country,B,x\n", ":1: header"),
        (b'subject,relation,object\n"A,country,B\n', "unexpected end of data"),
    ],
)
def test_bad_files_refused_clearly(store, tmp_path, content, message):
    path = write(tmp_path, "bad.csv", content)
    before = state(store)
    with pytest.raises(MemcliError) as info:
        import_triples(store, path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert state(store) == before


def test_ten_megabyte_field_refused(store, tmp_path):
    path = write(tmp_path, "big.csv", "subject,relation,object\n" + "A,country," + "x" * 10_000_000)
    with pytest.raises(ImportFailed, match=":2: line longer than 1024 KiB"):
        import_triples(store, path)
    assert store.count() == 0


def test_missing_file(store):
    with pytest.raises(MemcliError, match="no such file"):
        import_triples(store, "/nonexistent/x.csv")


# -- property tests ----------------------------------------------------------------------

SAFE = strategies.names


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(SAFE, st.sampled_from(["country", "author", "part of"]), SAFE), max_size=15
    )
)
def test_exported_csv_imports_back_to_the_same_facts(tmp_path_factory, rows):
    from memcli.store import snapshots

    folder = tmp_path_factory.mktemp("rt")
    with TripleStore(folder / "a.db") as a, TripleStore(folder / "b.db") as b:
        for s, r, o in rows:
            a.add(s, r, o)
        snapshots.export(a, str(folder / "x.csv"), "csv")
        import_triples(b, str(folder / "x.csv"))
        assert [(t.subject, t.relation, t.object, t.source) for t in a.find()] == [
            (t.subject, t.relation, t.object, t.source) for t in b.find()
        ]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.lists(st.lists(st.text(max_size=12), max_size=5), max_size=8).map(
            lambda rows: "\n".join(",".join(r) for r in rows).encode()
        ),
        st.lists(st.lists(st.text(max_size=12), max_size=5), max_size=8).map(
            lambda rows: (
                "subject,relation,object\n" + "\n".join(",".join(r) for r in rows)
            ).encode()
        ),
    )
)
def test_garbage_never_tracebacks_nor_half_changes(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fz")
    path = folder / "g.csv"
    path.write_bytes(data)
    with TripleStore(folder / "m.db") as store:
        store.add("Keep", "country", "Me")
        before = store.find()
        try:
            report = import_triples(store, str(path))
        except MemcliError as exc:
            assert "\n" not in str(exc)
            assert store.find() == before
        else:
            assert report.error_count == 0
            assert store.count() == 1 + report.added


def test_stdin_import(store, monkeypatch):
    data = b"subject,relation,object\nA,country,B\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    report = import_triples(store, "-")
    assert report.added == 1 and store.find()[0].source == "import <stdin>:2"
