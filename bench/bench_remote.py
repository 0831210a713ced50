"""The remote engine on a real inference server: llama-cpp-python's OpenAI-compatible
server running the bundled base model (SmolLM2-135M; the memory adapter makes answers a
few tokens long, too short to time generation), one thread, on this machine.

- Free generation, tokens/s through the remote engine against the same server called
  directly (a bare streamed /v1/completions of the same prompt; goal ≥ 0.9).
- Tokens/s inside a read, through a server-side GBNF grammar and through client-side
  masks (one token per request, as logit biases), each against free generation.
- Enter to the first character of a turn that reads nothing, remote against in-process
  (same model, one thread each).
- Prompt tokens the server re-evaluates when generation resumes after a read (from its
  own log: "N prefix-match hit, remaining M prompt tokens"), against the tokens memcli
  inserted (the results and `})`; goal: no more than those and the read's last token).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import Row, row

FREE_MESSAGE = "Tell me a long story about a river and the people who live near it."
PLAIN_MESSAGE = "Tell me something about rivers."
READ_MESSAGE = "Which record label is Rihanna signed to?"
CANDIDATES = 100  # entities a read's grammar holds in the read rows
_REMAINING = re.compile(r"prefix-match hit, remaining (\d+) prompt tokens")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(model: Path, log: Path, n_ctx: int = 4096) -> Iterator[str]:
    """llama-cpp-python's server on `model`, on loopback; yields its URL."""
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                str(n_ctx),
                "--n_threads",
                "1",
                "--n_threads_batch",
                "1",
                "--logits_all",
                "false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text()[-500:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v1/models")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 120 s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def direct_tokens_per_second(url: str, body: dict) -> float:
    """A bare streamed completion: tokens (chunks with text) over the time from the
    request to the chunk that carries the finish reason."""
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start = time.perf_counter()
    conn.request(
        "POST",
        "/v1/completions",
        body=json.dumps({**body, "stream": True}),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    tokens = 0
    while line := response.readline():
        text = line.decode().strip()
        if text == "data: [DONE]":
            break
        if text.startswith("data:"):
            choice = json.loads(text[5:])["choices"][0]
            tokens += bool(choice.get("text"))
            if choice.get("finish_reason"):  # where the engine stops reading too
                break
    elapsed = time.perf_counter() - start
    conn.close()
    return tokens / elapsed


def engine_tokens_per_second(engine: Any, message: str) -> float:
    from memcli.runtime.events import Timing

    for event in engine.answer([{"role": "user", "content": message}], memory=False):
        if isinstance(event, Timing):
            return event.generated_tokens / event.seconds
    raise RuntimeError("no timing")


def read_tokens_per_second(engine: Any, entities: list[str], repeats: int) -> float:
    """Tokens/s of read bodies alone (after `({MEM_READ(`), as the engine asks for them."""
    from memcli.runtime import prompts
    from memcli.runtime.remote import _Progress

    messages = prompts.answer_messages(
        [{"role": "user", "content": READ_MESSAGE}], few_shot=engine.config.few_shot
    )
    context = engine.template.render(messages) + "({MEM_READ("
    relations = engine.store.relation_names()
    speeds = []
    for _ in range(repeats):
        progress = _Progress(time.perf_counter())
        text = "".join(engine._constrained(progress, context, "read", entities, relations))
        assert text.endswith(")-->"), text
        speeds.append(progress.generated / (time.perf_counter() - progress.started))
    return statistics.median(speeds)


def _store(folder: Path) -> Any:
    from memcli.store.core import TripleStore

    store = TripleStore(folder / "memory.db")
    store.add("Rihanna", "record label", "Def Jam")
    store.add("Rihanna", "country of citizenship", "Barbados")
    store.add("Lake Geneva", "country", "Switzerland")
    return store


def run(quick: bool = False) -> list[Row]:
    from bench.common import name_pool
    from memcli.protocol import format_read_results
    from memcli.repl.measure import measure_first_char
    from memcli.runtime import prompts
    from memcli.runtime.engine import EngineConfig
    from memcli.runtime.events import ReadDone
    from memcli.runtime.loader import load_engine, open_engine, resolve_files

    tokens = 32 if quick else 96
    repeats = 3 if quick else 5
    files = resolve_files(no_adapter=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="memcli-bench-remote-") as tmp:
        folder = Path(tmp)
        store = _store(folder)
        log = folder / "server.log"
        os.environ.pop("MEMCLI_CHAT_TEMPLATE", None)
        with serve(files.model, log) as url:
            config = EngineConfig(max_tokens=tokens)
            engine = open_engine(store, engine=url, config=config)
            engine.warm_up("answer")
            messages = prompts.answer_messages(
                [{"role": "user", "content": FREE_MESSAGE}], memory=False
            )
            body = engine._body(engine.template.render(messages), tokens)
            ours, direct = [], []
            for _ in range(repeats):
                direct.append(direct_tokens_per_second(url, body))
                ours.append(engine_tokens_per_second(engine, FREE_MESSAGE))
            free = statistics.median(ours)
            base = statistics.median(direct)
            rows.append(
                row(
                    "remote: free generation, engine vs the server called directly",
                    free,
                    base,
                    "tokens/s",
                    ratio=free / base,
                    goal="ratio >= 0.9",
                    ok=free / base >= 0.9,
                )
            )

            entities = ["Rihanna", *name_pool(CANDIDATES - 1, seed=7)]
            gbnf = read_tokens_per_second(engine, entities, repeats)
            rows.append(
                row(
                    "remote: tokens/s inside a read, server-side GBNF vs free",
                    gbnf,
                    free,
                    "tokens/s",
                    ratio=gbnf / free,
                )
            )
            engine.mode = "logit_bias"
            engine.client.keep_log = 10**6
            asked = engine.client.log[:]
            masks = read_tokens_per_second(engine, entities, repeats)
            steps = len(engine.client.log) - len(asked)
            rows.append(
                row(
                    "remote: tokens/s inside a read, client-side masks vs free "
                    f"({steps // repeats} requests a read; forced tokens need none)",
                    masks,
                    free,
                    "tokens/s",
                    ratio=masks / free,
                )
            )
            engine.mode = "gbnf"

            remote_first = measure_first_char(engine, PLAIN_MESSAGE, repeats=repeats)
            local = load_engine(
                store, no_adapter=True, threads=1, config=EngineConfig(max_tokens=tokens)
            )
            local.warm_up("answer")
            local_first = measure_first_char(local, PLAIN_MESSAGE, repeats=repeats)
            local.close()
            rows.append(
                row(
                    "remote: Enter to first character, remote vs in-process",
                    remote_first * 1000,
                    local_first * 1000,
                    "ms",
                    ratio=local_first / remote_first,
                )
            )

            before = len(_REMAINING.findall(log.read_text()))
            events = list(engine.answer([{"role": "user", "content": READ_MESSAGE}]))
            counts = [int(n) for n in _REMAINING.findall(log.read_text())[before:]]
            read = next(e for e in events if isinstance(e, ReadDone))
            inserted = len(engine.vocab.tokenize(format_read_results(read.results)))
            resumed = counts[-1] if counts else None
            rows.append(
                row(
                    "remote: prompt tokens re-evaluated after a read vs inserted",
                    resumed,
                    inserted,
                    "tokens",
                    ratio=(inserted / resumed) if resumed else None,
                    goal="ours <= inserted + 1",
                    ok=resumed is not None and resumed <= inserted + 1,
                )
            )
            engine.close()
        store.close()
    return rows


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        print(r)
