"""The names a model-opened read may use (`read_scope`): a small memory whole, with the
same token masks as a grammar freshly built over every entity, through adds, edits,
removals, supersessions and undo; a large one only the entities the conversation names,
with the same masks as a grammar over exactly those, so a read still names only what
exists."""

from __future__ import annotations

import numpy as np
import pytest

from memcli.runtime import read_scope
from memcli.runtime.constraints import ConstrainedDecoder, GrammarError
from memcli.runtime.engine import MemoryLogic
from memcli.store.core import TripleStore
from tests.fakes import FakeBackend

RELATIONS = ["country", "record label", "residence"]
READS = [
    "Rihanna>>record label>>)-->",
    ">>country>>Barbados)-->",
    "Def Jam>>country>>;Lake Geneva>>country>>)-->",
    "Norway (kingdom)>>country>>)-->",
]


@pytest.fixture(scope="module")
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def store(tmp_path):
    with TripleStore(tmp_path / "m.db") as s:
        s.add("Rihanna", "record label", "Def Jam")
        s.add("Rihanna", "country", "Barbados")
        s.add("Lake Geneva", "country", "Switzerland")
        yield s


def masks(decoder: ConstrainedDecoder, cmd, text: str) -> list[bytes]:
    """The mask before each byte-prefix of `text` that the grammar accepts (stepping token
    by token through `text` while it stays allowed), as packed bits to compare."""
    seen = []
    for token in decoder.tokenizer.tokenize_str(text):
        allowed = decoder.mask(cmd)
        seen.append(np.packbits(allowed).tobytes())
        if not allowed[token]:
            break
        decoder.advance(cmd, token)
    seen.append(np.packbits(decoder.mask(cmd)).tobytes() if not decoder.is_done(cmd) else b"")
    return seen


def same_as_fresh(fake, decoder, store, text: str = "") -> None:
    logic = MemoryLogic(store)
    entities, version = read_scope.read_entities(store, text, logic.mentioned_entities)
    fresh = ConstrainedDecoder.for_backend(fake)  # no cache: built from what exists now
    if read_scope.is_small(store):
        assert version == store.revision()
        expected_names = store.entity_names()
    else:
        expected_names = logic.mentioned_entities(text)
    assert sorted(entities) == sorted(expected_names)
    for read in READS:
        try:
            ours = decoder.start_read(entities, RELATIONS, version=version)
        except GrammarError:
            with pytest.raises(GrammarError):
                fresh.start_read(expected_names, RELATIONS)
            return
        full = fresh.start_read(expected_names, RELATIONS)
        assert masks(decoder, ours, read) == masks(fresh, full, read), read


def test_small_memory_masks_track_every_change(fake, store):
    decoder = ConstrainedDecoder.for_backend(fake)  # kept: its cache must follow memory
    same_as_fresh(fake, decoder, store)
    store.add("Def Jam", "country", "United States")  # an add
    same_as_fresh(fake, decoder, store)
    fact = store.find(subject="Lake Geneva")[0]
    store.edit(fact.id, object="Norway (kingdom)")  # an edit: Switzerland is gone
    assert "Switzerland" not in store.entity_names()
    same_as_fresh(fake, decoder, store)
    store.remove([store.find(subject="Rihanna", relation="country")[0].id])  # a removal
    assert "Barbados" not in store.entity_names()
    same_as_fresh(fake, decoder, store)
    store.add("Ola", "residence", "Oslo")
    store.add("Ola", "residence", "Bergen")  # supersedes Oslo: no longer readable
    assert "Oslo" not in store.entity_names()
    same_as_fresh(fake, decoder, store)
    store.undo()  # the supersession: Oslo is current again
    assert "Oslo" in store.entity_names()
    same_as_fresh(fake, decoder, store)
    for _ in range(3):  # Ola's first fact, the removal, the edit
        store.undo()
        same_as_fresh(fake, decoder, store)
    names = set(store.entity_names())
    assert {"Barbados", "Switzerland"} <= names and "Ola" not in names


def test_large_memory_offers_only_what_the_conversation_names(fake, store, monkeypatch):
    monkeypatch.setattr(read_scope, "WHOLE_MEMORY_NAMES", 3)
    monkeypatch.setattr(read_scope.is_small, "__defaults__", (3,))
    decoder = ConstrainedDecoder.for_backend(fake)
    assert not read_scope.is_small(store)
    question = "Which label is rihanna on, and is LAKE GENEVA in Barbados?"
    logic = MemoryLogic(store)
    entities, version = read_scope.read_entities(store, question, logic.mentioned_entities)
    assert version is None
    assert sorted(entities) == ["Barbados", "Lake Geneva", "Rihanna"]
    same_as_fresh(fake, decoder, store, question)
    # Def Jam is in memory but not named: a read cannot name it.
    cmd = decoder.start_read(entities, RELATIONS, version=version)
    for token in decoder.tokenizer.tokenize_str("Def"):
        assert not decoder.mask(cmd)[token]
        break
    store.remove([store.find(subject="Rihanna", relation="country")[0].id])
    same_as_fresh(fake, decoder, store, question)  # Barbados is gone from memory
    store.add("Barbados", "country", "Caribbean")
    same_as_fresh(fake, decoder, store, question)  # and back
    store.undo()
    store.undo()
    same_as_fresh(fake, decoder, store, question)
    same_as_fresh(fake, decoder, store, "nothing of memory here")  # no names: no read


def test_is_small_counts_no_further_than_the_limit(store):
    assert read_scope.is_small(store, 5)
    assert not read_scope.is_small(store, 4)
