"""The remote engine against a real server: llama-cpp-python's OpenAI-compatible server
(the `server` extra) on the bundled model with the memory adapter folded in, started on a
free loopback port for this module and stopped after it. Every request goes through a
recording proxy, so the last test can check what reached the server: only raw-prompt
completions, and no grammar that llama.cpp's parser rejects (an invalid one makes this
server segfault)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from bench.bench_remote import serve
from memcli.runtime import grammars
from memcli.runtime.engine import EngineConfig
from memcli.runtime.events import CallFailed, Done, ReadDone, WriteDone
from memcli.runtime.loader import open_engine, resolve_files
from memcli.store.core import TripleStore
from tests.cli_helpers import run
from tests.remote_fakes import RecordingProxy

pytestmark = [pytest.mark.model, pytest.mark.slow]

FIXTURE = Path(__file__).parent / "fixtures" / "eval_docs.json"
SERVER_PATHS = {
    "/v1/models",
    "/v1/completions",
    "/props",
    "/version",
    "/get_server_info",
    "/openapi.json",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    files = resolve_files()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve(files.model, log, n_ctx=2048) as url, RecordingProxy(url) as proxy:
        yield proxy
        # Everything memcli sent in this module, checked on the way out.
        paths = {r.path for r in proxy.requests}
        assert paths <= SERVER_PATHS, paths
        sent = [
            r.body["grammar"]
            for r in proxy.requests
            if r.body and r.body.get("grammar") is not None
        ]
        assert sent, "no grammar was sent at all"
        for grammar in sent:
            grammars.validate_gbnf(grammar)
        assert all(
            isinstance(r.body["prompt"], str) for r in proxy.requests if r.path == "/v1/completions"
        )


@pytest.fixture
def store(tmp_path):
    with TripleStore(tmp_path / "m.db") as s:
        s.add("Rihanna", "record label", "Def Jam")
        s.add("Lake Geneva", "country", "Switzerland")
        s.add("Marie Curie", "place of birth", "Warsaw")
        yield s


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for name in (
        "MEMCLI_CHAT_TEMPLATE",
        "MEMCLI_ENGINE",
        "MEMCLI_ENGINE_TOKENIZER",
        "MEMCLI_ENGINE_CONSTRAINT",
    ):
        monkeypatch.delenv(name, raising=False)


def _alive(proxy: RecordingProxy) -> bool:
    port = int(proxy.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/v1/models")
    ok = conn.getresponse().status == 200
    conn.close()
    return ok


def test_connect_finds_the_server_and_its_grammars(server, store):
    engine = open_engine(store, engine=server.url)
    caps = engine.capabilities()
    info = engine.describe()
    engine.close()
    assert caps.kind == "remote" and caps.constraint == "gbnf" and not caps.logprobs
    assert caps.tokenizer == "local"  # the served file is here: its vocabulary too
    assert "llama-cpp-python" in info["engine"]
    assert engine.config.few_shot is False  # the adapter is folded into the served file


def test_a_question_about_memory_reads_it_on_the_server(server, store):
    engine = open_engine(store, engine=server.url, config=EngineConfig(max_tokens=40))
    events = list(
        engine.answer([{"role": "user", "content": "Which record label is Rihanna signed to?"}])
    )
    engine.close()
    reads = [e for e in events if isinstance(e, ReadDone)]
    done = next(e for e in events if isinstance(e, Done))
    assert reads and reads[0].kept and reads[0].results == ("Def Jam",)
    assert done.raw.startswith("({MEM_READ(Rihanna>>record label>>)-->Def Jam})")
    assert not [e for e in events if isinstance(e, CallFailed)]


def test_client_side_masks_on_the_real_server(server, store, monkeypatch):
    monkeypatch.setenv("MEMCLI_ENGINE_CONSTRAINT", "logit_bias")
    engine = open_engine(store, engine=server.url, config=EngineConfig(max_tokens=24))
    assert engine.capabilities().constraint == "logit_bias"
    # The probes: it honours logit_bias; started with --logits_all false, it gives no
    # log-probabilities (so "logprobs" would never be picked for it).
    assert engine.probe_logit_bias() and not engine.probe_logprobs()
    events = list(engine.answer([{"role": "user", "content": "Which country is Lake Geneva in?"}]))
    engine.close()
    reads = [e for e in events if isinstance(e, ReadDone)]
    assert reads and reads[0].kept and "Switzerland" in reads[0].results
    assert all(q.relation in store.relation_names() for q in reads[0].queries)


def test_a_write_names_only_spans_of_its_sentence(server, store):
    engine = open_engine(store, engine=server.url)
    sentence = "Angela Merkel was born in Hamburg and studied physics in Leipzig."
    events = list(engine.write(sentence, dry_run=True))
    engine.close()
    done = next(e for e in events if isinstance(e, WriteDone))
    relations = set(store.relation_names())
    for t in done.triples:
        assert t.subject in sentence and t.object in sentence and t.relation in relations
    assert done.stored == ()


def test_an_invalid_grammar_never_reaches_the_server(server, store, monkeypatch):
    monkeypatch.setattr(grammars, "read_gbnf", lambda e, r: 'root ::= ( "Rihanna"\n')
    engine = open_engine(store, engine=server.url, config=EngineConfig(max_tokens=8))
    events = list(
        engine.answer([{"role": "user", "content": "Which record label is Rihanna signed to?"}])
    )
    engine.close()
    assert any("cannot parse" in e.message for e in events if isinstance(e, CallFailed))
    assert _alive(server)


def test_a_remote_chat_turn_from_the_command_line(server, tmp_path):
    db = tmp_path / "chat.db"
    result = run(
        "chat",
        "--engine",
        server.url,
        "--db",
        str(db),
        "-e",
        "Marie Curie was born in Warsaw.",
        "-e",
        "Where was Marie Curie born?",
        "-e",
        "/why",
    )
    assert result.exit_code == 0, result.output
    with TripleStore(db) as s:
        facts = {(t.subject, t.relation, t.object) for t in s.find(subject="Marie Curie")}
    assert any(subject == "Marie Curie" and obj == "Warsaw" for subject, _, obj in facts)
    assert "Warsaw" in result.stdout


def test_ask_and_eval_write_and_qa_on_a_small_slice(server, tmp_path):
    db = tmp_path / "ask.db"
    run("mem", "add", "Rihanna", "record label", "Def Jam", "--db", str(db))
    asked = run(
        "ask", "--engine", server.url, "--db", str(db), "Which record label is Rihanna signed to?"
    )
    assert asked.exit_code == 0, asked.output
    assert "Def Jam" in asked.stdout
    result = run(
        "eval", "write", "--data", str(FIXTURE), "--docs", "1", "--engine", server.url, "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["settings"]["runs on"] == server.url
    assert report["sentences"]  # every sentence of the document was written remotely
    qa = run(
        "eval",
        "qa",
        "--data",
        str(FIXTURE),
        "--docs",
        "1",
        "--max-questions",
        "2",
        "--max-tokens",
        "16",
        "--engine",
        server.url,
        "--json",
    )
    assert qa.exit_code == 0, qa.output
    assert json.loads(qa.stdout)["settings"]["runs on"] == server.url
    ppl = run("eval", "ppl", "--data", str(FIXTURE), "--docs", "1", "--engine", server.url)
    assert ppl.exit_code == 2 and ppl.stderr.count("\n") == 1


def test_models_info_shows_the_capability_check(server):
    result = run("models", "info", "--engine", server.url)
    assert result.exit_code == 0, result.output
    assert "server-side GBNF grammars" in result.stdout
    assert "llama-cpp-python" in result.stdout
