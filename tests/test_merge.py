"""Folding the memory adapter into the model: same logits as llama.cpp applying it per
token, built once and reused, and clear errors for adapters that do not fit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from memcli.catalog import bundled_model_path, validate_gguf
from memcli.errors import ModelError
from memcli.runtime import merge
from memcli.runtime.loader import default_adapter, resolve_files

pytestmark = [pytest.mark.model]

PROMPT = (
    "<|im_start|>user\nWhat is the record label of Rihanna?<|im_end|>\n"
    "<|im_start|>assistant\n({MEM_READ(Rihanna>>record label>>)-->Def Jam})"
)


@pytest.fixture(scope="module")
def files() -> tuple[Path, Path]:
    base = bundled_model_path()
    adapter = default_adapter(base)
    if adapter is None:
        pytest.skip("no adapter shipped in memcli/models/")
    return base, adapter


def _logits(model: Path, lora: Path | None = None) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(
        str(model),
        lora_path=str(lora) if lora else None,
        n_ctx=256,
        n_threads=1,
        verbose=False,
        logits_all=True,
    )
    tokens = llm.tokenize(PROMPT.encode(), special=True)
    llm.eval(tokens)
    scores = np.array(llm.scores[: len(tokens)])
    llm.close()
    return scores


def test_merged_model_matches_the_adapter_applied_per_token(files, merge_cache) -> None:  # type: ignore[no-untyped-def]
    base, adapter = files
    merged = merge.merged_model(base, adapter, merge_cache)
    plain, applied, folded = _logits(base), _logits(base, adapter), _logits(merged)
    effect = np.abs(applied - plain).mean()
    error = np.abs(folded - applied).mean()
    assert effect > 0.5, "the adapter should change the logits"
    # Q8_0 rounding of the folded weights costs a little; a wrong layout or scale
    # gives an error as large as the effect itself.
    assert error < 0.2 * effect
    assert np.corrcoef((applied - plain).ravel(), (folded - plain).ravel())[0, 1] > 0.98
    assert (applied.argmax(1) == folded.argmax(1)).mean() > 0.9


def test_merged_model_is_built_once_and_reused(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base, adapter = files
    tmp_path = tmp_path / "cache"
    told: list[str] = []
    first = merge.merged_model(base, adapter, tmp_path, told.append)
    stamp = first.stat().st_mtime_ns
    again = merge.merged_model(base, adapter, tmp_path, told.append)
    assert again == first and first.stat().st_mtime_ns == stamp
    assert len(told) == 1 and "once" in told[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no .part left
    validate_gguf(first)

    # A damaged file in the cache is noticed and built again.
    with first.open("r+b") as fh:
        fh.truncate(first.stat().st_size // 2)
    rebuilt = merge.merged_model(base, adapter, tmp_path, told.append)
    assert rebuilt == first and len(told) == 2
    validate_gguf(rebuilt)


def test_another_adapter_gets_another_file(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base, adapter = files
    copy = tmp_path / "copy.gguf"
    data = bytearray(adapter.read_bytes())
    copy.write_bytes(bytes(data))
    assert merge.cache_key(base, copy) == merge.cache_key(base, adapter)
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert merge.cache_key(base, copy) != merge.cache_key(base, adapter)


def test_a_model_is_not_an_adapter(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base, _ = files
    with pytest.raises(ModelError, match="not a LoRA adapter"):
        merge.merged_model(base, base, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())


def _write_lora(path: Path, tensors: dict[str, np.ndarray], arch: str = "llama") -> None:
    from gguf import GGUFWriter

    writer = GGUFWriter(path, arch=arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 8.0)
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize(
    ("tensors", "arch", "message"),
    [
        (  # rows of B do not fit attn_k (192 x 576)
            {
                "blk.0.attn_k.weight.lora_a": np.zeros((4, 576), np.float32),
                "blk.0.attn_k.weight.lora_b": np.zeros((100, 4), np.float32),
            },
            "llama",
            "do not fit",
        ),
        (
            {
                "blk.99.attn_k.weight.lora_a": np.zeros((4, 576), np.float32),
                "blk.99.attn_k.weight.lora_b": np.zeros((192, 4), np.float32),
            },
            "llama",
            "no matching weight",
        ),
        (
            {"blk.0.attn_k.weight.lora_a": np.zeros((4, 576), np.float32)},
            "llama",
            "no matching weight",
        ),
        ({"blk.0.attn_k.weight": np.zeros((4, 4), np.float32)}, "llama", "unexpected tensor"),
        ({}, "qwen2", "adapter for 'qwen2'"),
    ],
)
def test_adapters_that_do_not_fit_are_refused(files, tmp_path, tensors, arch, message) -> None:  # type: ignore[no-untyped-def]
    base, _ = files
    bad = tmp_path / "bad.gguf"
    _write_lora(bad, tensors, arch)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=message):
        merge.merged_model(base, bad, cache)
    assert not any(cache.iterdir())


def test_loader_folds_the_shipped_adapter_by_default(files, merge_cache) -> None:  # type: ignore[no-untyped-def]
    base, adapter = files
    files = resolve_files()
    assert files.base == base and files.adapter == adapter and files.lora is None
    assert files.model.parent == Path(os.environ["MEMCLI_CACHE"]) == merge_cache
    assert files.model.name.startswith(f"{base.stem}+{adapter.stem}-")
    assert files.label == f"{base.stem} +adapter"

    files = resolve_files(merge=False)
    assert (files.model, files.lora) == (base, adapter)
    files = resolve_files(no_adapter=True)
    assert (files.model, files.lora, files.adapter, files.label) == (base, None, None, base.stem)
