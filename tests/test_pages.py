"""The pages a user looks at (summary card, level and call panels, explorer, HTML export, trace
browser) tell the truth for every strategy: a mixture, a debate, a Tree-of-Thoughts search, an
imported ToT log, a replay; they find calls by their text and keep every trace string inert."""

from __future__ import annotations

import html
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from plotly.callbacks import Points

import moa_lab
from moa_lab import Agent, AggregatorTemplate, DebateConfig, ToTConfig, Trace, TraceError, views
from moa_lab._analysis import REUSE_MEASURES
from moa_lab.testing import ChatServer, FakeLLM, completion, fake_config, game24_oracle
from moa_lab.views import _browser, _export_data
from moa_lab.views._graph import KEY
from moa_lab.views._html import call_rows
from moa_lab.views._key import graph_key_html
from moa_lab.views._steps import answer_call, depth_title

EVIL = 'Say <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> & done'
SHIPPED = Path(__file__).resolve().parents[1] / "traces" / "open-ended-learning-a-language.json"
TOT_LOG = (
    Path(
        os.environ.get("MOA_LAB_TOT_GAME24_DATA")
        or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tot-game24"
    )
    / "gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json"
)
OPTIONS = {"cache": False, "trace_path": False, "progress": False}


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes (script contents are not tags)."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _inert(page: str) -> None:
    """The model's markup is text: no img tag, no on* handler, no script we did not write."""
    tags = _Tags(page).tags
    assert not [t for t, _ in tags if t == "img"]
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]
    assert "<script>window.__pwned" not in page


def _ignores_math(page: str) -> bool:
    """True when the page's root (its first tag) tells MathJax 3 and 2 to leave it alone."""
    first = _Tags(page).tags[0][1].get("class", "").split()
    return "mathjax_ignore" in first and "tex2jax_ignore" in first and "moa" in first


def _text(page: str) -> str:
    """What a reader sees of an HTML snippet (the stylesheet and tags dropped, entities read)."""
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.fixture(scope="module")
def mixture():
    return Trace.load(SHIPPED)


@pytest.fixture(scope="module")
def debate():
    """Three agents (two of one model, told apart by their seed), two rounds, decided by vote."""
    script = {"a": ["I think 41.", "So it is 42."], "b": ["It is 42.", "Answer: 42"]}

    def answer(body):
        rounds = sum(1 for m in body["messages"] if m["role"] == "assistant")
        seed = body.get("seed", 0)
        text = script["a" if seed != 2 else "b"][rounds]
        return completion(body["model"], text, prompt_tokens=5, completion_tokens=4)

    with ChatServer(answer) as server:
        agents = [Agent(model="qwen", base_url=server.url, seed=s, temperature=0.7) for s in (0, 1)]
        agents.append(Agent(model="llama", base_url=server.url, seed=2, max_tokens=64))
        return moa_lab.run(
            "A bat and a ball cost $1.10. How much?", DebateConfig(agents=agents), **OPTIONS
        )


@pytest.fixture(scope="module")
def search():
    with ChatServer(game24_oracle) as server:
        return moa_lab.run(
            "4 5 6 10", ToTConfig(agent=Agent(model="oracle", base_url=server.url)), **OPTIONS
        )


@pytest.fixture(scope="module")
def imported():
    if not TOT_LOG.is_file():
        pytest.skip(f"the ToT paper's logs are not at {TOT_LOG.parent}")
    from moa_lab.experiments.game24 import tot_traces

    return tot_traces(TOT_LOG)[0]


@pytest.fixture(scope="module")
def replayed():
    with FakeLLM() as fake:
        source = moa_lab.run(EVIL, fake_config(fake.url, layers=3), **OPTIONS)
        edit = AggregatorTemplate("Be brief, costs in $: {references}")
        return source, moa_lab.replay(source, edit, **OPTIONS)


