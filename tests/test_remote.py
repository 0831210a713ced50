"""The remote engine against scripted loopback servers: the request shapes memcli sends to
vLLM, SGLang and llama-server (which cannot run here), the read/write loop, client-side
masks, grammar validation, and one-line errors with the REPL kept alive.

The same engine against a real server (llama-cpp-python's, on the bundled model) is in
test_remote_server.py."""

from __future__ import annotations

import io
import socket

import pytest
from rich.console import Console

from memcli import catalog
from memcli.errors import UsageError
from memcli.runtime import grammars
from memcli.runtime.constraints import GrammarError
from memcli.runtime.engine import EngineConfig
from memcli.runtime.events import CallFailed, Done, WriteDone
from memcli.runtime.loader import open_engine
from memcli.runtime.remote import CHATML, ServerError
from memcli.store.core import TripleStore
from tests.cli_helpers import run
from tests.remote_fakes import FakeServer, Reply

READ_BODY = ["Lake Geneva", ">>country", ">>)-->"]


@pytest.fixture
def store(tmp_path):
    with TripleStore(tmp_path / "m.db") as s:
        s.add("Lake Geneva", "country", "France")
        s.add("Rihanna", "record label", "Def Jam")
        yield s


@pytest.fixture(autouse=True)
def chatml(monkeypatch):
    monkeypatch.setenv("MEMCLI_CHAT_TEMPLATE", "chatml")
    monkeypatch.delenv("MEMCLI_ENGINE", raising=False)
    monkeypatch.delenv("MEMCLI_ENGINE_TOKENIZER", raising=False)
    monkeypatch.delenv("MEMCLI_ENGINE_CONSTRAINT", raising=False)


def _grammar(body: dict) -> str | None:
    if "grammar" in body:
        return body["grammar"]
    if "structured_outputs" in body:
        return body["structured_outputs"]["grammar"]
    return body.get("ebnf")


def model_script(body: dict) -> Reply:
    """A model that reads Lake Geneva's country, then answers from the result."""
    prompt = body["prompt"]
    if prompt == "The letter after P is":  # the capability probe
        return Reply(["Q"] if _grammar(body) else [" Q, of course"])
    if _grammar(body) is not None:
        if prompt.endswith("({MEM_WRITE-->"):
            return Reply(["Lake Geneva>>country>>Switzerland", "})"])
        return Reply(READ_BODY)
    if prompt.endswith("France})"):
        return Reply([" It is", " in France."])
    return Reply(["Let me", " check", " (", "{", "MEM_READ(Lake"])


def answer(engine, question: str) -> list:
    return list(engine.answer([{"role": "user", "content": question}]))


def done_of(events: list) -> Done:
    return next(e for e in events if isinstance(e, Done))


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("vllm", "structured_outputs"),
        ("sglang", "ebnf"),
        ("llama-server", "grammar"),
        ("llama-cpp-python", "grammar"),
    ],
)
def test_a_forced_read_and_its_resumption_have_the_servers_request_shapes(store, kind, field):
    with FakeServer(kind, model_script, chat_template=CHATML) as server:
        engine = open_engine(store, engine=server.url)
        events = answer(engine, "Which country is Lake Geneva in?")
        engine.close()
    done = done_of(events)
    assert done.text == "It is in France."
    assert done.raw == "({MEM_READ(Lake Geneva>>country>>)-->France}) It is in France."
    assert [r.results for r in done.reads] == [("France",)]
    assert all(r.path != "/v1/chat/completions" for r in server.requests)
    probe, read, resume = server.completions()
    assert field in probe and field in read and field not in resume
    grammar = _grammar(read)
    assert '"Lake Geneva"' in grammar and '"Rihanna"' not in grammar  # only what is named
    if field == "grammar" and kind != "vllm":
        grammars.validate_gbnf(grammar)
        assert grammar.startswith("root ::=")
    else:
        assert grammar.startswith("%llguidance {}\n")
        grammars.validate_lark(grammar)
    assert isinstance(read["prompt"], str)
    assert read["prompt"].startswith("<|im_start|>system\n")
    assert read["prompt"].endswith("<|im_start|>assistant\n({MEM_READ(")
    # The resumed prompt is the same prefix plus the body and the results.
    assert resume["prompt"] == read["prompt"] + "Lake Geneva>>country>>)-->France})"
    assert resume["stream"] is True and read["stream"] is True
    assert read["temperature"] == 0.0 and read["model"] == "test-model"
    if kind in ("llama-server", "llama-cpp-python"):
        assert read["repeat_penalty"] == 1.0
    if kind == "llama-server":
        assert read["cache_prompt"] is True


