"""The measurement behind memcli's default thread count (memcli/runtime/threads.py):
tokens/s at 1 and 2 threads, quiet and with a busy-looping process beside us.

    python -m bench.measure_threads

Not one of `make bench`'s rows (it loads the model eight times); rerun it when the rule
in memcli/runtime/threads.py is in doubt, and update the table below.

Measured 2026-11-27 on this project's 2-core build machine: SmolLM2-135M-Instruct Q4_1,
greedy, 128 tokens after a ~180-token prompt, median of 3; "busy" = another process
running `while True: pass`. Two runs, the second while other jobs were also using the
machine:

    threads  busy   generation tok/s     prompt tok/s
    1        no      81.0 /  75.2        176.9 / 167.0
    2        no     120.3 /  84.9        341.3 / 307.4
    1        yes     79.3 /  64.0        172.0 / 153.3
    2        yes     21.4 /  20.0         78.1 /  46.7

Every core wins by up to 1.5x on a quiet machine and loses 4-6x as soon as one other
process wants a core: llama.cpp's threads wait for each other at every layer, so one
descheduled thread stalls them all. Hence the rule: half the cores (at least 1, at most
4; small models gain little beyond that), 1 thread on this machine. Only the 2-core case
was measured.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROMPT = (
    "The history of the city begins with a small settlement on the river. Over the "
    "centuries it grew into a trading town, then a regional capital with a university, "
    "a cathedral and a busy port. "
) * 4


def generation_speed(backend: Any, n_tokens: int = 128) -> dict[str, float]:
    """Prompt and greedy generation tokens/s through `backend` (cache cleared first)."""
    backend.truncate(0)
    prompt = backend.tokenize(PROMPT)
    start = time.perf_counter()
    backend.eval(prompt)
    prompt_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n_tokens):
        backend.eval([backend.sample()])
    gen_s = time.perf_counter() - start
    return {"prompt_tok_s": len(prompt) / prompt_s, "gen_tok_s": n_tokens / gen_s}


def measure(model_path: str | Path, n_tokens: int = 128, repeats: int = 3) -> list[dict]:
    """Tokens/s at 1 and 2 threads, quiet and with a busy-looping process beside us."""
    from memcli.runtime.llama_backend import LlamaBackend

    rows = []
    for busy in (False, True):
        spinner = None
        if busy:
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            for threads in (1, 2):
                backend = LlamaBackend(model_path, n_ctx=1024, threads=threads)
                generation_speed(backend, 8)  # warm-up
                runs = [generation_speed(backend, n_tokens) for _ in range(repeats)]
                backend.close()
                rows.append(
                    {
                        "threads": threads,
                        "busy": busy,
                        "gen_tok_s": sorted(r["gen_tok_s"] for r in runs)[repeats // 2],
                        "prompt_tok_s": sorted(r["prompt_tok_s"] for r in runs)[repeats // 2],
                    }
                )
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    return rows


if __name__ == "__main__":
    from memcli.catalog import bundled_model_path

    for row in measure(bundled_model_path()):
        print(
            f"threads={row['threads']} busy={row['busy']!s:5} "
            f"generation {row['gen_tok_s']:6.1f} tok/s  prompt {row['prompt_tok_s']:7.1f} tok/s"
        )
