"""Decoding benchmarks: our generation loop, constrained memory commands, threads.

`run(quick)` returns rows {"name", "ours", "baseline", "unit", "ratio", "goal"}; `goal`
says what `ratio` (or `ours`, where there is no baseline) should be. Timings use the
bundled SmolLM2-135M-Instruct Q4_1 on the CPU with the default thread count; each figure
is the best of a few interleaved runs, since other processes share the machine.

    python -m bench.bench_decoding [--quick]
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from typing import Any

import numpy as np

from memcli.runtime.backend import Backend
from memcli.runtime.constraints import ConstrainedDecoder

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
READ_QUESTION = [{"role": "user", "content": "Which record label is Rihanna signed to?"}]
SYLLABLES = [
    "ka",
    "ri",
    "to",
    "man",
    "del",
    "sen",
    "vor",
    "lin",
    "qu",
    "ex",
    "ber",
    "ton",
    "is",
    "ola",
    "mi",
    "ra",
    "gu",
    "sta",
    "pe",
    "no",
    "fa",
    "zo",
]
RELATIONS = ["record label", "performer", "country", "date of birth", "member of", "owned by"]


def row(name: str, ours: float, baseline: float | None, unit: str, goal: str) -> dict[str, Any]:
    ratio = ours / baseline if baseline else None
    return {
        "name": name,
        "ours": ours,
        "baseline": baseline,
        "unit": unit,
        "ratio": ratio,
        "goal": goal,
    }


def entity_names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    names: set[str] = {"Rihanna", "Def Jam Recordings", "Barbados"}
    while len(names) < n:
        words = range(rng.randint(1, 3))
        names.add(
            " ".join(
                "".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))).capitalize() for _ in words
            )
        )
    return sorted(names)


def free_generation(backend: Backend, prompt: list[int], n: int) -> float:
    """Tokens/s of greedy generation, with all but the last prompt token already cached."""
    backend.truncate(0)
    backend.eval(prompt[:-1])
    start = time.perf_counter()
    backend.eval(prompt[-1:])
    count = 0
    for _ in range(n):
        token = backend.sample()
        count += 1
        if token in backend.end_tokens:
            break
        backend.eval([token])
    return count / (time.perf_counter() - start)


def raw_completion(backend: Any, prompt: list[int], n: int) -> float:
    """The same through `Llama.create_completion`, which reuses the cached prefix."""
    backend.truncate(0)
    backend.eval(prompt[:-1])
    start = time.perf_counter()
    out = backend._llm.create_completion(prompt, max_tokens=n, temperature=0.0)
    elapsed = time.perf_counter() - start
    backend.truncate(0)
    return out["usage"]["completion_tokens"] / elapsed


def constrained_reads(
    backend: Backend, decoder: ConstrainedDecoder, entities: list[str], rounds: int
) -> tuple[float, list[float]]:
    """Tokens/s inside MEM_READ bodies, and every mask time (s); the prompt is cached."""
    backend.truncate(0)
    backend.eval(backend.tokenize(backend.apply_chat_template(READ_QUESTION), special=True))
    backend.eval(backend.tokenize("({MEM_READ("))
    base = backend.n_past
    decoder.start_read(entities, RELATIONS, version=len(entities))  # compile outside timing
    tokens, masks = 0, []
    start = time.perf_counter()
    for r in range(rounds):
        backend.truncate(base)
        cmd = decoder.start_read(entities, RELATIONS, version=len(entities))
        temperature = 0.0 if r == 0 else 0.8  # vary the calls
        while not decoder.is_done(cmd):
            t = time.perf_counter()
            allowed = decoder.mask(cmd)
            masks.append(time.perf_counter() - t)
            token = backend.sample(allowed, temperature=temperature)
            decoder.advance(cmd, token)
            backend.eval([token])
            tokens += 1
    return tokens / (time.perf_counter() - start), masks


GBNF_SCRIPT = r"""
import json, sys, time
import llama_cpp
from llama_cpp.llama_grammar import LlamaGrammar
path, prompt, names, rels, n = json.loads(sys.stdin.read())
lit = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
gbnf = ('root ::= query (";" query)? (";" query)? ")-->"\n'
        'query ::= entity ">>" rel ">>" | ">>" rel ">>" entity\n'
        'entity ::= ' + " | ".join(map(lit, names)) + "\n"
        'rel ::= ' + " | ".join(map(lit, rels)) + "\n")
