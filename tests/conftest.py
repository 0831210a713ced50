"""Every test runs with MEMCLI_HOME (and HF_HOME) in a fresh temporary folder, so no test
touches the real home directory, and with the network-facing hub switched offline."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def memcli_home(tmp_path, monkeypatch):
    home = tmp_path / "memcli-home"
    home.mkdir()
    monkeypatch.setenv("MEMCLI_HOME", str(home))
    monkeypatch.delenv("MEMCLI_DB", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    return home