# -- the summary card ---------------------------------------------------------------------------
def test_the_card_of_a_mixture_shows_what_tells_agents_of_one_model_apart(mixture):
    page = views.summary_html(mixture)
    seen = _text(page)
    assert "Mixture-of-Agents: 2 layers" in seen and "layer what" in seen
    for call in mixture.records():
        assert call.sampling in seen  # T0.5 seed 1 ≤128, T0.8 seed 2 ≤128, ...
    assert seen.count("cut off") == 1 + sum(c.truncated for c in mixture.records())  # + the badge
    assert "1 proposers" in seen and "2 aggregator" in seen


def test_the_card_of_a_debate_names_rounds_and_shows_the_decision(debate):
    seen = _text(views.summary_html(debate))
    assert "debate (Du et al. 2023): 3 agents, 2 rounds" in seen
    assert "round what" in seen and "1 debaters" in seen and "Layer" not in seen
    assert "decided by majority: 42" in seen and "votes: 42 ×" in seen
    assert "T0.7 seed 0" in seen and "T0.7 seed 1" in seen and "seed 2 ≤64" in seen
    assert "$1.10" in seen  # as text: the root tells MathJax to leave it alone
    assert _ignores_math(views.summary_html(debate))


def test_the_card_of_a_search_counts_states_per_step_and_judges_the_answer(search):
    seen = _text(views.summary_html(search))
    assert "Tree of Thoughts (Yao et al. 2023)" in seen and "step what" in seen
    for step in range(1, search.layers + 1):
        calls = search.records(step)
        states = [s for c in calls if c.role == "thought" for s in c.annotations["states"]]
        kept = sum(s["kept"] for s in states)
        judges = sum(c.role == "evaluator" for c in calls)
        assert f"{step} {len(states)} states proposed, {kept} kept; {judges} evaluations" in seen
    assert "final answer (correct by the Game of 24 checker)" in seen


def test_the_card_of_an_imported_search_says_what_the_log_does_not_keep(imported):
    seen = _text(views.summary_html(imported))
    assert "imported from gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json" in seen
    assert "no times, no per-call tokens" in seen
    assert "tokens unknown" in seen and "wall time unknown" in seen
    assert "0 s" not in seen.split("prompt:")[0]
    assert re.search(r"1 12 states proposed, 5 kept gpt-4 T0\.7 ≤1000 – –", seen)


def test_the_card_of_a_replay_names_its_source_and_edit_and_marks_reused_calls(replayed):
    source, replay = replayed
    page = views.summary_html(replay)
    seen = _text(page)
    assert (
        f"replay of {source.run_id}: aggregator template 'Be brief, costs in $: {{references}}'" in seen
    )
    assert seen.count("3 reused from the source run") == 2 and "cache hit" not in seen
    assert "6 reused" in seen
    _inert(page)


def test_the_card_keeps_a_crafted_decision_inert(debate):
    crafted = Trace.from_dict(debate.to_dict())
    crafted.graph.graph["decision"] = {
        "method": "majority<script>window.__pwned=1</script>",
        "answer": '<img src=x onerror="window.__pwned=2">',
        "votes": {"<img src=x onerror=1>": 2},
        "chosen": "<b>",
    }
    _inert(views.summary_html(crafted))


async def _draft_and_judge(run):
    """A strategy of one's own, with roles moa_lab does not know: two drafts, then a judge."""
    first, second = run.config.members
    drafts = [
        await run.call(first, role="drafter", layer=1, index=k, messages=run.messages, id=f"P1.{k}")
        for k in range(2)
    ]
    judged = await run.call(
        second,
        role="judge",
        layer=2,
        index=0,
        references=[d.id for d in drafts],
        messages=[*run.messages, {"role": "user", "content": "Pick: " + drafts[0].response}],
        id="J2.0",
    )
    return judged.response


