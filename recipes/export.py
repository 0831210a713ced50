"""Export a PEFT LoRA adapter (llama architecture) to llama.cpp's LoRA GGUF format.

The format is what llama.cpp's `convert_lora_to_gguf.py` writes and `Llama(...,
lora_path=...)` loads: `general.type = "adapter"`, `adapter.type = "lora"`,
`adapter.lora.alpha`, and per adapted weight `blk.{i}.{name}.weight.lora_a` (the PEFT
`lora_A`, rank x in) and `.lora_b` (`lora_B`, out x rank). llama.cpp scales the product
by alpha / rank, as PEFT does.

llama.cpp stores the llama q/k projections with their rows permuted (each head's two
rotary halves interleaved; `LlamaModel.permute` in `convert_hf_to_gguf.py`), and
transformers undoes that when it loads the GGUF. The adapter's output rows must follow
the base weights, so `lora_B` of q_proj / k_proj gets the same row permutation; `lora_A`
acts on the input side and is unchanged.

    python -m recipes.export recipes/work/adapter memcli/models/smollm2-135m-memllm-lora.gguf
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"layers\.(\d+)\.(.+)\.lora_([AB])(?:\.default)?\.weight$")


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order: `convert_hf_to_gguf.LlamaModel.permute`."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def lora_tensors(
    state: dict[str, np.ndarray], n_head: int, n_kv_head: int
) -> dict[str, np.ndarray]:
    """GGUF tensor name -> array (numpy shape: lora_a rank x in, lora_b out x rank)."""
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        match = _KEY.search(key)
        if match is None:
            raise ValueError(f"not a LoRA weight of a llama layer: {key}")
        layer, module, which = match.groups()
        if module not in GGUF_NAMES:
            raise ValueError(f"no llama.cpp tensor for {module}")
        array = np.asarray(value, dtype=np.float32)
        if which == "B" and module == "self_attn.q_proj":
            array = permute_rows(array, n_head)
        elif which == "B" and module == "self_attn.k_proj":
            array = permute_rows(array, n_kv_head)
        name = f"blk.{layer}.{GGUF_NAMES[module]}.weight.lora_{which.lower()}"
        out[name] = np.ascontiguousarray(array)
    return out


def write_adapter_gguf(
    path: Path,
    tensors: dict[str, np.ndarray],
    alpha: float,
    *,
    name: str = "memllm-lora",
    base_name: str | None = None,
    dtype: str = "f16",
    metadata: dict[str, str] | None = None,
) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("general.name", name)
    if base_name:
        writer.add_string("general.base_model.0.name", base_name)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for key, value in (metadata or {}).items():
        writer.add_string(key, value)
    np_type = np.float16 if dtype == "f16" else np.float32
    for tensor_name in sorted(tensors, key=_tensor_order):
        writer.add_tensor(tensor_name, tensors[tensor_name].astype(np_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _tensor_order(name: str) -> tuple[int, str]:
    layer = int(name.split(".")[1])
    return layer, name


def export(
    adapter_dir: Path,
    out: Path,
    *,
    dtype: str = "f16",
    base_config: dict | None = None,
    base: Path | None = None,
) -> Path:
    """PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`) -> GGUF.

    The head counts come from `base_config` (a transformers config dict) or, by default,
    from the metadata of the base GGUF `base` (default: the bundled model)."""
    from safetensors.numpy import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("use_rslora") or config.get("use_dora"):
        raise ValueError("only plain LoRA adapters are supported")
    state = load_file(str(adapter_dir / "adapter_model.safetensors"))
    n_head, n_kv_head = _head_counts(base_config, base)
    tensors = lora_tensors(state, n_head, n_kv_head)
    ranks = {t.shape[0] for k, t in tensors.items() if k.endswith("lora_a")}
    if ranks != {config["r"]}:
        raise ValueError(f"adapter ranks {ranks} differ from r={config['r']}")
    training = adapter_dir / "training.json"
    metadata = {}
    if training.exists():
        metadata["memcli.training"] = training.read_text()
    write_adapter_gguf(
        out,
        tensors,
        config["lora_alpha"],
        dtype=dtype,
        base_name="SmolLM2-135M-Instruct",
        metadata=metadata,
    )
    return out


def _head_counts(base_config: dict | None, base: Path | None) -> tuple[int, int]:
    if base_config is not None:
        heads = base_config["num_attention_heads"]
        return heads, base_config.get("num_key_value_heads") or heads
    import gguf

    from memcli.catalog import bundled_model_path

    reader = gguf.GGUFReader(str(base or bundled_model_path()))

    def value(key: str) -> int:
        field = reader.fields[key]
        return int(field.parts[field.data[0]][0])

    heads = value("llama.attention.head_count")
    return heads, value("llama.attention.head_count_kv")


def main() -> None:
    parser = argparse.ArgumentParser(description="PEFT LoRA folder -> llama.cpp LoRA GGUF")
    parser.add_argument("adapter", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dtype", choices=["f16", "f32"], default="f16")
    parser.add_argument(
        "--base", type=Path, default=None, help="the base GGUF (default: the bundled model)"
    )
    args = parser.parse_args()
    export(args.adapter, args.out, dtype=args.dtype, base=args.base)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()


# --- a base model GGUF from transformers weights (for verification and tests) ----------

_BASE_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def export_base_gguf(model, out: Path, tokenizer_gguf: Path | None = None) -> Path:  # type: ignore[no-untyped-def]
    """Write a transformers llama model (float32, tied embeddings) as an f32 GGUF that
    llama.cpp loads, with the tokenizer and chat template of `tokenizer_gguf` (default:
    the bundled model). Lets a test compare llama.cpp and transformers on the very same
    weights; the vocabulary size must match the tokenizer's."""
    import gguf

    if tokenizer_gguf is None:
        from memcli.catalog import bundled_model_path

        tokenizer_gguf = bundled_model_path()
    config = model.config
    heads = config.num_attention_heads
    kv_heads = config.num_key_value_heads or heads
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_string("general.name", "memcli-verification")
    writer.add_uint32("llama.block_count", config.num_hidden_layers)
    writer.add_uint32("llama.context_length", config.max_position_embeddings)
    writer.add_uint32("llama.embedding_length", config.hidden_size)
    writer.add_uint32("llama.feed_forward_length", config.intermediate_size)
    writer.add_uint32("llama.attention.head_count", heads)
    writer.add_uint32("llama.attention.head_count_kv", kv_heads)
    rope_theta = getattr(config, "rope_theta", None)
    if rope_theta is None:
        rope_theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    writer.add_float32("llama.rope.freq_base", float(rope_theta))
    writer.add_float32("llama.attention.layer_norm_rms_epsilon", float(config.rms_norm_eps))
    writer.add_uint32("llama.rope.dimension_count", config.hidden_size // heads)
    writer.add_uint32("llama.vocab_size", config.vocab_size)
    writer.add_uint32("general.file_type", 0)
    reader = gguf.GGUFReader(str(tokenizer_gguf))
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), field.types[0], sub)
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if not config.tie_word_embeddings:
        writer.add_tensor("output.weight", state["lm_head.weight"])
    for i in range(config.num_hidden_layers):
        for module, name in _BASE_NAMES.items():
            array = state[f"model.layers.{i}.{module}.weight"]
            if module == "self_attn.q_proj":
                array = permute_rows(array, heads)
            elif module == "self_attn.k_proj":
                array = permute_rows(array, kv_heads)
            writer.add_tensor(f"blk.{i}.{name}.weight", np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
