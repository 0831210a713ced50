"""memcli: a local language model with an explicit, editable memory of facts (MemLLM)."""

from importlib.metadata import PackageNotFoundError, version

try:  # the one place for the version is pyproject.toml; this reads the installed metadata
    __version__ = version("memcli")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
