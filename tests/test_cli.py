"""The moa-lab command line: the contract scripts rely on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from moa_lab import Trace
from moa_lab.cli import main


def _fake_args(url):
    return ["--base-url", url, "--proposers", "a,b,c", "--aggregator", "z", "--quiet"]


def test_run_prints_the_answer_on_stdout_and_the_trace_path_on_stderr(fake, tmp_path, capsys):
    out = tmp_path / "run.json"
    status = main(
        [
            "run",
            "Why is the sky blue?",
            *_fake_args(fake.url),
            "--layers",
            "3",
            "--trace-out",
            str(out),
            "--no-cache",
        ]
    )
    captured = capsys.readouterr()
    trace = Trace.load(out)
    assert status == 0
    assert captured.out == trace.final + "\n"
    assert captured.err.strip().endswith(f"trace: {out}")
    assert [[trace[n].model for n in trace.calls(layer)] for layer in (1, 2)] == [["a", "b", "c"]] * 2
    assert trace[trace.aggregator()].model == "z"


def test_run_json_output_and_the_cache(fake, tmp_path, capsys):
    args = ["run", "Hi", *_fake_args(fake.url), "--cache-dir", str(tmp_path / "c"), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    sent = len(fake.chat_requests())
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["answer"] == first["answer"] and len(fake.chat_requests()) == sent
    assert all(Trace.load(second["trace"])[n].cache_hit for n in Trace.load(second["trace"]))


def test_failures_are_one_line_and_a_non_zero_status(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("proposers: [a]\naggregator: b\nlayer: 3\n")
    assert main(["run", "Hi", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == f"moa-lab: error: {bad}: layer: unknown field; check its spelling against moa_lab.MoAConfig\n"
    )
    assert main(["show", str(tmp_path / "nope.json")]) == 1
    assert capsys.readouterr().err.strip().endswith("nope.json: no such trace file")


def test_an_unreachable_endpoint_is_one_line(tmp_path, capsys):
    status = main(
        [
            "run",
            "Hi",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--proposers",
            "a",
            "--aggregator",
            "b",
            "--quiet",
            "--no-cache",
        ]
    )
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(
        "moa-lab: error: every proposer of layer 1 failed; first error: "
        "http://127.0.0.1:9/v1 unreachable"
    )


def test_show_summarizes_a_trace_layer_by_layer(fake, tmp_path, capsys):
    out = tmp_path / "t.json"
    main(["run", "Why?", *_fake_args(fake.url), "--trace-out", str(out), "--no-cache"])
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("run ") and "Mixture-of-Agents: 2 layers" in text.splitlines()[0]
    assert re.search(r"^L1\.0 +proposer +a +T0\.7", text, re.M)
    assert re.search(r"^L2\.0 +aggregator +z ", text, re.M)
    assert "4 calls, 0 from cache or reused, 0 errors" in text
    assert text.rstrip().endswith(Trace.load(out).final)


def test_the_installed_entry_point_runs(fake, tmp_path):
    out = tmp_path / "t.json"
    exe = Path(sys.executable).with_name("moa-lab")
    done = subprocess.run(
        [str(exe), "run", "Why?", *_fake_args(fake.url), "--trace-out", str(out), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == Trace.load(out).final
