"""How many CPU threads llama.cpp gets by default: half the cores this process may run
on (at least 1, at most 4), for prompt and generation alike; `MEMCLI_THREADS` overrides.

Why half: using every core wins by up to 1.5x on a quiet machine and loses 4-6x as soon
as one other process wants a core (llama.cpp's threads wait for each other at every
layer), and a CLI shares the machine with whatever the user runs. The measurement, its
figures and how to rerun it: `bench/measure_threads.py`.
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
