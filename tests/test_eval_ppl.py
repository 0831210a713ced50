"""`memcli eval ppl` with a fake model whose probabilities are known: every figure can be
worked out by hand (see `CopyBackend`)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from memcli.errors import ModelError
from memcli.evaluation import ppl as ppl_eval
from memcli.evaluation.data import load_documents
from memcli.evaluation.ppl import PPL_SHOT, PerplexityRun, evaluate_ppl
from memcli.evaluation.qa import fill_memory
from memcli.evaluation.scorer import TokenScorer, log_softmax_at
from memcli.runtime.engine import EngineConfig, MemoryEngine
from memcli.store.core import TripleStore
from tests.cli_helpers import run
from tests.fixtures.eval_fakes import CopyBackend

FIXTURE = Path(__file__).parent / "fixtures" / "eval_docs.json"

# What the fake writes inside the read forced before each target, keyed by the text just
# before it. Targets: Switzerland and France (Lake Geneva named before them), Barbados and
# Def Jam (Rihanna named before them).
READS = {
    "lake in ": "Lake Geneva>>country>>)-->",  # finds Switzerland;France
    "borders ": "Lake Geneva>>mouth of the watercourse>>)-->",  # finds nothing: removed
    "from ": "Rihanna>>record label>>)-->",  # finds Def Jam, not Barbados
    "with ": "Rihanna>>record label>>)-->",  # finds Def Jam
}

V = 204  # the fake's vocabulary
HALF, OTHER, FLAT = math.log(2), math.log(2 * (V - 1)), math.log(V)  # -log p
TOKENS = (133 - 1) + (68 - 1)  # one token a character, all but each document's first
TARGET_TOKENS = 11 + 6 + 8 + 7  # Switzerland, France, Barbados, Def Jam

# The fake copies the first result of the last read. Gold reads: Lake Geneva >> country
# gives Switzerland;France, so Switzerland is copied (11 halves) but France is not: its
# "F" is not the favoured "S" (OTHER) and the rest is flat; Barbados (8) and Def Jam (7)
# are copied. The model's reads: Switzerland as gold; France's read is removed (flat);
# Barbados's read gives Def Jam ("B" is OTHER, the rest flat); Def Jam as gold.
NLL_TARGET = {
    "a": TARGET_TOKENS * FLAT,
    "b": 11 * HALF + 6 * FLAT + (OTHER + 7 * FLAT) + 7 * HALF,
    "c": 11 * HALF + (OTHER + 5 * FLAT) + 8 * HALF + 7 * HALF,
}
PPL_TARGET = {c: math.exp(nll / TARGET_TOKENS) for c, nll in NLL_TARGET.items()}
PPL_ALL = {
    c: math.exp((nll + (TOKENS - TARGET_TOKENS) * FLAT) / TOKENS) for c, nll in NLL_TARGET.items()
}

EXPECTED = """\
eval ppl: 2 documents

  metric                                          value
 ───────────────────────────────────────────────────────
  documents                                           2
  scored tokens                                     199
  targets (tokens)                               4 (32)
  perplexity, all tokens, (a) memory disabled   204.000
  perplexity, all tokens, (b) model's reads     134.725
  perplexity, all tokens, (c) gold reads        111.867
  perplexity, targets, (a) memory disabled      204.000
  perplexity, targets, (b) model's reads         15.457
  perplexity, targets, (c) gold reads             4.864
  target perplexity reduction (a) to (b)          92.4%
  target perplexity reduction (a) to (c)          97.6%
  (b) reads that found something                  0.750
  (b) reads with a gold query                     0.500
  (b) reads whose results name the target         0.500
  documents per second                             0.20

