"""recipes/export.py: a PEFT LoRA exported to GGUF gives, in llama.cpp, the logits that
transformers + peft give (q/k permutation, shapes, names, alpha scaling).

Needs the `train` extra (torch, transformers, peft, gguf); skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")
pytest.importorskip("transformers", reason="needs the train extra (transformers)")
pytest.importorskip("peft", reason="needs the train extra (peft)")
pytest.importorskip("gguf", reason="needs the train extra (gguf)")
pytest.importorskip("llama_cpp")

from recipes import export  # noqa: E402

VOCAB = 49152  # the bundled tokenizer's; the exported base reuses it


def tiny_llama(seed: int = 0):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )
    model = LlamaForCausalLM(config).float().eval()
    return model


def random_lora(model, rank: int = 4, alpha: int = 8, scale: float = 3.0, seed: int = 0):  # type: ignore[no-untyped-def]
    from peft import LoraConfig, get_peft_model

    from recipes.train import TARGET_MODULES

    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=TARGET_MODULES,
        lora_dropout=0.0,
        init_lora_weights=False,
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # make the adapter's effect large enough to see
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(scale)
    return peft_model.eval()


def llama_logits(model_path: Path, tokens: list[int], lora: Path | None = None) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(model_path),
        lora_path=str(lora) if lora else None,
        n_ctx=256,
        logits_all=True,
        n_threads=2,
        verbose=False,
    )
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def hf_logits(model, tokens: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].float().numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("lora")
    model = tiny_llama()
    base = export.export_base_gguf(model, folder / "base.gguf")
    peft_model = random_lora(model)
    peft_model.save_pretrained(folder / "adapter")
    lora32 = export.export(
        folder / "adapter",
        folder / "lora-f32.gguf",
        dtype="f32",
        base_config=model.config.to_dict(),
    )
    lora16 = export.export(
        folder / "adapter",
        folder / "lora-f16.gguf",
        dtype="f16",
        base_config=model.config.to_dict(),
    )
    return peft_model, base, lora32, lora16, folder / "adapter"


TOKENS = [1, 9690, 198, 6004, 2, 28, 339, 1700, 45, 3400, 216, 5, 17, 100, 2000, 33]


def test_base_gguf_matches_transformers(exported) -> None:  # type: ignore[no-untyped-def]
    peft_model, base, *_ = exported
    with peft_model.disable_adapter():
        expected = hf_logits(peft_model, TOKENS)
    got = llama_logits(base, TOKENS)
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=0)


def test_adapter_gguf_matches_peft(exported) -> None:  # type: ignore[no-untyped-def]
    peft_model, base, lora32, lora16, _ = exported
    expected = hf_logits(peft_model, TOKENS)
    with peft_model.disable_adapter():
        plain = hf_logits(peft_model, TOKENS)
    effect = np.abs(expected - plain).max()
    assert effect > 0.1, "the adapter should change the logits"
    # llama.cpp computes the LoRA product in its own precision: compare the error with
    # the size of the adapter's effect (a wrong permutation or scale gives ~100%).
    for lora in (lora32, lora16):
        error = np.abs(llama_logits(base, TOKENS, lora) - expected).max()
        assert error < 0.05 * effect, (error, effect)


def test_unpermuted_export_would_fail(exported, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Control: without the q/k row permutation llama.cpp's logits are clearly off."""
    peft_model, base, *_, adapter = exported
    monkeypatch.setattr(export, "permute_rows", lambda weights, n_head: weights)
    wrong = export.export(
        adapter, tmp_path / "wrong.gguf", dtype="f32", base_config=peft_model.config.to_dict()
    )
    expected = hf_logits(peft_model, TOKENS)
    with peft_model.disable_adapter():
        effect = np.abs(expected - hf_logits(peft_model, TOKENS)).max()
    error = np.abs(llama_logits(base, TOKENS, wrong) - expected).max()
    assert error > 0.1 * effect


def test_adapter_metadata(exported) -> None:  # type: ignore[no-untyped-def]
    import gguf

    _, _, lora32, *_ = exported
    reader = gguf.GGUFReader(str(lora32))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(8.0)
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    # GGUF lists dimensions innermost first: lora_a is (in, rank), lora_b (rank, out)
    assert shapes["blk.0.attn_q.weight.lora_a"] == (64, 4)
    assert shapes["blk.0.attn_k.weight.lora_b"] == (4, 32)
    assert shapes["blk.1.ffn_down.weight.lora_a"] == (96, 4)
    assert len(shapes) == 2 * 7 * 2


def test_permute_rows_is_llama_cpp_order() -> None:
    rows = np.arange(8, dtype=np.float32).reshape(8, 1)
    # one head of 8 rows: halves [0..3] and [4..7] interleaved
    assert export.permute_rows(rows, 1)[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.mark.model
@pytest.mark.slow
def test_adapter_on_bundled_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same check on the real architecture (9 query heads, 3 key/value heads) and the
    bundled Q4_1 weights: llama.cpp quantises activations and transformers runs the
    dequantised weights in float32, so compare the adapter's *effect* (logits with it
    minus logits without it) in both."""
    from memcli.catalog import bundled_model_path
    from recipes.train import load_base

    try:
        path = bundled_model_path()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"bundled model not available: {exc}")
    model, tokenizer = load_base(path)
    model.eval()
    peft_model = random_lora(model, rank=4, alpha=8, scale=1.0)
    peft_model.save_pretrained(tmp_path / "adapter")
    lora = export.export(tmp_path / "adapter", tmp_path / "lora.gguf")
    tokens = tokenizer(
        "<|im_start|>user\nWhat is the country of Lake Geneva?<|im_end|>\n<|im_start|>assistant\n",
        add_special_tokens=False,
    )["input_ids"]
    with_hf = hf_logits(peft_model, tokens)
    with peft_model.disable_adapter():
        without_hf = hf_logits(peft_model, tokens)
    effect_hf = with_hf - without_hf
    effect_cpp = llama_logits(path, tokens, lora) - llama_logits(path, tokens)
    assert np.abs(effect_hf).max() > 0.5
    correlation = np.corrcoef(effect_hf.ravel(), effect_cpp.ravel())[0, 1]
    relative = np.linalg.norm(effect_cpp - effect_hf) / np.linalg.norm(effect_hf)
    assert correlation > 0.95 and relative < 0.3, (correlation, relative)
