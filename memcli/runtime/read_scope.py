"""Which entities a read the model opens may name, so that its grammar costs the same at
a million entities as at a hundred.

A read grammar over every entity of memory is rebuilt after each change of memory:
measured 0.53 s and ~380 MB at 100,000 entities, 8.8 s and ~1.35 GB at 1,000,000, and in
chat every turn writes. So, as the remote engines already do: a small memory (at most
`WHOLE_MEMORY_NAMES` entities) is offered whole, exactly as before (its grammar is
cached per memory revision); a larger one offers the entities of memory named in the
conversation so far (the question, earlier turns, what the model has written in this
answer), found through the entities' key index, so the cost follows the conversation,
not the memory. Still exact: a read can only name entities that exist.

What is given up at scale: a read the model opens on its own cannot name an entity the
conversation never wrote (one the model would recall from its own knowledge); reads of
the entities a question names, the case the engine forces anyway, are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from memcli.store.core import TripleStore

WHOLE_MEMORY_NAMES = 2000


def read_entities(
    store: TripleStore, text: str, mentioned: Callable[[str], list[str]]
) -> tuple[list[str], Hashable | None]:
    """(entity names, cache version) for `ConstrainedDecoder.start_read`: the whole
    memory when it is small (version: the memory revision), else the entities of memory
    that `mentioned(text)` finds (version None: the names themselves key the cache)."""
    if is_small(store):
        return store.entity_names(), store.revision()
    return mentioned(text), None


def is_small(store: TripleStore, limit: int = WHOLE_MEMORY_NAMES) -> bool:
    """Whether memory has at most `limit` entities, without counting past it."""
    (count,) = store.db.execute(
        "SELECT count(*) FROM (SELECT 1 FROM entities LIMIT ?)", (limit + 1,)
    ).fetchone()
    return count <= limit


def has_facts(store: TripleStore) -> bool:
    """Whether memory holds a current fact (`count()` scans them all: 1.3 s at 10M)."""
    (found,) = store.db.execute(
        "SELECT EXISTS (SELECT 1 FROM triples WHERE superseded_at IS NULL)"
    ).fetchone()
    return bool(found)
