from __future__ import annotations

import random
import re

import numpy as np
import pytest

from memcli.runtime.constraints import (
    MAX_QUERIES,
    MAX_TRIPLES,
    Command,
    ConstrainedDecoder,
    ConstraintViolation,
    GrammarError,
    word_spans,
)
from tests.fakes import FakeBackend

ENTITIES = ["Rihanna", "Def Jam", "Loud Tour", "Foo", "Foo)", 'Say "Hi" \\ now', "Zürich"]
RELATIONS = ["record label", "performer", "country", "located in"]
SENTENCE = "Lake Geneva lies between Switzerland and France, near Zürich."


@pytest.fixture(scope="module")
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture(scope="module")
def decoder(fake) -> ConstrainedDecoder:
    return ConstrainedDecoder.for_backend(fake)


def random_walk(decoder: ConstrainedDecoder, cmd: Command, rng: random.Random) -> str:
    for _ in range(2000):
        if decoder.is_done(cmd):
            return cmd.text
        allowed = np.flatnonzero(decoder.mask(cmd))
        assert len(allowed), f"dead end after {cmd.text!r}"
        decoder.advance(cmd, int(rng.choice(allowed)))
    raise AssertionError("command never ended")


def run_scripted(fake: FakeBackend, decoder: ConstrainedDecoder, cmd: Command, script: str) -> str:
    fake.eval(fake.tokenize("prompt"))
    fake.set_script(script)
    while not decoder.is_done(cmd):
        token = fake.sample(decoder.mask(cmd))
        decoder.advance(cmd, token)
        fake.eval([token])
    return cmd.text


def parse_read(text: str) -> list[tuple[str, str, str]]:
    assert text.endswith(")-->")
    return [tuple(q.split(">>")) for q in text[: -len(")-->")].split(";")]  # type: ignore[misc]


def parse_write(text: str) -> list[tuple[str, str, str]]:
    assert text.endswith("})")
    body = text[: -len("})")]
    return [tuple(t.split(">>")) for t in body.split(";")] if body else []  # type: ignore[misc]


# -- reads ----------------------------------------------------------------------------------


def test_random_reads_name_only_known_entities_and_relations(decoder):
    rng = random.Random(1)
    seen_counts = set()
    for _ in range(60):
        text = random_walk(decoder, decoder.start_read(ENTITIES, RELATIONS), rng)
        queries = parse_read(text)
        seen_counts.add(len(queries))
        assert 1 <= len(queries) <= MAX_QUERIES
        for subject, relation, obj in queries:
            assert relation in RELATIONS
            assert (subject == "") != (obj == "")
            assert (subject or obj) in ENTITIES
    assert seen_counts == {1, 2, 3}


def test_read_mask_allows_only_valid_continuations(fake, decoder):
    cmd = decoder.start_read(ENTITIES, RELATIONS)
    allowed = decoder.mask(cmd)
    starts = {fake.detokenize([t]) for t in np.flatnonzero(allowed)}
    valid = [e + ">>" for e in ENTITIES] + [">>"]
    assert starts and all(any(v.startswith(s) for v in valid) for s in starts)
    assert not allowed[fake.eos_token]
    x = fake.tokenize("x")[0]
    assert not allowed[x]
    with pytest.raises(ConstraintViolation):
        decoder.advance(cmd, x)


def test_scripted_read_of_unknown_entity_is_steered_to_known_names(fake, decoder):
    cmd = decoder.start_read(ENTITIES, RELATIONS)
    text = run_scripted(fake, decoder, cmd, "Rihanna>>label>>;>>performer>>Loud Tourists)-->")
    for subject, relation, obj in parse_read(text):
        assert relation in RELATIONS and (subject or obj) in ENTITIES
    assert text.startswith("Rihanna>>")