"""


def test_hand_figures_match_the_table():
    assert PPL_ALL["a"] == pytest.approx(204.0) and PPL_TARGET["a"] == pytest.approx(204.0)
    assert f"{PPL_ALL['b']:.3f}" == "134.725" and f"{PPL_ALL['c']:.3f}" == "111.867"
    assert f"{PPL_TARGET['b']:.3f}" == "15.457" and f"{PPL_TARGET['c']:.3f}" == "4.864"
    assert f"{1 - PPL_TARGET['b'] / PPL_TARGET['a']:.1%}" == "92.4%"


@pytest.fixture
def fake(monkeypatch):
    def fake_engine(store, config, **options):
        return MemoryEngine(CopyBackend(READS), store, config=config)

    monkeypatch.setattr("memcli.cli.eval._load_engine", fake_engine)
    ticks = itertools.count(0, 10)
    monkeypatch.setattr(ppl_eval, "perf_counter", lambda: float(next(ticks)))


def test_eval_ppl_prints_exact_figures(fake):
    assert CopyBackend().n_vocab == V
    result = run("eval", "ppl", "--data", str(FIXTURE), "--no-adapter")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == EXPECTED


def test_eval_ppl_json_matches_the_hand_figures(fake):
    report = json.loads(run("eval", "ppl", "--data", str(FIXTURE), "--json").stdout)
    figures = report["figures"]
    for c in "abc":
        assert figures[f"ppl_{c}"] == pytest.approx(PPL_ALL[c], rel=1e-6)
        assert figures[f"target_ppl_{c}"] == pytest.approx(PPL_TARGET[c], rel=1e-6)
    targets = [t for d in report["documents"] for t in d["targets"]]
    assert [(t["surface"], t["tokens"]) for t in targets] == [
        ("Switzerland", 11),
        ("France", 6),
        ("Barbados", 8),
        ("Def Jam", 7),
    ]
    france = targets[1]
    assert france["model_read"] == {
        "queries": [["Lake Geneva", "mouth of the watercourse", None]],
        "results": [],
        "note": "nothing in memory",
    }
    assert france["gold_read"]["results"] == ["Switzerland", "France"]
    assert france["logprob"]["c"] == pytest.approx(-(OTHER + 5 * FLAT), rel=1e-6)
    assert targets[2]["gold_read"]["queries"] == [["Rihanna", "country of citizenship", None]]


def run_conditions(tmp_path, few_shot=True):
    docs = load_documents(FIXTURE)
    store = TripleStore(tmp_path / "m.db")
    backend = CopyBackend(READS)
    engine = MemoryEngine(backend, store, config=EngineConfig(few_shot=few_shot))
    return docs, store, backend, engine


def test_calls_are_placed_before_the_target_and_stay(tmp_path):
    docs, store, backend, engine = run_conditions(tmp_path)
    fill_memory(store, docs)
    run_ = PerplexityRun(engine)
    run_.score(docs[0])  # the last condition scored is (c): gold reads
    text = backend.detokenize(backend.tokens)
    assert text == PPL_SHOT + (
        "Lake Geneva, or Lac Léman, is a lake in "
        "({MEM_READ(Lake Geneva>>country>>)-->Switzerland;France}) Switzerland. It borders "
        "({MEM_READ(Lake Geneva>>country>>)-->Switzerland;France}) France and is fed by the "
        "Rhône. The city of Geneva lies on its shore."
    )
    store.close()


def test_without_few_shot_there_is_no_prefix(tmp_path):
    docs, store, backend, engine = run_conditions(tmp_path, few_shot=False)
    report = evaluate_ppl(engine, docs)
    assert backend.detokenize(backend.tokens).startswith("Rihanna is a singer")
    assert report.figures()["target_ppl_c"] == pytest.approx(PPL_TARGET["c"], rel=1e-6)
    store.close()


def test_a_document_too_long_for_the_context_is_skipped(tmp_path):
    docs = load_documents(FIXTURE)
    with TripleStore(tmp_path / "m.db") as store:
        engine = MemoryEngine(
            CopyBackend(READS, n_ctx=200), store, config=EngineConfig(few_shot=False)
        )
        report = evaluate_ppl(engine, docs)
        skipped = [d.skipped for d in report.documents]
        assert skipped[0] and skipped[1] == ""
        assert report.figures()["documents_skipped"] == 1
        assert report.figures()["tokens"] == 67


def test_scorer_token_by_token():
    backend = CopyBackend()
    scorer = TokenScorer(backend)
    with pytest.raises(ModelError):
        scorer.score(backend.tokenize("x"))
    backend.eval(backend.tokenize("a"))
    out = scorer.score(backend.tokenize("bc"))
    assert out == pytest.approx([-FLAT, -FLAT])
    assert backend.detokenize(backend.tokens) == "abc"


def test_log_softmax_at():
    logits = np.array([[0.0, math.log(3.0)], [1.0, 1.0]], dtype=np.float32)
    assert log_softmax_at(logits, [1, 0]) == pytest.approx([math.log(0.75), math.log(0.5)])


@pytest.mark.model
def test_batched_scores_match_token_by_token_on_the_bundled_model():
    from memcli.runtime.llama_backend import LlamaBackend, bundled_model_path

    try:
        path = bundled_model_path()
    except ModelError as e:
        pytest.skip(str(e))
    backend = LlamaBackend(path, n_ctx=512, threads=2)
    try:
        tokens = backend.tokenize("Lake Geneva is a lake in Switzerland and France.")
        backend.eval(tokens[:1])
        batched = TokenScorer(backend).score(tokens[1:])
        after = backend.logits()
        slow_scorer = TokenScorer(backend)
        slow_scorer._batched = None  # the generic path: eval + logits, one token at a time
        backend.truncate(0)
        backend.eval(tokens[:1])
        slow = slow_scorer.score(tokens[1:])
        assert backend.tokens == tokens
        # llama.cpp's batched and single-token kernels round differently (quantized).
        assert batched.sum() == pytest.approx(slow.sum(), rel=0.05)
        assert np.abs(batched - slow).max() < 1.0
        assert int(np.argmax(after)) == int(np.argmax(backend.logits()))
    finally:
        backend.close()
