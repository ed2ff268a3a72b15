"""More inputs of each kind of issue 10 (record every call truthfully), found by attacking it again.

Each test reaches moa_lab through the real ``openai`` client and a loopback ``ChatServer`` whose
replies are crafted per model, and fails without the fix it guards.
"""

from __future__ import annotations

import json

import moa_lab
from moa_lab import Trace
from moa_lab.testing import ChatServer, Reply, completion, fake_config


def _run(config, prompt="Why is the sky blue?", **options):
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return moa_lab.run(prompt, config, **options)


def _crafted(replies):
    """A server whose model ``m`` answers ``replies[m](a normal completion)``; others answer normally."""

    def handler(body):
        model = body["model"]
        answer = completion(model, f"{model} answers", prompt_tokens=5, completion_tokens=2)
        return replies[model](answer) if model in replies else answer

    return ChatServer(handler)


def _raw(answer, **changes):
    """The completion as raw JSON bytes (``json.dumps`` writes a lone surrogate as ``\\ud800``)."""
    for path, value in changes.items():
        target = answer
        *keys, last = path.split("__")
        for key in keys:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value
    return Reply(json.dumps(answer).encode())


# -- text with invalid characters ----------------------------------------------------------------
def test_a_lone_surrogate_anywhere_in_a_reply_is_replaced_and_the_calls_are_kept(tmp_path):
    replies = {
        "alpha": lambda a: _raw(a, model="alpha\ud800"),
        "beta": lambda a: _raw(a, choices__0__finish_reason="stop\udfff"),
        "gamma": lambda a: Reply(json.dumps({"error": {"message": "bad \ud83d input"}}).encode(), 400),
    }
    with _crafted(replies) as server:
        config = fake_config(server.url, max_retries=0)
        trace = _run(config, cache=tmp_path / "c", trace_path=tmp_path / "t.json")
    kept = Trace.load(tmp_path / "t.json")
    assert kept.status == "complete" and len(kept) == 4
    assert kept["L1.0"].served_model == "alpha\ufffd" and "U+FFFD" in kept["L1.0"].warnings[0]
    assert kept["L1.1"].finish_reason == "stop\ufffd" and kept["L1.1"].warnings
    assert "bad \ufffd input" in kept["L1.2"].error
    assert trace["L1.0"].response == "alpha answers"
