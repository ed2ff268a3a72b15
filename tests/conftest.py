"""Shared fixtures: every test gets its own trace, cache and config directories, never the user's."""

from __future__ import annotations

import pytest

from moa_lab.testing import FakeLLM


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path / "traces"))
    monkeypatch.setenv("MOA_LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MOA_LAB_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def fake():
    """A deterministic OpenAI-compatible server on loopback."""
    with FakeLLM() as server:
        yield server


@pytest.fixture
def cli_fails(capsys):
    """``cli_fails(pattern, argv)``: ``moa-lab argv`` exits 1 with one error line matching it."""
    import re

    from moa_lab.cli import main

    def check(pattern: str, argv: list[str]) -> str:
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("moa-lab: error: ") and err.count("\n") == 1, err
        assert re.search(pattern, err), err
        return err

    return check
