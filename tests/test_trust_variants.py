"""More inputs of each kind of issue 11 (files and trust), found by attacking it again.

Each test fails without the fix it guards: crafted trace files, unwritable folders, arguments and
files that are not UTF-8, trace content that would name files.
"""

from __future__ import annotations

import json
from pathlib import Path

from moa_lab import Trace
from moa_lab.cli import main

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "data" / "v0.1"


# -- files that lie ------------------------------------------------------------------------------
def test_a_trace_holding_lone_surrogate_escapes_is_read_shown_viewed_and_replayed(tmp_path, capsys):
    data = json.loads((OLD / "failed-proposer.json").read_text())
    data["nodes"][0]["response"] = "half an emoji \ud83d here"
    data["graph"]["final"] = "final \udc80"
    data["nodes"][0]["model"] = "m\ud800"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))  # ASCII: the surrogates are \\ud83d escapes
    assert Trace.load(path)["L1.0"].response == "half an emoji \ufffd here"
    assert main(["show", str(path)]) == 0
    assert "final \ufffd" in capsys.readouterr().out
    assert main(["view", str(path), "--html", str(tmp_path / "t.html")]) == 0
    assert "half an emoji" in (tmp_path / "t.html").read_text("utf-8")
    assert main(["replay", str(path), "--dry-run", "--prompt", "Why?", "--no-cache"]) == 0
