"""Where memcli keeps its files: `MEMCLI_HOME` (tests point it at a temporary folder),
else the platform's user data directory; and where the files it ships are (`shipped`)."""

from __future__ import annotations

import os
from pathlib import Path

DB_FILENAME = "memory.db"
SHIPPED_PACKAGE = "memcli"
SHIPPED_FOLDER = "models"


def shipped(name: str) -> Path | None:
    """A file memcli ships (the model registry, the memory adapter, the embedding model,
    model cards): package data in `memcli/models/`, found through `importlib.resources`
    so a checkout, an editable install and a wheel all find the same file. None when the
    file is not there."""
    from importlib.resources import files

    resource = files(SHIPPED_PACKAGE) / SHIPPED_FOLDER / name
    return Path(str(resource)) if resource.is_file() else None


def home() -> Path:
    """The memcli user directory, created on first use."""
    env = os.environ.get("MEMCLI_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("memcli", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db() -> Path:
    """The memory file: `MEMCLI_DB` if set, else `memory.db` in the user directory."""
    env = os.environ.get("MEMCLI_DB")
    if env:
        return Path(env).expanduser()
    return home() / DB_FILENAME


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Files memcli can rebuild (models with their adapter folded in): `MEMCLI_CACHE`
    if set, else `cache` in the user directory."""
    env = os.environ.get("MEMCLI_CACHE")
    return Path(env).expanduser() if env else home() / "cache"


def config_file() -> Path:
    return home() / "config.json"


def history_file() -> Path:
    return home() / "history"
