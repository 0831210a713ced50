"""memcli: a local language model with an explicit, editable memory of facts (MemLLM)."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # The one place for the version is pyproject.toml; this reads the installed metadata,
    # only when asked (so `memcli mem` does not pay for the lookup).
    if name != "__version__":
        raise AttributeError(f"module 'memcli' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memcli")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
