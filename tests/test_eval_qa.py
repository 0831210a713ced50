"""`memcli eval qa` with a scripted fake model: exact figures."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from memcli.evaluation import qa as qa_eval
from memcli.evaluation.data import load_documents
from memcli.evaluation.qa import (
    asserted_entity,
    build_questions,
    evaluate_qa,
    sample_questions,
)
from memcli.runtime.engine import EngineConfig, MemoryEngine
from memcli.store.core import TripleStore
from tests.cli_helpers import run
from tests.fakes import ScriptedBackend

FIXTURE = Path(__file__).parent / "fixtures" / "eval_docs.json"

# The fixture gives 6 questions; --max-questions 3 with seed 0 draws 0, 3 and 5:
# Lake Geneva/country, Geneva/country, Rihanna/record label. Each is answered with
# memory, without memory, then with its fact removed.
ANSWERS = [
    # What is the country of Lake Geneva?
    "({MEM_READ(Lake Geneva>>country>>)-->Switzerland;France}) It lies in Switzerland.",
    "It is in Italy.",
    # fact removed: reads something else and names another entity of the document
    "({MEM_READ(>>mouth of the watercourse>>Lake Geneva)-->Rhône}) The Rhône.",
    # What is the country of Geneva?
    "({MEM_READ(Geneva>>country>>)-->Switzerland}) Geneva is in Switzerland.",
    "Geneva is in France.",
    # fact removed: Geneva has no other fact, so memory no longer knows it
    "I do not know.",
    # What is the record label of Rihanna?
    "({MEM_READ(Rihanna>>country of citizenship>>)-->Barbados}) She is with Barbados.",
    "Def Jam.",
    # fact removed: the read finds nothing and is taken out; the answer ends there
    "({MEM_READ(Rihanna>>record label>>)-->",
]

EXPECTED = """\
eval qa: 2 documents

  metric                                 value
 ──────────────────────────────────────────────
  triples in memory                          7
  questions asked                       3 of 6
  accuracy with memory                   0.667
  accuracy without memory                0.333
  answers with a correct read            0.667
  fact removed: asserts an entity        0.333
  fact removed: says it does not know    0.333
  questions per second                    0.30

"""


@pytest.fixture
def scripted(monkeypatch):
    def fake_engine(store, config, **options):
        return MemoryEngine(ScriptedBackend(*ANSWERS), store, config=config)

    monkeypatch.setattr("memcli.cli.eval._load_engine", fake_engine)
    ticks = itertools.count(0, 10)
    monkeypatch.setattr(qa_eval, "perf_counter", lambda: float(next(ticks)))


def test_eval_qa_prints_exact_figures(scripted):
    result = run(
        "eval", "qa", "--data", str(FIXTURE), "--max-questions", "3", "--max-tokens", "120"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == EXPECTED


def test_eval_qa_json_has_every_answer(scripted):
    result = run(
        "eval",
        "qa",
        "--data",
        str(FIXTURE),
        "--max-questions",
        "3",
        "--max-tokens",
        "120",
        "--json",
    )
    report = json.loads(result.stdout)
    questions = report["questions"]
    assert [q["question"] for q in questions] == [
        "What is the country of Lake Geneva?",
        "What is the country of Geneva?",
        "What is the record label of Rihanna?",
    ]
    first = questions[0]
    assert first["objects"] == ["Switzerland", "France"]
    assert first["memory"]["text"] == "It lies in Switzerland."
    assert first["memory"]["reads"] == [
        {
            "queries": [["Lake Geneva", "country", None]],
            "results": ["Switzerland", "France"],
            "kept": True,
            "note": "",
        }
    ]
    assert first["asserts"] == "Rhône" and not first["abstains"]
    assert questions[1]["removed"]["reads"] == [] and questions[1]["abstains"]
    last = questions[2]
    assert last["removed"]["text"] == "" and last["asserts"] is None
    assert last["removed"]["reads"][0]["note"] == "nothing in memory"
    assert not last["correct"] and last["correct_no_memory"] and not last["correct_read"]
    assert report["settings"]["max_questions"] == 3 and report["settings"]["seed"] == 0
    assert report["settings"]["engine"]["max_tokens"] == 120


def test_memory_is_put_back_after_each_removal(tmp_path):
    docs = load_documents(FIXTURE)
    with TripleStore(tmp_path / "m.db") as store:
        engine = MemoryEngine(
            ScriptedBackend("I do not know."), store, config=EngineConfig(max_tokens=8)
        )
        report = evaluate_qa(engine, docs, max_questions=2, seed=1)
        assert len(report.results) == 2
        assert sorted((t.subject, t.relation, t.object) for t in store.find()) == sorted(
            [
                ("Lake Geneva", "country", "Switzerland"),
                ("Lake Geneva", "country", "France"),
                ("Rhône", "mouth of the watercourse", "Lake Geneva"),
                ("Rhône", "country", "France"),
                ("Geneva", "country", "Switzerland"),
                ("Rihanna", "country of citizenship", "Barbados"),
                ("Rihanna", "record label", "Def Jam"),
            ]
        )


def test_questions_one_per_subject_and_relation():
    questions = build_questions(load_documents(FIXTURE))
    assert [(q.subject, q.relation, q.objects) for q in questions] == [
        ("Lake Geneva", "country", ["Switzerland", "France"]),
        ("Rhône", "mouth of the watercourse", ["Lake Geneva"]),
        ("Rhône", "country", ["France"]),
        ("Geneva", "country", ["Switzerland"]),
        ("Rihanna", "country of citizenship", ["Barbados"]),
        ("Rihanna", "record label", ["Def Jam"]),
    ]
    rhone = questions[1]
    assert rhone.answers == ["Lake Geneva", "Lac Léman"]  # any surface of the object
    assert "Rhône" not in rhone.others and "Lac Léman" in rhone.others


def test_sampling_is_deterministic_and_keeps_order():
    questions = build_questions(load_documents(FIXTURE))
    drawn = sample_questions(questions, 3, seed=0)
    assert [questions.index(q) for q in drawn] == [0, 3, 5]
    assert sample_questions(questions, 3, seed=0) == drawn
    assert sample_questions(questions, 10, seed=0) == questions


def test_asserting_an_entity_ignores_the_subject():
    lake = build_questions(load_documents(FIXTURE))[0]  # Lake Geneva / country
    assert asserted_entity("Lake Geneva is a lake.", lake) is None  # not "Geneva"
    assert asserted_entity("lake geneva is near geneva", lake) == "Geneva"
    assert asserted_entity("It is in FRANCE.", lake) == "France"
    assert asserted_entity("It is in Francesca.", lake) is None  # whole words only
