"""Chat writes and reads by meaning (#13): the relation a wording states about a person
(candidates a person can have, the object's value type), facts about people whose names
do not read as people's, questions about people, and facts no known relation fits (left
out and said, or a relation named from the sentence with --new-relations or in approval
mode). All on the shipped embedding model, with exact expected choices."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from memcli.repl.conversation import Conversation
from memcli.repl.engines import StaticEngines
from memcli.repl.render import TurnView
from memcli.runtime import glosses, reading, writing
from memcli.runtime.engine import MemoryEngine
from memcli.store.core import TripleStore, builtin_relations
from tests.fakes import ScriptedBackend

RELATIONS = sorted(builtin_relations().values())


# Wordings of the train split of recipes/chat_data.py that the wording alone (the
# sentence as "someone … something") matched to the wrong relation, and two that tell
# employer from work location only by what the object is.
@pytest.mark.parametrize(
    ("sentence", "subject", "obj", "relation"),
    [
        ("Rolf Aasen resides in Oslo.", "Rolf Aasen", "Oslo", "residence"),  # was location
        ("Rolf Aasen has a job at Helix Bank.", "Rolf Aasen", "Helix Bank", "employer"),
        ("Rolf Aasen entered the world in Lyon.", "Rolf Aasen", "Lyon", "place of birth"),
        (
            "Rolf Aasen plays for the Hamar Falcons.",
            "Rolf Aasen",
            "Hamar Falcons",
            "member of sports team",
        ),  # was performer
        (
            "Rolf Aasen is a national of Kenya.",
            "Rolf Aasen",
            "Kenya",
            "country of citizenship",
        ),  # was country
        (
            "Rolf Aasen is signed to Northstar Music.",
            "Rolf Aasen",
            "Northstar Music",
            "record label",
        ),  # was languages spoken, written or signed
        ("Rolf Aasen works in Lyon.", "Rolf Aasen", "Lyon", "work location"),
        ("Rolf Aasen works for Helix Bank.", "Rolf Aasen", "Helix Bank", "employer"),
    ],
)
def test_a_wording_about_a_person_gets_the_relation_it_states(sentence, subject, obj, relation):
    assert writing.better_relation(sentence, subject, "", obj, RELATIONS) == relation
    # The bundled model's usual guess is only a tie-breaker.
    assert (
        writing.better_relation(sentence, subject, "country of citizenship", obj, RELATIONS)
        == relation
    )


def test_only_relations_a_person_can_have_are_candidates_about_a_person():
    assert glosses.about_people("residence") and not glosses.about_people("creator")
    assert glosses.about_people("favourite dish")  # a user's own relation
    assert glosses.value_type("residence") == "a city, town or place"
    assert glosses.value_type("favourite dish") == "a favourite dish"
    # "is based in" is closest to `creator` over all relations; about a person it is not.
    assert (
        writing.better_relation(
            "Rolf Aasen is based in Lyon.", "Rolf Aasen", "", "Lyon", RELATIONS, person=True
        )
        in glosses.HUMAN_RELATIONS
    )
    # About a place the model's own relation stands.
    assert (
        writing.better_relation(
            "Lake Geneva is in France.", "Lake Geneva", "country", "France", RELATIONS
        )
        == "country"
    )


def test_a_fact_about_someone_whose_name_does_not_read_as_a_persons():
    # "Sigrid Delacroix" scores 0.06 as "a person's name" (places reach 0.29): the wording
    # says it is a person, and so does "she" referring to her.
    assert not writing.is_person("Sigrid Delacroix")
    assert writing.checked_triples("Sigrid Delacroix has just moved to Aarhus.", [], RELATIONS) == (
        [("Sigrid Delacroix", "residence", "Aarhus")],
        [],
    )
    context = writing.Context()
    writing.plan_turn("Sigrid Delacroix is a player for Aarhus Otters.", context)
    [sentence] = writing.plan_turn("She is a player for Valencia Herons.", context).statements
    assert sentence.resolved == "Sigrid Delacroix is a player for Valencia Herons."
    assert sentence.people == ("Sigrid Delacroix",)
    assert writing.checked_triples(sentence.resolved, [], RELATIONS, people=sentence.people) == (
        [("Sigrid Delacroix", "member of sports team", "Valencia Herons")],
        [],
    )


@pytest.fixture
def store():
    with TripleStore() as store:
        store.add("Rolf Aasen", "employer", "Arcwise Labs")
        store.add("Rolf Aasen", "spouse", "Marta Quist")
        yield store


def test_a_question_about_a_person_weighs_only_relations_a_person_can_have(store):
    # Over all relations "Which company is someone with?" is closest to `manufacturer`,
    # which no person has: the person's employer is read.
    [choice] = reading.choose_facts(store, "Which company is Rolf Aasen with?", ["Rolf Aasen"])
    assert choice.fact.relation == "employer"
    assert reading.choose_facts(store, "Where was Rolf Aasen born?", ["Rolf Aasen"]) == []


@pytest.mark.parametrize(
    ("sentence", "subject", "obj", "name"),
    [
        (
            "Dana Whitfield collects stamps from Peru.",
            "Dana Whitfield",
            "Peru",
            "collects stamps from",
        ),
        ("Dana's favourite dish is fish soup.", "Dana", "fish soup", "favourite dish"),
        (
            "Dana Whitfield is allergic to Penicillin.",
            "Dana Whitfield",
            "Penicillin",
            "allergic to",
        ),
        ("Dana Whitfield is in Oslo.", "Dana Whitfield", "Oslo", None),  # nothing left
        ("Dana Whitfield likes Oslo.", "Dana Whitfield", "Bergen", None),  # not in it
    ],
)
def test_a_relation_named_from_the_sentence(sentence, subject, obj, name):
    assert writing.relation_from_wording(sentence, subject, obj) == name


class Chat:
    def __init__(self, *transcripts: str, **options):
        self.store = TripleStore()
        self.engine = MemoryEngine(ScriptedBackend(*transcripts), self.store)
        self.out = io.StringIO()
        console = Console(file=self.out, width=100, color_system=None)
        self.view = TurnView(console, console, hide_calls=True, wrap=False)
        self.conversation = Conversation(
            StaticEngines(self.engine), self.store, session_id="test", **options
        )

    def current(self):
        return {(t.subject, t.relation, t.object) for t in self.store.find()}


STAMPS = "Dana Whitfield collects stamps from Peru."


def test_a_fact_no_relation_fits_is_left_out_and_the_acknowledgement_says_so():
    chat = Chat("({MEM_WRITE-->})")
    record = chat.conversation.run_turn(STAMPS, chat.view)
    assert chat.current() == set()
    assert record.answer == (
        "I stored nothing: no relation I know fits Dana Whitfield and Peru "
        "(--new-relations or /approve on proposes a new relation)."
    )


def test_with_new_relations_the_fact_is_stored_under_a_relation_from_its_words():
    chat = Chat("({MEM_WRITE-->})", new_relations=True)
    record = chat.conversation.run_turn(STAMPS, chat.view)
    assert chat.current() == {("Dana Whitfield", "collects stamps from", "Peru")}
    assert [p.new_relation for p in record.proposals] == [True]
    assert record.answer == "Noted: Dana Whitfield - collects stamps from: Peru."
    assert "collects stamps from" in chat.store.relation_names()
    assert "proposing a new one" in chat.out.getvalue()
    chat.conversation.undo_last()
    assert chat.current() == set()


def test_in_approval_mode_the_new_relation_is_proposed_to_the_person():
    chat = Chat("({MEM_WRITE-->})", approve=True)
    seen = []

    def review(proposals):
        seen.extend(p.shown() for p in proposals)
        return []  # the person says no

    chat.conversation.run_turn(STAMPS, chat.view, review=review)
    assert seen == ["Dana Whitfield >> collects stamps from >> Peru (new relation)"]
    assert chat.current() == set()
    assert "collects stamps from" not in chat.store.relation_names()


# -- first person, relatives, introductions -----------------------------------------------


def test_first_person_and_a_relative_named_beside_their_kinship():
    context = writing.Context()
    [sister] = writing.plan_turn("My sister Ingrid lives in Oslo.", context).statements
    assert (sister.resolved, sister.facts) == (
        "Ingrid lives in Oslo.",
        (("the user", "sibling", "Ingrid"),),
    )
    plan = writing.plan_turn("My name is Ayla Brandt.", context)
    assert [s.kind for s in plan.sentences] == ["introduction"] and not plan.needs_reply
    assert context.user == "Ayla Brandt"
    [work] = writing.plan_turn("I work at Lumen Analytics.", context).statements
    assert work.resolved == "Ayla Brandt work at Lumen Analytics."
    assert writing.checked_triples(work.resolved, [], RELATIONS, people=work.people) == (
        [("Ayla Brandt", "employer", "Lumen Analytics")],
        [],
    )
    [brother] = writing.plan_turn(
        "My younger brother Tom Brandt studied at Elmstead College.", context
    ).statements
    assert (brother.resolved, brother.facts) == (
        "Tom Brandt studied at Elmstead College.",
        (("Ayla Brandt", "sibling", "Tom Brandt"),),
    )
    # "X's husband is Y" names no relative beside the noun: one fact, by the wording.
    [husband] = writing.plan_turn("Ayla Brandt's husband is Rolf Aasen.", context).statements
    assert husband.facts == ()
    [question] = writing.plan_turn("Where do I work?", context).questions
    assert question.resolved == "Where do Ayla Brandt work?"


def test_a_chat_stores_both_facts_of_my_sister_and_greets_an_introduction():
    chat = Chat("({MEM_WRITE-->})", user="Ayla Brandt")
    record = chat.conversation.run_turn("My sister Ingrid lives in Oslo.", chat.view)
    assert chat.current() == {("Ingrid", "residence", "Oslo"), ("Ayla Brandt", "sibling", "Ingrid")}
    assert record.answer == "Noted: Ingrid - residence: Oslo; Ayla Brandt - sibling: Ingrid."
    record = chat.conversation.run_turn("My name is Ayla Brandt.", chat.view)
    assert record.answer == "Nice to meet you, Ayla Brandt."
    assert chat.engine.backend.turns == 1  # the one write call: nothing generated


# -- who chairs what: facts about organisations, either way round --------------------------


@pytest.mark.parametrize(
    "sentence",
    [
        "The chairperson of Harbor Crane Works is Noor Brandt.",
        "Harbor Crane Works is chaired by Noor Brandt.",
        "Noor Brandt is the new chairperson of Harbor Crane Works.",
    ],  # reversed
)
def test_who_chairs_an_organisation_the_right_way_round(sentence):
    assert writing.checked_triples(sentence, [], RELATIONS) == (
        [("Harbor Crane Works", "chairperson", "Noor Brandt")],
        [],
    )
    # The bundled model's usual guess, either way round, is corrected too.
    for wrote in (
        ("Harbor Crane Works", "country of citizenship", "Noor Brandt"),
        ("Noor Brandt", "country of citizenship", "Harbor Crane Works"),
    ):
        assert writing.checked_triples(sentence, [wrote], RELATIONS)[0] == [
            ("Harbor Crane Works", "chairperson", "Noor Brandt")
        ], wrote


def test_the_new_chairperson_supersedes_the_old_and_is_read_by_meaning():
    chat = Chat(
        "({MEM_WRITE-->})",
        "({MEM_WRITE-->})",
        "({MEM_READ(Harbor Crane Works>>chairperson>>)-->Femi Osei}) Femi Osei.",
    )
    chat.conversation.run_turn("Harbor Crane Works is chaired by Noor Brandt.", chat.view)
    record = chat.conversation.run_turn(
        "The new chairperson of Harbor Crane Works is Femi Osei.", chat.view
    )
    assert record.answer == "Noted: Harbor Crane Works - chairperson: Femi Osei (was Noor Brandt)."
    assert chat.current() == {("Harbor Crane Works", "chairperson", "Femi Osei")}
    record = chat.conversation.run_turn("Who heads the board of Harbor Crane Works?", chat.view)
    assert [f.object for f in record.facts_read] == ["Femi Osei"]


def test_a_things_relation_from_the_model_stands_unless_the_wording_clearly_names_another():
    assert writing.checked_triples(
        "Lake Geneva is in France.", [("Lake Geneva", "country", "France")], RELATIONS
    )[0] == [("Lake Geneva", "country", "France")]
    assert writing.checked_triples(
        "Fjordline Robotics is chaired by Basil Fairbanks.",
        [("Fjordline Robotics", "headquarters location", "Basil Fairbanks")],
        RELATIONS,
    )[0] == [("Fjordline Robotics", "chairperson", "Basil Fairbanks")]


def test_a_name_the_resolved_sentence_does_not_spell_is_not_written():
    # The model took the previous turn's company from the context: dropped, and the
    # sentence's own fact is taken from its wording instead.
    assert writing.checked_triples(
        "Anton Nakamura studied at Kestrel University.",
        [("Kestrel University", "educated at", "Granite Peak Software")],
        RELATIONS,
    ) == (
        [("Anton Nakamura", "educated at", "Kestrel University")],
        [
            "Kestrel University >> educated at >> Granite Peak Software names what the sentence "
            "does not"
        ],
    )


def test_editing_a_proposed_new_relation_in_approval_keeps_it_allowed():
    from memcli.errors import UsageError
    from memcli.repl.session import ChatSession

    chat = Chat("")
    session = ChatSession(chat.conversation, chat.view)
    edited = session.parse_fact(
        "Dana Whitfield >> collects stamps from >> Chile", new_relation="collects stamps from"
    )
    assert (edited.line(), edited.new_relation) == (
        "Dana Whitfield >> collects stamps from >> Chile",
        True,
    )
    with pytest.raises(UsageError, match="unknown relation 'collects coins from'"):
        session.parse_fact(
            "Dana Whitfield >> collects coins from >> Chile", new_relation="collects stamps from"
        )


def test_a_bad_user_name_is_one_line_before_any_model_work():
    from tests.cli_helpers import run

    result = run("chat", "--user-name", " ", "-e", "Hello!")
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--user-name" in lines[0], result.stderr


def test_a_month_alone_is_no_name_and_the_models_chairperson_runs_from_the_organisation():
    assert writing.names_in("Casper Brandt relocated to Nagoya in May.") == [
        "Casper Brandt",
        "Nagoya",
    ]
    assert writing.checked_triples(
        "Casper Brandt relocated to Nagoya in May.",
        [("Casper Brandt", "residence", "May")],
        RELATIONS,
    ) == ([("Casper Brandt", "residence", "Nagoya")], [])
    assert writing.checked_triples(
        "Solveig Osei is the new chairperson of Lumen Analytics.",
        [("Solveig Osei", "chairperson", "Lumen Analytics")],
        RELATIONS,
    )[0] == [("Lumen Analytics", "chairperson", "Solveig Osei")]
    assert writing.checked_triples(
        "Microsoft was founded by Bill Gates.",
        [("Microsoft", "founded by", "Bill Gates")],
        RELATIONS,
    )[0] == [("Microsoft", "founded by", "Bill Gates")]


@pytest.mark.parametrize(
    ("sentence", "kind", "user"),
    [
        ("My name is Ayla Brandt.", "introduction", "Ayla Brandt"),
        ("Hello, my name is Ayla.", "introduction", "Ayla"),
        ("Call me Ishmael.", "introduction", "Ishmael"),
        ("I’m Noor Osei!", "introduction", "Noor Osei"),
        ("I'm fine.", "statement", None),
        ("I am Swedish.", "statement", None),  # "I am X" names only with a full name
        ("I am in Oslo.", "statement", None),
    ],
)
def test_what_an_introduction_is(sentence, kind, user):
    context = writing.Context()
    [planned] = writing.plan_turn(sentence, context).sentences
    assert (planned.kind, context.user) == (kind, user)


def test_what_was_told_about_the_user_before_the_name_is_put_under_it():
    chat = Chat("({MEM_WRITE-->})")
    chat.store.add("the user", "residence", "Bergen", source="another chat")  # not this one
    chat.conversation.run_turn("I work for Lumen Analytics.", chat.view)
    chat.conversation.run_turn("My sister Ingrid Solberg lives in Aarhus.", chat.view)
    assert ("the user", "employer", "Lumen Analytics") in chat.current()
    record = chat.conversation.run_turn("My name is Ayla Brandt.", chat.view)
    assert record.answer == (
        "Nice to meet you, Ayla Brandt. What you told me about "
        "yourself (2 facts) is now under Ayla Brandt."
    )
    assert chat.current() == {
        ("Ayla Brandt", "employer", "Lumen Analytics"),
        ("Ayla Brandt", "sibling", "Ingrid Solberg"),
        ("Ingrid Solberg", "residence", "Aarhus"),
        ("the user", "residence", "Bergen"),
    }
    chat.conversation.undo_last()  # the renaming
    assert ("the user", "employer", "Lumen Analytics") in chat.current()
    assert chat.conversation.context.user == "Ayla Brandt"  # the name itself stays


@pytest.mark.model
@pytest.mark.slow
def test_real_model_first_person_and_the_new_chairperson():
    from tests.cli_helpers import run

    result = run(
        "chat",
        "-e",
        "My name is Ayla Brandt.",
        "-e",
        "I work for Lumen Analytics.",
        "-e",
        "Harbor Crane Works is chaired by Noor Brandt.",
        "-e",
        "The new chairperson of Harbor Crane Works is Femi Osei.",
        "-e",
        "Who do I work for?",
        "-e",
        "Who chairs Harbor Crane Works?",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Nice to meet you, Ayla Brandt." in out
    assert "Noted: Harbor Crane Works - chairperson: Femi Osei (was Noor Brandt)." in out
    assert "({MEM_READ(Ayla Brandt>>employer>>)-->Lumen Analytics})" in out
    assert "({MEM_READ(Harbor Crane Works>>chairperson>>)-->Femi Osei})" in out
    with TripleStore() as store:
        assert {(t.subject, t.relation, t.object) for t in store.find()} == {
            ("Ayla Brandt", "employer", "Lumen Analytics"),
            ("Harbor Crane Works", "chairperson", "Femi Osei"),
        }


@pytest.mark.parametrize(
    "sentence",
    [
        "Ingrid Solberg visited Rome last summer.",  # was residence, superseding Oslo
        "Ingrid Solberg spent a lovely weekend in Rome.",  # was residence
        "Ingrid Solberg flew to Rome for a conference.",  # was educated at
        "Ingrid Solberg applied for a job at Nordhavn Bank.",  # was employer
        "Ingrid Solberg had lunch with a client from Nordhavn Bank.",  # was employer
        "Ingrid Solberg read a long article about Nordhavn Bank.",  # was notable work
        "Ingrid Solberg watched a documentary about Rome.",  # was Rome >> director >> her
    ],
)
def test_a_one_off_event_stores_no_fact_even_when_the_model_proposes_one(sentence):
    triples, skipped = writing.checked_triples(sentence, [], RELATIONS, people=("Ingrid Solberg",))
    assert triples == [] and skipped == [
        "Ingrid Solberg did something once: no lasting fact to keep"
    ]
    proposed = [
        ("Ingrid Solberg", "residence", "Rome"),
        ("Ingrid Solberg", "employer", "Nordhavn Bank"),
    ]
    assert writing.checked_triples(sentence, proposed, RELATIONS)[0] == []


def test_lasting_facts_told_with_event_like_verbs_are_still_kept():
    assert writing.checked_triples(
        "Ingrid Solberg took a job at Nordhavn Bank.", [], RELATIONS, people=("Ingrid Solberg",)
    )[0] == [("Ingrid Solberg", "employer", "Nordhavn Bank")]
    assert writing.checked_triples(
        "Ingrid Solberg went to school at the University of Bergen.",
        [],
        RELATIONS,
        people=("Ingrid Solberg",),
    )[0] == [("Ingrid Solberg", "educated at", "University of Bergen")]