def test_the_model_opening_a_read_stops_the_stream_and_continues_under_a_grammar(store):
    with FakeServer("llama-server", model_script, chat_template=CHATML) as server:
        engine = open_engine(store, engine=server.url, config=EngineConfig(read_first=False))
        events = answer(engine, "Where is Lake Geneva?")
    done = done_of(events)
    assert done.raw == "Let me check ({MEM_READ(Lake Geneva>>country>>)-->France}) It is in France."
    free, read, resume = server.completions()[1:]
    assert "grammar" not in free
    assert read["prompt"] == free["prompt"] + "Let me check ({MEM_READ("
    assert resume["prompt"] == read["prompt"] + "Lake Geneva>>country>>)-->France})"


def test_a_read_that_finds_nothing_is_dropped_from_the_text(store):
    def script(body):
        if body["prompt"] == "The letter after P is":
            return Reply(["Q"])
        if _grammar(body) is not None:
            return Reply(["Lake Geneva", ">>capital of>>)-->"])
        return Reply([" I do not know."])

    with FakeServer("vllm", script) as server:
        engine = open_engine(store, engine=server.url)
        events = answer(engine, "Lake Geneva?")
    done = done_of(events)
    assert done.raw == " I do not know."
    assert [r.kept for r in done.reads] == [False]
    resume = server.completions()[-1]
    assert resume["prompt"].endswith("<|im_start|>assistant\n")


def test_a_write_is_constrained_to_spans_and_stored_as_one_batch(store):
    with FakeServer("vllm", model_script) as server:
        engine = open_engine(store, engine=server.url)
        events = list(engine.write("Lake Geneva lies in France and Switzerland.", source="test"))
    done = next(e for e in events if isinstance(e, WriteDone))
    assert [(t.subject, t.relation, t.object) for t in done.triples] == [
        ("Lake Geneva", "country", "Switzerland")
    ]
    assert [t.object for t in done.stored] == ["Switzerland"]
    assert store.lookup("Lake Geneva", "country", None)
    body = server.completions()[-1]
    grammar = body["structured_outputs"]["grammar"]
    grammars.validate_lark(grammar)
    assert '"Switzerland"' in grammar and '"Rihanna"' not in grammar
    assert body["prompt"].endswith("<|im_start|>assistant\n({MEM_WRITE-->")


def _bias_honouring_script(pieces: list[bytes], target: str):
    """A server that honours logit_bias (the probe included): inside a read it writes the
    longest allowed piece that continues `target`; after the read's results, " France."."""

    def script(body):
        prompt = body["prompt"]
        if prompt == "The letter after P is":  # the logit_bias probe
            if "logit_bias" in body:
                favoured = [int(t) for t, v in body["logit_bias"].items() if v > 0]
                return Reply([pieces[favoured[0]].decode()])
            return Reply([" Q, of course"])
        if "logit_bias" in body and "({MEM_READ(" in prompt:
            done = prompt[prompt.rindex("({MEM_READ(") + len("({MEM_READ(") :]
            rest = target[len(done) :].encode()
            bias = {int(k): v for k, v in body["logit_bias"].items()}
            allowed = [t for t, v in bias.items() if v > 0] or [
                t for t in range(len(pieces)) if t not in bias
            ]
            best = max(
                (t for t in allowed if pieces[t] and rest.startswith(pieces[t])),
                key=lambda t: len(pieces[t]),
            )
            return Reply([pieces[best].decode()])
        if prompt.endswith("France})"):
            return Reply([" France."])
        return Reply([" No."])

    return script


