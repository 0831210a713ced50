"""The change log tells the truth: reported batch ids exist and are never reused, undo
batches record what they changed, and a fact's history shows re-additions."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memcli.cli.app import app
from memcli.errors import NotFoundError
from memcli.store import snapshots
from memcli.store.core import TripleStore


@pytest.fixture
def store(tmp_path: Path):
    with TripleStore(tmp_path / "memory.db") as s:
        yield s


def test_a_merge_that_adds_nothing_reports_no_batch_and_ids_are_not_reused(
    store: TripleStore, tmp_path: Path
) -> None:
    store.add("A", "country", "B")
    snap = tmp_path / "s.jsonl"
    snapshots.export(store, str(snap), "jsonl")
    batch_id, removed, added = snapshots.restore(store, str(snap), merge=True)
    assert (batch_id, removed, added) == (None, 0, 0)
    dropped = store.revision() + 1  # the id the empty merge batch was given, then dropped
    later = store.add("C", "country", "D").triple.batch_id
    assert later > dropped
    with pytest.raises(NotFoundError):
        store.get_batch(dropped)
    assert store.get_batch(later).kind == "add"


def test_batch_ids_survive_dropping_the_newest_batch(store: TripleStore) -> None:
    first = store.add("A", "country", "B").triple.batch_id
    store.add_many([], "import", "nothing")  # an empty batch: dropped, its id kept
    second = store.add("C", "country", "D").triple.batch_id
    assert second == first + 2


def test_undo_batches_record_their_changes(store: TripleStore) -> None:
    a = store.add("A", "country", "B").triple
    store.edit(a.id, object="Z")
    store.remove([a.id])
    undo_rm = store.undo()  # puts it back
    log = store.log(limit=1)[0]
    assert log.kind == "undo" and log.changes == 1
    assert [c.op for c in store.batch_changes(log.id)] == ["readd"]
    assert undo_rm.undone_by == log.id
    store.undo()  # the edit
    log = store.log(limit=1)[0]
    changes = store.batch_changes(log.id)
    assert [(c.op, c.before, c.after) for c in changes] == [
        ("unedit", ("A", "country", "Z"), ("A", "country", "B"))
    ]
    store.undo()  # the addition
    log = store.log(limit=1)[0]
    assert [(c.op, c.before) for c in store.batch_changes(log.id)] == [
        ("unadd", ("A", "country", "B"))
    ]


def test_history_shows_readdition_by_undo_and_by_restore(
    store: TripleStore, tmp_path: Path
) -> None:
    a = store.add("A", "country", "B").triple
    store.remove([a.id])
    store.undo()
    assert [c.op for c in store.history(a.id)] == ["add", "remove", "readd"]
    snap = tmp_path / "s.jsonl"
    snapshots.export(store, str(snap), "jsonl")
    snapshots.restore(store, str(snap))
    ops = [c.op for c in store.history(a.id)]
    assert ops == ["add", "remove", "readd", "remove", "add"]
    assert store.get(a.id).object == "B"


def test_cli_log_of_an_undo_batch_lists_its_changes() -> None:
    runner = CliRunner()
    runner.invoke(app, ["mem", "add", "A", "country", "B"])
    runner.invoke(app, ["mem", "undo"])
    log = runner.invoke(app, ["mem", "log"]).stdout
    undo_line = next(line for line in log.splitlines() if "undo batch 1" in line)
    assert " 1 " in f" {undo_line} "  # one change, not 0
    shown = runner.invoke(app, ["mem", "log", "--batch", "2"]).stdout
    assert "undone: removed A >> country >> B" in shown