def test_the_pages_of_a_strategy_of_ones_own_name_its_levels_and_roles(fake):
    members = [Agent(model=m, base_url=fake.url) for m in ("a", "b")]
    config = moa_lab.StrategyConfig(name="draft-and-judge", members=members, depth=2)
    trace = moa_lab.run("Why?", config, strategy=_draft_and_judge, **OPTIONS)
    seen = _text(views.summary_html(trace))
    assert "draft-and-judge (a strategy of your own): depth 2" in seen
    assert "depth what" in seen and "1 drafters" in seen and "2 judge" in seen
    assert depth_title(trace, 1) == "Depth 1 (drafters)"
    page = views.to_html(trace)
    assert "Every call, depth by depth" in page and "Depth 2 (judge)" in page
    assert views.TraceExplorer(trace).selected == "J2.0"


# -- levels and calls ---------------------------------------------------------------------------
def test_levels_are_named_for_their_strategy(mixture, debate, search):
    assert depth_title(mixture, 1) == "Layer 1 (proposers)"
    assert depth_title(mixture, 2) == "Layer 2 (aggregator)"
    assert depth_title(debate, 2) == "Round 2 (debaters)"
    assert re.fullmatch(
        r"Step 2 \(\d+ states proposed, \d+ kept; \d+ evaluations\)", depth_title(search, 2)
    )
    with pytest.raises(TraceError, match="round 9 has no calls"):
        views.layer_html(debate, 9)


def test_a_search_step_lists_every_state_kept_or_pruned_and_every_evaluation(search):
    page = views.layer_html(search, 2)
    thoughts = [c for c in search.records(2) if c.role == "thought"]
    judges = [c for c in search.records(2) if c.role == "evaluator"]
    states = [s for c in thoughts for s in c.annotations["states"]]
    assert page.count('class="moa-card"') == len(thoughts)
    assert page.count('<tr class="moa-kept">') == sum(s["kept"] for s in states)
    assert page.count('<tr class="moa-pruned">') == sum(not s["kept"] for s in states)
    assert all(f'<tr data-node="{c.id}">' in page for c in judges)
    assert f"Evaluations ({len(judges)})" in page


def test_call_rows_say_what_a_replay_did_and_what_a_search_made_of_a_call(replayed, search, imported):
    _, replay = replayed
    reused = dict(call_rows(replay["L1.0"], 0.0))
    assert reused["replay"].startswith("reused: the source run's answer")
    assert reused["latency"].endswith("(the source run's)")
    badges = views.call_html(replay, "L1.0")
    assert "reused from the source run" in badges and "cache hit" not in badges
    assert "value" in dict(call_rows(search["V1.0.0"], 0.0))
    assert re.fullmatch(r"\d+ proposed, \d+ kept.*", dict(call_rows(search["G1.0"], 0.0))["states"])
    assert dict(call_rows(search["G1.0"], 0.0))["step / index"] == "1 / 0"
    assert dict(call_rows(imported["G1.0"], 0.0))["ran"].startswith("unknown")


def test_the_first_call_shown_is_where_the_answer_came_from(mixture, debate, search):
    assert answer_call(mixture) == "L2.0"
    assert answer_call(debate) == debate.graph.graph["decision"]["chosen"]
    best = answer_call(search)
    assert search[best].annotations["chosen"] and search[best].layer == search.layers


# -- search -------------------------------------------------------------------------------------
def test_search_finds_calls_by_any_of_their_texts_literally_and_case_blind(search, replayed):
    found, total = views.search_calls(search, "LEFT: 6 10 20")
    assert total == len(found) and {m.node for m in found} >= {"G1.0", "V1.0.0"}
    first = found[0]
    assert first.found.lower() == "left: 6 10 20" and first.where in ("response", "state")
    assert views.search_calls(search, ".*")[1] == 0  # a literal, not a pattern
    assert views.search_calls(search, "   ") == ([], 0)
    few, many = views.search_calls(search, "left:", limit=3)
    assert len(few) == 3 and many > 3
    _, replay = replayed
    matches, _ = views.search_calls(replay, "costs in $")
    assert [m.node for m in matches] == ["L3.0"] and matches[0].where.startswith("message")


# -- the explorer -------------------------------------------------------------------------------
def _titles(explorer) -> list[str]:
    return [explorer.tabs.get_title(i) for i in range(len(explorer.tabs.children))]


