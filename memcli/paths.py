"""Where memcli keeps its files: `MEMCLI_HOME` (tests point it at a temporary folder),
else the platform's user data directory."""

from __future__ import annotations

import os
from pathlib import Path

DB_FILENAME = "memory.db"


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
