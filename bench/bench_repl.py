"""The REPL's latencies and the read path's KV reuse, with the bundled model.

- Enter to the first streamed character, warm (goal < 300 ms), beside llama.cpp's own
  time to the first token of the same conversation through `create_completion`.
- Start-up of `memcli chat` to its prompt, model load included (goal < 2 s), beside a
  bare `Llama(model)` load in a fresh Python.
- Prompt tokens evaluated in a turn with a read: only the prompt, the read head and the
  inserted results (goal: exactly that), beside what re-evaluating the whole text after
  the read would cost.
- Generation speed with the shipped adapter against the base model (goal ≥ 0.9): folded
  into the weights as memcli loads it, and applied per token by llama.cpp for reference.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Row, row, speed_row

MESSAGE = "Which record label is Rihanna signed to?"


def _engine(store: Any, **kwargs: Any) -> Any:
    from memcli.runtime.loader import load_engine

    return load_engine(store, **kwargs)


def _raw_first_token(model: Path, prompt: str, other: str, repeats: int) -> float:
    """llama.cpp's own time to the first token of `prompt` through `create_completion`,
    warm as the REPL is: each try follows `other` (same system prompt, another message),
    so the cache holds the shared prefix only."""
    from llama_cpp import Llama

    llm = Llama(str(model), n_ctx=4096, n_threads=1, verbose=False)
    times = []
    for _ in range(repeats + 1):
        for text in (other, prompt):
            start = time.perf_counter()
            for _chunk in llm.create_completion(text, max_tokens=1, stream=True):
                break
            if text is prompt:
                times.append(time.perf_counter() - start)
    llm.close()
    return statistics.median(times[1:])


def _bare_load(model: Path) -> float:
    code = (
        "import time; t=time.perf_counter(); from llama_cpp import Llama; "
        f"Llama({str(model)!r}, n_ctx=4096, n_threads=1, verbose=False); "
        "print(time.perf_counter()-t)"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def _tokens_per_second(engine: Any, n: int) -> float:
    from memcli.runtime.events import Timing

    engine.config.max_tokens = n
    engine.config.read_first = False
    best = 0.0
    for _ in range(2):
        for event in engine.answer(
            [{"role": "user", "content": "Tell me about the sea."}], memory=False
        ):
            if isinstance(event, Timing):
                best = max(best, event.generated_tokens / max(event.seconds, 1e-9))
    return best


def run(quick: bool = False) -> list[Row]:
    from memcli.catalog import bundled_model_path
    from memcli.repl.measure import measure_first_char, measure_startup
    from memcli.runtime import prompts
    from memcli.runtime.events import Timing
    from memcli.runtime.loader import default_adapter
    from memcli.store.core import TripleStore

    repeats = 3 if quick else 5
    model = bundled_model_path()
    # Models with the adapter folded in are kept between runs (and seen by the chat
    # start-up measured below, so that it times a warm start, not the one-off merge).
    cache = Path(__file__).resolve().parent / "results" / "cache"
    os.environ.setdefault("MEMCLI_CACHE", str(cache))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        store = TripleStore(Path(scratch) / "m.db")
        store.add("Rihanna", "record label", "Def Jam")
        engine = _engine(store)

        first = measure_first_char(engine, MESSAGE, repeats=repeats)

        def render(message: str) -> str:
            return engine.backend.apply_chat_template(
                prompts.answer_messages(
                    [{"role": "user", "content": message}], few_shot=engine.config.few_shot
                )
            )

        chat_prompt = render(MESSAGE)
        raw = _raw_first_token(model, chat_prompt, render("Hello there, how are you?"), repeats)
        rows.append(
            row(
                "chat: Enter to first character, warm (baseline: llama.cpp's first token, "
                "same prompt, same cache state)",
                first * 1e3,
                raw * 1e3,
                "ms",
                ratio=raw / first,
                goal="ours < 300 ms",
                ok=first < 0.3,
            )
        )

        startup = measure_startup(env={"MEMCLI_HOME": scratch})["prompt_s"]
        bare = _bare_load(model)
        rows.append(
            row(
                "chat: start-up to prompt, model load included (baseline: bare "
                "Llama() load in a fresh Python)",
                startup,
                bare,
                "s",
                ratio=bare / startup,
                goal="ours < 2 s",
                ok=startup < 2.0,
            )
        )

        # KV reuse: a turn with a read evaluates the prompt, the head and the results.
        engine.backend.truncate(0)
        events = list(engine.answer([{"role": "user", "content": MESSAGE}]))
        timing = next(e for e in events if isinstance(e, Timing))
        done = events[-1]
        backend = engine.backend
        prompt_n = len(backend.tokenize(chat_prompt, special=True))
        inserted = len(backend.tokenize("({MEM_READ(")) + len(backend.tokenize("Def Jam})"))
        whole = prompt_n + len(backend.tokenize(done.raw))
        rows.append(
            row(
                "prompt tokens evaluated in a turn with a read (baseline: "
                "re-evaluating prompt + text after the read)",
                timing.prompt_tokens,
                whole,
                "tokens",
                ratio=whole / max(timing.prompt_tokens, 1),
                goal=f"= prompt + inserted ({prompt_n + inserted})",
                ok=timing.prompt_tokens <= prompt_n + inserted,
            )
        )

        adapter = default_adapter(model)
        if adapter is None:
            rows.append(
                row("generation with adapter vs base: skipped (no adapter shipped)", None, None, "")
            )
        else:
            n = 48 if quick else 96
            engines = {
                "base": _engine(store, no_adapter=True),
                "merged": _engine(store),
                "unmerged": _engine(store, merge=False),
            }
            speeds: dict[str, list[float]] = {name: [] for name in engines}
            for _ in range(3):  # interleaved, so that load changes hit all three alike
                for name, candidate in engines.items():
                    speeds[name].append(_tokens_per_second(candidate, n))
            base, merged, unmerged = (statistics.median(speeds[k]) for k in engines)
            rows.append(
                speed_row(
                    "generation with the memory adapter (folded in, Q8_0) vs base model (Q4_1)",
                    1 / merged,
                    1 / base,
                    "s/token",
                    min_ratio=0.9,
                )
            )
            rows.append(
                speed_row(
                    "generation with the adapter applied by llama.cpp per token "
                    "(load_engine(merge=False)) vs base model",
                    1 / unmerged,
                    1 / base,
                    "s/token",
                )
            )
        store.close()
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
