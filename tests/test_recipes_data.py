"""recipes/data.py builds exactly the expected training examples for a small document,
rendered with the runtime's own prompts. Needs nothing beyond memcli itself."""

from __future__ import annotations

from memcli.runtime import prompts
from recipes import data

DOC = {
    "title": "Lake Geneva",
    "sents": [
        ["Lake", "Geneva", "lies", "between", "Switzerland", "and", "France", "."],
        ["It", "is", "a", "lake", "."],
        ["The", "Rhône", "flows", "through", "Lake", "Geneva", "(", "Léman", ")", "."],
    ],
    "vertexSet": [
        [
            {"name": "Lake Geneva", "sent_id": 0, "pos": [0, 2], "type": "LOC"},
            {"name": "Lake Geneva", "sent_id": 2, "pos": [4, 6], "type": "LOC"},
        ],
        [{"name": "Switzerland", "sent_id": 0, "pos": [4, 5], "type": "LOC"}],
        [{"name": "France", "sent_id": 0, "pos": [6, 7], "type": "LOC"}],
        [{"name": "Rhône", "sent_id": 2, "pos": [1, 2], "type": "LOC"}],
    ],
    "labels": [
        {"h": 0, "t": 1, "r": "P17", "evidence": [0]},
        {"h": 0, "t": 2, "r": "P17", "evidence": [0]},
        {"h": 3, "t": 0, "r": "P206", "evidence": [2]},
        # evidence sentence 2 does not mention Switzerland: not a write target
        {"h": 3, "t": 1, "r": "P17", "evidence": [2]},
    ],
}

S0 = "Lake Geneva lies between Switzerland and France."
S1 = "It is a lake."
S2 = "The Rhône flows through Lake Geneva (Léman)."


def chat(messages):  # type: ignore[no-untyped-def]
    return data.render_chat(messages)


def test_detokenize_and_mentions() -> None:
    doc = data.parse_document(DOC, 7)
    assert doc.sentences == [S0, S1, S2]
    assert [(m.entity, m.sent, m.text) for m in doc.mentions] == [
        (0, 0, "Lake Geneva"),
        (0, 2, "Lake Geneva"),
        (1, 0, "Switzerland"),
        (2, 0, "France"),
        (3, 2, "Rhône"),
    ]
    text, spans = data.detokenize(["(", "born", "1963", ")", "in", "Mediaș", ",", "he", "'s"])
    assert text == "(born 1963) in Mediaș, he's"
    assert [text[a:b] for a, b in spans][-3:] == [",", "he", "'s"]
    assert data.detokenize(['"', "Willi", '"', "won", "1997", "-", "8"])[0] == '"Willi" won 1997-8'


def test_write_gold_agrees_with_memcli_eval() -> None:
    from memcli.evaluation.data import parse_document

    doc = data.parse_document(DOC, 0)
    relations = data.relation_names()
    theirs = parse_document(DOC, 0, relations)
    for sent in range(3):
        ours = sorted(t.relation for t in data.gold_writes(doc, sent, relations))
        assert ours == sorted(f.relation for f in theirs.write_gold(sent))


def test_write_examples() -> None:
    examples = [
        e for e in data.build_examples([DOC], [0], data.Mix(empty_rate=1.0)) if e.kind == "write"
    ]
    head = "({MEM_WRITE-->"
    assert [e.segments for e in examples] == [
        [
            (chat(prompts.write_messages(S0, "", few_shot=False)) + head, False),
            ("Lake Geneva>>country>>Switzerland;Lake Geneva>>country>>France})<|im_end|>", True),
        ],
        [
            (chat(prompts.write_messages(S1, S0, few_shot=False)) + head, False),
            ("})<|im_end|>", True),
        ],
        [
            (chat(prompts.write_messages(S2, f"{S0} {S1}", few_shot=False)) + head, False),
            ("Rhône>>located in or next to body of water>>Lake Geneva})<|im_end|>", True),
        ],
    ]


def test_no_empty_writes_at_rate_zero() -> None:
    examples = data.build_examples([DOC], [0], data.Mix(empty_rate=0.0))
    assert [e.target for e in examples if e.kind == "write"][1].startswith("Rhône")


def test_read_examples() -> None:
    examples = [
        e for e in data.build_examples([DOC], [0], data.Mix(reads_per_doc=1)) if e.kind == "read"
    ]
    assert [e.segments for e in examples] == [
        [
            ("Lake Geneva lies between ({MEM_READ(Lake Geneva>>country>>)-->", True),
            ("Switzerland;France})", False),
            (" Switzerland and France.", True),
        ],
    ]
    two = [
        e for e in data.build_examples([DOC], [0], data.Mix(reads_per_doc=2)) if e.kind == "read"
    ]
    assert two[1].segments == [
        ("Lake Geneva lies between Switzerland and ({MEM_READ(Lake Geneva>>country>>)-->", True),
        ("Switzerland;France})", False),
        (" France.", True),
    ]


def test_qa_examples() -> None:
    examples = [
        e
        for e in data.build_examples([DOC], [0], data.Mix(qa_rate=1.0, absent_rate=1.0))
        if e.kind == "qa"
    ]
    answered = [e for e in examples if len(e.segments) == 4]
    assert [(e.segments[1], e.segments[2], e.segments[3]) for e in answered] == [
        (
            ("Lake Geneva>>country>>)-->", True),
            ("Switzerland;France})", False),
            (" Switzerland and France.<|im_end|>", True),
        ),
        (
            ("Rhône>>located in or next to body of water>>)-->", True),
            ("Lake Geneva})", False),
            (" Lake Geneva.<|im_end|>", True),
        ),
        (
            ("Rhône>>country>>)-->", True),
            ("Switzerland})", False),
            (" Switzerland.<|im_end|>", True),
        ),
    ]
    for e in answered:
        prompt, trained = e.segments[0]
        assert not trained and prompt.endswith("<|im_start|>assistant\n({MEM_READ(")
        assert prompt.startswith(
            chat([{"role": "system", "content": prompts.ANSWER_SYSTEM}])[
                : -len("<|im_start|>assistant\n")
            ]
        )
    unknown = [e for e in examples if len(e.segments) == 2]
    assert len(unknown) == 2  # one unanswerable question per subject
    for e in unknown:
        assert e.segments[1] == ("I don't know.<|im_end|>", True)
        assert "country of" not in e.segments[0][0] or "Rhône" not in e.segments[0][0]


def test_deterministic() -> None:
    first = data.build_examples([DOC, DOC], [0, 1])
    assert first == data.build_examples([DOC, DOC], [0, 1])
    assert [e.doc for e in first] == sorted(e.doc for e in first)


def test_splits_do_not_overlap() -> None:
    assert set(data.TRAIN_DOCS).isdisjoint(data.VALID_DOCS)
    assert (data.TRAIN_DOCS.start, data.TRAIN_DOCS.stop) == (0, 400)
    assert (data.VALID_DOCS.start, data.VALID_DOCS.stop) == (400, 500)
