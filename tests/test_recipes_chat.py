"""Conversational training examples (recipes/chat_train.py): the write calls `memcli
chat` makes, with the told fact as the target, from the train split only."""

from __future__ import annotations

from memcli import protocol
from memcli.runtime import prompts
from recipes import chat_data, chat_train
from recipes.data import IM_END, render_chat

CONVERSATION = {
    "id": "fixture",
    "turns": [
        {
            "user": "Dana Whitfield resides in Oslo.",
            "facts": [["Dana Whitfield", "residence", "Oslo"]],
            "category": "name",
        },
        {
            "user": "She is employed by Helix Bank.",
            "facts": [["Dana Whitfield", "employer", "Helix Bank"]],
            "category": "pronoun",
        },
        {"user": "Dana Whitfield does not live in Lyon.", "facts": [], "category": "negation"},
        {"user": "Who employs Dana Whitfield?", "answer": ["Helix Bank"], "category": "paraphrase"},
        {
            "user": "Dana Whitfield relocated to Bergen this spring.",
            "facts": [["Dana Whitfield", "residence", "Bergen"]],
            "superseded": [["Dana Whitfield", "residence", "Oslo"]],
            "category": "update",
        },
    ],
}


def _prompt(sentence: str, context: str) -> str:
    return render_chat(prompts.write_messages(sentence, context, few_shot=False)) + (
        protocol.WRITE_HEAD
    )


def test_one_example_per_stated_sentence_exactly_as_the_runtime_renders_it():
    examples = list(chat_train.conversation_examples(CONVERSATION, 7))
    assert [e.kind for e in examples] == ["chat-write"] * 3  # no write for the denial
    assert [e.target for e in examples] == [
        "Dana Whitfield>>residence>>Oslo})" + IM_END,
        "Dana Whitfield>>employer>>Helix Bank})" + IM_END,  # "She" resolved to the name
        "Dana Whitfield>>residence>>Bergen})" + IM_END,
    ]
    first, second, update = examples
    assert first.segments[0] == (_prompt("Dana Whitfield resides in Oslo.", ""), False)
    assert second.segments[0] == (
        _prompt(
            "Dana Whitfield is employed by Helix Bank.",
            "Dana Whitfield resides in Oslo. Noted: Dana Whitfield - residence: Oslo.",
        ),
        False,
    )
    # The context holds the earlier turns and memcli's replies (the answer to a question
    # as the expected answer), cut to whole sentences as the runtime cuts it.
    assert update.segments[0] == (
        _prompt(
            "Dana Whitfield relocated to Bergen this spring.",
            prompts.trim_context(
                "Dana Whitfield resides in Oslo. Noted: Dana Whitfield - residence: Oslo. "
                "She is employed by Helix Bank. Noted: Dana Whitfield - employer: Helix Bank. "
                "Dana Whitfield does not live in Lyon. Who employs Dana Whitfield? Helix Bank."
            ),
        ),
        False,
    )
    assert all(not trained for _, trained in (e.segments[0] for e in examples))


def test_a_fact_the_resolved_sentence_does_not_spell_is_not_taught():
    conversation = {
        "id": "x",
        "turns": [
            {
                "user": "They moved to Oslo.",
                "facts": [["Dana Whitfield", "residence", "Oslo"]],
                "category": "pronoun",
            },
        ],
    }
    assert list(chat_train.conversation_examples(conversation, 0)) == []


def test_train_split_only_and_every_target_is_a_valid_write_of_its_sentence():
    examples = chat_train.chat_examples(60)
    assert len(examples) > 100
    held_out = (
        set(chat_data.FIRST["dev"])
        | set(chat_data.FIRST["test"])
        | set(chat_data.LAST["dev"])
        | set(chat_data.LAST["test"])
    )
    for example in examples:
        words = set(example.text.replace(">", " ").replace(".", " ").split())
        assert not words & held_out, example.text
        call = protocol.WRITE_HEAD + example.target.removesuffix(IM_END)
        triples = protocol.parse_write(call)
        assert triples, call
        sentence = example.segments[0][0].rsplit("Sentence: ", 1)[1].split("<|im_end|>")[0]
        for t in triples:
            assert chat_train._spelled_in(sentence, t.subject), (sentence, t)
            assert chat_train._spelled_in(sentence, t.object), (sentence, t)