def test_names_with_quotes_unicode_and_delimiter_like_suffixes(fake, decoder):
    for text in [
        ">>country>>Foo)-->",
        ">>country>>Foo))-->",
        'Say "Hi" \\ now>>country>>)-->',
        ">>located in>>Zürich)-->",
    ]:
        cmd = decoder.start_read(ENTITIES, RELATIONS)
        for token in fake.tokenize(text):
            assert decoder.mask(cmd)[token], (text, cmd.text)
            decoder.advance(cmd, token)
        assert decoder.is_done(cmd) and cmd.text == text


def test_read_with_head_covers_the_command_name(fake, decoder):
    cmd = decoder.start_read(ENTITIES, RELATIONS, head="MEM_READ(")
    text = run_scripted(fake, decoder, cmd, "MEM_WRITE-->Foo>>country>>)-->")
    assert cmd.data.startswith(b"MEM_READ(")
    parse_read(text)


def test_compiled_read_grammar_is_cached_per_version(decoder):
    decoder._templates.clear()
    a = decoder.start_read(ENTITIES, RELATIONS, version=1)
    b = decoder.start_read(ENTITIES, RELATIONS, version=1)
    assert len(decoder._templates) == 1 and a.matcher is not b.matcher
    decoder.advance(a, int(np.flatnonzero(decoder.mask(a))[0]))
    assert b.text == ""  # copies are independent
    decoder.start_read([*ENTITIES, "New One"], RELATIONS, version=2)
    assert len(decoder._templates) == 2


# -- writes ---------------------------------------------------------------------------------


def is_word_span(span: str, sentence: str) -> bool:
    for m in re.finditer(re.escape(span), sentence):
        before = sentence[m.start() - 1] if m.start() else " "
        after = sentence[m.end()] if m.end() < len(sentence) else " "
        if not (before.isalnum() or after.isalnum()):
            return True
    return False


def test_word_spans():
    spans = word_spans("The U.S. and Jean-Paul's band, AT&T.")
    assert "The U.S. and Jean-Paul's band" in spans
    assert "U.S." in spans and "AT&T" in spans and "Jean-Paul's band, AT&T" in spans
    assert "Jean" not in spans and "band," not in spans and "AT&T." not in spans
    assert word_spans("...!?") == []
    assert word_spans("x;b c") == ["x", "b", "b c", "c"]  # ';' would corrupt the command
    assert "the" not in word_spans("the band of the year") and "of the" not in word_spans(
        "the band of the year"
    )  # minor words alone name nothing


def test_random_writes_use_whole_word_spans_and_known_relations(decoder):
    rng = random.Random(2)
    counts = set()
    for _ in range(40):
        text = random_walk(decoder, decoder.start_write(SENTENCE, RELATIONS), rng)
        triples = parse_write(text)
        counts.add(len(triples))
        assert len(triples) <= MAX_TRIPLES
        assert len(set(triples)) == len(triples)
        for subject, relation, obj in triples:
            assert relation in RELATIONS
            assert is_word_span(subject, SENTENCE) and is_word_span(obj, SENTENCE)
    assert max(counts) > 1


def test_write_triple_limit(fake, decoder):
    # Nine triples whose objects overlap neither the subject nor each other.
    pairs = [("country", o) for o in ("Switzerland", "France", "Zürich", "lies", "between")]
    pairs += [("located in", o) for o in ("Switzerland", "France", "near", "and")]
    script = "".join(f"Lake Geneva>>{r}>>{o};" for r, o in pairs) + "})"
    text = run_scripted(fake, decoder, decoder.start_write(SENTENCE, RELATIONS), script)
    assert len(parse_write(text)) == MAX_TRIPLES


def test_write_repeats_are_masked(fake, decoder):
    script = "Lake Geneva>>country>>France;" * 3 + "})"
    text = run_scripted(fake, decoder, decoder.start_write(SENTENCE, RELATIONS), script)
    triples = parse_write(text)
    assert triples[0] == ("Lake Geneva", "country", "France")
    assert len(set(triples)) == len(triples) >= 2


