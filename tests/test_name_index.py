"""The spelling fallback of reads at scale (memcli.store.matching.NameIndex): kept in step
with memory through additions, removals, undo and reused ids, it finds what matching
over every current name finds."""

from __future__ import annotations

import pytest

from memcli.store.core import TripleStore
from memcli.store.matching import NameIndex, closest, closest_entity


@pytest.fixture
def store(tmp_path):
    with TripleStore(tmp_path / "m.db") as s:
        yield s


def _full(store: TripleStore, name: str, threshold: float = 85.0) -> str | None:
    return closest(store.entity_names(), name, threshold)


def test_finds_a_misspelled_name_and_only_current_ones(store):
    store.add("Dana Whitfield", "residence", "Oslo")
    store.add("Rolf Aasen", "employer", "Arcwise Labs")
    index = NameIndex(store)
    assert index.closest("Dana Whitfeld", 85) == "Dana Whitfield"
    assert index.closest("dana whitfield", 85) == "Dana Whitfield"  # by key, exact first
    assert index.closest("Somebody Else", 85) is None
    store.add("Dana Whitfield", "residence", "Bergen")  # single-valued: Oslo superseded
    assert index.closest("Osloo", 80) is None  # only a superseded fact names Oslo
    assert index.closest("Bergn", 80) == "Bergen"


def test_kept_in_step_through_adds_removals_undo_and_reused_ids(store):
    index = NameIndex(store)
    probes = ["Lake Genva", "Rihana", "Def Jm", "Nordhavn Acadmy", "Oslo"]

    def same() -> None:
        for probe in probes:
            assert index.closest(probe, 85) == _full(store, probe), probe

    store.add("Lake Geneva", "country", "Switzerland")
    same()
    store.add("Rihanna", "record label", "Def Jam")  # additions: read incrementally
    same()
    (fact,) = store.find(subject="Rihanna")
    store.remove([fact.id])  # the newest entities go
    same()
    store.add("Nordhavn Academy", "country", "Norway")  # may be given the same ids again
    same()
    store.undo()
    same()
    store.undo()  # the removal undone: Rihanna is back
    same()
    assert index.closest("Rihana", 85) == "Rihanna"


def test_closest_entity_keeps_one_index_per_store(store):
    store.add("Lake Geneva", "country", "Switzerland")
    assert closest_entity(store, "Lake Genva", 85) == "Lake Geneva"
    store.add("Rihanna", "record label", "Def Jam")
    assert closest_entity(store, "Rihana", 85) == "Rihanna"


def test_names_for_completion_by_prefix_then_containing_current_only(store):
    from memcli.store.matching import names_starting

    for subject, obj in (
        ("Lake Geneva", "Switzerland"),
        ("lakeside Inn", "Norway"),
        ("Great Lake Lodge", "Canada"),
    ):
        store.add(subject, "country", obj)
    assert names_starting(store, "lake") == ["Lake Geneva", "lakeside Inn", "Great Lake Lodge"]
    assert names_starting(store, "LAKE ") == ["Lake Geneva", "Great Lake Lodge"]
    assert names_starting(store, "lake", limit=1) == ["Lake Geneva"]
    assert names_starting(store, "")[:2] == ["Canada", "Great Lake Lodge"]
    (fact,) = store.find(subject="lakeside Inn")
    store.supersede(fact.id, object="Noreg")
    assert names_starting(store, "nor") == ["Noreg"]  # only a superseded fact names Norway