def test_the_explorer_of_a_search_has_its_tree_and_a_click_on_a_state_shows_its_call(search):
    explorer = views.TraceExplorer(search)
    assert _titles(explorer)[:3] == ["call", "step side by side", "search tree"]
    assert explorer.selected == answer_call(search)
    explorer.tabs.selected_index = 2
    (tree,) = explorer.tabs.children[2].children
    assert tree._config["responsive"] and explorer.refit.tick >= 1
    states = next(d for d in tree.data if d.meta == "moa:states" and d.name == "pruned")
    state = states.customdata[0]
    proposer = moa_lab.thought_tree(search).nodes[state]["call"]
    points = Points(point_inds=[0], xs=[states.x[0]], ys=[states.y[0]], trace_name="p", trace_index=0)
    states._dispatch_on_click(points, None)
    assert explorer.selected == proposer and explorer.tabs.selected_index == 0


def test_the_explorer_names_rounds_and_finds_calls_by_their_text(debate):
    explorer = views.TraceExplorer(debate)
    assert _titles(explorer)[1] == "round side by side" and "search tree" not in _titles(explorer)
    assert [label for label, _ in explorer.layer_picker.options] == ["round 1", "round 2"]
    assert explorer.figure._config["responsive"]
    found = explorer.search("answer: 42")
    assert {m.node for m in found} and "call" in explorer.search_note.value
    assert explorer.search_results.layout.display == "block"
    explorer.search_results.value = found[0].node  # picking a result shows that call
    assert explorer.selected == found[0].node and explorer.tabs.selected_index == 0
    explorer.search("")
    assert explorer.search_results.options == () and explorer.search_results.layout.display == "none"


def test_the_graph_key_is_read_off_the_figure_and_every_root_ignores_math(replayed):
    _, replay = replayed
    figure = views.layer_graph(replay)
    key = graph_key_html(replay, figure)
    widths = {d.line.width for d in figure.data if (d.name or "").startswith("edges with")}
    assert all(f'stroke-width="{w:.1f}"' in key for w in widths)
    assert "6 answers this replay reused" in key and "0 cache hits" in key
    for page in (key, views.call_html(replay, "L3.0"), views.layer_html(replay, 1)):
        assert _ignores_math(page)


def test_where_the_key_is_shown_the_legend_does_not_repeat_it(replayed):
    _, replay = replayed
    legend_key = [d for d in views.layer_graph(replay).data if d.legendgroup == KEY]
    assert [d.name.split(":")[0] for d in legend_key] == ["size", "edge width"]  # the figure alone
    explorer = views.TraceExplorer(replay)
    shown = {d.name.split(":")[0] for d in explorer.figure.data if d.showlegend is not False}
    assert "edge width" not in shown and "<b>edge width</b>" in explorer.key.value
    # every answer wrote as many tokens: the key has no sizes to show, so the legend keeps its entry
    assert "size" in shown and "<b>node size</b>" not in explorer.key.value


# -- the export ---------------------------------------------------------------------------------
def _block(page: str, block_id: str):
    found = re.search(rf'<script type="application/json" id="{block_id}">(.*?)</script>', page, re.S)
    assert found, f"no {block_id} in the page"
    assert "<" not in found.group(1) and ">" not in found.group(1)
    return json.loads(found.group(1))


def test_the_export_of_a_search_opens_with_its_tree_and_maps_each_state_to_its_call(search):
    page = views.to_html(search)
    assert page.index('id="moa-tree"') < page.index('id="moa-graph"')
    proposed = _block(page, "moa-tree-calls")
    tree = moa_lab.thought_tree(search)
    assert proposed == {n: d["call"] for n, d in tree.nodes(data=True) if d["call"]}
    assert "Every call, step by step" in page and "states proposed" in page
    assert f'data-initial="{answer_call(search)}"' in page
    index = dict((row[0], row[3]) for row in _block(page, "moa-search-data"))
    assert ["state", search["G1.0"].annotations["states"][0]["state"]] in index["G1.0"]


