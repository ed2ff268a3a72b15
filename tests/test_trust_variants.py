"""More inputs of each kind of issue 11 (files and trust), found by attacking it again.

Each test fails without the fix it guards: crafted trace files, unwritable folders, arguments and
files that are not UTF-8, trace content that would name files.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

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


# -- environment errors: text that is not UTF-8, anywhere a user gives it ------------------------
BAD = b"\xff".decode("utf-8", "surrogateescape")  # what Python makes of a non-UTF-8 argument byte


@pytest.mark.parametrize(
    "extra",
    [["--prompt", f"caf{BAD}"], ["--user", "L1.0", f"x{BAD}"], ["--model", "L1.0", f"m{BAD}"]],
    ids=["prompt", "user", "model"],
)
def test_replay_arguments_that_are_not_utf8_are_one_line(extra, tmp_path, cli_fails):
    out = tmp_path / "r.json"
    argv = ["replay", str(OLD / "failed-proposer.json"), *extra, "--no-cache", "--trace-out", str(out)]
    cli_fails(r"not valid UTF-8", argv)
    assert not out.exists()


def test_a_template_file_that_is_not_utf8_is_one_line(tmp_path, cli_fails):
    template = tmp_path / "t.txt"
    template.write_bytes(b"Check \xff\xfe:\n{references}")
    argv = ["replay", str(OLD / "failed-proposer.json"), "--aggregator-prompt", str(template)]
    cli_fails(r"--aggregator-prompt: .*t\.txt is not UTF-8 text \(byte 0xff", [*argv, "--dry-run"])


@pytest.mark.parametrize(
    "text",
    [b"layers: 2\nproposers: [{model: \xff}]\n", b'layers: 2\nproposers: [{model: "a\\ud800"}]\n'],
    ids=["bytes", "escape"],
)
def test_a_config_file_with_text_that_is_not_utf8_is_one_line(text, fake, tmp_path, cli_fails):
    config = tmp_path / "c.yaml"
    config.write_bytes(text)
    out = tmp_path / "t.json"
    cli_fails(
        r"c\.yaml: .*(not UTF-8|surrogate)",
        ["run", "Hi", "--config", str(config), "--trace-out", str(out)],
    )
    assert not out.exists()


def test_model_names_that_are_not_utf8_are_one_line(fake, tmp_path, cli_fails):
    out = tmp_path / "t.json"
    argv = ["run", "Hi", "--base-url", fake.url, "--no-cache", "--trace-out", str(out)]
    cli_fails(r"--proposers: .*not valid UTF-8", [*argv, "--proposers", f"a,b{BAD}"])
    cli_fails(r"--model: .*not valid UTF-8", [*argv, "--model", f"b{BAD}"])
    assert not out.exists()


# -- nothing lost: a page or a record that cannot be written says so ------------------------------
def test_a_page_that_cannot_be_written_is_one_line_and_leaves_no_half_page(tmp_path, cli_fails):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    trace = str(OLD / "failed-proposer.json")
    cli_fails(
        r"cannot write the page to .*file is a file, not a folder",
        ["view", trace, "--html", f"{blocker}/t.html"],
    )


def test_an_approval_that_cannot_be_recorded_is_an_error_not_a_false_yes(
    tmp_path, monkeypatch, cli_fails
):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MOA_LAB_CONFIG_DIR", str(blocker / "config"))
    cli_fails(
        r"cannot record the approval in .*approved-keys\.json", ["approve", "api.example.com", "K"]
    )
    assert main(["approve", "--list"]) == 0


@pytest.mark.parametrize(
    ("field", "value"), [("strategy", ["debate"]), ("strategy", {"a": 1}), ("agents", 3)]
)
def test_a_debate_trace_with_a_config_field_of_the_wrong_type_is_one_line(field, value, fake, tmp_path):
    from moa_lab import Agent, DebateConfig, TraceError, run

    agents = [Agent(model=m, base_url=fake.url) for m in ("a", "b")]
    trace = run("What is 17 * 24?", DebateConfig(agents=agents, rounds=1), cache=False, progress=False)
    data = trace.to_dict()
    data["graph"]["config"][field] = value
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TraceError, match=rf"config\.{field}"):
        Trace.load(path)
    for argv in (["show", str(path)], ["export", str(path), "--out", str(tmp_path / "s.jsonl")]):
        assert main(argv) == 1


# -- a full disk: what could not be written is not left behind, and it is one line --------------
@pytest.fixture(params=["tmpfs", "simulated"])
def full_folder(request, tmp_path, monkeypatch):
    """A folder on a full disk: a real 64 KB tmpfs filled up (needs root), or one where every write
    of a file moa_lab opens fails with ENOSPC once the file exists (as a full disk behaves)."""
    import errno
    import io
    import os
    import subprocess
    import types

    folder = tmp_path / "full"
    folder.mkdir()
    if request.param == "tmpfs":
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
        )
        if mounted.returncode:
            pytest.skip("cannot mount a tmpfs here (not root)")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(folder)], check=False))
        with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        return folder

    class Full(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = open

    def full_open(file, mode="r", *args, encoding=None, **kwargs):
        if str(file).startswith(str(folder)) and any(m in mode for m in "wxa"):
            return io.TextIOWrapper(io.BufferedWriter(Full(file, mode.strip("tb"))), encoding)
        return real_open(file, mode, *args, encoding=encoding, **kwargs)

    import moa_lab._trace.files as files

    monkeypatch.setattr(files, "open", full_open, raising=False)
    full_os = types.SimpleNamespace(**vars(os))  # os as files.py alone sees it
    full_os.fdopen = lambda fd, mode="r", *a, encoding=None, **k: io.TextIOWrapper(
        io.BufferedWriter(Full(fd, "w")), encoding
    )
    monkeypatch.setattr(files, "os", full_os)
    return folder


def test_a_run_whose_trace_folder_is_full_leaves_no_empty_trace(
    fake, full_folder, monkeypatch, cli_fails
):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(full_folder / "traces"))
    before = sorted(p.name for p in full_folder.rglob("*"))
    argv = ["run", "Hi", "--base-url", fake.url, "--proposers", "a", "--aggregator", "z", "--no-cache"]
    cli_fails(r"cannot write the trace to .*No space left on device", [*argv, "--quiet"])
    assert sorted(p.name for p in full_folder.rglob("*") if p.is_file()) == [
        n for n in before if n != "traces"
    ]


def test_an_export_onto_a_full_disk_is_one_line_and_leaves_no_file(full_folder, cli_fails, capsys):
    out = full_folder / "spans.jsonl"
    cli_fails(
        r"cannot write the spans to .*spans\.jsonl: No space left on device",
        ["export", str(OLD / "failed-proposer.json"), "--out", str(out)],
    )
    assert not out.exists() and not list(full_folder.glob(".spans*"))


# -- keys go only where the user sent them, and never in clear unasked ---------------------------
def _naming(trace, base_url, key_env):
    """The trace as someone could share it: every agent at ``base_url`` with the key in ``key_env``."""
    data = trace.to_dict()
    for node in data["nodes"]:
        node.update(base_url=base_url, api_key_env=key_env)
    config = data["graph"]["config"]
    for agent in [*(a for layer in config["proposers"] for a in layer), config["aggregator"]]:
        agent.update(base_url=base_url, api_key_env=key_env)
    return Trace.from_dict(data)


def test_a_key_never_goes_over_plain_http_to_another_machine_unless_that_is_approved(
    fake, tmp_path, monkeypatch, cli_fails, capsys
):
    from moa_lab import Agent, AggregatorTemplate, ConfigError, plan, run
    from moa_lab._calls import check_ready
    from moa_lab.testing import fake_config

    monkeypatch.setenv("OPENAI_API_KEY", "sk-mine-123")
    monkeypatch.setenv("K", "sk-mine-456")
    mine = run("Hi", fake_config(fake.url), cache=False, progress=False, trace_path=False)
    shared = tmp_path / "shared.json"
    _naming(mine, "http://api.openai.com/v1", "OPENAI_API_KEY").save(shared)
    edit = tmp_path / "terse.txt"
    edit.write_text("Terse:\n{references}")
    cli_fails(
        r"refusing to send \$OPENAI_API_KEY to http://api\.openai\.com: .*plain http.*unencrypted; "
        r"allow it once with --allow-host http://api\.openai\.com .*"
        r"'moa-lab approve http://api\.openai\.com OPENAI_API_KEY'",
        ["replay", str(shared), "--aggregator-prompt", str(edit), "--no-cache", "--quiet"],
    )
    # A host I use over https is not a host I may reach in clear: the exact scheme must be approved.
    other = _naming(mine, "http://api.example.com:8080/v1", "K")
    terse = AggregatorTemplate("Terse:\n{references}")
    assert main(["approve", "api.example.com:8080", "K"]) == 0
    assert "goes to http://api.example.com:8080 (NOT approved" in str(plan(other, terse, cache=False))
    assert main(["approve", "HTTP://API.example.com:8080/v1", "K"]) == 0
    assert "goes to http://api.example.com:8080 (approved)" in str(plan(other, terse, cache=False))
    agent = Agent(model="m", base_url="http://api.example.com:8080/v1", api_key_env="K")
    monkeypatch.setenv("MOA_LAB_CONFIG_DIR", str(tmp_path / "fresh"))
    with pytest.raises(ConfigError, match="unencrypted"):
        check_ready([agent], record_keys=False, allow_hosts=["api.example.com:8080"])
    check_ready([agent], record_keys=False, allow_hosts=["http://api.example.com:8080"])
    capsys.readouterr()
    # Loopback http leaves nothing on the wire: my own runs and approvals there work as before.
    assert main(["approve", f"127.0.0.1:{fake.port}", "K"]) == 0
    looped = _naming(mine, fake.url, "K")
    assert "(approved)" in str(plan(looped, terse, cache=False))


# -- names readable in any script ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("prompt", "slug"),
    [("नमस्ते दुनिया", "नमस्ते-दुनिया"), ("ท้องฟ้าสีอะไร", "ท้องฟ้าสีอะไร"), ("مَرْحَبًا بِكُم", "مَرْحَبًا-بِكُم")],
    ids=["devanagari", "thai", "arabic"],
)
def test_a_prompt_keeps_its_vowel_signs_in_the_trace_name(prompt, slug):
    from moa_lab._trace.files import default_trace_path

    assert default_trace_path(prompt, "0123456789ab").name.endswith(f"-{slug}-0123456789ab.json")


@pytest.mark.parametrize(
    ("field", "value"), [("value", None), ("value", "x"), ("value", []), ("states", 3), ("states", 1.5)]
)
def test_a_search_trace_with_odd_annotations_is_still_shown(field, value, tmp_path, capsys):
    from moa_lab import Agent, ToTConfig, run
    from moa_lab.testing import ChatServer, game24_oracle

    with ChatServer(game24_oracle) as server:
        config = ToTConfig(agent=Agent(model="o", base_url=server.url), task="game24", steps=1)
        trace = run("4 5 6 10", config, cache=False, progress=False, trace_path=False)
    data = trace.to_dict()
    evaluator = next(n for n in data["nodes"] if n["role"] == "evaluator")
    evaluator["annotations"][field] = value
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    assert main(["show", str(path)]) == 0
    assert evaluator["id"] in capsys.readouterr().out
