from __future__ import annotations

import numpy as np
import pytest

from memcli.errors import ModelError
from memcli.runtime.backend import Backend, pick_token, sync
from tests.fakes import FakeBackend


def generate(backend: Backend, limit: int = 200) -> list[int]:
    out: list[int] = []
    for _ in range(limit):
        token = backend.sample()
        if token in backend.end_tokens:
            break
        out.append(token)
        backend.eval([token])
    return out


# -- FakeBackend ----------------------------------------------------------------------------


def test_fake_backend_is_a_backend():
    assert isinstance(FakeBackend(), Backend)


def test_fake_backend_writes_its_script_after_each_prompt():
    b = FakeBackend("Paris is nice.")
    b.eval(b.tokenize(b.apply_chat_template([{"role": "user", "content": "hi"}]), special=True))
    assert b.detokenize(generate(b)) == "Paris is nice."
    b.eval(b.tokenize(" again"))
    assert b.detokenize(generate(b)) == "Paris is nice."


def test_fake_chat_template_is_chatml():
    text = FakeBackend().apply_chat_template([{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_fake_tokenize_special_only_when_asked():
    b = FakeBackend()
    assert b.tokenize("<|im_end|>", special=True) == [b.eos_token]
    assert b.eos_token not in b.tokenize("<|im_end|>")


def test_stats_count_prompt_and_generated_separately():
    b = FakeBackend("abc")
    prompt = b.tokenize("hello")
    b.eval(prompt)
    generated = generate(b)
    assert b.stats.prompt_tokens == len(prompt)
    assert b.stats.generated_tokens == len(generated) + 1  # + the end token
    inserted = b.tokenize("-->x})")
    b.eval(inserted)
    assert b.stats.prompt_tokens == len(prompt) + len(inserted)


def test_truncate_and_sync_keep_the_common_prefix():
    b = FakeBackend()
    first = b.tokenize("the cat sat")
    b.eval(first)
    second = b.tokenize("the cat ran away")
    evaluated = sync(b, second)
    assert b.tokens == second
    assert evaluated == len(second) - len(b.tokenize("the cat "))
    assert sync(b, second) == 1  # identical: only the last token again, for fresh logits


def test_pick_token_greedy_masked_and_seeded():
    logits = np.array([0.0, 3.0, 1.0, 2.0], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert pick_token(logits, None, 0.0, 1.0, rng) == 1
    mask = np.array([True, False, False, True])
    assert pick_token(logits, mask, 0.0, 1.0, rng) == 3
    draws = [pick_token(logits, mask, 1.0, 1.0, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(draws)) == 1 and draws[0] in (0, 3)
    assert pick_token(logits, None, 5.0, 0.01, rng) == 1  # top_p keeps only the best
    with pytest.raises(ValueError):
        pick_token(logits, np.zeros(4, bool), 0.0, 1.0, rng)


# -- LlamaBackend with the bundled model ------------------------------------------------------


@pytest.fixture(scope="module")
def llama():
    from memcli.runtime.llama_backend import LlamaBackend, bundled_model_path

    try:
        path = bundled_model_path()
    except ModelError as e:
        pytest.skip(str(e))
    backend = LlamaBackend(path, n_ctx=1024, threads=1)
    yield backend
    backend.close()


def test_missing_model_is_a_model_error(tmp_path):
    from memcli.runtime.llama_backend import LlamaBackend

    with pytest.raises(ModelError):
        LlamaBackend(tmp_path / "nope.gguf")


@pytest.mark.model
def test_llama_is_a_backend_with_chatml_template(llama):
    assert isinstance(llama, Backend)
    prompt = llama.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    tokens = llama.tokenize(prompt, special=True)
    assert llama.eos_token in tokens  # <|im_end|> became one special token
    assert llama.eos_token in llama.end_tokens
    assert llama.detokenize(llama.tokenize("Lake Geneva>>country>>")) == "Lake Geneva>>country>>"
    assert b"".join(llama.token_bytes(t) for t in llama.tokenize("héllo")) == "héllo".encode()


@pytest.mark.model
def test_llama_greedy_matches_create_completion(llama):
    prompt = llama.apply_chat_template([{"role": "user", "content": "Name a city in France."}])
    llama.truncate(0)
    llama.eval(llama.tokenize(prompt, special=True))
    ours = llama.detokenize(generate(llama, 24))
    llama.truncate(0)
    raw = llama._llm.create_completion(prompt, max_tokens=24, temperature=0.0)
    llama.truncate(0)
    assert raw["choices"][0]["text"] == ours


@pytest.mark.model
def test_llama_insert_evaluates_only_new_tokens(llama):
    llama.truncate(0)
    prompt = llama.tokenize(
        llama.apply_chat_template([{"role": "user", "content": "Who is Rihanna?"}]), special=True
    )
    llama.eval(prompt)
    llama.eval([llama.sample()])
    before = llama.stats.prompt_tokens, llama.n_past
    inserted = llama.tokenize("Def Jam;Rihanna})")
    llama.eval(inserted)
    assert llama.stats.prompt_tokens - before[0] == len(inserted)
    assert llama.n_past == before[1] + len(inserted)
    assert llama.tokens[: len(prompt)] == prompt


@pytest.mark.model
def test_llama_truncate_rolls_back_exactly(llama):
    llama.truncate(0)
    base = llama.tokenize("The capital of France is")
    llama.eval(base)
    expected = llama.logits()
    llama.eval(llama.tokenize(" a city with many museums"))
    llama.truncate(len(base))
    assert llama.n_past == len(base)
    np.testing.assert_allclose(llama.logits(), expected, rtol=1e-3, atol=1e-3)


def test_default_threads_honours_env(monkeypatch):
    from memcli.runtime.threads import MAX_DEFAULT_THREADS, default_threads

    monkeypatch.delenv("MEMCLI_THREADS", raising=False)
    assert 1 <= default_threads() <= MAX_DEFAULT_THREADS
    monkeypatch.setenv("MEMCLI_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("MEMCLI_THREADS", "lots")
    assert 1 <= default_threads() <= MAX_DEFAULT_THREADS