def test_client_side_masks_ask_one_token_at_a_time_and_check_the_answer(store, monkeypatch):
    from memcli.runtime.remote import LocalVocab

    bundled = catalog.bundled_model_path()
    vocab = LocalVocab(bundled)
    pieces = vocab.pieces()
    vocab.close()
    target = "Lake Geneva>>country>>)-->"

    script = _bias_honouring_script(pieces, target)

    monkeypatch.setenv("MEMCLI_ENGINE_TOKENIZER", str(bundled))
    with FakeServer("plain", script) as server:
        engine = open_engine(store, engine=server.url)
        assert engine.capabilities().constraint == "logit_bias"
        events = answer(engine, "Which country is Lake Geneva in?")
    done = done_of(events)
    assert done.raw == "({MEM_READ(Lake Geneva>>country>>)-->France}) France."
    steps = [b for b in server.completions() if "logit_bias" in b]
    assert steps and all(b["max_tokens"] == 1 for b in steps)
    assert not any("grammar" in b for b in server.completions())


def test_a_server_token_outside_the_mask_drops_the_call(store, monkeypatch):
    def script(body):
        if body["prompt"].endswith("({MEM_READ("):
            return Reply(["Paris"])  # ignores the biases
        return Reply([" Sorry."])

    monkeypatch.setenv("MEMCLI_ENGINE_TOKENIZER", str(catalog.bundled_model_path()))
    monkeypatch.setenv("MEMCLI_ENGINE_CONSTRAINT", "logit_bias")  # no probe: the server lies
    with FakeServer("plain", script) as server:
        engine = open_engine(store, engine=server.url)
        events = answer(engine, "Which country is Lake Geneva in?")
    failed = [e for e in events if isinstance(e, CallFailed)]
    assert failed and "not allowed" in failed[0].message
    assert done_of(events).raw == " Sorry."


def test_an_invalid_grammar_is_never_sent(store, monkeypatch):
    monkeypatch.setattr(grammars, "read_gbnf", lambda e, r: 'root ::= "unclosed\n')
    with FakeServer("llama-cpp-python", model_script) as server:
        engine = open_engine(store, engine=server.url)
        events = answer(engine, "Which country is Lake Geneva in?")
    failed = [e for e in events if isinstance(e, CallFailed)]
    assert failed and "cannot parse" in failed[0].message
    sent = [_grammar(b) for b in server.completions() if _grammar(b) is not None]
    assert sent == ['root ::= "Q"\n']  # the probe only


def test_grammar_literals_escape_what_names_may_hold():
    names = ['Say "hi"', "back\\slash", "Zürich", "São Paulo", "a;b"]
    grammars.validate_gbnf(grammars.read_gbnf(names, ["country"]))
    grammars.validate_gbnf(grammars.write_gbnf('He said "yes" in Zürich.', ["country"]))
    grammars.validate_lark(grammars.read_lark(names, ["country"], header=True))
    for broken in ('root ::= ( "a"\n', "root ::= missing\n", 'start ::= "a"\n'):
        with pytest.raises(GrammarError):
            grammars.validate_gbnf(broken)
    with pytest.raises(GrammarError):
        grammars.validate_lark("start: ( \n")


# -- errors --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_down_is_one_line(store):
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ServerError, match=r"^cannot reach the engine at http://127\.0\.0\.1:"):
        open_engine(store, engine=url)
    result = run("ask", "--engine", url, "Which country is Lake Geneva in?")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "cannot reach the engine" in result.stderr