def test_write_without_words_allows_only_the_end(fake, decoder):
    assert run_scripted(fake, decoder, decoder.start_write("!!!", RELATIONS), "x})") == "})"
    assert run_scripted(fake, decoder, decoder.start_write(SENTENCE, RELATIONS), "})") == "})"


# -- invalid grammars -------------------------------------------------------------------------


def test_invalid_grammar_is_a_clean_error(decoder):
    with pytest.raises(GrammarError, match="invalid command grammar"):
        decoder.compile("start: undefined_rule\n")
    with pytest.raises(GrammarError):
        decoder.compile('start: "unterminated\n')
    with pytest.raises(GrammarError, match="no entities"):
        decoder.start_read([], RELATIONS)
    with pytest.raises(GrammarError, match="no relations"):
        decoder.start_write(SENTENCE, [])


def test_error_message_is_short_even_for_huge_grammars(decoder):
    names = " | ".join(f'"name {i}"' for i in range(20_000))
    with pytest.raises(GrammarError) as err:
        decoder.compile(f"start: A missing\nA: {names}\n")
    assert len(str(err.value)) < 400


# -- the bundled model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama():
    from memcli.errors import ModelError
    from memcli.runtime.llama_backend import LlamaBackend, bundled_model_path

    try:
        path = bundled_model_path()
    except ModelError as e:
        pytest.skip(str(e))
    backend = LlamaBackend(path, n_ctx=2048, threads=1)
    yield backend, ConstrainedDecoder.for_backend(backend)
    backend.close()


def many_names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    syllables = ["ka", "ri", "to", "man", "del", "sen", "vor", "lin", "qu", "ber", "ola", "zo"]
    names: set[str] = set()
    while len(names) < n:
        words = ("".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(2))
        names.add(" ".join(w.capitalize() for w in words))
    return sorted(names)


@pytest.mark.model
def test_real_vocab_masks(llama):
    backend, decoder = llama
    assert decoder.n_vocab == backend.n_vocab
    cmd = decoder.start_read(["Rihanna", "Def Jam"], RELATIONS)
    allowed = decoder.mask(cmd)
    assert allowed.shape == (backend.n_vocab,)
    for token in np.flatnonzero(allowed):
        piece = backend.token_bytes(int(token)).decode("utf-8", errors="replace")
        assert any(s.startswith(piece) for s in ("Rihanna>>", "Def Jam>>", ">>")), piece
    assert allowed[backend.tokenize(">>")[0]]
    assert not allowed[backend.tokenize(" the")[0]]
    assert not allowed[backend.eos_token]


@pytest.mark.model
def test_forced_read_with_1000_entities_names_only_existing_ones(llama):
    backend, decoder = llama
    entities = many_names(1000)
    entities[:3] = ["Rihanna", "Def Jam Recordings", "Barbados"]
    messages = [{"role": "user", "content": "Which record label is Rihanna signed to?"}]
    backend.truncate(0)
    backend.eval(backend.tokenize(backend.apply_chat_template(messages), special=True))
    backend.eval(backend.tokenize("({MEM_READ("))
    cmd = decoder.start_read(entities, RELATIONS)
    for _ in range(200):
        if decoder.is_done(cmd):
            break
        token = backend.sample(decoder.mask(cmd))
        decoder.advance(cmd, token)
        backend.eval([token])
    assert decoder.is_done(cmd)
    queries = parse_read(cmd.text)
    assert 1 <= len(queries) <= MAX_QUERIES
    known = set(entities)
    for subject, relation, obj in queries:
        assert relation in RELATIONS
        assert (subject == "") != (obj == "") and (subject or obj) in known


@pytest.mark.model
def test_invalid_grammar_with_real_vocab_does_not_crash(llama):
    _, decoder = llama
    with pytest.raises(GrammarError):
        decoder.compile("start: ENTITY\nENTITY: /[/\n")
    cmd = decoder.start_write("Rihanna signed with Def Jam.", RELATIONS)
    assert decoder.mask(cmd).any()  # still usable afterwards
