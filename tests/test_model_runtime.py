"""The runtime with the real bundled model (SmolLM2-135M, offline): whatever the model
emits inside a memory call is well formed and names only what exists."""

from __future__ import annotations

import json
import random
import re

import pytest

from memcli import protocol
from memcli.runtime.engine import EngineConfig
from memcli.runtime.events import CallFailed, Done, ReadDone, WriteDone
from memcli.store import names
from memcli.store.core import TripleStore
from tests.cli_helpers import run

pytestmark = [pytest.mark.model, pytest.mark.slow]

FACTS = [
    ("Rihanna", "record label", "Def Jam"),
    ("Rihanna", "country of citizenship", "Barbados"),
    ("Lake Geneva", "country", "Switzerland"),
    ("Lake Geneva", "country", "France"),
    ("Marie Curie", "award received", "Nobel Prize in Physics"),
    ("Marie Curie", "place of birth", "Warsaw"),
    ("Warsaw", "country", "Poland"),
    ("The Hobbit", "author", "J. R. R. Tolkien"),
    ("J. R. R. Tolkien", "date of birth", "1892"),
    ("Microsoft", "founded by", "Bill Gates"),
    ("Microsoft", "headquarters location", "Redmond"),
    ("Amazon River", "continent", "South America"),
    ("Mount Fuji", "country", "Japan"),
    ("Zürich", "country", "Switzerland"),
    ("São Paulo", "country", "Brazil"),
    ("Toyota", "country", "Japan"),
    ("Paris", "capital of", "France"),
    ("Angela Merkel", "member of political party", "CDU"),
    ("Berlin", "country", "Germany"),
    ("Inception", "director", "Christopher Nolan"),
]
QUESTIONS = [
    "What is the {r} of {s}?",
    "Tell me the {r} of {s}.",
    "Do you know {s}'s {r}?",
    "Who or what is {s} connected to?",
    "Write one sentence about {s}.",
    "What do you remember about {o}?",
    "Hello! How are you today?",
]
SENTENCES = [
    "{s} was born in {o}.",
    "{s} is located in {o}, a country in Europe.",
    "In 1990, {s} signed with {o} after a long search.",
    "The company {s} was founded by {o} and grew quickly.",
    "{s}, which borders {o}, is famous for its lakes.",
    "After the war, {s} moved to {o} with her family.",
]
CALL = re.compile(r"\(\{MEM_(?:READ|WRITE).*?\}\)")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from memcli.runtime.loader import load_engine

    store = TripleStore(tmp_path_factory.mktemp("model") / "m.db")
    engine = load_engine(store, config=EngineConfig(max_tokens=40, max_write_tokens=70))
    yield engine
    engine.backend.close()
    store.close()


def fill(store: TripleStore, rng: random.Random) -> list[tuple[str, str, str]]:
    store.db.execute("DELETE FROM triples")
    store.db.execute("DELETE FROM entities")
    chosen = rng.sample(FACTS, rng.randint(1, len(FACTS)))
    store.add_many([(s, r, o, "test") for s, r, o in chosen], "test", "fill")
    return chosen


def test_reads_are_well_formed_and_name_only_existing_things(engine):
    rng = random.Random(7)
    store = engine.store
    relations = {names.key(r) for r in store.relation_names()}
    read_count = 0
    for _ in range(100):
        chosen = fill(store, rng)
        entities = {names.key(e) for e in store.entity_names()}
        s, r, o = rng.choice(FACTS)  # may or may not be in memory
        question = rng.choice(QUESTIONS).format(s=s, r=r, o=o)
        events = list(engine.answer([{"role": "user", "content": question}]))
        assert not [e for e in events if isinstance(e, CallFailed)], question
        done = events[-1]
        assert isinstance(done, Done)
        for call in CALL.findall(done.raw):
            protocol.parse_call(call)
        for read in (e for e in events if isinstance(e, ReadDone)):
            read_count += 1
            for q in read.queries:
                entity = q.subject if q.subject is not None else q.object
                assert names.key(entity) in entities, (question, q)
                assert names.key(q.relation) in relations, (question, q)
        assert chosen  # memory was not empty
    assert read_count >= 30  # many questions name an entity in memory: reads happen


def test_writes_are_well_formed_spans_of_their_sentence(engine):
    rng = random.Random(11)
    relations = {names.key(r) for r in engine.store.relation_names()}
    written = 0
    for _ in range(100):
        s, _r, o = rng.choice(FACTS)
        sentence = rng.choice(SENTENCES).format(s=s, o=o)
        events = list(engine.write(sentence, "", dry_run=True))
        assert not [e for e in events if isinstance(e, CallFailed)], sentence
        done = next(e for e in events if isinstance(e, WriteDone))
        protocol.parse_write(done.raw)
        for t in done.triples:
            written += 1
            for part in (t.subject, t.object):
                assert re.search(rf"(?<!\w){re.escape(part)}(?!\w)", sentence), (sentence, t)
            assert names.key(t.relation) in relations
            assert len(protocol.format_write([t])) > 0
    assert written > 0


def test_ask_reads_the_fact_it_needs():
    run("mem", "add", "Rihanna", "record label", "Def Jam")
    result = run("ask", "--json", "Which record label is Rihanna signed to?")
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    reads = [e for e in events if e["event"] == "readdone"]
    assert reads and reads[0]["kept"]
    assert reads[0]["queries"][0] == {
        "subject": "Rihanna",
        "relation": "record label",
        "object": None,
    }
    assert reads[0]["results"] == ["Def Jam"]
    plain = run("ask", "Which record label is Rihanna signed to?")
    assert "Facts read:\n  1: Rihanna >> record label >> Def Jam" in plain.stdout


def test_ingest_stores_sentence_facts_with_their_line(tmp_path):
    text = tmp_path / "bio.txt"
    text.write_text("Marie Curie was born in Warsaw.\n\nShe won the Nobel Prize in Physics.\n")
    dry = run("ingest", str(text), "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert run("mem", "ls", "--json").stdout == ""
    done = run("ingest", str(text))
    assert done.exit_code == 0
    rows = [json.loads(x) for x in run("mem", "ls", "--json").stdout.splitlines()]
    assert rows, done.stderr
    assert {r["source"] for r in rows} <= {f"ingest {text}:1", f"ingest {text}:3"}
    assert dry.stdout.splitlines()[0].startswith(("1: ", "3: "))


def test_bad_model_file_is_a_one_line_error(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a model at all")
    result = run("ask", "--model", str(bogus), "hi")
    assert result.exit_code != 0
    assert result.stderr.startswith("memcli: error: ") and result.stderr.count("\n") == 1
    missing = run("ask", "--model", str(tmp_path / "nope.gguf"), "hi")
    assert missing.exit_code != 0 and "not found" in missing.stderr
