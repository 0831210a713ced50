"""recipes/train.py end to end on a tiny random llama: train a few steps, stop and
resume from the checkpoint, export, and load the adapter in llama.cpp.

Needs the `train` extra (torch, transformers, peft, gguf) and the Re-DocRED file;
skipped without them.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")
pytest.importorskip("transformers", reason="needs the train extra (transformers)")
pytest.importorskip("peft", reason="needs the train extra (peft)")
pytest.importorskip("gguf", reason="needs the train extra (gguf)")
pytest.importorskip("llama_cpp")

from recipes import data, export, train  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.test_recipes_export import tiny_llama

    folder = tmp_path_factory.mktemp("tiny")
    return export.export_base_gguf(tiny_llama(seed=1), folder / "tiny.gguf")


def run(tmp_path, base, *extra: str):  # type: ignore[no-untyped-def]
    if not data.DEFAULT_DATA.exists():
        pytest.skip(f"no Re-DocRED data at {data.DEFAULT_DATA}")
    args = train.parser().parse_args(
        [
            "--model",
            str(base),
            "--work",
            str(tmp_path / "work"),
            "--first-doc",
            "0",
            "--last-doc",
            "2",
            "--rank",
            "4",
            "--alpha",
            "8",
            "--batch-tokens",
            "512",
            "--log-every",
            "1",
            "--save-every",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--qa-rate",
            "0.2",
            *extra,
        ]
    )
    return train.train(args)


def test_train_resume_export_load(tmp_path, tiny_base) -> None:  # type: ignore[no-untyped-def]
    out = run(tmp_path, tiny_base, "--epochs", "1", "--minutes", "5")
    first = json.loads((out / "training.json").read_text())
    assert first["epoch"] == 1 and first["step"] > 0 and not first["out_of_time"]
    log = (tmp_path / "work" / "train.log").read_text()
    assert "tok/s" in log and "loss" in log

    # a second run with more epochs continues from the checkpoint, not from step 0
    out = run(tmp_path, tiny_base, "--epochs", "2", "--minutes", "5")
    second = json.loads((out / "training.json").read_text())
    assert second["epoch"] == 2 and second["step"] > first["step"]
    assert "resumed from" in (tmp_path / "work" / "train.log").read_text()

    gguf_path = export.export(out, tmp_path / "tiny-lora.gguf", base=tiny_base)
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(tiny_base), lora_path=str(gguf_path), n_ctx=128, n_threads=1, verbose=False
    )
    tokens = llm.tokenize(b"<|im_start|>user\nHi<|im_end|>\n", special=True)
    llm.eval(tokens)
    assert len(llm.scores[len(tokens) - 1]) == export_vocab(tiny_base)


def test_time_budget_stops_and_saves(tmp_path, tiny_base) -> None:  # type: ignore[no-untyped-def]
    out = run(tmp_path, tiny_base, "--epochs", "50", "--minutes", "0.05")
    summary = json.loads((out / "training.json").read_text())
    assert summary["out_of_time"] and summary["epoch"] < 50
    assert (out / "adapter_model.safetensors").exists()


def export_vocab(path) -> int:  # type: ignore[no-untyped-def]
    import gguf

    field = gguf.GGUFReader(str(path)).fields["llama.vocab_size"]
    return int(field.contents())
