"""Train the joint MemLLM read/write LoRA adapter for the bundled SmolLM2-135M-Instruct.

The base weights are the bundled Q4_1 GGUF, dequantised by transformers: the adapter is
trained on exactly the weights llama.cpp runs it with. One adapter for write, read and
QA (MemLLM trained two): with one CPU-hour there is time for one run, llama.cpp then
loads one file, and the three tasks share their prompts' vocabulary.

Speed on CPU: bf16 autocast, logits only at the trained positions (the 49k-way output
layer is most of the cost otherwise), examples batched by length, 2 torch threads.

Resumable: a checkpoint (adapter, optimiser, position, elapsed time) is written every
`--save-every` steps to `<work>/checkpoint.pt`; a rerun with the same arguments continues
from it. `--minutes` is a total time budget (across resumes): when it is spent, the
adapter is saved and training stops. The learning rate decays linearly with the time
spent, so a budget-stopped run ends annealed.

    python -m recipes.train --minutes 75
    python -m recipes.export recipes/work/adapter memcli/models/smollm2-135m-memllm-lora.gguf
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

from recipes import data

WORK = Path(__file__).resolve().parent / "work"
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def log(msg: str, file=None) -> None:  # type: ignore[no-untyped-def]
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, file=sys.stderr, flush=True)
    if file is not None:
        file.write(line + "\n")
        file.flush()


def load_base(model_path: Path | None = None):  # type: ignore[no-untyped-def]
    """(model, tokenizer) from a GGUF file, dequantised to float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_path is None:
        from memcli.catalog import bundled_model_path

        model_path = bundled_model_path()
    folder, name = str(model_path.parent), model_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
    return model, tokenizer


def encode(example: data.Example, tokenizer) -> tuple[list[int], list[bool]]:  # type: ignore[no-untyped-def]
    """Token ids and, per token, whether it is trained. Each segment is tokenized on its
    own, as the runtime tokenizes the prompt, the forced heads and the results apart."""
    ids: list[int] = []
    trained: list[bool] = []
    for text, loss in example.segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        trained += [loss] * len(piece)
    return ids, trained


