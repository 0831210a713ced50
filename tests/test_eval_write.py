"""`memcli eval write` with a scripted fake model: exact figures."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from memcli.evaluation import write as write_eval
from memcli.evaluation.data import load_documents
from memcli.evaluation.write import evaluate_write, match_triples
from memcli.protocol import Triple
from memcli.runtime.engine import MemoryEngine
from memcli.runtime.events import CallFailed, WriteDone
from memcli.store.core import TripleStore
from tests.cli_helpers import run
from tests.fakes import ScriptedBackend

FIXTURE = Path(__file__).parent / "fixtures" / "eval_docs.json"

# One write per sentence, in order. Gold: Lake Geneva >> country >> Switzerland (doc 0,
# sentence 0), Rhône >> country >> France (0, 1), Rihanna >> country of citizenship >>
# Barbados (1, 0).
WRITES = [
    # Two spellings of the one gold fact (one counts, one is a duplicate), one wrong.
    "({MEM_WRITE-->Lac Léman>>country>>Switzerland;Lake Geneva>>country>>Switzerland;"
    "Lake Geneva>>located in the administrative territorial entity>>Switzerland})",
    "({MEM_WRITE-->Rhône>>country>>France})",
    "({MEM_WRITE-->})",
    "({MEM_WRITE-->Rihanna>>country of citizenship>>Barbados})",
    "({MEM_WRITE-->Def Jam>>record label>>2005})",  # no gold in this sentence
]

EXPECTED = """\
eval write: 2 documents

  metric                          value
 ───────────────────────────────────────
  documents                           2
  sentences                           5
  gold triples                        3
  predicted triples                   6
  correct triples                     3
  precision                       0.500
  recall                          1.000
  F1                              0.667
  calls that failed to parse      0.000
  empty calls                     0.200
  sentences with no gold triple   0.400
  sentences per second             0.50

"""


@pytest.fixture
def scripted(monkeypatch):
    """`memcli eval` runs on a ScriptedBackend and a clock that ticks 10 s per call."""

    def fake_engine(store, config, **options):
        return MemoryEngine(ScriptedBackend(*WRITES), store, config=config)

    monkeypatch.setattr("memcli.cli.eval._load_engine", fake_engine)
    ticks = itertools.count(0, 10)
    monkeypatch.setattr(write_eval, "perf_counter", lambda: float(next(ticks)))


def test_eval_write_prints_exact_figures(scripted):
    result = run("eval", "write", "--data", str(FIXTURE), "--no-adapter")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == EXPECTED
    assert result.stderr == ""  # no progress bar off a terminal


def test_eval_write_json_has_every_sentence(scripted):
    result = run("eval", "write", "--data", str(FIXTURE), "--json")
    report = json.loads(result.stdout)
    assert report["mode"] == "write"
    figures = report["figures"]
    assert (figures["precision"], figures["recall"]) == (0.5, 1.0)
    assert figures["f1"] == pytest.approx(2 / 3)
    assert figures["seconds"] == 10.0 and figures["sentences_per_second"] == 0.5
    first = report["sentences"][0]
    assert first["gold"] == [["Lake Geneva", "country", "Switzerland"]]
    assert first["correct"] == [["Lac Léman", "country", "Switzerland"]]
    assert [s["predicted"] for s in report["sentences"]][2:] == [
        [],
        [["Rihanna", "country of citizenship", "Barbados"]],
        [["Def Jam", "record label", "2005"]],
    ]
    assert report["settings"]["data"] == str(FIXTURE)
    assert report["settings"]["engine"]["temperature"] == 0.0


def test_eval_write_docs_selects_documents(scripted):
    result = run("eval", "write", "--data", str(FIXTURE), "--docs", "1", "--json")
    report = json.loads(result.stdout)
    assert report["figures"]["sentences"] == 3
    assert {s["document"] for s in report["sentences"]} == {0}


def test_matching_is_case_and_space_insensitive_and_one_to_one():
    lake = load_documents(FIXTURE, "1")[0]
    gold = lake.write_gold(0)
    predicted = [
        Triple("lac  LÉMAN", "Country", "switzerland"),
        Triple("Lake Geneva", "country", "Switzerland"),  # the same fact again
        Triple("Lake Geneva", "country", "France"),  # true, but not gold here
    ]
    assert match_triples(lake, predicted, gold) == [(0, 0)]


class FailingEngine:
    """Stands in for a MemoryEngine whose second write call breaks."""

    def __init__(self):
        self.calls = 0

    def write(self, sentence, context, *, source, dry_run):
        self.calls += 1
        assert dry_run
        if self.calls == 2:
            yield CallFailed("({MEM_WRITE-->x", "the write call did not finish")
            yield WriteDone(())
        else:
            yield WriteDone(())


def test_failed_calls_are_counted_apart_from_empty_ones():
    docs = load_documents(FIXTURE)
    report = evaluate_write(FailingEngine(), docs, clock=iter([0.0, 2.0]).__next__)
    figures = report.figures()
    assert figures["parse_failure_rate"] == 1 / 5
    assert figures["empty_call_rate"] == 4 / 5
    assert report.sentences[1].failures == ["the write call did not finish"]


def test_write_context_is_the_preceding_sentences(tmp_path):
    seen = []

    class Recorder:
        def write(self, sentence, context, *, source, dry_run):
            seen.append((sentence, context))
            yield WriteDone(())

    evaluate_write(Recorder(), load_documents(FIXTURE, "1"))
    lake = load_documents(FIXTURE, "1")[0]
    assert seen == [
        (lake.sentences[0], ""),
        (lake.sentences[1], lake.sentences[0]),
        (lake.sentences[2], lake.sentences[0] + " " + lake.sentences[1]),
    ]


def test_store_is_untouched(tmp_path):
    with TripleStore(tmp_path / "m.db") as store:
        engine = MemoryEngine(ScriptedBackend(*WRITES), store)
        evaluate_write(engine, load_documents(FIXTURE))
        assert store.count() == 0