def test_a_model_the_server_does_not_serve_is_refused(store):
    with (
        FakeServer("vllm", model_script) as server,
        pytest.raises(ServerError, match="serves test-model, not 'other'"),
    ):
        open_engine(store, engine=server.url, model="other")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(status=500), "HTTP 500 scripted failure"),
        (Reply(status=404), "HTTP 404 scripted failure"),
        (Reply(["Hel", "lo", " there"], cut=True), "cut the response off mid-stream"),
        (Reply(["late"], delay=1.5), "did not answer within 0.5 s"),
    ],
)
def test_server_failures_during_a_turn_are_one_line(store, reply, message):
    def script(body):
        if body["prompt"] == "The letter after P is":
            return Reply(["Q"])
        return reply

    with FakeServer("vllm", script) as server:
        engine = open_engine(store, engine=server.url, timeout=0.5)
        with pytest.raises(ServerError, match=message) as caught:
            answer(engine, "Hello there")
    assert "\n" not in str(caught.value)


def test_a_failed_remote_turn_is_rolled_back_and_the_repl_goes_on(store):
    from memcli.repl.conversation import Conversation
    from memcli.repl.engines import StaticEngines
    from memcli.repl.render import TurnView
    from memcli.repl.session import ChatSession

    calls = {"n": 0}

    def script(body):
        if body["prompt"] == "The letter after P is":
            return Reply(["Q"])
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(["Half an ans"], cut=True)
        if _grammar(body) is not None:
            return Reply(["Marie Curie>>place of birth>>Warsaw", "})"])
        return Reply([" Noted."])

    with FakeServer("vllm", script) as server:
        engine = open_engine(store, engine=server.url)
        buffer = io.StringIO()
        console = Console(file=buffer, width=100, color_system=None)
        conversation = Conversation(StaticEngines(engine), store, session_id="t")
        session = ChatSession(conversation, TurnView(console, console, wrap=False))
        before = store.count()
        code = session.run_lines(
            ["Marie Curie was born in Warsaw.", "Marie Curie was born in Warsaw."]
        )
    text = buffer.getvalue()
    assert code == 1  # one turn failed ...
    assert "cut the response off mid-stream" in text
    assert [t.status for t in conversation.turns] == ["failed", "done"]  # ... the next ran
    assert len(conversation.history) == 2  # only the turn that finished
    assert store.count() == before + 1  # and only its fact


# -- choosing an engine --------------------------------------------------------------------


def test_engine_resolution_flag_then_environment_then_saved(monkeypatch):
    assert catalog.resolve_engine(None).kind == "local"
    catalog.set_engine("http://127.0.0.1:9/v1/", "saved-model", template="chatml")
    spec = catalog.resolve_engine(None)
    assert (spec.kind, spec.url, spec.model) == ("openai", "http://127.0.0.1:9", "saved-model")
    assert catalog.configured_engine_settings() == {"template": "chatml"}
    monkeypatch.setenv("MEMCLI_ENGINE", "http://10.0.0.1:8000")
    assert catalog.resolve_engine(None, "m").url == "http://10.0.0.1:8000"
    assert catalog.resolve_engine("local").kind == "local"
    with pytest.raises(UsageError, match="give the server's address"):
        catalog.resolve_engine("ftp://x")
    with pytest.raises(UsageError, match="not a valid URL"):
        catalog.resolve_engine("http://host:99999")
    catalog.set_engine("local")
    monkeypatch.delenv("MEMCLI_ENGINE")
    assert catalog.resolve_engine(None).kind == "local"


def test_models_use_and_info_with_an_engine(store):
    with FakeServer("vllm", model_script) as server:
        result = run("models", "use", "--engine", server.url, "test-model")
        assert result.exit_code == 0, result.output
        assert "default engine" in result.stderr
        info = run("models", "info", "--engine", server.url)
        assert info.exit_code == 0, info.output
        assert "llguidance" in info.stdout and "vllm" in info.stdout
        assert "eval ppl" in info.stdout
    bad = run("models", "use", "--constraint", "gbnf", "x.gguf")
    assert bad.exit_code == 2 and "go with --engine" in bad.stderr