llm = llama_cpp.Llama(path, n_ctx=1024, n_threads=n, verbose=False)
grammar = LlamaGrammar.from_string(gbnf, verbose=False)
llm.create_completion(prompt, max_tokens=1, temperature=0.0)  # cache the prompt
start = time.perf_counter()
out = llm.create_completion(prompt, max_tokens=48, temperature=0.0, grammar=grammar)
elapsed = time.perf_counter() - start
print(json.dumps({"tok_s": out["usage"]["completion_tokens"] / elapsed,
                  "text": out["choices"][0]["text"]}))
"""


def gbnf_reads(backend: Any, entities: list[str], timeout: float) -> float | None:
    """llama.cpp's own grammar sampler on the same read, in a subprocess (it can crash)."""
    prompt = backend.apply_chat_template(READ_QUESTION) + "({MEM_READ("
    payload = json.dumps([str(backend.model_path), prompt, entities, RELATIONS, backend.threads])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", GBNF_SCRIPT],
            input=payload,
            text=True,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["tok_s"])


def run(quick: bool = False) -> list[dict[str, Any]]:
    from memcli.runtime.llama_backend import LlamaBackend, bundled_model_path

    n_gen, repeats = (64, 3) if quick else (128, 5)
    n_entities = 100_000
    backend = LlamaBackend(bundled_model_path(), n_ctx=2048)
    prompt = backend.tokenize(backend.apply_chat_template(PROMPT), special=True)
    rows = []

    free_generation(backend, prompt, 8)  # warm-up
    ours, raw = [], []
    for _ in range(repeats):
        ours.append(free_generation(backend, prompt, n_gen))
        raw.append(raw_completion(backend, prompt, n_gen))
    free = max(ours)
    rows.append(
        row(
            f"free generation, {n_gen} tokens, {backend.threads} thread(s): "
            "our loop vs create_completion",
            free,
            max(raw),
            "tok/s",
            "ratio >= 0.95",
        )
    )

    decoder = ConstrainedDecoder.for_backend(backend)
    entities = entity_names(n_entities)
    start = time.perf_counter()
    decoder.start_read(entities, RELATIONS)
    build = time.perf_counter() - start
    start = time.perf_counter()
    decoder.start_read(entities, RELATIONS)
    cached = time.perf_counter() - start
    rows.append(
        row(
            f"read grammar build, {n_entities:,} entities",
            build,
            None,
            "s",
            "once per memory version; < 2 s",
        )
    )
    rows.append(
        row(
            f"read grammar start when cached (names hashed), {n_entities:,} entities",
            cached * 1e3,
            None,
            "ms",
            "< 20 ms",
        )
    )

    rounds = 4 if quick else 10
    runs = [constrained_reads(backend, decoder, entities, rounds) for _ in range(2)]
    constrained = max(r[0] for r in runs)
    masks = np.array([m for r in runs for m in r[1]]) * 1e3
    rows.append(
        row(
            f"tokens/s inside MEM_READ ({n_entities:,} entities) vs free generation",
            constrained,
            free,
            "tok/s",
            "ratio >= 0.9",
        )
    )
    token_ms = 1e3 / free
    for q in (50, 99):
        rows.append(
            row(
                f"mask time p{q} ({n_entities:,} entities) vs one free token",
                float(np.percentile(masks, q)),
                token_ms,
                "ms",
                "ratio <= 0.1",
            )
        )

    n_gbnf = 1_000 if quick else 10_000
    small = entity_names(n_gbnf)
    ours_small = max(constrained_reads(backend, decoder, small, rounds)[0] for _ in range(2))
    theirs = gbnf_reads(backend, small, timeout=60 if quick else 240)
    rows.append(
        row(
            f"tokens/s inside MEM_READ ({n_gbnf:,} entities): llguidance vs llama.cpp GBNF",
            ours_small,
            theirs,
            "tok/s",
            "ratio > 1 (baseline None: GBNF timed out or crashed)",
        )
    )

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = max(free_generation(backend, prompt, n_gen) for _ in range(max(2, repeats // 2)))
    finally:
        spinner.kill()
        spinner.wait()
    rows.append(
        row(
            f"free generation with another process busy vs quiet ({backend.threads} thread(s))",
            busy,
            free,
            "tok/s",
            "ratio >= 0.5",
        )
    )
    backend.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for r in run(quick="--quick" in args):
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        base = f"{r['baseline']:.3g}" if r["baseline"] is not None else "-"
        print(
            f"{r['name']}\n    ours {r['ours']:.3g} {r['unit']}  baseline {base}  "
            f"ratio {ratio}  goal: {r['goal']}"
        )


if __name__ == "__main__":
    main()
