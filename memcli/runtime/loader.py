"""Turn `--engine/--model/--adapter/--threads` into a ready `Engine`.

`open_engine` picks the engine by name in `ENGINES` (a name-to-factory registry: a new
engine is one module and one line here): "local" runs a GGUF file in-process
(`load_engine`: resolve the model, check the file before llama.cpp sees it, pick the
shipped adapter by default); "openai" connects to an OpenAI-compatible inference server
(`memcli.runtime.remote`). Which one comes from `catalog.resolve_engine` (`--engine URL`,
else MEMCLI_ENGINE, else the engine saved by `memcli models use --engine`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memcli import paths
from memcli.errors import ModelError
from memcli.runtime.engine import EngineConfig, MemoryEngine
from memcli.store.core import TripleStore

if TYPE_CHECKING:
    from memcli.catalog import EngineSpec
    from memcli.runtime.engine_api import Engine

DEFAULT_ADAPTER = "smollm2-135m-memllm-lora.gguf"


def default_adapter(model_path: Path) -> Path | None:
    """The shipped memory adapter, when there is one for this model (the bundled one)."""
    from memcli.catalog import bundled_model_path

    try:
        bundled = bundled_model_path()
    except ModelError:
        return None
    if model_path.resolve() != bundled.resolve():
        return None
    return paths.shipped(DEFAULT_ADAPTER)


@dataclass(frozen=True)
class ModelFiles:
    """What to load: `model` is the file llama.cpp opens (the base, or the base with the
    adapter folded in), `lora` an adapter llama.cpp applies per token (unmerged only)."""

    base: Path
    adapter: Path | None
    model: Path
    lora: Path | None

    @property
    def label(self) -> str:
        """For people: the base model's name, and whether the adapter is on."""
        name = self.base.name.removesuffix(".gguf")
        return f"{name} +adapter" if self.adapter is not None else name


def resolve_files(
    model: str | None = None,
    adapter: str | None = None,
    no_adapter: bool = False,
    merge: bool = True,
    notify: Callable[[str], None] | None = None,
) -> ModelFiles:
    """Resolve `--model/--adapter/--no-adapter` to files, checked before llama.cpp sees
    them. With `merge` (the default) an adapter is folded into the model's weights,
    built once into the cache (`notify` is told when that happens); `merge=False` lets
    llama.cpp apply it at every token, which is slower. Imports no llama_cpp."""
    from memcli.catalog import resolve_model, validate_gguf

    base = resolve_model(model)
    validate_gguf(base)
    lora: Path | None = None
    if not no_adapter:
        lora = Path(adapter).expanduser() if adapter else default_adapter(base)
        if lora is not None:
            validate_gguf(lora)
    if lora is not None and merge:
        from memcli.paths import cache_dir
        from memcli.runtime.merge import merged_model

        return ModelFiles(base, lora, merged_model(base, lora, cache_dir(), notify), None)
    return ModelFiles(base, lora, base, lora)


def load_engine(
    store: TripleStore | None,
    *,
    model: str | None = None,
    adapter: str | None = None,
    no_adapter: bool = False,
    threads: int | None = None,
    n_ctx: int = 4096,
    config: EngineConfig | None = None,
    merge: bool = True,
    notify: Callable[[str], None] | None = None,
) -> MemoryEngine:
    """A ready engine on the files `resolve_files` picks."""
    from memcli.runtime.llama_backend import LlamaBackend

    if threads is not None and threads < 1:
        raise ModelError("--threads must be at least 1")
    files = resolve_files(model, adapter, no_adapter, merge, notify)
    backend = LlamaBackend(files.model, n_ctx=n_ctx, threads=threads, lora_path=files.lora)
    backend.label = files.label
    engine_config = config or EngineConfig()
    if files.adapter is not None:
        engine_config.few_shot = False  # the adapter was trained without examples
    return MemoryEngine(backend, store, config=engine_config)


# -- engines by name ---------------------------------------------------------------------

EngineFactory = Callable[..., "Engine"]


def _local(store: TripleStore | None, spec: EngineSpec, **options: Any) -> Engine:
    options.pop("timeout", None)
    return load_engine(store, **options)


def _openai(store: TripleStore | None, spec: EngineSpec, **options: Any) -> Engine:
    from memcli.runtime.remote import connect

    return connect(store, spec, **options)


ENGINES: dict[str, EngineFactory] = {"local": _local, "openai": _openai}


def open_engine(
    store: TripleStore | None,
    *,
    engine: str | None = None,
    model: str | None = None,
    config: EngineConfig | None = None,
    notify: Callable[[str], None] | None = None,
    **options: Any,
) -> Engine:
    """The engine `engine` (a URL, or None for MEMCLI_ENGINE / the saved one / local)
    names, with `model` (a file or registry name locally, the server's model name
    remotely). Other options go to the engine's factory."""
    from memcli.catalog import resolve_engine

    spec = resolve_engine(engine, model)
    factory = ENGINES.get(spec.kind)
    if factory is None:
        raise ModelError(f"unknown engine kind {spec.kind!r} (known: {', '.join(ENGINES)})")
    return factory(store, spec, model=spec.model, config=config, notify=notify, **options)


def writing_engine(engine: Engine, store: TripleStore | None, **options: Any) -> Engine:
    """An engine for writes beside `engine`: for a local model a second context (so that
    a write does not evict the conversation from the answering cache) sharing its
    decoder; on a llama-server with two slots or more the same server on another slot
    (`RemoteEngine.for_writing`); else the engine itself."""
    if not isinstance(engine, MemoryEngine):
        for_writing = getattr(engine, "for_writing", None)
        return for_writing() if callable(for_writing) else engine
    options.pop("engine", None)
    options.pop("timeout", None)
    second = load_engine(store, n_ctx=WRITE_CONTEXT, **options)
    return engine.sharing(second.backend)


WRITE_CONTEXT = 2048  # a write prompt: instructions, 1,500 characters of context, a sentence