def make_batches(
    encoded: list[tuple[list[int], list[bool]]], max_tokens: int, max_batch: int, seed: int
) -> list[list[int]]:
    """Indices grouped by length (little padding), each batch at most `max_tokens` padded
    tokens; batch order shuffled."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        length = len(encoded[i][0])
        if current and ((len(current) + 1) * length > max_tokens or len(current) == max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    random.Random(seed).shuffle(batches)
    return batches


def epoch_examples(examples: list[data.Example], epoch: int) -> list[int]:
    """Epoch 0 sees everything; later epochs see every write and a quarter of the rest
    (writes are the hardest task; questions and reads are learned quickly)."""
    if epoch == 0:
        return list(range(len(examples)))
    return [i for i, e in enumerate(examples) if e.kind == "write" or i % 4 == epoch % 4]


def collate(items: list[tuple[list[int], list[bool]]], pad: int):  # type: ignore[no-untyped-def]
    import torch

    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    trained = torch.zeros((len(items), width), dtype=torch.bool)
    for row, (ids, mask) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        trained[row, : len(ids)] = torch.tensor(mask)
    return input_ids, attention, trained


def target_loss(model, input_ids, attention, trained):  # type: ignore[no-untyped-def]
    """Mean cross-entropy over the trained tokens, computing logits only there."""
    import torch.nn.functional as F

    inner = model.get_base_model()
    hidden = inner.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    select = trained[:, 1:]
    states = hidden[:, :-1][select]
    logits = inner.lm_head(states).float()
    return F.cross_entropy(logits, input_ids[:, 1:][select]), int(select.sum())


def add_lora(model, rank: int, alpha: int, dropout: float):  # type: ignore[no-untyped-def]
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=TARGET_MODULES,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def train(args: argparse.Namespace) -> Path:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    logfile = (work / "train.log").open("a", encoding="utf-8")
    log(f"args {vars(args)}", logfile)

    model, tokenizer = load_base(Path(args.model) if args.model else None)
    model = add_lora(model, args.rank, args.alpha, args.dropout)
    model.train()

    mix = data.Mix(
        qa_rate=args.qa_rate,
        absent_rate=args.absent_rate,
        reads_per_doc=args.reads_per_doc,
        max_context=args.max_context,
    )
    raw = data.load_documents(Path(args.data))
    examples = data.build_examples(raw, range(args.first_doc, args.last_doc), mix)
    if args.chat:  # conversational writes (recipes/chat_train.py), train split only
        from recipes import chat_train

        examples += chat_train.chat_examples(args.chat, args.seed, args.chatter)
    encoded = [encode(e, tokenizer) for e in examples]
    keep = [i for i, (ids, _) in enumerate(encoded) if len(ids) <= args.max_len]
    examples = [examples[i] for i in keep]
    encoded = [encoded[i] for i in keep]
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    log(
        f"examples {counts} tokens {sum(len(ids) for ids, _ in encoded)} "
        f"trained tokens {sum(sum(m) for _, m in encoded)} mix {asdict(mix)}",
        logfile,
    )

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    state = {"epoch": 0, "batch": 0, "step": 0, "elapsed": 0.0, "tokens": 0}
    checkpoint = work / "checkpoint.pt"
    if checkpoint.exists() and not args.fresh:
        saved = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(saved["lora"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        log(f"resumed from {checkpoint}: {state}", logfile)

    budget = args.minutes * 60.0

    def save() -> None:
        lora = {k: v for k, v in model.state_dict().items() if "lora_" in k}
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"lora": lora, "optimizer": optimizer.state_dict(), "state": state}, tmp)
        os.replace(tmp, checkpoint)

    started = time.perf_counter() - state["elapsed"]
    window_tokens, window_loss, window_steps, window_start = 0, 0.0, 0, time.perf_counter()
    out_of_time = False
    while state["epoch"] < args.epochs and not out_of_time:
        subset = epoch_examples(examples, state["epoch"])
        batches = make_batches(
            [encoded[i] for i in subset],
            args.batch_tokens,
            args.max_batch,
            args.seed + state["epoch"],
        )
        while state["batch"] < len(batches):
            elapsed = time.perf_counter() - started
            if elapsed >= budget:
                out_of_time = True
                break
            warm = min(1.0, (state["step"] + 1) / args.warmup)
            lr = args.lr * warm * max(0.05, 1.0 - elapsed / budget)
            for group in optimizer.param_groups:
                group["lr"] = lr
            items = [encoded[subset[i]] for i in batches[state["batch"]]]
            input_ids, attention, trained = collate(items, tokenizer.pad_token_id or 0)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss, n = target_loss(model, input_ids, attention, trained)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state["batch"] += 1
            state["step"] += 1
            tokens = int(attention.sum())
            state["tokens"] += tokens
            state["elapsed"] = time.perf_counter() - started
            window_tokens += tokens
            window_loss += float(loss.detach())
            window_steps += 1
            if state["step"] % args.log_every == 0:
                rate = window_tokens / (time.perf_counter() - window_start)
                log(
                    f"epoch {state['epoch']} batch {state['batch']}/{len(batches)} "
                    f"step {state['step']} loss {window_loss / window_steps:.4f} "
                    f"lr {lr:.2e} tok/s {rate:.0f} tokens {state['tokens']} "
                    f"elapsed {state['elapsed'] / 60:.1f}m",
                    logfile,
                )
                window_tokens, window_loss, window_steps = 0, 0.0, 0
                window_start = time.perf_counter()
            if state["step"] % args.save_every == 0:
                save()
        else:
            state["epoch"] += 1
            state["batch"] = 0
    save()
    out = work / "adapter"
    model.save_pretrained(out)
    summary = {**state, "out_of_time": out_of_time, "examples": counts, "args": vars(args)}
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    log(f"done {summary}", logfile)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(data.DEFAULT_DATA))
    p.add_argument("--model", default=None, help="base GGUF (default: the bundled one)")
    p.add_argument("--work", default=str(WORK))
    p.add_argument("--first-doc", type=int, default=data.TRAIN_DOCS.start)
    p.add_argument("--last-doc", type=int, default=data.TRAIN_DOCS.stop)
    p.add_argument("--minutes", type=float, default=75.0, help="total time budget")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch-tokens", type=int, default=2048)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=768)
    p.add_argument("--qa-rate", type=float, default=0.08)
    p.add_argument("--absent-rate", type=float, default=0.1)
    p.add_argument("--reads-per-doc", type=int, default=1)
    p.add_argument(
        "--chat",
        type=int,
        default=0,
        metavar="N",
        help="also train on the write calls of N conversations of the train split "
        "of recipes/chat_data.py (recipes/chat_train.py; 400 give ~1,400)",
    )
    p.add_argument(
        "--chatter",
        type=float,
        default=0.0,
        metavar="RATE",
        help="with --chat, sentences stating no fact a conversation, each an empty write "
        "(recipes/chat_train.CHATTER; 1.5: one, half of the time two)",
    )
    p.add_argument(
        "--max-context",
        type=int,
        default=None,
        help="characters of preceding text in write examples (default: as the runtime, up to 1500)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=2)
    p.add_argument("--save-every", type=int, default=10)
    p.add_argument("--no-bf16", dest="bf16", action="store_false")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    return p


def main() -> None:
    args = parser().parse_args()
    if not math.isfinite(args.minutes) or args.minutes <= 0:
        raise SystemExit("--minutes must be positive")
    train(args)


if __name__ == "__main__":
    main()
