"""The REPL's engines, loaded (or connected) in a background thread while the prompt is
set up. Everything here goes through the `Engine` protocol and the loader.

For a local model, two engines share one memory and one vocabulary's constraint decoder
but each has its own llama.cpp context (the weights are memory-mapped, so they are in RAM
once):

- the *answering* engine keeps the conversation in its KV cache, so a new turn only
  evaluates the new message;
- the *writing* engine keeps the write prompt in its cache.

With one context, every write call would evict the conversation and the next answer
would re-read the whole prompt first (about a second on two cores with the 135M model).
A remote engine (an inference server) does both jobs: the server keeps its own caches.

llama-cpp-python silences a model load by pointing file descriptors 1 and 2 at
/dev/null for the whole process, so nothing may be printed while a model loads: callers
`wait_loaded()` before their first output. Warm-up comes after that, still in the
background and without output: the constraint decoder is built and each system prompt is
evaluated before the first Enter. Only the backend is touched off the main thread; the
SQLite connection stays on it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memcli.runtime.engine_api import Engine
    from memcli.store.core import TripleStore


class _Slot:
    """A value that a background thread will set (or fail to)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def set(self, value: Any) -> None:
        self._value = value
        self._event.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error if self._event.is_set() else None

    def get(self) -> Any:
        # Short waits, so Ctrl-C stays responsive while the model loads.
        while not self._event.wait(0.05):
            pass
        if self._error is not None:
            raise self._error
        return self._value


class StaticEngines:
    """Engines that are already there (tests, benches); one engine may do both jobs."""

    def __init__(
        self, engine: Engine, write_engine: Engine | None = None, label: str | None = None
    ):
        self._engine = engine
        self._writer = write_engine or engine
        self.label = label or engine.label
        self.load_seconds: float | None = None

    def answering(self) -> Engine:
        return self._engine

    def wait_loaded(self) -> None:
        pass

    loaded = True

    def writing(self) -> Engine:
        return self._writer

    @property
    def ready(self) -> bool:
        return True

    @property
    def error(self) -> BaseException | None:
        return None

    def describe(self) -> dict[str, Any]:
        return self._engine.describe()

    def close(self) -> None:
        pass


class BackgroundEngines:
    """`open_engine` in a daemon thread, then warm-up; `answering()` waits for it."""

    def __init__(
        self,
        store: TripleStore,
        *,
        engine: str | None = None,
        model: str | None = None,
        adapter: str | None = None,
        no_adapter: bool = False,
        threads: int | None = None,
        separate_writer: bool = True,
    ):
        self.store = store
        self.options: dict[str, Any] = {
            "engine": engine,
            "model": model,
            "adapter": adapter,
            "no_adapter": no_adapter,
            "threads": threads,
        }
        self.separate_writer = separate_writer
        self.label = Path(model).name if model else "bundled model"
        if engine is not None and engine.strip().lower() != "local":
            self.label = f"{model or 'model'} @ {engine}"
        self.load_seconds: float | None = None
        self.ready_seconds: float | None = None
        self.listeners: list[Callable[[], None]] = []  # told (from the loader) of progress
        self._loaded = threading.Event()
        self._closing = threading.Event()
        self._answer = _Slot()
        self._writer = _Slot()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._load, name="memcli-model", daemon=True)
        self._thread.start()

    # -- loading (background thread) ----------------------------------------------------

    def _load(self) -> None:
        from memcli.runtime.loader import open_engine, writing_engine

        writer: Engine | None = None
        try:
            try:
                engine = open_engine(self.store, **self.options)
                if self.separate_writer:
                    try:
                        writer = writing_engine(engine, self.store, **self.options)
                    except Exception:  # no room for a second context: share the first
                        writer = None
            finally:
                self.load_seconds = time.perf_counter() - self._started
                self._loaded.set()
                self._tell()
            self.label = engine.label
            engine.warm_up("answer", self._closing)
            self.ready_seconds = time.perf_counter() - self._started
            self._answer.set(engine)
            self._tell()
        except BaseException as exc:  # reported on the main thread, at the next turn
            self._answer.fail(exc)
            self._writer.fail(exc)
            self._tell()
            return
        if writer is not None and writer is not engine:
            try:
                writer.warm_up("write", self._closing)
            except Exception:
                writer = engine
        self._writer.set(writer or engine)

    def _tell(self) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):  # a listener's problem is not the loader's
                listener()

    # -- use (main thread) --------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    def wait_loaded(self) -> None:
        """Block until no model is loading (output is safe again)."""
        while not self._loaded.wait(0.05):
            pass

    def answering(self) -> Engine:
        return self._answer.get()

    def writing(self) -> Engine:
        return self._writer.get()

    @property
    def ready(self) -> bool:
        return self._answer.done and self._answer.error is None

    @property
    def error(self) -> BaseException | None:
        return self._answer.error

    def describe(self) -> dict[str, Any]:
        info = self.answering().describe()
        info["loaded in"] = f"{self.load_seconds:.2f} s" if self.load_seconds else "?"
        info["ready in"] = f"{self.ready_seconds:.2f} s" if self.ready_seconds else "?"
        writer = self.writing()
        info["write context"] = (
            "its own" if writer is not self.answering() else "shared with answers"
        )
        return info

    def close(self, timeout: float = 10.0) -> None:
        """Wait for loading to end (a process must not exit inside llama.cpp's loader),
        then free the models."""
        self._closing.set()
        self._thread.join(timeout)
        engines: list[Any] = []
        for slot in (self._answer, self._writer):
            if slot.done and slot.error is None:
                engine = slot.get()
                if all(engine is not e for e in engines):
                    engines.append(engine)
        for engine in engines:
            engine.close()
