"""Shared fixtures: every test gets its own trace and cache directories, never the user's."""

from __future__ import annotations

import pytest

from moa_lab.testing import FakeLLM


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path / "traces"))
    monkeypatch.setenv("MOA_LAB_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def fake():
    """A deterministic OpenAI-compatible server on loopback."""
    with FakeLLM() as server:
        yield server
