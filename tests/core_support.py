"""Helpers of the tests/test_core_*.py files: one FakeLLM per test file, reset for each test."""

from __future__ import annotations

from typing import Any

import moa_lab
from moa_lab import Trace
from moa_lab.testing import FakeLLM

QUESTION = "Why is the sky blue?"


def reset(server: FakeLLM) -> FakeLLM:
    """The server as new: no requests recorded, no faults queued, nothing broken or slow."""
    server.requests.clear()
    server.faults.clear()
    server.broken.clear()
    server.delay = 0.0
    server.retry_after = None
    return server


def run(config: Any, prompt: Any = QUESTION, **options: Any) -> Trace:
    """``moa_lab.run`` with no cache, no trace file and no progress bar unless asked."""
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return moa_lab.run(prompt, config, **options)


def replay(trace: Any, edits: Any = (), **options: Any) -> Trace:
    """``moa_lab.replay`` with no cache, no trace file and no progress bar unless asked."""
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return moa_lab.replay(trace, edits, **options)


def sent(server: FakeLLM) -> list[str]:
    """The models of the chat requests the server received, in arrival order."""
    return [r.model for r in server.chat_requests()]