def test_eval_ppl_against_a_server_says_it_cannot_in_one_line(store):
    from pathlib import Path

    data = Path(__file__).parent / "fixtures" / "eval_docs.json"
    with FakeServer("vllm", model_script) as server:
        result = run("eval", "ppl", "--data", str(data), "--docs", "1", "--engine", server.url)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "eval ppl needs every token's log-probability" in result.stderr


def test_ask_and_ingest_run_on_a_server(tmp_path):
    db = tmp_path / "cli.db"
    text = tmp_path / "notes.txt"
    text.write_text("Lake Geneva lies in Switzerland.\nIt is big.\n", encoding="utf-8")
    with FakeServer("vllm", model_script) as server:
        ingested = run("ingest", str(text), "--engine", server.url, "--db", str(db))
        assert ingested.exit_code == 0, ingested.output
        assert "Lake Geneva: country: Switzerland" in ingested.stdout.replace(" >> ", ": ")
        asked = run(
            "ask", "--engine", server.url, "--db", str(db), "Which country is Lake Geneva in?"
        )
    assert asked.exit_code == 0, asked.output
    with TripleStore(db) as s:
        assert [t.object for t in s.find(subject="Lake Geneva")] == ["Switzerland"]
    writes = [b for b in server.completions() if b["prompt"].endswith("({MEM_WRITE-->")]
    assert len(writes) == 2  # one call per sentence
    assert "Facts read:" in asked.stdout and "Lake Geneva >> country >> Switzerland" in asked.stdout


def test_llguidance_on_llama_server_is_chosen_by_setting(store, monkeypatch):
    monkeypatch.setenv("MEMCLI_ENGINE_CONSTRAINT", "llguidance")
    with FakeServer("llama-server", model_script, chat_template=CHATML) as server:
        engine = open_engine(store, engine=server.url)
        done = done_of(answer(engine, "Which country is Lake Geneva in?"))
    assert engine.capabilities().constraint == "llguidance"
    assert done.reads[0].results == ("France",)
    read = next(b for b in server.completions() if "grammar" in b)
    assert read["grammar"].startswith("%llguidance {}\n")
    grammars.validate_lark(read["grammar"])


def test_without_any_constraint_a_call_is_checked_after_it_is_generated(store):
    def script(body):
        if body["prompt"].endswith("({MEM_READ("):
            assert body["stop"] == [")-->"]
            return Reply(["Lake Geneva>>country>>"])  # the stop string is cut off
        if body["prompt"].endswith("France})"):
            return Reply([" France."])
        return Reply([" Hm."])

    with FakeServer("plain", script) as server:
        engine = open_engine(store, engine=server.url)
        done = done_of(answer(engine, "Which country is Lake Geneva in?"))
    assert engine.capabilities().constraint == "none"
    assert engine.capabilities().notes
    assert done.raw == "({MEM_READ(Lake Geneva>>country>>)-->France}) France."


# -- llama-server slots ----------------------------------------------------------------


def test_llama_server_answers_and_writes_are_pinned_to_their_own_slots(store):
    from memcli.runtime.loader import writing_engine

    with FakeServer("llama-server", model_script, chat_template=CHATML, total_slots=2) as server:
        engine = open_engine(store, engine=server.url)
        writer = writing_engine(engine, store)
        assert writer is not engine
        answer(engine, "Which country is Lake Geneva in?")
        list(writer.write("Lake Geneva lies in Switzerland.", source="test"))
        writer.close()
        engine.close()
    bodies = server.completions()
    writes = [b for b in bodies if b["prompt"].endswith("({MEM_WRITE-->")]
    answers = [b for b in bodies if b not in writes]
    assert writes and all(b["id_slot"] == 1 for b in writes)
    assert answers and all(b["id_slot"] == 0 for b in answers)
    assert all(b["cache_prompt"] is True for b in bodies)
    assert engine.describe()["slot"].startswith("0 of 2")


