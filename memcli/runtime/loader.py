"""Turn `--model/--adapter/--threads` into a ready `MemoryEngine`: resolve the model,
check the file before llama.cpp sees it, and pick the shipped adapter by default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memcli import paths
from memcli.errors import ModelError
from memcli.runtime.engine import EngineConfig, MemoryEngine
from memcli.store.core import TripleStore

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