def test_examples_are_deterministic():
    assert [e.text for e in chat_train.chat_examples(20)] == [
        e.text for e in chat_train.chat_examples(20)
    ]


def test_chatter_sentences_are_taught_as_empty_writes_about_the_person():
    plain = chat_train.chat_examples(20)
    examples = chat_train.chat_examples(20, chatter=1.5)
    empty = [e for e in examples if e.target == protocol.CLOSE + IM_END]
    assert not [e for e in plain if e.target == protocol.CLOSE + IM_END]
    # 20 conversations at 1.5 a conversation (the 5 + 5 special ones get none)
    assert 20 <= len(empty) <= 40
    assert len(examples) - len(empty) == len(plain)  # every fact still taught
    people = {
        fact[0]
        for c in chat_data.conversations("train", 20)
        for t in c["turns"]
        for fact in t.get("facts") or []
    }
    shapes = [c.split("{s} ", 1)[1].split("{")[0] for c in chat_train.CHATTER]
    for example in empty:
        sentence = example.segments[0][0].rsplit("Sentence: ", 1)[1].split("<|im_end|>")[0]
        assert any(sentence.startswith(p + " ") for p in people), sentence  # "She" resolved
        assert any(shape in sentence for shape in shapes), sentence
    assert [e.text for e in examples] == [e.text for e in chat_train.chat_examples(20, chatter=1.5)]


def test_first_person_and_relatives_are_taught_by_name_after_the_introduction():
    conversation = {
        "id": "me",
        "turns": [
            {"user": "Call me Yuki Haugen.", "facts": [], "category": "introduction"},
            {
                "user": "I graduated from Nordhavn Academy.",
                "facts": [["Yuki Haugen", "educated at", "Nordhavn Academy"]],
                "category": "first person",
            },
            {
                "user": "My brother Rolf Petrov resides in Graz.",
                "facts": [
                    ["Rolf Petrov", "residence", "Graz"],
                    ["Yuki Haugen", "sibling", "Rolf Petrov"],
                ],
                "category": "kin",
            },
        ],
    }
    first, kin = chat_train.conversation_examples(conversation, 0)
    assert first.segments[0] == (
        _prompt(
            "Yuki Haugen graduated from Nordhavn Academy.",
            "Call me Yuki Haugen. Nice to meet you, Yuki Haugen.",
        ),
        False,
    )
    # The kinship is the runtime's own (from the form); the write call is about the rest.
    assert kin.segments[0][0].endswith(
        "Sentence: Rolf Petrov resides in Graz.<|im_end|>\n<|im_start|>assistant\n"
        + protocol.WRITE_HEAD
    )
    assert kin.target == "Rolf Petrov>>residence>>Graz})" + IM_END


def test_read_check_counts_answers_and_abstentions_on_the_told_facts(capsys):
    from recipes import read_check

    conversation = {
        "turns": [
            *CONVERSATION["turns"],
            {"user": "Where does she live now?", "answer": ["Bergen"]},  # the update's value
            {"user": "Where does Dana live?", "answer": ["Oslo"]},  # stale: a miss
            {"user": "Where was Dana Whitfield born?", "answer": None},
            {"user": "Who is Dana Whitfield married to?", "answer": None},
        ]
    }
    tally = read_check.check([conversation, {"turns": CONVERSATION["turns"][:2]}])
    assert (tally.answered, tally.questions) == (2, 3)
    assert (tally.abstained, tally.absent) == (2, 2)
    [miss] = tally.misses
    assert miss.startswith("'Where does Dana live?': expected ['Oslo']") and "Bergen" in miss