def test_one_slot_is_shared_and_other_servers_get_no_slot(store, monkeypatch):
    from memcli.runtime.loader import writing_engine

    with FakeServer("llama-server", model_script, chat_template=CHATML) as server:
        engine = open_engine(store, engine=server.url)  # no total_slots, no /slots
        assert writing_engine(engine, store) is engine
        answer(engine, "Which country is Lake Geneva in?")
    assert all(b["id_slot"] == 0 for b in server.completions())
    assert any(r.path == "/slots" for r in server.requests)
    monkeypatch.setenv("MEMCLI_ENGINE_SLOT", "auto")
    with FakeServer("llama-server", model_script, chat_template=CHATML, total_slots=4) as server:
        engine = open_engine(store, engine=server.url)
        assert writing_engine(engine, store) is engine
        answer(engine, "Which country is Lake Geneva in?")
    assert not any("id_slot" in b for b in server.completions())
    monkeypatch.setenv("MEMCLI_ENGINE_SLOT", "7")
    with (
        FakeServer("llama-server", model_script, chat_template=CHATML, total_slots=4) as server,
        pytest.raises(UsageError, match="0 to 3"),
    ):
        open_engine(store, engine=server.url)
    monkeypatch.delenv("MEMCLI_ENGINE_SLOT")
    with FakeServer("vllm", model_script) as server:
        answer(open_engine(store, engine=server.url), "Which country is Lake Geneva in?")
    assert not any("id_slot" in b for b in server.completions())


# -- top-k logprobs, one token at a time -----------------------------------------------


def _logprobs_script(pieces: list[bytes], content_format: bool):
    """A server that ignores grammars and logit_bias but gives top log-probabilities;
    its model prefers a name the read may not use ("Paris")."""
    target = "Lake Geneva>>country>>)-->"

    def script(body):
        prompt = body["prompt"]
        if prompt == "The letter after P is":
            if body.get("logprobs"):
                return Reply([" Q"], top={" Q": -0.1, " R": -3.0}, content_format=content_format)
            return Reply([" Q, of course"])  # grammar and logit_bias ignored
        if "({MEM_READ(" in prompt and body.get("logprobs"):
            assert body["max_tokens"] == 1 and body["logprobs"] == 20
            done = prompt[prompt.rindex("({MEM_READ(") + len("({MEM_READ(") :]
            rest = target[len(done) :].encode()
            best = max((p for p in pieces if p and rest.startswith(p)), key=len)
            top = {"Paris": -0.05, best.decode(): -0.5}
            if not done:
                top = {"Lakeside": -0.1}  # not allowed; its allowed beginning is
            return Reply(["Paris"], top=top, content_format=content_format)
        if prompt == "fallback":
            return Reply(["zz"], top={"zz": -0.1, "cat": -2.0}, content_format=content_format)
        if prompt.endswith("France})"):
            return Reply([" France."])
        return Reply([" No."])

    return script


@pytest.mark.parametrize(("kind", "content_format"), [("plain", False), ("llama-server", True)])
def test_a_server_without_logit_bias_reads_through_top_logprobs(
    store, monkeypatch, kind, content_format
):
    import numpy as np

    from memcli.runtime.remote import LocalVocab, _Progress

    bundled = catalog.bundled_model_path()
    vocab = LocalVocab(bundled)
    pieces = vocab.pieces()
    vocab.close()
    monkeypatch.setenv("MEMCLI_ENGINE_TOKENIZER", str(bundled))
    script = _logprobs_script(pieces, content_format)
    with FakeServer(kind, script, chat_template=CHATML) as server:
        engine = open_engine(store, engine=server.url)
        caps = engine.capabilities()
        assert caps.constraint == "logprobs"
        assert any("ignored logit_bias" in n for n in caps.notes)
        done = done_of(answer(engine, "Which country is Lake Geneva in?"))
        # None of the top tokens allowed, none beginning with an allowed one: the
        # mask's first allowed token; the one allowed token among them: that one.
        (cat,), (dog,) = engine.vocab.tokenize("cat"), engine.vocab.tokenize("dog")
        allowed = np.zeros(engine.vocab.n_vocab, dtype=bool)
        allowed[[cat, dog]] = True
        progress = _Progress(0.0)
        ids = np.flatnonzero(allowed)
        assert engine._best_allowed(progress, "fallback", allowed, ids) == cat
        allowed[cat] = False
        assert engine._best_allowed(progress, "fallback", allowed, np.array([dog])) == dog
        info = run("models", "info", "--engine", server.url)
        engine.close()
    assert done.raw == "({MEM_READ(Lake Geneva>>country>>)-->France}) France."
    steps = [b for b in server.completions() if b.get("logprobs") and "({MEM_READ(" in b["prompt"]]
    assert steps and not any("logit_bias" in b for b in steps)
    assert info.exit_code == 0, info.output
    assert "logprobs" in info.stdout


