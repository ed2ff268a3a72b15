"""Files and trust: nothing lost, nothing overwritten, nothing outside its folder, no key sent unasked.

Each kind of fault found by attacking moa_lab as a careful tester would (kills, full disks,
concurrent runs, crafted files) has a test here that fails without its fix.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import moa_lab
from moa_lab import AggregatorTemplate, ConfigError, Trace, TraceError
from moa_lab.cli import main
from moa_lab.testing import fake_config

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "data" / "v0.1"


def _run(config, prompt="Why is the sky blue?", **options):
    options = {"cache": False, "progress": False} | options
    return moa_lab.run(prompt, config, **options)


# -- nothing lost, nothing overwritten -----------------------------------------------------------
def test_show_reads_a_trace_with_failed_calls(capsys):
    assert main(["show", str(OLD / "failed-proposer.json")]) == 0
    out = capsys.readouterr().out
    assert "error: HTTP 500" in out and "L1.1" in out


def test_runs_started_together_never_share_a_file(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path))
    traces: list[Trace] = []
    threads = [
        threading.Thread(target=lambda: traces.append(_run(fake_config(fake.url), "Same prompt")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 4 and len({t.path for t in traces}) == 4
    assert sorted(Trace.load(f).run_id for f in files) == sorted(t.run_id for t in traces)


def test_prompts_in_any_script_get_readable_distinct_names(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path))
    korean = _run(fake_config(fake.url), "하늘은 왜 파란가요?")
    japanese = _run(fake_config(fake.url), "空はなぜ青いのですか？")
    assert "하늘은-왜-파란가요" in korean.path.name
    assert "空はなぜ青いのですか" in japanese.path.name
    assert korean.path != japanese.path


def test_a_planted_symlink_at_a_temporary_name_redirects_nothing(fake, tmp_path):
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    out = tmp_path / "t.json"
    for name in (f"{out.name}.tmp", f".{out.name}.tmp"):
        (tmp_path / name).symlink_to(target)
    trace = _run(fake_config(fake.url), trace_path=out)
    trace.save(out)
    assert target.read_text() == "precious"
    assert Trace.load(out).run_id == trace.run_id
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_concurrent_saves_of_one_path_never_leave_a_torn_file(fake, tmp_path):
    trace = _run(fake_config(fake.url), trace_path=False)
    out = tmp_path / "shared.json"
    errors: list[BaseException] = []

    def save_many():
        try:
            for _ in range(15):
                Trace(copy.deepcopy(trace.graph)).save(out)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=save_many) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(30):
        if out.exists():
            assert Trace.load(out).run_id == trace.run_id
    for thread in threads:
        thread.join()
    assert errors == [] and Trace.load(out).final == trace.final


def test_a_failed_pre_flight_check_leaves_the_existing_trace_file_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MOA_NO_SUCH_KEY", raising=False)
    out = tmp_path / "keep.json"
    out.write_text("my earlier run")
    argv = ["run", "Hi", "--base-url", "http://127.0.0.1:9/v1", "--proposers", "a"]
    assert main([*argv, "--api-key-env", "MOA_NO_SUCH_KEY", "--trace-out", str(out)]) == 1
    assert "MOA_NO_SUCH_KEY is not set" in capsys.readouterr().err
    assert out.read_text() == "my earlier run"


def test_view_never_overwrites_its_own_trace(fake, tmp_path, capsys, cli_fails):
    named_html = tmp_path / "t.html"
    _run(fake_config(fake.url), trace_path=named_html)
    before = named_html.read_text()
    assert main(["view", str(named_html)]) == 0
    assert named_html.read_text() == before and Trace.load(named_html)
    assert (tmp_path / "t.html.view.html").read_text().startswith("<!DOCTYPE html>")
    cli_fails("is the trace itself", ["view", str(named_html), "--html", str(named_html)])
    assert named_html.read_text() == before


def test_a_full_disk_under_the_traces_still_prints_the_answer_and_says_what_was_lost(
    fake, tmp_path, capsys, monkeypatch
):
    written = {"lines": 0}
    real_journal = Trace.journal

    def journal(self, node):
        if written["lines"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written["lines"] += 1
        real_journal(self, node)

    def save(self, path=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Trace, "journal", journal)
    monkeypatch.setattr(Trace, "save", save)
    out = tmp_path / "t.json"
    argv = ["run", "Hi", "--base-url", fake.url, "--proposers", "a,b,c", "--aggregator", "z"]
    status = main([*argv, "--no-cache", "--quiet", "--trace-out", str(out)])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out.startswith("z answers 'Hi' having read 3 references")
    assert captured.err.count("\n") == 1
    assert "No space left on device" in captured.err
    assert "of 4 finished calls it holds the first 2 as a journal" in captured.err
    kept = Trace.load(out)
    assert len(kept) == 2 and kept.status == "running"


# -- files that lie ------------------------------------------------------------------------------
def _variants():
    """A valid trace with one field replaced by a value of the wrong type or range."""
    base = json.loads((OLD / "failed-proposer.json").read_text())
    odd = [None, "x", -1, 1.5, 10**12, float("inf"), [], {}, True, [1], {"a": 1}]
    for name in list(base["graph"]):
        for value in odd:
            data = copy.deepcopy(base)
            data["graph"][name] = value
            yield f"graph.{name}={value!r}", data
    for value in (10**9, 0, "2", None):
        data = copy.deepcopy(base)
        data["graph"]["config"]["layers"] = value
        yield f"config.layers={value!r}", data
    for name in list(base["nodes"][0]):
        for value in odd:
            data = copy.deepcopy(base)
            data["nodes"][0][name] = value
            yield f"node.{name}={value!r}", data
    for name in ("source", "target", "position"):
        for value in (None, "L9.9", -1, [], 2.5):
            data = copy.deepcopy(base)
            data["edges"][0][name] = value
            yield f"edge.{name}={value!r}", data
    data = copy.deepcopy(base)
    data["graph"]["run_id"] = "../../escape"
    yield "graph.run_id=path", data


VARIANTS = list(_variants())


@pytest.mark.parametrize(("name", "data"), VARIANTS, ids=[n for n, _ in VARIANTS])
def test_a_crafted_trace_loads_and_works_or_fails_with_one_line(name, data, tmp_path):
    from moa_lab.views import summary_html, summary_text

    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(data))
    try:
        trace = Trace.load(path)
    except TraceError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    summary_text(trace)
    summary_html(trace)
    try:
        moa_lab.plan(trace, AggregatorTemplate("Check:\n{references}"), cache=False)
    except ConfigError as exc:
        assert "\n" not in str(exc)


def test_the_crafted_variants_cover_the_fields_and_most_are_refused():
    refused = 0
    for _, data in VARIANTS:
        try:
            Trace.from_dict(data)
        except TraceError:
            refused += 1
    assert len(VARIANTS) > 300 and refused > len(VARIANTS) // 2


def test_huge_layer_counts_are_refused_before_any_view_loops_over_them():
    data = json.loads((OLD / "rank.json").read_text())
    data["graph"]["config"]["layers"] = 1_000_000_000
    with pytest.raises(TraceError, match=r"config\.layers"):
        Trace.from_dict(data)


def test_show_escapes_terminal_control_sequences(tmp_path, capsys):
    data = json.loads((OLD / "rank.json").read_text())
    evil = "\x1b[2J\x1b]52;c;ZXZpbA==\x07cleared"
    data["nodes"][0]["response"] = evil
    data["graph"]["final"] = evil
    data["nodes"][0]["model"] = "m\x1b[31m"
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(data))
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07cleared" in out


def test_show_into_a_closed_pipe_is_quiet():
    command = (
        f"{sys.executable} -c 'import sys; from moa_lab.cli import main; sys.exit(main(sys.argv[1:]))'"
        f" show {OLD / 'replay-of-replay.json'} | head -n 1"
    )
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    assert done.stdout.startswith("run ") and done.stderr == ""


# -- environment errors --------------------------------------------------------------------------
def test_a_trace_path_under_a_file_is_one_line(fake, tmp_path, cli_fails):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    argv = ["run", "Hi", "--base-url", fake.url, "--proposers", "a", "--no-cache", "--quiet"]
    cli_fails(
        f"cannot write the trace to .*: {blocker} is a file",
        [*argv, "--trace-out", str(blocker / "t.json")],
    )
    assert fake.chat_requests() == []  # found before anything was sent


def test_an_unwritable_trace_folder_is_one_line(fake, tmp_path, cli_fails, monkeypatch):
    from moa_lab._trace import trace as trace_module

    def refuse(path, text):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(trace_module, "write_atomically", refuse)
    argv = ["run", "Hi", "--base-url", fake.url, "--proposers", "a", "--no-cache", "--quiet"]
    cli_fails(
        "cannot write the trace to .*: Permission denied",
        [*argv, "--trace-out", str(tmp_path / "t.json")],
    )
    assert fake.chat_requests() == []


def test_a_prompt_that_is_not_utf8_is_one_line(tmp_path):
    script = "import sys; from moa_lab.cli import main; sys.exit(main(sys.argv[1:]))"
    prompt = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    argv = ["run", prompt, "--base-url", "http://127.0.0.1:9/v1", "--proposers", "a"]
    done = subprocess.run(
        [sys.executable, "-c", script, *argv, "--trace-out", str(tmp_path / "t.json")],
        capture_output=True,
        env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"},
    )
    err = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in err and err.count("\n") == 1
    assert "the prompt is not valid UTF-8 text (byte 0xe9)" in err
    assert not (tmp_path / "t.json").exists()


# -- keys go only where the user sent them -------------------------------------------------------
@pytest.fixture
def shared_trace(fake, tmp_path, monkeypatch):
    """A trace someone else made: its agents name this server and the variable MOA_TEST_KEY."""
    monkeypatch.setenv("MOA_TEST_KEY", "sk-mine-123")
    config = fake_config(fake.url).model_copy(update={})
    data = config.to_dict()
    for agent in [*data["proposers"][0], data["aggregator"]]:
        agent["api_key_env"] = "MOA_TEST_KEY"
    monkeypatch.setenv("MOA_LAB_CONFIG_DIR", str(tmp_path / "someone-else"))
    trace = _run(moa_lab.MoAConfig.from_dict(data), trace_path=tmp_path / "shared.json")
    monkeypatch.setenv("MOA_LAB_CONFIG_DIR", str(tmp_path / "me"))  # a different user's machine
    fake.requests.clear()
    return trace


def test_a_shared_trace_cannot_send_my_key_to_its_host_unasked(fake, shared_trace, tmp_path, capsys):
    host = f"127.0.0.1:{fake.port}"
    planned = moa_lab.plan(shared_trace, AggregatorTemplate("Terse:\n{references}"), cache=False)
    text = str(planned)
    assert f"key $MOA_TEST_KEY goes to {host} (NOT approved" in text and fake.url in text
    with pytest.raises(ConfigError, match=rf"refusing to send \$MOA_TEST_KEY to {host}.*--allow-host"):
        moa_lab.replay(shared_trace, AggregatorTemplate("Terse:\n{references}"), cache=False)
    assert fake.chat_requests() == []
    allowed = moa_lab.replay(
        shared_trace, AggregatorTemplate("Terse:\n{references}"), cache=False, allow_hosts=[host]
    )
    assert allowed.final and fake.chat_requests()[0].headers["authorization"] == "Bearer sk-mine-123"
    assert main(["approve", host, "MOA_TEST_KEY"]) == 0
    again = moa_lab.replay(shared_trace, AggregatorTemplate("Tersest:\n{references}"), cache=False)
    assert again.final


def test_my_own_runs_approve_their_hosts(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("MOA_TEST_KEY", "sk-mine-123")
    config = moa_lab.MoAConfig.from_dict(
        {
            "proposers": [{"model": "a", "base_url": fake.url, "api_key_env": "MOA_TEST_KEY"}],
            "aggregator": {"model": "z", "base_url": fake.url, "api_key_env": "MOA_TEST_KEY"},
        }
    )
    trace = _run(config, trace_path=tmp_path / "mine.json")
    again = moa_lab.replay(trace, AggregatorTemplate("Terse:\n{references}"), cache=False)
    assert again.final


def test_a_crafted_run_id_never_names_a_file_outside_the_folder(tmp_path):
    data = json.loads((OLD / "rank.json").read_text())
    data["graph"]["run_id"] = "../../outside"
    with pytest.raises(TraceError, match="run_id"):
        Trace.from_dict(data)


def test_a_cache_that_cannot_be_written_is_one_warning_line_and_the_run_goes_on(
    fake, tmp_path, capsys, monkeypatch
):
    import sqlite3

    import diskcache

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(diskcache.Cache, "set", full)
    out = tmp_path / "t.json"
    argv = ["run", "Hi", "--base-url", fake.url, "--proposers", "a,b", "--aggregator", "z", "--quiet"]
    assert main([*argv, "--cache-dir", str(tmp_path / "c"), "--trace-out", str(out)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings and all(line.startswith("moa-lab: warning: ") for line in warnings)
    assert "database or disk is full" in err and len(Trace.load(out)) == 3
