"""How many CPU threads llama.cpp gets by default.

Measured 2026-11-27 with `python -m bench.measure_threads` on this project's 2-core
build machine: SmolLM2-135M-Instruct Q4_1, greedy, 128 tokens after a ~180-token prompt,
median of 3; "busy" = another process running `while True: pass`. Two runs, the second
while other jobs were also using the machine:

    threads  busy   generation tok/s     prompt tok/s
    1        no      81.0 /  75.2        176.9 / 167.0
    2        no     120.3 /  84.9        341.3 / 307.4
    1        yes     79.3 /  64.0        172.0 / 153.3
    2        yes     21.4 /  20.0         78.1 /  46.7

Using every core wins by up to 1.5x on a quiet machine and loses 4-6x as soon as one other
process wants a core: llama.cpp's threads wait for each other at every layer, so one
descheduled thread stalls them all. A CLI shares the machine with whatever the user runs,
so the default leaves half the cores free: `cpu_count // 2` (at least 1, at most 4; small
models gain little beyond that) — 1 thread here, for prompt and generation alike. Only the
2-core case was measured. `MEMCLI_THREADS` overrides.
"""

from __future__ import annotations

import os

MAX_DEFAULT_THREADS = 4


def default_threads() -> int:
    env = os.environ.get("MEMCLI_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n > 0:
            return n
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_THREADS, cores // 2))
