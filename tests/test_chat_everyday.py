"""Chat in everyday language: sentence kinds, pronouns, the write grammar's context
entities, reading by meaning (the shipped embedding model), updates, acknowledgements,
and `memcli eval chat` on a scripted fake model with exact figures."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from memcli.repl.conversation import NOTHING_IN_MEMORY, Conversation
from memcli.repl.engines import StaticEngines
from memcli.repl.render import TurnView
from memcli.runtime import reading, writing
from memcli.runtime.constraints import ConstrainedDecoder, write_grammar, write_spans
from memcli.runtime.engine import MemoryEngine
from memcli.store.core import TripleStore, builtin_relations
from tests.fakes import FakeBackend, ScriptedBackend

# -- sentences and pronouns -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "kind"),
    [
        ("Dana Whitfield lives in Oslo.", "statement"),
        ("Where does Dana live?", "question"),
        ("who is Dana married to", "question"),
        ("Hello, how are you?", "chat"),
        ("Thanks for your help!", "chat"),
        ("Can you write a haiku about the sea?", "chat"),
        ("Tell me a joke.", "chat"),
        ("Dana does not live in Paris.", "negation"),
        ("Dana doesn't work for Helix Bank.", "negation"),
        ("If Dana moved to Rome, she would be happier.", "hypothetical"),
        ("Maybe Dana will live in Rome one day.", "hypothetical"),
        ("Dana no longer works there; she joined Meridian Freight.", "statement"),
    ],
)
def test_kind_of_a_sentence(sentence, kind):
    assert writing.kind_of(sentence) == kind


def test_pronouns_resolve_to_the_person_named_before_and_updates_are_marked():
    context = writing.Context()
    plan = writing.plan_turn(
        "Dana Whitfield lives in Oslo. She teaches at the Nordhavn Academy. "
        "Her husband is Rolf Aasen.",
        context,
    )
    assert [s.resolved for s in plan.statements] == [
        "Dana Whitfield lives in Oslo.",
        "Dana Whitfield teaches at the Nordhavn Academy.",
        "Dana Whitfield's husband is Rolf Aasen.",
    ]
    later = writing.plan_turn("She moved to Bergen last week.", context)
    [moved] = later.statements
    assert moved.resolved == "Rolf Aasen moved to Bergen last week." or moved.update
    assert moved.update
    stopped = writing.plan_turn(
        "Dana no longer works there; she joined Meridian Freight.", writing.Context(people=["Dana"])
    )
    [joined] = stopped.statements
    assert joined.resolved == "Dana joined Meridian Freight." and joined.update
    # The dropped clause names whom "she" means, though someone else was named last.
    context = writing.Context(people=["Lena Weiss", "Jonas Weiss"])
    [moved] = writing.plan_turn(
        "Lena no longer lives in Munich; she moved to Hamburg.", context
    ).statements
    assert moved.resolved == "Lena Weiss moved to Hamburg." and moved.update


def test_no_pronoun_or_fragment_is_an_entity():
    for bad in ("She", "she teaches at the", "It", "this", "there", "the", "Oslo and"):
        assert writing.names_pronoun(bad), bad
    for good in ("Dana Whitfield", "the Nordhavn Academy", "Oslo", "University of Oslo"):
        assert not writing.names_pronoun(good), good


def test_questions_negations_and_greetings_plan_no_write():
    for message in (
        "Where does Dana live?",
        "Dana does not live in Paris.",
        "Hello, how are you?",
        "Suppose Dana lived in Rome.",
    ):
        assert not writing.plan_turn(message, writing.Context()).statements, message


# -- the write grammar's context entities -------------------------------------------------


def test_write_grammar_allows_context_entities_besides_the_sentence_spans():
    spans = write_spans("She teaches at Nordhavn.", ["Dana Whitfield", "the", "of the"])
    assert "Dana Whitfield" in spans and "Nordhavn" in spans
    assert "the" not in spans and "of the" not in spans
    assert '"Dana Whitfield"' in write_grammar(
        "She teaches at Nordhavn.", ["employer"], "", ["Dana Whitfield"]
    )
    fake = FakeBackend()
    decoder = ConstrainedDecoder.for_backend(fake)
    cmd = decoder.start_write("She teaches at Nordhavn.", ["employer"], entities=["Dana Whitfield"])
    fake.eval(fake.tokenize("prompt"))
    fake.set_script("Dana Whitfield>>employer>>Nordhavn})")
    while not decoder.is_done(cmd):
        token = fake.sample(decoder.mask(cmd))
        decoder.advance(cmd, token)
        fake.eval([token])
    assert cmd.text == "Dana Whitfield>>employer>>Nordhavn})"
    # Without the context entity the name is not allowed: the decoder is steered off it.
    plain = decoder.start_write("She teaches at Nordhavn.", ["employer"])
    fake.set_script("Dana Whitfield>>employer>>Nordhavn})")
    fake.eval(fake.tokenize("prompt"))
    while not decoder.is_done(plain):
        token = fake.sample(decoder.mask(plain))
        decoder.advance(plain, token)
        fake.eval([token])
    assert not plain.text.startswith("Dana")


# -- reading by meaning (the shipped embedding model) -----------------------------------

ROLF = [
    ("Rolf Aasen", "residence", "Hamar"),
    ("Rolf Aasen", "employer", "Arcwise Labs"),
    ("Rolf Aasen", "educated at", "Westbrook College"),
    ("Rolf Aasen", "record label", "Northstar Music"),
    ("Rolf Aasen", "languages spoken, written or signed", "Finnish"),
    ("Rolf Aasen", "spouse", "Marta Quist"),
]


@pytest.fixture
def rolf_store():
    store = TripleStore()
    for fact in ROLF:
        store.add(*fact)
    yield store
    store.close()


@pytest.mark.parametrize(
    ("question", "relation"),
    [
        ("Where does Rolf Aasen live?", "residence"),
        ("Which town is Rolf Aasen's home?", "residence"),
        ("Who does Rolf Aasen work for?", "employer"),
        # Closest to `work location`, which memory has not got: the employer answers it.
        ("Where does Rolf Aasen work?", "employer"),
        ("Where did Rolf Aasen go to school?", "educated at"),
        ("Which label is Rolf Aasen signed to?", "record label"),
        ("What language does Rolf Aasen speak?", "languages spoken, written or signed"),
        ("Who is Rolf Aasen married to?", "spouse"),
    ],
)
def test_a_paraphrased_question_reads_the_fact_it_means(rolf_store, question, relation):
    entities = reading.mentioned_entities(rolf_store, question)
    assert entities == ["Rolf Aasen"]
    [choice] = reading.choose_facts(rolf_store, question, entities)
    assert choice.fact.relation == relation


@pytest.mark.parametrize(
    "question",
    ["Where was Rolf Aasen born?", "When did Rolf Aasen die?", "Who is Rolf Aasen's father?"],
)
def test_a_question_about_a_fact_never_told_reads_nothing(rolf_store, question):
    entities = reading.mentioned_entities(rolf_store, question)
    assert reading.choose_facts(rolf_store, question, entities) == []


def test_a_question_by_first_name_alone_is_matched_as_by_the_full_name(rolf_store):
    # As `memcli ask` asks it (no conversation to resolve "Rolf" in).
    rolf_store.add("Rolf Aasen", "country of citizenship", "Norway")
    [choice] = reading.choose_facts(rolf_store, "What nationality is Rolf?", ["Rolf Aasen"])
    assert choice.fact.object == "Norway"


def test_first_names_and_user_relations_match_by_meaning(rolf_store):
    rolf_store.add("Rolf Aasen", "favourite dish", "fish soup", new_relation=True)
    assert reading.mentioned_entities(rolf_store, "What does Rolf like to eat most?") == [
        "Rolf Aasen"
    ]
    [choice] = reading.choose_facts(rolf_store, "What food does Rolf like best?", ["Rolf Aasen"])
    assert choice.fact.object == "fish soup"
    ranked = reading.facts_by_meaning(rolf_store, "Rolf Aasen's home town")
    assert ranked[0][0].relation == "residence"


# -- turns on the scripted model --------------------------------------------------------


class Chat:
    def __init__(self, *transcripts: str, facts=()):
        self.store = TripleStore()
        for fact in facts:
            self.store.add(*fact)
        self.engine = MemoryEngine(ScriptedBackend(*transcripts), self.store)
        self.out = io.StringIO()
        console = Console(file=self.out, width=100, color_system=None)
        self.view = TurnView(console, hide_calls=True, wrap=False)
        self.conversation = Conversation(StaticEngines(self.engine), self.store, session_id="test")

    def say(self, message: str):
        return self.conversation.run_turn(message, self.view)

    def current(self):
        return {(t.subject, t.relation, t.object) for t in self.store.find()}


def test_a_statement_turn_gets_a_true_acknowledgement_and_no_generated_answer():
    chat = Chat("({MEM_WRITE-->Dana Whitfield>>residence>>Oslo})")
    record = chat.say("Dana Whitfield lives in Oslo.")
    assert record.answer == "Noted: Dana Whitfield - residence: Oslo."
    assert chat.current() == {("Dana Whitfield", "residence", "Oslo")}
    assert chat.engine.backend.turns == 1  # the write only: no answer was generated


def test_a_denial_stores_nothing_and_says_so():
    chat = Chat("({MEM_WRITE-->Dana>>residence>>Paris})")
    record = chat.say("Dana does not live in Paris.")
    assert chat.current() == set()
    assert record.answer.startswith("I stored nothing:") and "not so" in record.answer
    assert chat.engine.backend.turns == 0


def test_a_pronoun_statement_is_written_about_the_person():
    chat = Chat(
        "({MEM_WRITE-->Dana Whitfield>>residence>>Oslo})",
        "({MEM_WRITE-->Dana Whitfield>>employer>>Nordhavn Academy})",
    )
    chat.say("Dana Whitfield lives in Oslo.")
    record = chat.say("She works for the Nordhavn Academy.")
    assert ("Dana Whitfield", "employer", "Nordhavn Academy") in chat.current()
    assert "Dana Whitfield - employer: Nordhavn Academy" in record.answer


def test_a_question_reads_the_fact_chosen_by_meaning_and_abstains_without_one():
    chat = Chat(
        "({MEM_READ(Rolf Aasen>>residence>>)-->Hamar}) Rolf Aasen lives in Hamar.", facts=ROLF
    )
    record = chat.say("Which town is Rolf Aasen's home?")
    assert record.raw.startswith("({MEM_READ(Rolf Aasen>>residence>>)-->Hamar})")
    assert "Hamar" in record.answer
    assert [f.object for f in record.facts_read] == ["Hamar"]
    record = chat.say("Where was Rolf Aasen born?")
    assert record.answer == NOTHING_IN_MEMORY


def test_updates_supersede_the_old_value_single_and_multi_valued():
    chat = Chat(
        "({MEM_WRITE-->Dana Whitfield>>residence>>Bergen})",
        "({MEM_WRITE-->Dana Whitfield>>employer>>Meridian Freight})",
        "({MEM_WRITE-->Dana Whitfield>>employer>>Solace Health})",
        facts=[
            ("Dana Whitfield", "residence", "Oslo"),
            ("Dana Whitfield", "employer", "Arcwise Labs"),
            ("Dana Whitfield", "employer", "Helix Bank"),
        ],
    )
    record = chat.say("Dana Whitfield moved to Bergen last week.")
    assert "residence: Bergen (was Oslo)" in record.answer
    record = chat.say("Dana Whitfield now works for Meridian Freight.")
    assert chat.current() == {
        ("Dana Whitfield", "residence", "Bergen"),
        ("Dana Whitfield", "employer", "Meridian Freight"),
    }
    assert "(was Arcwise Labs, Helix Bank)" in record.answer
    old = chat.store.find(object="Arcwise Labs", history=True)[0]
    assert [t.object for t in chat.store.chain(old.id)] == ["Arcwise Labs", "Meridian Freight"]
    # Without words of change a multi-valued relation keeps both.
    chat.say("Dana Whitfield works for Solace Health.")
    assert {o for s, r, o in chat.current() if r == "employer"} == {
        "Meridian Freight",
        "Solace Health",
    }
    # /undo of the update turn takes the supersessions back too.
    chat.conversation.undo_last()
    chat.conversation.undo_last()
    assert {o for s, r, o in chat.current() if r == "employer"} == {"Arcwise Labs", "Helix Bank"}


def test_a_turn_that_states_and_asks_does_both():
    chat = Chat(
        "({MEM_READ(Rolf Aasen>>employer>>)-->Arcwise Labs}) Arcwise Labs.",
        "({MEM_WRITE-->Kenji Lund>>residence>>Aarhus})",
        facts=ROLF,
    )
    record = chat.say("Kenji Lund lives in Aarhus. Who does Rolf Aasen work for?")
    assert "Arcwise Labs" in record.answer
    assert record.answer.endswith("Noted: Kenji Lund - residence: Aarhus.")
    assert ("Kenji Lund", "residence", "Aarhus") in chat.current()


def test_a_greeting_gets_the_chat_engine_reply_not_i_dont_know():
    chat = Chat("Hello! I am fine.")
    record = chat.say("Hello, how are you?")
    assert record.answer == "Hello! I am fine."
    assert chat.current() == set()


def test_memory_off_answers_from_the_model_marked_as_not_from_memory():
    chat = Chat("Oslo, I think.", facts=ROLF)
    chat.conversation.memory = False
    record = chat.say("Where does Rolf Aasen live?")
    assert record.answer.startswith("(not from memory)")
    assert record.reads == ()


# -- eval chat --------------------------------------------------------------------------

TWO_CONVERSATIONS = [
    {
        "id": "a",
        "turns": [
            {
                "user": "Dana Whitfield lives in Oslo.",
                "facts": [["Dana Whitfield", "residence", "Oslo"]],
                "category": "name",
            },
            {"user": "Hello!", "chat": True},
            {"user": "Where does Dana Whitfield live?", "answer": ["Oslo"]},
            {"user": "Where was Dana Whitfield born?", "answer": None},
            {
                "user": "Dana Whitfield moved to Bergen.",
                "facts": [["Dana Whitfield", "residence", "Bergen"]],
                "superseded": [["Dana Whitfield", "residence", "Oslo"]],
                "category": "update",
            },
            {
                "user": "Where does Dana Whitfield live now?",
                "answer": ["Bergen"],
                "stale": ["Oslo"],
                "category": "update",
            },
        ],
    },
    {
        "id": "b",
        "turns": [
            {
                "user": "Kenji Lund works for Helix Bank.",
                "facts": [["Kenji Lund", "employer", "Helix Bank"]],
                "category": "name",
            },
            {"user": "Kenji Lund does not live in Rome.", "facts": [], "category": "negation"},
            {"user": "Who does Kenji Lund work for?", "answer": ["Helix Bank"]},
            {"user": "Thanks!", "chat": True},
        ],
    },
]

# What the scripted model says, prompt by prompt, across both conversations (each
# conversation starts a new backend turn count: see `scripted_engine`).
SCRIPTS = {
    "a": [
        "({MEM_WRITE-->Dana Whitfield>>residence>>Oslo})",  # the statement
        "Hi!",  # the greeting
        "({MEM_READ(Dana Whitfield>>residence>>)-->Oslo}) Dana lives in Oslo.",
        # "born": nothing in memory, so no prompt at all
        "({MEM_WRITE-->Dana Whitfield>>residence>>Bergen})",
        # names the stale value too: the update is not followed
        "({MEM_READ(Dana Whitfield>>residence>>)-->Bergen}) Bergen, not Oslo.",
    ],
    "b": [
        "({MEM_WRITE-->Kenji Lund>>country>>Helix Bank})",  # wrong relation
        # the denial and the question (nothing fits "work for"): no prompt
        "I don't know.",
    ],  # the thanks answered "I don't know"
}


def test_eval_chat_on_two_conversations_gives_exact_figures(tmp_path, monkeypatch):
    from memcli.evaluation.chat import evaluate_chat, load_conversations

    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in TWO_CONVERSATIONS) + "\n")
    conversations = load_conversations(path)
    # The write relation check would repair "country" -> "employer"; keep the script's.
    monkeypatch.setattr(
        writing, "choose_relation", lambda s, subj, rel, obj, *rest, **options: (rel, False)
    )
    order = iter(["a", "b"])

    def make(store):
        engine = MemoryEngine(ScriptedBackend(*SCRIPTS[next(order)]), store)
        return Conversation(StaticEngines(engine), store, session_id="eval")

    sink = Console(file=io.StringIO(), width=100, color_system=None)
    report = evaluate_chat(make, conversations, TurnView(sink, hide_calls=True))
    rates = {m: (c.good, c.total) for m, c in report.measures.items()}
    assert rates == {
        "captured": (2, 3),  # Oslo, Bergen; not Kenji's employer
        "non-memory IDK": (1, 2),  # "Thanks!" got "I don't know"
        "answered": (1, 2),  # Oslo yes; Helix Bank: not in memory under any relation
        "abstained": (1, 1),
        "superseded": (1, 1),
        "updates followed": (0, 1),
        "spurious writes": (0, 1),
    }
    assert report.by_category["update"]["captured"].good == 1
    assert report.by_category["negation"]["spurious writes"].total == 1
    summary = dict(report.summary())
    assert summary["answered"] == "0.500 (1/2)"


# -- the real bundled model -------------------------------------------------------------


@pytest.mark.model
@pytest.mark.slow
def test_real_model_answers_a_told_fact_from_a_paraphrased_question():
    from tests.cli_helpers import run

    result = run(
        "chat",
        "-e",
        "Dana Whitfield lives in Oslo.",
        "-e",
        "Which town is Dana Whitfield's home?",
        "-e",
        "Where was Dana Whitfield born?",
        "-e",
        "Hello, how are you?",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Noted: Dana Whitfield - residence: Oslo." in out
    assert "({MEM_READ(Dana Whitfield>>residence>>)-->Oslo})" in out
    answer = out.split("-->Oslo})", 1)[1].split(NOTHING_IN_MEMORY, 1)[0]
    assert "Oslo" in answer
    assert NOTHING_IN_MEMORY in out  # the birthplace was never told
    greeting = out.rsplit(NOTHING_IN_MEMORY, 1)[1]
    assert greeting.strip() and "know" not in greeting.lower()
    with TripleStore() as store:
        assert [(t.subject, t.relation, t.object) for t in store.find()] == [
            ("Dana Whitfield", "residence", "Oslo")
        ]


def test_the_generator_keeps_train_dev_and_test_apart_and_is_deterministic():
    from recipes import chat_data

    def texts(split):
        found = set()
        for conversation in chat_data.conversations(split, 30):
            for turn in conversation["turns"]:
                found.add(turn["user"])
        return found

    people = {s: set(chat_data.FIRST[s]) for s in ("train", "dev", "test")}
    assert not people["train"] & people["dev"] and not people["dev"] & people["test"]
    for w in chat_data.WORDINGS:
        for kind in (w.statements, w.questions):
            assert not set(kind.get("train", [])) & set(kind.get("dev", []))
            assert not set(kind.get("dev", [])) & set(kind.get("test", []))
            assert not set(kind.get("train", [])) & set(kind.get("test", []))
    assert not any("work location" in json.dumps(c) for c in chat_data.conversations("train", 50))
    assert texts("dev") == texts("dev") and not texts("train") & texts("dev")
    for split, count in (("dev", 40), ("test", 30)):  # as the module docstring makes them
        shipped = (
            chat_data.Path(chat_data.__file__).parent / "data" / f"chat_{split}.jsonl"
        ).read_text()
        regenerated = (
            "\n".join(
                json.dumps(c, ensure_ascii=False) for c in chat_data.conversations(split, count)
            )
            + "\n"
        )
        assert shipped == regenerated, split
    # The first conversations do not depend on how many special ones follow.
    assert (
        list(chat_data.conversations("dev", 5, special=0))
        == list(chat_data.conversations("dev", 5, special=3))[:5]
    )
    kinds = [c["id"].split("-")[1] for c in chat_data.conversations("dev", 8)]
    assert kinds == [
        "000",
        "001",
        "002",
        "003",
        "004",
        "005",
        "006",
        "007",
        "me",
        "me",
        "chair",
        "chair",
    ]


def test_a_bad_conversations_file_is_one_line_naming_where(tmp_path):
    from tests.cli_helpers import run

    bad = tmp_path / "c.jsonl"
    bad.write_text('{"turns": [{"user": "Hi", "chat": true}]}\n{"turns": [{"answer": []}]}\n')
    result = run("eval", "chat", str(bad))
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{bad}:2: turn 1" in lines[0] and "user" in lines[0]


def test_the_base_model_sees_its_own_turns_not_answers_from_memory():
    # A 135M model shown "Hamar." before "Thanks!" answers "Hamar." again.
    chat = Chat(
        "({MEM_READ(Rolf Aasen>>residence>>)-->Hamar}) Hamar.", "You're welcome!", facts=ROLF
    )
    assert not chat.say("Which town is Rolf Aasen's home?").chatted
    record = chat.say("Thanks, that's all for now!")
    assert record.chatted and record.answer == "You're welcome!"
    backend = chat.engine.backend
    prompt = backend.detokenize(backend.tokens)
    assert "Thanks, that's all for now!" in prompt
    assert "Hamar" not in prompt and "Rolf Aasen" not in prompt


def test_a_question_no_relation_fits_is_not_answered_with_the_nearest_fact(rolf_store):
    entities = ["Rolf Aasen"]
    for question in (
        "What is Rolf Aasen's phone number?",
        "What is Rolf Aasen's email address?",
        "What is Rolf Aasen's favourite colour?",
    ):
        assert reading.choose_facts(rolf_store, question, entities) == [], question
    [chosen] = reading.choose_facts(rolf_store, "Where does Rolf Aasen live?", entities)
    assert chosen.fact.relation == "residence"


def test_another_name_of_a_relation_lifts_it_only_when_it_is_what_the_question_asks():
    store = TripleStore()
    store.add("Rolf Aasen", "country of citizenship", "Norway")
    store.add("Rolf Aasen", "place of birth", "Hamar")
    entities = ["Rolf Aasen"]
    # `ethnic group` is the closest relation name, "nationality" (an alias of
    # `country of citizenship`) is closer still.
    [nationality] = reading.choose_facts(store, "What nationality is Rolf Aasen?", entities)
    assert nationality.fact.object == "Norway"
    # The alias pushes no other relation out: "from originally" still reads the birthplace
    # when that is the only such fact.
    store.remove([store.current_objects("Rolf Aasen", "country of citizenship")[0].id])
    [origin] = reading.choose_facts(store, "Where is Rolf Aasen from originally?", entities)
    assert origin.fact.relation == "place of birth"
    # A question about something else is not answered through an alias that is merely
    # near: "nationality" is 0.46 from this, languages closer.
    store.add("Rolf Aasen", "country of citizenship", "Norway")
    assert reading.choose_facts(store, "Which language is Rolf Aasen fluent in?", entities) == []
    store.close()


def test_a_first_name_alone_means_the_one_person_named_in_full_before():
    context = writing.Context()
    writing.plan_turn("Tom Becker is married to Aisha Khan.", context)
    context.persons.append("Aisha Khan")  # as the chat does with a spouse it stored
    [born] = writing.plan_turn("Aisha was born in Lahore.", context).statements
    assert born.resolved == "Aisha Khan was born in Lahore."
    context.saw_thing("Aarhus Otters")  # a team's name is no person's full name
    [moved] = writing.plan_turn("Aisha Khan has just moved to Aarhus.", context).statements
    assert moved.resolved == "Aisha Khan has just moved to Aarhus."
    writing.plan_turn("Marta Lindgren works at Copperleaf Studio.", context)
    [moved] = writing.plan_turn("Marta moved to Bergen last month.", context).statements
    assert moved.resolved == "Marta Lindgren moved to Bergen last month."
    [brother] = writing.plan_turn("Marta's brother is Jonas Lindgren.", context).statements
    assert brother.resolved == "Marta Lindgren's brother is Jonas Lindgren."
    [olsen] = writing.plan_turn("Marta Olsen lives in Oslo.", context).statements
    assert olsen.resolved == "Marta Olsen lives in Oslo."  # a longer name is kept whole
    # two Martas now: ambiguous
    [ambiguous] = writing.plan_turn("Marta moved to Rome.", context).statements
    assert ambiguous.resolved == "Marta moved to Rome."


def test_a_first_name_alone_means_the_one_person_memory_knows_by_it():
    # Told in an earlier session: this chat never named Marta in full.
    chat = Chat(
        "({MEM_WRITE-->Marta Lindgren>>residence>>Bergen})",
        facts=[
            ("Marta Lindgren", "employer", "Copperleaf Studio"),
            ("Bergen", "country", "Norway"),
        ],
    )
    record = chat.say("Marta moved to Bergen last month.")
    assert chat.current() >= {("Marta Lindgren", "residence", "Bergen")}
    assert "Marta Lindgren" in record.answer
    store = chat.store
    assert reading.one_person_named(store, "Marta") == "Marta Lindgren"
    assert reading.one_person_named(store, "Bergen") is None  # not a person's first name
    store.add("Rolf Aasen", "spouse", "Aisha Khan")  # a person as the value
    assert reading.one_person_named(store, "Aisha") == "Aisha Khan"
    store.add("Marta Olsen", "residence", "Oslo")
    assert reading.one_person_named(store, "Marta") is None  # two Martas: ambiguous
    context = writing.Context(known=lambda first: reading.one_person_named(store, first))
    [ambiguous] = writing.plan_turn("Marta moved to Rome.", context).statements
    assert ambiguous.resolved == "Marta moved to Rome."


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "I work for Tidewater Foods and I live in Stavanger.",
            ["I work for Tidewater Foods.", "I live in Stavanger."],
        ),
        (
            "Dana works for Acme Labs and plays for Aarhus Otters.",
            ["Dana works for Acme Labs.", "Dana plays for Aarhus Otters."],
        ),
        (
            "I grew up in Tromsø but I live in Oslo now.",
            ["I grew up in Tromsø.", "I live in Oslo now."],
        ),
        ("Dana lives in Oslo and Bergen.", ["Dana lives in Oslo and Bergen."]),
        ("Dana and Rolf live in Oslo.", ["Dana and Rolf live in Oslo."]),
        ("Maren was born and raised in Brno.", ["Maren was born and raised in Brno."]),
        ("Jonas likes cats and dogs.", ["Jonas likes cats and dogs."]),
        # An update stays whole: its clauses together say what changed.
        (
            "Dana no longer works there, and she joined Meridian Freight.",
            ["Dana no longer works there, and she joined Meridian Freight."],
        ),
    ],
)
def test_a_statement_of_two_clauses_is_written_clause_by_clause(sentence, expected):
    assert writing.clauses(sentence) == expected


def test_a_person_named_beside_a_role_and_a_nationality_by_its_adjective():
    context = writing.Context(user="Sara Nilsen")
    [colleague] = writing.plan_turn("My colleague Marta Lindgren is Swedish.", context).statements
    assert colleague.resolved == "Marta Lindgren is Swedish."
    assert colleague.facts == (("Marta Lindgren", "country of citizenship", "Swedish"),)
    assert not colleague.written  # the form states it: no write call
    [went] = writing.plan_turn("She went to university in Uppsala.", context).statements
    assert went.resolved == "Marta Lindgren went to university in Uppsala." and went.written
    [friend] = writing.plan_turn("My old friend Jonas Berg moved to Oslo.", context).statements
    assert friend.resolved == "Jonas Berg moved to Oslo." and friend.facts == ()
    # Kinship and "is" are not roles; a thing's adjective is no nationality.
    [husband] = writing.plan_turn("My husband is Rolf Aasen.", context).statements
    assert husband.resolved == "Sara Nilsen's husband is Rolf Aasen."
    assert writing.demonym_fact("It is Danish.") is None
    assert writing.demonym_fact("Marta Lindgren is tired.") is None


def test_a_greeting_beside_an_introduction_gets_no_generated_reply():
    assert not writing.plan_turn("Hi! My name is Sara Nilsen.", writing.Context()).needs_reply
    assert writing.plan_turn("Hi!", writing.Context()).needs_reply
    request = writing.plan_turn("My name is Sara Nilsen. Tell me a joke.", writing.Context())
    assert request.needs_reply


def test_two_clauses_and_a_colleagues_nationality_in_a_chat():
    chat = Chat(
        "({MEM_WRITE-->the user>>employer>>Tidewater Foods})",
        "({MEM_WRITE-->the user>>residence>>Stavanger})",
        "({MEM_WRITE-->Marta Lindgren>>educated at>>Uppsala University})",
    )
    chat.say("I work for Tidewater Foods and I live in Stavanger.")
    assert chat.current() == {
        ("the user", "employer", "Tidewater Foods"),
        ("the user", "residence", "Stavanger"),
    }
    record = chat.say("My colleague Marta Lindgren is Swedish.")
    assert ("Marta Lindgren", "country of citizenship", "Swedish") in chat.current()
    assert chat.engine.backend.turns == 2  # no write call for the nationality
    assert "Marta Lindgren - country of citizenship: Swedish" in record.answer
    chat.say("She went to Uppsala University.")
    assert ("Marta Lindgren", "educated at", "Uppsala University") in chat.current()


def test_a_connective_opening_a_question_is_no_name_and_names_no_one_next():
    context = writing.Context()
    writing.plan_turn("Priya Raman works at Kestrel Systems.", context)
    [asked] = writing.plan_turn("And where does she live?", context).questions
    assert asked.resolved == "And where does Priya Raman live?"
    assert writing.names_in("And where does she live?") == []
    [sister] = writing.plan_turn("Her sister Meera Raman studies in Pune.", context).statements
    assert sister.facts == (("Priya Raman", "sibling", "Meera Raman"),)


def test_a_sentence_relates_two_names_one_way():
    triples, _ = writing.checked_triples(
        "Priya Raman is a software engineer at Kestrel Systems.",
        [
            ("Priya Raman", "work location", "Kestrel Systems"),
            ("Priya Raman", "employer", "Kestrel Systems"),
        ],
        list(builtin_relations().values()),
        people=["Priya Raman"],
    )
    assert len(triples) == 1


@pytest.mark.parametrize(
    ("sentence", "name"),
    [
        ("What do you know about Marta?", "Marta"),
        ("Tell me about Marta Lindgren.", "Marta Lindgren"),
        ("tell me everything about Nordic Rail", "Nordic Rail"),
        ("Who is Marta?", "Marta"),
        ("What about Sara?", "Sara"),
    ],
)
def test_a_request_for_everything_about_a_name(sentence, name):
    assert writing.kind_of(sentence) == "about" and writing.about_name(sentence) == name


@pytest.mark.parametrize(
    "sentence",
    ["Who is Marta married to?", "Who is Dana's husband?", "Who is the president of France?"],
)
def test_a_question_about_one_fact_is_no_request_for_everything(sentence):
    assert writing.kind_of(sentence) == "question"


def test_everything_about_a_name_is_listed_from_memory_without_generating():
    chat = Chat(facts=[*ROLF, ("Marta Quist", "residence", "Hamar")])
    record = chat.say("What do you know about Rolf?")
    assert record.answer.startswith("From memory: Rolf Aasen - residence: Hamar; ")
    assert all(f"{r}: {o}" in record.answer for _s, r, o in ROLF)
    assert {(f.subject, f.relation, f.object) for f in record.facts_read} == set(ROLF)
    assert chat.engine.backend.turns == 0  # nothing generated: the facts are the answer
    # As the value of a fact too, and nothing for a name memory does not hold.
    assert chat.say("Tell me about Marta Quist.").answer == (
        "From memory: Rolf Aasen - spouse: Marta Quist; Marta Quist - residence: Hamar."
    )
    assert chat.say("Who is Barack Obama?").answer == NOTHING_IN_MEMORY


def test_a_word_opening_a_statement_is_left_out_of_what_is_written():
    context = writing.Context()
    [actually] = writing.plan_turn("Actually, Nils Berg lives in Stavanger.", context).statements
    assert actually.resolved == "Nils Berg lives in Stavanger."
    triples, _ = writing.checked_triples(
        actually.resolved, [], list(builtin_relations().values()), people=["Nils Berg"]
    )
    assert triples == [("Nils Berg", "residence", "Stavanger")]  # from the wording
    [fyi] = writing.plan_turn("By the way, she works for Statoil.", context).statements
    assert fyi.resolved == "Nils Berg works for Statoil."


def test_where_someone_is_from_is_answered_by_a_birthplace_or_a_nationality():
    store = TripleStore()
    store.add("Aisha Khan", "place of birth", "Lahore")
    store.add("Aisha Khan", "educated at", "Kinnaird College")
    for question in ("Where is Aisha Khan from?", "Where does Aisha Khan come from?"):
        [choice] = reading.choose_facts(store, question, ["Aisha Khan"])
        assert choice.fact.object == "Lahore", question
    # Where she studied is no "from" of that kind, nor is a birthplace where she graduated.
    [school] = reading.choose_facts(store, "Where did Aisha Khan graduate from?", ["Aisha Khan"])
    assert school.fact.object == "Kinnaird College"
    store.close()