def test_the_export_of_a_debate_and_a_replay_tells_what_they_are(debate, replayed):
    page = views.to_html(debate)
    assert "Every call, round by round" in page and "Round 1 (debaters)" in page
    assert "decided by majority: 42" in page and 'id="moa-tree"' not in page
    source, replay = replayed
    page = views.to_html(replay)
    assert f"replay of {source.run_id}: aggregator template" in page
    assert page.count("reused from the source run") >= 6
    assert _ignores_math(page[page.index("<body") :])
    _inert(page)


def test_the_export_defines_its_measures_and_its_marks(mixture):
    page = views.to_html(mixture)
    key = page[page.index('id="moa-key"') :]
    for meaning in REUSE_MEASURES.values():
        assert meaning.replace("'", "&#x27;") in key
    assert "node size" in page and "edge width" in page and 'href="#moa-key"' in page


def test_the_search_box_looks_through_the_call_data_of_a_big_page(search, monkeypatch):
    monkeypatch.setattr(_export_data, "MESSAGE_CHARS", 100)
    page = views.to_html(search, panels=False)
    assert 'id="moa-search-data"' not in page  # the call data serves the search
    calls = dict(_block(page, "moa-call-data"))
    assert calls["G1.0"]["states"][0] == ["state", search["G1.0"].annotations["states"][0]["state"]]
    assert all(len(text.split("\n\n… (the first ")[0]) <= 100 for _, text in calls["G1.0"]["messages"])
    script = page.rsplit("<script>", 1)[1]
    assert 'id="moa-search"' in page and "textContent" in script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


# -- the trace browser --------------------------------------------------------------------------
def test_the_browser_lists_traces_and_gives_one_line_for_each_file_it_cannot_read(
    tmp_path, debate, search, replayed
):
    folder = tmp_path / "runs"
    debate.save(folder / "debate.json")
    search.save(folder / "search.json")
    replayed[0].save(folder / "evil.json")
    (folder / "crafted.json").write_text('{"directed": true, "graph": {"run_id": "../x"}}')
    (folder / "binary.json").write_bytes(b"\xff\xfe\x00")
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "notes.txt").write_text("not listed")
    (folder / "folder.json").mkdir()
    (folder / "empty.json").write_text("{}")
    listed = _browser.list_traces(folder)
    names = [item.path.name for item in listed]
    assert names[:3] == ["evil.json", "search.json", "debate.json"]  # newest first
    assert sorted(names[3:]) == ["binary.json", "crafted.json", "deep.json", "empty.json"]
    for item in listed[3:]:
        assert item.problem and "\n" not in item.problem and "Traceback" not in item.problem
    assert listed[1].run[0].endswith("keep 5") and listed[2].answer == debate.final

    browser = views.TraceBrowser(folder)
    page = browser.table.value
    assert _ignores_math(page)
    assert page.count('<span class="moa-badge moa-err">not a trace</span>') == 4
    _inert(page)
    assert len(browser.picker.options) == 3
    explorer = browser.explore(folder / "search.json")
    assert browser.view.children == (explorer,) and "search tree" in _titles(explorer)
    shown = browser.compare(folder / "debate.json", folder / "evil.json")
    assert browser.view.children == (shown,)
    assert browser.explore(folder / "deep.json") is None and "RecursionError" in browser.note.value
    browser.picker.value = (str(folder / "debate.json"),)
    browser.compare_button.click()
    assert "pick two traces" in browser.note.value and browser.view.children == (shown,)


def test_the_browser_lists_a_file_too_big_to_read_without_reading_it(tmp_path, search, monkeypatch):
    saved = search.save(tmp_path / "search.json")
    monkeypatch.setattr(_browser, "MAX_BYTES", saved.stat().st_size - 1)
    (item,) = _browser.list_traces(tmp_path)
    assert item.problem.startswith("too big to list here") and item.run == ()


def test_the_browser_says_so_for_a_folder_that_is_not_there(tmp_path):
    browser = views.TraceBrowser(tmp_path / "nowhere")
    assert "no such folder" in browser.table.value and browser.picker.options == ()
