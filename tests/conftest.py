"""Every test runs with MEMCLI_HOME (and HF_HOME) in a fresh temporary folder, so no test
touches the real home directory, and with the network-facing hub switched offline."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def merge_cache(tmp_path_factory):
    """One cache of merged models for the whole run: folding the adapter in takes
    seconds, and every test would otherwise do it again in its own MEMCLI_HOME.

    Session-wide, with a session MEMCLI_HOME, so that module- and session-scoped
    fixtures (which run before the per-test home below) never touch the real home."""
    cache = tmp_path_factory.mktemp("memcli-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMCLI_CACHE", str(cache))
        patch.setenv("MEMCLI_HOME", str(tmp_path_factory.mktemp("memcli-session-home")))
        patch.delenv("MEMCLI_DB", raising=False)
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield cache


@pytest.fixture(autouse=True)
def memcli_home(tmp_path, monkeypatch, merge_cache):
    home = tmp_path / "memcli-home"
    home.mkdir()
    monkeypatch.setenv("MEMCLI_HOME", str(home))
    monkeypatch.delenv("MEMCLI_DB", raising=False)
    monkeypatch.setenv("MEMCLI_CACHE", str(merge_cache))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    return home