# -- the tokenizer through the server ----------------------------------------------------


def test_without_the_gguf_here_masks_use_the_servers_tokenizer_and_cache_its_vocabulary(
    store, monkeypatch, tmp_path
):
    from memcli.runtime.remote import LocalVocab, ServerVocab

    monkeypatch.setenv("MEMCLI_CACHE", str(tmp_path / "cache"))
    local = LocalVocab(catalog.bundled_model_path())
    pieces = local.pieces()
    local.close()
    target = "Lake Geneva>>country>>)-->"

    script = _bias_honouring_script(pieces, target)  # ignores grammars

    with FakeServer("llama-server", script, chat_template=CHATML, vocab=pieces) as server:
        for attempt in range(2):
            before = len(server.requests)
            engine = open_engine(store, engine=server.url)
            assert isinstance(engine.vocab, ServerVocab)
            caps = engine.capabilities()
            assert (caps.constraint, caps.tokenizer) == ("logit_bias", "server")
            done = done_of(answer(engine, "Which country is Lake Geneva in?"))
            engine.close()
            assert done.raw == "({MEM_READ(Lake Geneva>>country>>)-->France}) France."
            sent = server.requests[before:]
            detokenized = [r for r in sent if r.path == "/detokenize"]
            if attempt == 0:  # the vocabulary read in batches of 4,096 ids ...
                assert len(detokenized) == -(-len(pieces) // 4096)
                cached = engine.vocab.cache_file()
                assert cached.is_file() and cached.is_relative_to(tmp_path / "cache")
                whole = [p for p in pieces if p and "\ufffd" not in p.decode("utf-8", "replace")]
                assert sum(1 for p in engine.vocab.pieces() if p) == len(whole)
            else:  # ... and then found in the cache
                assert not detokenized
            assert any(r.path == "/tokenize" for r in sent)


# -- the MCP server's memory_ingest on a server ------------------------------------------


def test_mcp_memory_ingest_writes_through_a_remote_engine(tmp_path):
    import asyncio

    from memcli.mcp.server import MemoryServer, ModelOptions

    db = tmp_path / "mcp.db"
    with FakeServer("vllm", model_script) as server:
        mcp = MemoryServer(db, model=ModelOptions(engine=server.url))
        try:
            answer = asyncio.run(
                mcp.ingest("Lake Geneva lies in Switzerland.", source="test", actor="mcp client")
            )
        finally:
            mcp.close()
    assert not answer.is_error
    result = answer.structured_content  # the tool's result, as the client receives it
    assert result["sentences"] == 1 and result["problems"] == []
    assert [(f["subject"], f["relation"], f["object"]) for f in result["stored"]] == [
        ("Lake Geneva", "country", "Switzerland")
    ]
    writes = [b for b in server.completions() if b["prompt"].endswith("({MEM_WRITE-->")]
    assert len(writes) == 1 and "structured_outputs" in writes[0]
    with TripleStore(db) as s:
        assert [t.object for t in s.find(subject="Lake Geneva")] == ["Switzerland"]
