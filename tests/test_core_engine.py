"""The engine and its calls: what each call sends and records, failures, ranking, the cache, samples,
progress, and the graph attributes and files of a run.

One FakeLLM serves the whole file (reset for each test); a handler of its own answers where a test
needs replies the FakeLLM does not give.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from core_support import QUESTION, reset, run, sent

import moa_lab
from moa_lab import (
    Backend,
    CallCache,
    ConfigError,
    NodeParams,
    Price,
    RunError,
    Trace,
    TraceError,
    plan,
)
from moa_lab._cache import call_key, canonical_json
from moa_lab._prompts import (
    AGGREGATE_AND_SYNTHESIZE,
    format_references,
    order_references,
    with_references,
)
from moa_lab._strategies import strategy_for
from moa_lab.testing import ChatServer, FakeLLM, completion, fake_config


@pytest.fixture(scope="module")
def server():
    with FakeLLM() as started:
        yield started


@pytest.fixture
def fake(server):
    return reset(server)


def _in_process(reply):
    """A backend whose every call is answered by ``reply(body) -> text``, in this process."""
    server = ChatServer(
        lambda body: completion(body["model"], reply(body), prompt_tokens=2, completion_tokens=1)
    )
    return Backend(transport=server.transport())


# -- prompts --------------------------------------------------------------------------------------
def test_references_are_numbered_from_one_one_per_line():
    assert format_references(["a", "b {x}", "c"]) == "1. a\n2. b {x}\n3. c"
    assert format_references([]) == ""


def test_a_template_is_filled_without_touching_the_users_messages():
    user = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"}]
    out = with_references(user, "Read:\n{references}\nDone.", ["x {references}", "y"])
    assert out == [
        {"role": "system", "content": "Be brief.\n\nRead:\n1. x {references}\n2. y\nDone."},
        {"role": "user", "content": "Q"},
    ]
    assert user == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"}]
    bare = with_references([{"role": "user", "content": "Q"}], "R: {references}", ["z"])
    assert bare == [{"role": "system", "content": "R: 1. z"}, {"role": "user", "content": "Q"}]
    assert with_references([], "R: {references}", ["z"]) == [{"role": "system", "content": "R: 1. z"}]


def test_a_shuffle_is_the_same_for_the_same_seed_and_node_in_every_version():
    ids = ["L1.0", "L1.1", "L1.2", "L1.3"]
    assert order_references(ids, shuffle=False, seed=7, salt="L2.0") == ids
    golden = {
        (0, "L2.0"): ["L1.2", "L1.3", "L1.0", "L1.1"],
        (0, "L3.0"): ["L1.1", "L1.3", "L1.2", "L1.0"],
        (7, "L2.0"): ["L1.1", "L1.0", "L1.3", "L1.2"],
        (7, "L2.1"): ["L1.0", "L1.3", "L1.1", "L1.2"],
    }
    for (seed, salt), order in golden.items():
        assert order_references(ids, shuffle=True, seed=seed, salt=salt) == order
    assert ids == ["L1.0", "L1.1", "L1.2", "L1.3"]


def test_a_shuffled_run_records_the_order_each_call_saw(fake):
    config = fake_config(fake.url, proposers=["a", "b", "c", "d"], layers=3)
    trace = run(config.model_copy(update={"shuffle_references": True, "shuffle_seed": 7}))
    assert trace.references("L2.0") == ["L1.1", "L1.0", "L1.3", "L1.2"]
    assert trace.references("L2.1") == ["L1.0", "L1.3", "L1.1", "L1.2"]
    assert trace.references("L3.0") == ["L2.1", "L2.2", "L2.0", "L2.3"]  # the aggregator's own salt
    saved = [e["source"] for e in trace.to_dict()["edges"] if e["target"] == "L2.0"]
    assert saved == trace.references("L2.0")  # a file lists the edges into a node by position
    answers = [trace[n].response for n in trace.references("L2.0")]
    request = next(r for r in fake.chat_requests() if r.headers["x-moa-lab-call"] == "L2.0")
    assert request.system.endswith(format_references(answers))


# -- the user's messages --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("  ", "the prompt is empty; give the question to ask the mixture"),
        ([], "messages must be a non-empty list of {'role': str, 'content': str}"),
        ([{"role": "user"}], "messages must be a non-empty list of {'role': str, 'content': str}"),
        ([{"content": "x"}], "messages must be a non-empty list of {'role': str, 'content': str}"),
        (
            "\udcff",
            "the prompt is not valid UTF-8 text (byte 0xff) at character 1; pass it as UTF-8 "
            "(check the terminal's or file's encoding)",
        ),
        (
            "caf\udce9?",  # what Python makes of a shell's Latin-1 é
            "the prompt is not valid UTF-8 text (byte 0xe9) at character 4; pass it as UTF-8 "
            "(check the terminal's or file's encoding)",
        ),
        (
            [{"role": "system", "content": "ok"}, {"role": "user", "content": "\ud83d!"}],
            "message 2 is not valid UTF-8 text at character 1; pass it as UTF-8 "
            "(check the terminal's or file's encoding)",
        ),
    ],
)
def test_a_prompt_that_is_not_one_is_refused_before_any_call(fake, prompt, message):
    with pytest.raises(ConfigError) as caught:
        run(fake_config(fake.url), prompt=prompt)
    assert str(caught.value) == message and fake.chat_requests() == []


def test_a_run_is_named_by_its_last_user_message(fake):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "Let me see:"},
    ]
    trace = run(fake_config(fake.url), prompt=messages)
    assert trace.prompt == "second" and trace.messages == messages
    assert fake.chat_requests()[0].body["messages"] == messages
    system_only = run(fake_config(fake.url), prompt=[{"role": "system", "content": "Say hi."}])
    assert system_only.prompt == "Say hi."


# -- the graph of a run ---------------------------------------------------------------------------
def test_a_finished_run_carries_every_graph_attribute(fake):
    config = fake_config(fake.url)
    trace = run(config)
    attrs = trace.graph.graph
    assert re.fullmatch(r"[0-9a-f]{12}", attrs["run_id"]) and attrs["run_id"] != run(config).run_id
    calls = trace.records()
    assert attrs["created_at"] <= min(c.started_at for c in calls)
    assert attrs["finished_at"] >= max(c.ended_at for c in calls)
    assert {k: attrs[k] for k in ("schema", "schema_version", "status", "sample")} == {
        "schema": "moa_lab.trace",
        "schema_version": 1,
        "status": "complete",
        "sample": 0,
    }
    assert attrs["prompt"] == QUESTION and attrs["messages"] == [{"role": "user", "content": QUESTION}]
    assert attrs["config"] == config.to_dict() and attrs["moa_lab_version"] == moa_lab.__version__
    assert attrs["final"] == trace["L2.0"].response


def test_each_call_records_its_place_request_and_answer(fake):
    trace = run(fake_config(fake.url, prices={"alpha": Price(input=1e6, output=2e6)}))
    alpha = trace["L1.0"]
    (request,) = [r for r in fake.chat_requests() if r.headers["x-moa-lab-call"] == "L1.0"]
    assert (alpha.role, alpha.layer, alpha.index, alpha.model) == ("proposer", 1, 0, "alpha")
    assert alpha.base_url == fake.url and alpha.api_key_env is None and alpha.replicate == 0
    assert alpha.params == {"temperature": 0.7, "max_tokens": 512}
    assert alpha.messages == ({"role": "user", "content": QUESTION},)
    assert alpha.cost == alpha.usage.prompt_tokens * 1 + alpha.usage.completion_tokens * 2
    assert alpha.usage.total_tokens == alpha.usage.prompt_tokens + alpha.usage.completion_tokens
    assert alpha.attempts == 1 and alpha.retried_errors == () and alpha.cache_hit is False
    assert alpha.started_at <= alpha.ended_at and alpha.lineage is None and alpha.origin is None
    assert trace["L2.0"].role == "aggregator" and trace["L2.0"].index == 0
    assert trace["L1.2"].index == 2 and trace["L1.2"].model == "gamma"
    assert {c.replicate for c in trace.records()} == {0}  # distinct requests: each its first copy
    assert request.body["messages"] == [dict(m) for m in alpha.messages]


def test_the_key_variable_is_recorded_and_its_key_sent(fake, monkeypatch):
    monkeypatch.setenv("MOA_CORE_KEY", "sk-core")
    config = fake_config(fake.url, proposers=["alpha"])
    keyed = config.model_copy(
        update={"aggregator": config.aggregator.model_copy(update={"api_key_env": "MOA_CORE_KEY"})}
    )
    trace = run(keyed)
    assert trace["L2.0"].api_key_env == "MOA_CORE_KEY" and trace["L1.0"].api_key_env is None
    assert fake.chat_requests()[-1].headers["authorization"] == "Bearer sk-core"
    monkeypatch.delenv("MOA_CORE_KEY")
    fake.requests.clear()
    with pytest.raises(ConfigError, match="MOA_CORE_KEY is not set"):
        run(keyed)
    assert fake.chat_requests() == []


def test_a_proposer_of_a_later_layer_can_be_kept_from_its_own_answer(fake):
    config = fake_config(fake.url, layers=3).model_copy(update={"include_own_previous": False})
    trace = run(config)
    assert trace.references("L2.1") == ["L1.0", "L1.2"]
    assert trace.references("L2.0") == ["L1.1", "L1.2"]
    assert trace.references("L3.0") == ["L2.0", "L2.1", "L2.2"]  # the aggregator reads them all
    assert "having read 2 references" in trace["L2.1"].response


def test_a_three_layer_run_uses_the_proposer_template_in_between(fake):
    config = fake_config(fake.url, layers=3, proposer_template="Improve on:\n{references}")
    trace = run(config)
    systems = {r.headers["x-moa-lab-call"]: r.system for r in fake.chat_requests()}
    assert systems["L2.1"].startswith("Improve on:\n1. ")
    assert systems["L3.0"].startswith(AGGREGATE_AND_SYNTHESIZE.replace("{references}", "")[:60])
    assert systems["L1.0"] == "" and trace.status == "complete"


# -- failures ---------------------------------------------------------------------------------------
def _injected(fake, status, model):
    """The error line of a call the FakeLLM failed on purpose."""
    detail = f"Error code: {status} - injected {status} for {model}"
    return f"HTTP {status} from {fake.url} for {model}: {detail}"


def test_a_failing_proposer_is_dropped_and_recorded(fake):
    fake.broken["beta"] = 400
    trace = run(fake_config(fake.url, layers=3))
    beta = trace["L1.1"]
    assert beta.error == f"HTTP 400 from {fake.url} for beta: Error code: 400 - injected 400 for beta"
    assert beta.response is None and not beta.ok and beta.attempts == 1
    assert trace.references("L2.0") == ["L1.0", "L1.2"]
    assert trace.status == "complete" and trace.totals().errors == 2


def test_retries_are_recorded_on_the_call(fake):
    fake.faults["alpha"].extend([503, 500])
    trace = run(fake_config(fake.url))
    alpha = trace["L1.0"]
    assert alpha.attempts == 3 and alpha.ok
    assert alpha.retried_errors == (
        f"HTTP 503 from {fake.url} for alpha: Error code: 503 - injected 503 for alpha",
        f"HTTP 500 from {fake.url} for alpha: Error code: 500 - injected 500 for alpha",
    )
    fake.broken["beta"] = 500
    failed = run(fake_config(fake.url, max_retries=1))
    assert failed["L1.1"].attempts == 2 and failed["L1.1"].error.endswith("(gave up after 2 attempts)")


def test_on_proposer_error_fail_stops_at_the_first_failure(fake, tmp_path):
    fake.broken["beta"] = 400
    config = fake_config(fake.url).model_copy(update={"on_proposer_error": "fail"})
    with pytest.raises(RunError) as caught:
        run(config, trace_path=tmp_path / "t.json")
    assert str(caught.value) == (f"proposer L1.1 failed: {_injected(fake, 400, 'beta')}")
    assert caught.value.trace.status == "failed" and "omega" not in sent(fake)
    saved = Trace.load(tmp_path / "t.json")
    assert saved.status == "failed" and saved.graph.graph["finished_at"] and len(saved) == 3


def test_a_layer_whose_proposers_all_fail_ends_the_run(fake):
    fake.broken.update(alpha=400, beta=401)
    with pytest.raises(RunError) as caught:
        run(fake_config(fake.url, proposers=["alpha", "beta"]))
    assert str(caught.value) == (
        f"every proposer of layer 1 failed; first error: HTTP 400 from {fake.url} for alpha: "
        "Error code: 400 - injected 400 for alpha"
    )


def test_a_failed_aggregator_fails_the_run_but_keeps_the_trace(fake, tmp_path):
    fake.broken["omega"] = 400
    with pytest.raises(RunError) as caught:
        run(fake_config(fake.url), trace_path=tmp_path / "t.json")
    assert str(caught.value) == (f"the aggregator failed: {_injected(fake, 400, 'omega')}")
    trace = caught.value.trace
    assert trace.status == "failed" and trace.final is None and len(trace) == 4
    assert Trace.load(tmp_path / "t.json").status == "failed"


def test_an_interrupted_run_is_saved_as_failed_with_the_calls_it_finished(fake, tmp_path):
    fake.delay = {"omega": 30.0}

    async def interrupt():
        # Ctrl-C under asyncio.run cancels the running task, as this does.
        finished = asyncio.Event()
        hook = lambda trace, node: len(trace) == 3 and finished.set()  # noqa: E731
        running = asyncio.ensure_future(
            moa_lab.arun(QUESTION, fake_config(fake.url), cache=False, trace_path=tmp_path / "t.json",
                         progress=False, on_call=hook)
        )  # fmt: skip
        await asyncio.wait_for(finished.wait(), 10)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(interrupt())
    saved = Trace.load(tmp_path / "t.json")
    assert saved.status == "failed" and saved.calls() == ["L1.0", "L1.1", "L1.2"]
    assert saved.final is None and saved.graph.graph["finished_at"] >= saved["L1.2"].ended_at


def test_calls_that_finish_after_a_run_failed_leave_its_saved_file_whole(fake, tmp_path):
    # In a notebook the loop goes on after a run fails, and so do the calls it had in flight.
    fake.delay = {"beta": 0.3, "gamma": 0.3}
    seen = []

    def broken_hook(trace, node):
        seen.append(trace)
        if node == "L1.0" and node in trace:
            raise RuntimeError("the hook broke")

    async def in_a_notebook():
        backend = Backend()
        with pytest.raises(RuntimeError, match="the hook broke"):
            await moa_lab.arun(
                QUESTION,
                fake_config(fake.url),
                cache=False,
                progress=False,
                trace_path=tmp_path / "t.json",
                on_call=broken_hook,
                backend=backend,
            )
        for _ in range(200):  # the other proposers finish
            if len(seen[-1]) == 3:
                break
            await asyncio.sleep(0.01)
        await backend.aclose()

    asyncio.run(in_a_notebook())
    assert len(seen[-1]) == 3
    saved = Trace.load(tmp_path / "t.json")
    assert saved.status == "failed" and saved.calls() == ["L1.0"]


# -- ranking ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "picked"),
    [("Is 0 or 1 best?", "L1.0"), ("Is 3 or 1 best?", "L1.2"), ("Is 9 or 2 best?", "L1.1")],
)
def test_a_ranker_picks_the_first_reference_number_it_names(fake, question, picked):
    trace = run(fake_config(fake.url, aggregation="rank"), prompt=question)
    assert trace["L2.0"].picked == picked and trace.final == trace[picked].response


def test_a_ranker_that_names_no_reference_leaves_its_own_answer_final(fake):
    def reply(body):
        return "none of them, 0 or 4" if body["model"] == "omega" else "an answer"

    trace = run(fake_config(fake.url, aggregation="rank"), backend=_in_process(reply))
    assert trace["L2.0"].picked is None and trace.final == "none of them, 0 or 4"


def test_a_synthesizing_aggregator_picks_nothing(fake):
    trace = run(fake_config(fake.url), prompt="Is 1 best?")
    assert trace["L2.0"].picked is None and trace.final == trace["L2.0"].response


# -- the cache, samples and replicates ----------------------------------------------------------------
def test_a_second_run_is_answered_from_the_cache_with_what_the_first_recorded(fake, tmp_path):
    prices = {"omega": Price(input=1e6, output=1e6)}
    first = run(fake_config(fake.url, prices=prices), cache=tmp_path / "c")
    fake.requests.clear()
    again = run(fake_config(fake.url, prices=prices), cache=str(tmp_path / "c"))
    assert fake.chat_requests() == []
    for node in first:
        old, new = first[node], again[node]
        assert new.cache_hit and new.attempts == 0 and new.cache_key == old.cache_key
        assert (new.response, new.finish_reason, new.usage, new.served_model, new.latency) == (
            old.response, old.finish_reason, old.usage, old.served_model, old.latency,
        )  # fmt: skip
        assert new.cost == old.cost and new.ended_at >= new.started_at
    assert again["L2.0"].cost == again["L2.0"].usage.tokens
    assert again.totals().spent == 0 and again.totals().saved == first.totals().cost


def test_a_shared_cache_is_left_open_and_failures_are_not_cached(fake, tmp_path):
    fake.broken["beta"] = 400
    cache = CallCache(tmp_path / "shared")
    run(fake_config(fake.url), cache=cache)
    assert len(cache) == 3  # alpha, gamma and omega; beta's failure is not stored
    del fake.broken["beta"]
    fake.requests.clear()
    run(fake_config(fake.url), cache=cache)
    assert sent(fake) == ["beta", "omega"]  # omega now reads three answers: a new request
    assert len(cache) == 5
    cache.close()


def test_the_default_cache_is_the_users_folder(fake, tmp_path):
    run(fake_config(fake.url), cache=True)
    cache = CallCache(tmp_path / "cache")
    assert len(cache) == 4
    cache.close()
    fake.requests.clear()
    run(fake_config(fake.url), cache=False)
    assert len(fake.chat_requests()) == 4


def test_identical_proposers_are_distinct_samples_and_samples_are_a_thousand_apart(fake, tmp_path):
    config = fake_config(fake.url, proposers=["same", "same", "same"])
    first = run(config, cache=tmp_path / "c")
    assert [first[n].replicate for n in first.calls(1)] == [0, 1, 2]
    assert len({first[n].cache_key for n in first.calls(1)}) == 3
    assert len({first[n].response for n in first.calls(1)}) == 1  # same request, same fake answer
    second = run(config, cache=tmp_path / "c", sample=1)
    assert [second[n].replicate for n in second.calls(1)] == [1000, 1001, 1002]
    assert second.sample == 1 and not any(second[n].cache_hit for n in second)
    assert len(fake.chat_requests()) == 8


# -- progress, callbacks and files ----------------------------------------------------------------------
def test_progress_shows_on_stderr_and_no_server_is_asked_about_it(fake, capsys):
    run(fake_config(fake.url), progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rMoA:   0%|") and "call/s" in err
    run(fake_config(fake.url), progress=False)
    assert capsys.readouterr().err == ""
    assert all("x-moa-lab-progress" not in r.headers for r in fake.chat_requests())


def test_on_call_hears_each_call_finish_once_before_the_final_answer_is_known(fake):
    finished = []

    def on_call(trace, node):
        if node in trace:
            finished.append((node, node in trace.in_flight, trace.final))

    trace = run(fake_config(fake.url), on_call=on_call)
    assert sorted(finished[:3]) == [("L1.0", False, None), ("L1.1", False, None), ("L1.2", False, None)]
    assert finished[3:] == [("L2.0", False, None)] and trace.final


def test_the_trace_file_is_where_it_is_asked_for(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path / "all"))
    default = run(fake_config(fake.url), trace_path=True)
    assert default.path.parent == tmp_path / "all" and default.path.name.endswith(
        f"-why-is-the-sky-blue-{default.run_id}.json"
    )
    (tmp_path / "named.json").write_text("an older run")  # a name the user gives is replaced
    named = run(fake_config(fake.url), trace_path=str(tmp_path / "named.json"))
    assert named.path == tmp_path / "named.json"
    assert Trace.load(named.path).run_id == named.run_id
    saved = json.loads((tmp_path / "named.json").read_text())
    assert saved["graph"]["status"] == "complete" and len(saved["nodes"]) == 4
    assert run(fake_config(fake.url), trace_path=False).path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all", "named.json"]


def test_a_config_may_be_named_by_preset(fake):
    with pytest.raises(ConfigError, match=r"^unknown preset 'nope'"):
        run("nope")


def test_an_https_endpoint_is_called_as_it_is(fake):
    config = fake_config("https://models.example/v1", proposers=["alpha"])
    trace = run(config, backend=_in_process(lambda body: f"{body['model']} says hi"))
    assert trace.final == "omega says hi" and trace["L1.0"].base_url == "https://models.example/v1"


def test_a_dry_run_needs_no_key_but_the_replay_does(fake, monkeypatch):
    monkeypatch.setenv("MOA_CORE_KEY", "sk-core")
    config = fake_config(fake.url, proposers=["alpha"])
    keyed = config.model_copy(
        update={"aggregator": config.aggregator.model_copy(update={"api_key_env": "MOA_CORE_KEY"})}
    )
    source = run(keyed)
    monkeypatch.delenv("MOA_CORE_KEY")
    fake.requests.clear()
    edit = moa_lab.AggregatorTemplate("Short:\n{references}")
    assert moa_lab.plan(source, edit, cache=False).calls == 1
    with pytest.raises(ConfigError, match="MOA_CORE_KEY is not set"):
        moa_lab.replay(source, edit, cache=False, trace_path=False, progress=False)
    assert fake.chat_requests() == []


def test_by_default_a_run_caches_saves_and_shows_progress(fake, tmp_path, capsys):
    trace = moa_lab.run(QUESTION, fake_config(fake.url))
    assert trace.path.parent == tmp_path / "traces" and Trace.load(trace.path).final == trace.final
    assert trace.sample == 0 and trace["L1.0"].replicate == 0
    assert "MoA" in capsys.readouterr().err
    fake.requests.clear()
    again = asyncio.run(moa_lab.arun(QUESTION, fake_config(fake.url)))
    assert fake.chat_requests() == [] and all(again[n].cache_hit for n in again)
    assert again.path.exists()
    assert again.sample == 0 and "MoA" in capsys.readouterr().err


def test_the_same_model_at_another_endpoint_is_another_cache_entry(fake, tmp_path):
    backend = _in_process(lambda body: "an answer")
    run(fake_config("http://a.test/v1"), cache=tmp_path / "c", backend=backend)
    other = run(fake_config("http://b.test/v1"), cache=tmp_path / "c", backend=backend)
    assert not any(other[n].cache_hit for n in other)
    assert len(CallCache(tmp_path / "c")) == 8


def test_an_answer_without_usage_is_cached_without_usage(fake, tmp_path):
    def bare(body):
        return dict(
            completion(body["model"], "no usage", prompt_tokens=1, completion_tokens=1), usage=None
        )

    backend = Backend(transport=ChatServer(bare).transport())
    first = run(fake_config(fake.url), cache=tmp_path / "c", backend=backend)
    again = run(fake_config(fake.url), cache=tmp_path / "c", backend=backend)
    assert first["L2.0"].usage is None and first.totals().tokens is None
    assert again["L2.0"].cache_hit and again["L2.0"].usage is None and again.final == "no usage"


def test_a_blank_answer_is_an_error_and_never_a_reference(fake):
    def reply(body):
        return " \n\t " if body["model"] == "alpha" else f"{body['model']} here"

    trace = run(fake_config(fake.url, max_retries=1), backend=_in_process(reply))
    assert trace["L1.0"].response is None and not trace["L1.0"].ok and trace["L1.0"].attempts == 2
    assert trace["L1.0"].error.endswith(
        "an empty answer (finish_reason stop) (gave up after 2 attempts)"
    )
    assert trace["L2.0"].messages[0]["content"].endswith("\n1. beta here\n2. gamma here")
    assert trace.references("L2.0") == ["L1.1", "L1.2"]


def test_a_plan_estimates_an_empty_answer_of_an_older_trace_as_empty(fake):
    def one_token_a_character(body):
        size = len(canonical_json(body["messages"]))
        return completion(
            body["model"], f"{body['model']} here", prompt_tokens=size, completion_tokens=1
        )

    backend = Backend(transport=ChatServer(one_token_a_character).transport())
    data = run(fake_config(fake.url), backend=backend).to_dict()
    # Versions before "truthful calls" recorded an empty answer as an empty reference.
    alpha = next(node for node in data["nodes"] if node["id"] == "L1.0")
    alpha["response"] = ""
    aggregator = next(node for node in data["nodes"] if node["id"] == "L2.0")
    system = aggregator["messages"][0]["content"]
    aggregator["messages"][0]["content"] = system.replace("1. alpha here", "1. ")
    size = len(canonical_json(aggregator["messages"]))  # one token a character, as the server counted
    aggregator["usage"] = {"prompt_tokens": size, "completion_tokens": 1, "total_tokens": size + 1}
    source = Trace.from_dict(data)
    planned = plan(source, NodeParams("L1.0", temperature=0.1), cache=False)
    # Nothing but the temperature changes, so the aggregator would send what it sent before.
    expected = len(canonical_json(list(source["L2.0"].messages)))
    assert next(n for n in planned.nodes if n.node == "L2.0").prompt_tokens == expected


@pytest.mark.parametrize(
    ("journaled", "held"),
    [
        (0, "it holds none of them"),
        (2, "it holds the first 2 as a journal (Trace.load reads it)"),
        (4, "it holds all of them as a journal (Trace.load reads it)"),
    ],
)
def test_a_trace_that_could_not_be_written_says_what_its_file_holds(
    fake, tmp_path, monkeypatch, journaled, held
):
    real_journal = Trace.journal

    def journal(self, node):
        if self.journaled == journaled:
            raise OSError(28, "No space left on device")
        real_journal(self, node)

    def save(self, path=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Trace, "journal", journal)
    monkeypatch.setattr(Trace, "save", save)
    path = tmp_path / "t.json"
    trace = run(fake_config(fake.url), trace_path=path)
    assert trace.status == "complete" and trace.unsaved == (
        f"the trace could not be written to {path} (No space left on device): of 4 finished calls "
        f"{held}; the rest are in memory only"
    )


def test_a_cache_hit_carries_what_the_call_recorded(fake, tmp_path):
    def thoughtful(body):
        answer = completion(body["model"], f"{body['model']} says", prompt_tokens=3, completion_tokens=2)
        answer["choices"][0]["message"]["reasoning_content"] = "I weigh it."
        return answer | {"timings": {"prompt_ms": 1.5, "predicted_per_second": 20}}

    backend = Backend(transport=ChatServer(thoughtful).transport())
    first = run(fake_config(fake.url), cache=tmp_path / "c", backend=backend)
    again = run(fake_config(fake.url), cache=tmp_path / "c", backend=backend)
    for node in first.calls():
        hit, sent_ = again[node], first[node]
        assert hit.cache_hit and not sent_.cache_hit
        assert (hit.response, hit.reasoning, hit.timings) == (
            f"{sent_.model} says",
            "I weigh it.",
            {"prompt_ms": 1.5, "predicted_per_second": 20.0},
        )
        assert hit.latency == sent_.latency and hit.usage == sent_.usage
        assert sent_.reasoning == "I weigh it."


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ({"latency": "fast", "ttft": True}, {"latency": None, "ttft": None}),
        ({"latency": 2, "ttft": 0.5}, {"latency": 2.0, "ttft": 0.5}),
        (
            {"reasoning": None, "text": "<think>hm</think>42"},
            {"reasoning": None, "response": "<think>hm</think>42"},
        ),
        ({"text": "<think>hm</think>42"}, {"reasoning": "hm", "response": "42"}),
        ({"reasoning": 5, "text": "42"}, {"reasoning": None, "response": "42"}),
    ],
)
def test_a_cache_entry_is_read_field_by_field(fake, tmp_path, stored, read):
    config = fake_config(fake.url, proposers=["alpha"])
    cache = CallCache(tmp_path / "c")
    cache.set(run(config)["L2.0"].cache_key, {"text": "from the cache", "usage": None} | stored)
    hit = run(config, cache=cache)["L2.0"]
    cache.close()
    assert hit.cache_hit and {name: getattr(hit, name) for name in read} == read


def test_every_call_of_a_run_is_cached_under_the_key_of_the_contract(fake):
    config = fake_config(fake.url)
    agents = [a.model_copy(update={"temperature": 0.3, "max_tokens": 64}) for a in config.agents()]
    config = config.model_copy(update={"proposers": [agents[:3]], "aggregator": agents[3]})
    trace = run(config)
    for call in trace.records():
        assert call.cache_key == call_key(
            model=call.model,
            base_url=call.base_url,
            messages=[dict(m) for m in call.messages],
            params={"temperature": 0.3, "max_tokens": 64},
            replicate=call.replicate,
        )
        assert dict(call.params) == {"temperature": 0.3, "max_tokens": 64}
        assert call.started_at <= call.sent_at <= call.ended_at
    assert all(r.body["stream"] is True for r in fake.chat_requests())  # streamed unless told not to
    fake.requests.clear()
    run(config.model_copy(update={"stream": False}))
    assert all("stream" not in r.body for r in fake.chat_requests())


def test_the_strategy_of_a_config_is_its_kinds_unless_one_is_given(fake):
    assert strategy_for(moa_lab.preset("tot")).__name__ == "tree_search"
    assert strategy_for(moa_lab.preset("debate")).__name__ == "debate"
    assert strategy_for(moa_lab.preset("moa")).__name__ == "layered_mixture"
    custom = moa_lab.StrategyConfig(name="best-of-two", members=[{"model": "m", "base_url": fake.url}])
    assert strategy_for(custom, strategy=len) is len
    with pytest.raises(ConfigError) as caught:
        strategy_for(custom)
    assert str(caught.value) == (
        "this config is for a strategy you write (best-of-two): pass it, e.g. "
        "moa_lab.run(prompt, config, strategy=my_strategy)"
    )


def test_a_file_name_moa_lab_chooses_never_replaces_a_file(fake, tmp_path, monkeypatch):
    taken = tmp_path / "taken.json"
    taken.write_text("someone's notes")
    monkeypatch.setattr("moa_lab._run.default_trace_path", lambda *args, **kwargs: taken)
    with pytest.raises(TraceError) as caught:
        run(fake_config(fake.url), trace_path=True)
    assert str(caught.value) == (
        f"cannot write the trace to {taken}: File exists; choose another --trace-out or "
        "$MOA_LAB_TRACE_DIR"
    )
    assert taken.read_text() == "someone's notes" and fake.chat_requests() == []


def test_a_journal_read_while_the_run_goes_on_is_the_run_so_far(fake, tmp_path):
    seen = []

    def read_back(trace, node):
        if node in trace and not seen:
            seen.append(Trace.load(tmp_path / "t.json"))

    done = run(fake_config(fake.url), trace_path=tmp_path / "t.json", on_call=read_back)
    (so_far,) = seen
    assert (so_far.run_id, so_far.prompt, so_far.status) == (done.run_id, done.prompt, "running")
    assert len(so_far) == 1 and so_far.config == done.config


def test_a_streamed_call_is_heard_as_it_is_written_and_its_first_token_is_cached(tmp_path):
    heard = {}

    def on_call(trace, node):
        if node in trace.in_flight and trace.in_flight[node].text:
            heard[node] = trace.in_flight[node].text

    with FakeLLM(token_seconds=0.02) as server:
        config = fake_config(server.url, proposers=["alpha"])
        first = run(config, on_call=on_call, cache=tmp_path)
        again = run(config, cache=tmp_path)
    assert set(heard) == {"L1.0", "L2.0"}
    assert all(first[n].response.startswith(text) for n, text in heard.items())
    assert all(first[n].ttft is not None and again[n].ttft == first[n].ttft for n in heard)
    assert all(again[n].cache_hit for n in heard)
