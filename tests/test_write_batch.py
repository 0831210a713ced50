"""Writes for many sentences decoded together (`runtime.write_batch`): the same calls and
the same stored facts as one sentence at a time, stored in sentence order, one batch per
sentence, nothing of a sentence not yet given; with the bundled model too."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from memcli.runtime.backend import Sequences, common_prefix, pick_token
from memcli.runtime.engine import MemoryEngine
from memcli.runtime.engine_api import EngineConfig
from memcli.runtime.events import WriteDone
from memcli.runtime.write_batch import WriteRequest, write_sentences
from memcli.store.core import TripleStore
from tests.cli_helpers import run
from tests.fakes import FakeBackend

SCRIPTS = {
    "Marie Curie was born in Warsaw.": "Marie Curie>>place of birth>>Warsaw})",
    "Curie won the Nobel Prize in Physics.": "Curie>>award received>>Nobel Prize in Physics})",
    "Warsaw lies in Poland.": "Warsaw>>country>>Poland;Warsaw>>country>>Poland})",
    "It rained.": "})",
    "Lake Geneva lies between Switzerland and France.": (
        "Lake Geneva>>country>>Switzerland;Lake Geneva>>country>>France})"
    ),
    "Toyota is a company from Japan.": "Toyota>>country>>Japan;Toyota>>founded by>>Toyota})",
    "Rihanna signed with Def Jam.": "Rihanna>>record label>>Def Jam})",
}
SENTENCE = re.compile(r"Sentence: (.*)\n")


class WritingFake(FakeBackend):
    """After a write prompt for a sentence of SCRIPTS it wants to write that sentence's
    script (then EOS), as one sequence or as several at once (`sequences(n)`)."""

    def __init__(self, slot_tokens: int = 4096):
        super().__init__(script="".join([*SCRIPTS, *SCRIPTS.values()]))
        self.slot_tokens = slot_tokens
        self.opened: list[FakeSequences] = []

    def scores(self, tokens: Sequence[int], generated: int) -> np.ndarray:
        found = SENTENCE.findall(self.detokenize(tokens[: len(tokens) - generated]))
        script = self.tokenize(SCRIPTS.get(found[-1], "})") if found else "")
        scores = (-np.arange(self.n_vocab) / self.n_vocab).astype(np.float32)
        scores[script[generated] if generated < len(script) else self.eos_token] = 10.0
        return scores

    def logits(self):
        return self.scores(self.tokens, self._pos)

    def sequences(self, size: int, capacity: int = 512) -> FakeSequences:
        seqs = FakeSequences(self, size, self.slot_tokens)
        self.opened.append(seqs)
        return seqs


class FakeSequences:
    def __init__(self, fake: WritingFake, size: int, capacity: int):
        self.fake, self.size, self.capacity = fake, size, capacity
        self.stats = fake.stats
        self.held: list[list[int]] = [[] for _ in range(size)]
        self.generated = [0] * size
        self.queued: dict[int, tuple[bool, list[int]]] = {}
        self.logits: dict[int, np.ndarray] = {}
        self.decodes: list[int] = []  # tokens per decode
        self.reused = 0
        self.moves = 0
        self.closed = False
        self._rng = np.random.default_rng(0)

    def start(self, slot: int, tokens: Sequence[int]) -> int:
        tokens = list(tokens)
        assert len(tokens) <= self.capacity
        keep = min(max(common_prefix(h, tokens) for h in self.held), len(tokens) - 1)
        self.reused += keep
        self.held[slot] = tokens[:keep]
        self.queued[slot] = (True, tokens[keep:])
        return len(tokens) - keep

    def push(self, slot: int, token: int) -> None:
        assert slot not in self.queued
        self.queued[slot] = (False, [token])

    def move(self, slot: int, to: int) -> None:
        assert not self.held[to] or to not in self.queued
        self.held[to], self.held[slot] = self.held[slot], []
        self.generated[to], self.generated[slot] = self.generated[slot], 0
        if slot in self.queued:
            self.queued[to] = self.queued.pop(slot)
        self.moves += 1

    def decode(self) -> None:
        running = sorted(self.queued)
        assert running == list(range(len(running))), running  # no gaps
        self.decodes.append(sum(len(t) for _, t in self.queued.values()))
        for slot, (fresh, tokens) in self.queued.items():
            self.held[slot] += tokens
            self.generated[slot] = 0 if fresh else self.generated[slot] + 1
            self.logits[slot] = self.fake.scores(self.held[slot], self.generated[slot])
        self.queued.clear()

    def sample(self, slot, allowed=None, temperature=0.0, top_p=1.0) -> int:
        return pick_token(self.logits.pop(slot), allowed, temperature, top_p, self._rng)

    def close(self) -> None:
        self.closed = True


def requests(sentences: Sequence[str] = tuple(SCRIPTS), name: str = "bio.txt"):
    return [
        WriteRequest(s, " ".join(sentences[:i]), f"ingest {name}:{i + 1}")
        for i, s in enumerate(sentences)
    ]


def facts(store: TripleStore) -> list[tuple]:
    """Every fact with its batch, in the order stored."""
    found = sorted(store.find(limit=None), key=lambda f: f.id)
    return [(f.subject, f.relation, f.object, f.source, f.batch_id) for f in found]


def batches(store: TripleStore) -> list[str]:
    return [b.description for b in reversed(store.log(limit=None))]


def write_all(tmp_path, batch: int, fake: WritingFake | None = None, config=None):
    fake = fake or WritingFake()
    with TripleStore(tmp_path / f"b{batch}-{len(fake.opened)}.db") as store:
        engine = MemoryEngine(fake, store, config=config or EngineConfig(max_write_tokens=60))
        outcomes = list(write_sentences(engine, requests(), batch=batch))
        return outcomes, facts(store), batches(store)


@pytest.mark.parametrize("batch", [2, 3, 16])
def test_batched_writes_equal_one_at_a_time(tmp_path, batch):
    one, one_facts, one_batches = write_all(tmp_path, 1)
    fake = WritingFake()
    many, many_facts, many_batches = write_all(tmp_path, batch, fake)
    assert fake.opened and fake.opened[0].closed  # it did decode together, and let go
    assert max(fake.opened[0].decodes[1:]) > 1
    assert [o.request for o in many] == [o.request for o in one]
    assert [(o.done.raw, o.done.triples) for o in many] == [
        (o.done.raw, o.done.triples) for o in one
    ]
    assert many_facts == one_facts and many_batches == one_batches
    kept = {f[:4] for f in many_facts}
    assert ("Marie Curie", "place of birth", "Warsaw", "ingest bio.txt:1") in kept
    # each sequence has its own mask: the repeat the script wants is masked away
    assert many[2].done.raw == "({MEM_WRITE-->Warsaw>>country>>Poland;Warsaw>>country>>lies})"
    assert ("Toyota", "founded by", "Toyota", "ingest bio.txt:6") not in kept


def test_stored_in_sentence_order_one_batch_per_sentence(tmp_path):
    _, stored, descriptions = write_all(tmp_path, 4)
    sources = [f[3] for f in stored]
    assert sources == sorted(sources, key=lambda s: int(s.rpartition(":")[2]))
    sentences_with_facts = [s for s, script in SCRIPTS.items() if script != "})"]
    assert descriptions == [
        f"ingest bio.txt:{list(SCRIPTS).index(s) + 1}: {s}" for s in sentences_with_facts
    ]


def test_a_consumer_that_stops_keeps_exactly_what_it_was_given(tmp_path):
    fake = WritingFake()
    with TripleStore(tmp_path / "m.db") as store:
        engine = MemoryEngine(fake, store, config=EngineConfig(max_write_tokens=60))
        outcomes = write_sentences(engine, requests(), batch=4)
        given = [next(outcomes), next(outcomes)]
        outcomes.close()  # as on Ctrl-C in the loop that reads them
        assert fake.opened[0].closed
        assert {f[3] for f in facts(store)} == {"ingest bio.txt:1", "ingest bio.txt:2"}
        assert [f.id for o in given for f in o.done.stored] == [f.id for f in store.find()]


def test_ctrl_c_while_decoding_stores_nothing_half_written(tmp_path, monkeypatch):
    fake = WritingFake()
    calls = []
    original = FakeSequences.decode

    def decode(self):
        calls.append(1)
        if len(calls) == 40:
            raise KeyboardInterrupt
        original(self)

    with TripleStore(tmp_path / "m.db") as store:
        engine = MemoryEngine(fake, store, config=EngineConfig(max_write_tokens=60))
        monkeypatch.setattr(FakeSequences, "decode", decode)
        given = []
        with pytest.raises(KeyboardInterrupt):
            for outcome in write_sentences(engine, requests(), batch=3):
                given.append(outcome.request.source)
        assert fake.opened[0].closed
        assert 0 < len(given) < len(SCRIPTS)
        stored_sources = {f[3] for f in facts(store)}
        assert stored_sources <= set(given)
        assert len(batches(store)) == len(stored_sources)


def test_a_sentence_too_long_for_a_slot_is_written_on_its_own_in_order(tmp_path):
    one, one_facts, _ = write_all(tmp_path, 1)
    lengths = sorted(
        len(MemoryEngine(WritingFake(), None).write_prompt(r.sentence, r.context)[1])
        for r in requests()
    )
    fake = WritingFake(slot_tokens=lengths[3] + 60)  # the longer prompts do not fit
    many, many_facts, _ = write_all(tmp_path, 3, fake)
    assert many_facts == one_facts
    assert [o.done.raw for o in many] == [o.done.raw for o in one]


def test_an_engine_without_sequences_writes_one_at_a_time(tmp_path):
    class Remote:
        def __init__(self):
            self.seen: list[tuple] = []

        def write(self, sentence, context="", *, source="model", dry_run=False):
            self.seen.append((sentence, context, source, dry_run))
            if sentence == "It rained.":
                raise ValueError("the token mask allows no token")
            yield WriteDone((), (), None, dry_run, "({MEM_WRITE-->})")

    engine = Remote()
    outcomes = list(write_sentences(engine, requests(), batch=8, dry_run=True))
    assert engine.seen == [(r.sentence, r.context, r.source, True) for r in requests()]
    assert [str(o.error) if o.error else None for o in outcomes] == [
        None,
        None,
        None,
        "the token mask allows no token",
        None,
        None,
        None,
    ]


def test_batch_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        list(write_sentences(object(), requests(), batch=0))  # type: ignore[arg-type]


def test_fakes_follow_the_protocol():
    assert isinstance(FakeSequences(WritingFake(), 2, 100), Sequences)


def test_ingest_batch_option_is_checked(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("Marie Curie was born in Warsaw.\n")
    result = run("ingest", str(text), "--batch", "0")
    assert result.exit_code != 0 and "--batch" in result.output + result.stderr


# -- the bundled model -------------------------------------------------------------------

REAL = [
    "Marie Curie was born in Warsaw.",
    "She won the Nobel Prize in Physics in 1903.",
    "Lake Geneva lies between Switzerland and France.",
    "Rihanna signed with Def Jam Recordings in 2005.",
    "The Hobbit was written by J. R. R. Tolkien.",
    "Microsoft was founded by Bill Gates and is based in Redmond.",
]


@pytest.mark.model
@pytest.mark.slow
def test_batched_writes_store_what_one_at_a_time_stores_on_the_bundled_model(tmp_path):
    from memcli.runtime.loader import load_engine

    stored = {}
    engine = load_engine(None, threads=1, config=EngineConfig(max_write_tokens=60))
    try:
        for batch in (1, 4):
            with TripleStore(tmp_path / f"{batch}.db") as store:
                engine.store = store
                outcomes = list(write_sentences(engine, requests(REAL, "real.txt"), batch=batch))
                assert all(o.error is None for o in outcomes)
                stored[batch] = ([o.done.raw for o in outcomes], facts(store), batches(store))
    finally:
        engine.close()
    assert stored[4] == stored[1]
    assert stored[1][1]  # the model did write facts


def test_the_cli_default_is_the_measured_one_and_help_says_it():
    from memcli.cli.common import WRITE_BATCH
    from memcli.runtime.write_batch import DEFAULT_BATCH

    assert WRITE_BATCH == DEFAULT_BATCH
    for command in (["ingest"], ["eval", "write"]):
        help_text = " ".join(re.sub("[│╭╮╰╯─]", " ", run(*command, "--help").stdout).split())
        assert f"{DEFAULT_BATCH} measured fastest on one thread" in help_text, command
        assert f"[default: {DEFAULT_BATCH}]" in help_text
