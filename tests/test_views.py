"""Figures as data, HTML panels, the explorer widget driven without a kernel, and the HTML export."""

from __future__ import annotations

import html
import itertools
import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import plotly.graph_objects as go
import pytest
from plotly.callbacks import Points

from moa_lab import Trace, TraceError, Usage, _analysis, run, views
from moa_lab.cli import main
from moa_lab.testing import ChatServer, FakeLLM, completion, fake_config
from moa_lab.views import _card, _export, _export_data, _graph, _reuse

#: A prompt the fake models repeat in their answers: markup that must stay text everywhere.
EVIL = 'Say <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> %{x} & done'


@pytest.fixture(scope="module")
def trace():
    """Three layers (3 proposers, 3 proposers, aggregator); beta is the slow one."""
    with FakeLLM(delay={"beta": 0.15}) as fake:
        return run(EVIL, fake_config(fake.url, layers=3), cache=False, trace_path=False, progress=False)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """The same run twice through one cache: the second trace is all cache hits."""
    cache = tmp_path_factory.mktemp("cache")
    with FakeLLM() as fake:
        config = fake_config(fake.url)
        first = run("q", config, cache=cache, trace_path=False, progress=False)
        second = run("q", config, cache=cache, trace_path=False, progress=False)
    return first, second


@pytest.fixture(scope="module")
def broken():
    """beta always answers 400, so its calls of layers 1 and 2 are errors (and dropped)."""
    with FakeLLM(broken={"beta": 400}) as fake:
        config = fake_config(fake.url, layers=3, max_retries=0)
        return run("q", config, cache=False, trace_path=False, progress=False)


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _assert_inert(page: str) -> None:
    """The model's markup is text: no img tag, no on* handler, no script we did not write."""
    tags = _Tags(page).tags
    assert not [t for t, _ in tags if t == "img"]
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]
    assert "<script>window.__pwned" not in page


def _nodes(figure: go.Figure) -> dict[str, tuple[float, float, object]]:
    """Node id -> (x, y, plotly trace) from the layer graph's node traces."""
    found = {}
    for data in figure.data:
        if data.meta == views.NODE_TRACE:
            for i, node in enumerate(data.customdata):
                assert node not in found, f"{node} drawn twice"
                found[node] = (data.x[i], data.y[i], data)
    return found


def _named(figure: go.Figure, name: str):
    matches = [d for d in figure.data if d.name == name]
    assert len(matches) == 1, f"expected one trace named {name!r}"
    return matches[0]


def _edge_segments(figure: go.Figure) -> list[tuple[tuple[float, float], tuple[float, float], object]]:
    segments = []
    for data in figure.data:
        if data.mode == "lines" and data.legendgroup != _graph.KEY:
            xs, ys = list(data.x), list(data.y)
            for i in range(0, len(xs), 3):
                assert math.isnan(xs[i + 2])  # each edge is followed by a break
                segments.append(((xs[i], ys[i]), (xs[i + 1], ys[i + 1]), data))
    return segments


# -- layer graph ----------------------------------------------------------------------------------
def test_layer_graph_places_layers_in_columns_and_the_aggregator_last(trace):
    nodes = _nodes(views.layer_graph(trace))
    assert set(nodes) == set(trace.calls())
    for node, (x, y, _) in nodes.items():
        assert x == trace[node].layer
        if trace[node].role == "proposer":
            assert y == trace[node].index
    aggregator = trace.aggregator()
    assert nodes[aggregator][:2] == (3, 1.0)  # last column, centred on the three rows
    assert views.node_positions(trace)[aggregator] == (3.0, 1.0)


def test_layer_graph_draws_one_segment_per_edge_between_the_right_nodes(trace):
    figure = views.layer_graph(trace)
    positions = views.node_positions(trace)
    drawn = sorted((a, b) for a, b, _ in _edge_segments(figure))
    expected = sorted((positions[u], positions[v]) for u, v in trace.graph.edges)
    assert drawn == expected
    assert len(drawn) == 3 * 3 + 3  # layer 2 reads all of layer 1, the aggregator all of layer 2


def test_layer_graph_colours_by_model_and_sizes_by_output_tokens(trace):
    figure = views.layer_graph(trace)
    nodes = _nodes(figure)
    colors = {}
    for node, (_, _, data) in nodes.items():
        assert data.name == trace[node].model
        colors[data.name] = data.marker.color
    assert len(set(colors.values())) == len(colors) == 4
    assert colors == views.model_colors(trace)

    bigger = run_graph_copy(trace)
    bigger.update_call(bigger.calls(1)[0], usage=Usage(prompt_tokens=5, completion_tokens=900))
    sizes = {}
    for node, (_, _, data) in _nodes(views.layer_graph(bigger)).items():
        sizes[node] = data.marker.size[list(data.customdata).index(node)]
    assert sizes[bigger.calls(1)[0]] == max(sizes.values())
    assert sizes[bigger.calls(1)[0]] > sizes[bigger.calls(1)[1]]


def run_graph_copy(trace):
    """An independent copy of a trace (figures must not care where it came from)."""
    return type(trace).from_dict(json.loads(json.dumps(trace.to_dict())))


def test_layer_graph_hover_shows_the_call_with_model_text_escaped(trace):
    figure = views.layer_graph(trace)
    for node, (_, _, data) in _nodes(figure).items():
        assert data.hovertemplate is None  # a template would expand %{x} written by a model
        text = data.hovertext[list(data.customdata).index(node)]
        assert trace[node].model in text and node in text and "tokens" in text
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
        assert "<script" not in text and "<img" not in text
        assert "&quot;" not in text and "&#x27;" not in text  # plotly would show these literally
    edge_hover = _named(figure, "edge details").hovertext
    assert len(edge_hover) == trace.graph.number_of_edges()
    assert all("carried" in text and "TF-IDF" in text for text in edge_hover)


def test_layer_graph_marks_cache_hits_and_errors(cached, broken):
    first, second = cached
    assert not _named(views.layer_graph(first), "cache hit").x
    hits = _named(views.layer_graph(second), "cache hit")
    assert sorted(hits.customdata) == sorted(second.calls()) and hits.showlegend
    errors = _named(views.layer_graph(broken), "error")
    assert sorted(errors.customdata) == ["L1.1", "L2.1"]
    hover = _nodes(views.layer_graph(broken))["L1.1"]
    assert "error" in hover[2].hovertext[list(hover[2].customdata).index("L1.1")]


def test_edge_width_follows_what_the_target_reused():
    def answer(body):
        model, system = body["model"], body["messages"][0]["content"]
        if model == "omega":  # repeats reference 1 in full and a word of reference 2
            first = next(line for line in system.splitlines() if line.startswith("1. "))[3:]
            text = first + " also seven"
        else:
            text = {"alpha": "one two three four five six", "beta": "seven eight nine ten eleven"}[model]
        return completion(model, text, prompt_tokens=3, completion_tokens=len(text.split()))

    with ChatServer(answer) as server:
        config = fake_config(server.url, proposers=("alpha", "beta"))
        small = run("q", config, cache=False, trace_path=False, progress=False)
    segments = {(a, b): data for a, b, data in _edge_segments(views.layer_graph(small))}
    positions = views.node_positions(small)
    strong = segments[positions["L1.0"], positions["L2.0"]]
    weak = segments[positions["L1.1"], positions["L2.0"]]
    assert strong.line.width > weak.line.width and strong.opacity > weak.opacity
    plain = views.layer_graph(small, measure=None)
    assert len({d.line.width for _, _, d in _edge_segments(plain)}) == 1


def test_layer_graph_highlight_and_selected_options(trace):
    figure = views.layer_graph(trace, highlight=["L2.0", "L3.0"], selected="L2.0")
    nodes = _nodes(figure)
    for node, (_, _, data) in nodes.items():
        opacity = data.marker.opacity[list(data.customdata).index(node)]
        assert opacity == (1.0 if node in ("L2.0", "L3.0") else 0.25)
    assert _named(figure, "other edges").opacity < 0.1
    kept = [s for s in _edge_segments(figure) if s[2].name != "other edges"]
    assert len(kept) == 1  # only L2.0 -> L3.0 joins two highlighted nodes
    ring = next(d for d in figure.data if d.meta == views.SELECTED_TRACE)
    assert list(ring.customdata) == ["L2.0"] and (ring.x[0], ring.y[0]) == nodes["L2.0"][:2]
    assert views.layer_graph(trace, highlight="L1.0") is not None
    with pytest.raises(TraceError, match=r"no call 'L9\.9'"):
        views.layer_graph(trace, highlight="L9.9")
    with pytest.raises(TraceError, match="unknown measure"):
        views.layer_graph(trace, measure="rouge")


# -- other figures ------------------------------------------------------------------------------
def _service_bars(figure):
    bars = {}
    for data in figure.data:
        if data.type == "bar" and data.customdata is not None:
            for i, node in enumerate(data.customdata):
                bars[node] = (data.base[i], data.x[i], data.marker.line.width[i])
    return bars


def test_timeline_draws_service_from_when_it_began_and_outlines_the_call_that_ended_a_layer(trace):
    figure = views.timeline(trace)
    start = min(trace[n].started_at for n in trace.calls())
    bars = _service_bars(figure)
    assert set(bars) == set(trace.calls())
    for node, (base, length, outline) in bars.items():
        call = trace[node]
        assert base == pytest.approx(call.sent_at - start)
        assert base + length == pytest.approx(call.ended_at - start, abs=0.003)
        slow = call.model == "beta"  # the delayed model finishes last in layers 1 and 2
        if call.role == "proposer":
            assert (outline > 0) == slow, node
    assert "serving and" in figure.layout.title.text and "ended its layer" in figure.layout.title.text


def test_timeline_draws_waiting_for_a_slot_apart_from_service():
    """One slot, three proposers of 0.2 s: served one after another, the waits hatched, never as work."""
    with FakeLLM(delay=0.2) as fake:
        config = fake_config(fake.url, max_concurrency=1)
        trace = run("q", config, cache=False, trace_path=False, progress=False)
    figure = views.timeline(trace)
    bars = _service_bars(figure)
    firsts = sorted(trace.calls(1), key=lambda n: trace[n].sent_at)
    spans = [(bars[n][0], bars[n][0] + bars[n][1]) for n in firsts]
    assert all(b[0] >= a[1] - 0.01 for a, b in itertools.pairwise(spans))  # no overlap
    assert all(0.18 < hi - lo < 0.2 + 1.5 for lo, hi in spans)  # its own 0.2 s, not the wait before
    waiting = _named(figure, "waiting (for a slot, the model, or a retry)")
    waits = dict(zip([h.split("</b>")[0][3:] for h in waiting.hovertext], waiting.x, strict=True))
    # Each waited at least for the 0.2 s calls served before it, and its wait ends where its bar begins.
    assert waits[firsts[1]] > 0.18 and waits[firsts[2]] > 0.38
    assert waits.get(firsts[0], 0) < waits[firsts[1]] < waits[firsts[2]]
    for hover, base, length in zip(waiting.hovertext, waiting.base, waiting.x, strict=True):
        node = hover.split("</b>")[0][3:]
        assert base + length == pytest.approx(bars[node][0], abs=0.002)


def test_timeline_marks_calls_that_sent_nothing_and_says_when_times_are_unknown(cached):
    figure = views.timeline(cached[1])
    assert _service_bars(figure) == {}
    hits = _named(figure, "cache hit")
    assert set(hits.customdata) == set(cached[1].calls())
    assert all("nothing sent" in h for h in hits.hovertext)
    old = Trace.load(Path(__file__).parent / "data" / "v0.1" / "replay.json")
    figure = views.timeline(old)
    assert "not told apart" in figure.layout.title.text
    assert "reused (replay)" in {d.name for d in figure.data} or all(not c.reused for c in old.records())


def test_usage_sums_tokens_by_layer_and_puts_cached_tokens_apart(cached):
    first, second = cached
    figure = views.usage(first)
    by_layer = next(d for d in figure.data if d.name == "prompt tokens" and d.xaxis == "x")
    expected = [sum(first[n].prompt_tokens for n in first.calls(layer)) for layer in (1, 2)]
    assert list(by_layer.y) == expected
    again = views.usage(second)
    sent = [d for d in again.data if d.name in ("prompt tokens", "completion tokens")]
    assert all(sum(d.y) == 0 for d in sent)
    from_cache = [d for d in again.data if d.name == "tokens served from cache"]
    assert sum(from_cache[0].y) == sum(
        first[n].prompt_tokens + first[n].completion_tokens for n in first.calls()
    )
    assert [d.marker.pattern.shape for d in from_cache] == ["/", "/"]
    for axis in ("xaxis", "xaxis3"):  # every row lists the layers in the same order
        assert list(again.layout[axis].categoryarray) == ["layer 1", "aggregator"]


def test_usage_counts_cost_spent_and_saved_apart():
    def answer(body):
        return completion(body["model"], "an answer", prompt_tokens=1_000, completion_tokens=500)

    prices = {"alpha": {"input": 1.0, "output": 2.0}}
    with ChatServer(answer) as server:
        config = fake_config(server.url, proposers=("alpha",), aggregator="alpha", prices=prices)
        spent = run("q", config, cache=False, trace_path=False, progress=False)
    figure = views.usage(spent)
    cost = next(d for d in figure.data if d.name == "cost spent" and d.xaxis == "x5")
    assert list(cost.y) == pytest.approx([0.002, 0.002])  # 1000 * $1/M + 500 * $2/M per layer
    assert not [a for a in figure.layout.annotations if "unknown" in a.text]


def test_evolution_shows_each_layers_similarity_and_convergence_to_the_final(trace):
    figure = views.evolution(trace)
    heatmaps = [d for d in figure.data if d.type == "heatmap"]
    assert len(heatmaps) == 2  # the two proposer layers, side by side
    for heatmap, layer in zip(heatmaps, (1, 2), strict=True):
        assert list(heatmap.x) == trace.calls(layer)
        z = heatmap.z
        assert all(z[i][i] == 1.0 and z[i][j] == z[j][i] for i in range(3) for j in range(3))
    convergence = _named(figure, "layer mean vs final (convergence)")
    assert list(convergence.x) == [1, 2, 3] and convergence.y[-1] == pytest.approx(1.0)
    lengths = next(d for d in figure.data if d.type == "box")
    assert len(lengths.y) == len(trace)


def test_evolution_switches_layers_with_a_menu_beyond_four_layers():
    with FakeLLM() as fake:
        config = fake_config(fake.url, proposers=("alpha", "beta"), layers=7)
        deep = run("q", config, cache=False, trace_path=False, progress=False)
    figure = views.evolution(deep)
    assert len([d for d in figure.data if d.type == "heatmap"]) == 1
    buttons = figure.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == [f"layer {n}" for n in range(1, 7)]
    assert buttons[5].args[0]["x"] == [deep.calls(6)]


def test_evolution_heatmap_of_a_big_layer_shows_its_first_answers_and_says_so(trace, monkeypatch):
    monkeypatch.setattr(_reuse, "HEATMAP_UP_TO", 2)
    figure = views.evolution(trace)
    heatmaps = [d for d in figure.data if d.type == "heatmap"]
    assert [list(h.x) for h in heatmaps] == [trace.calls(1)[:2], trace.calls(2)[:2]]
    titles = [a.text for a in figure.layout.annotations]
    assert "Layer 1: similarity between answers (the first 2 of 3)" in titles
    diversity = _named(figure, "mean similarity within the layer (1 - diversity)")
    # The summary line still counts every pair of the layer, not only those the heatmap shows.
    assert list(diversity.y) == [_analysis.layer_diversity(trace, layer) for layer in (1, 2)]


def test_attribution_has_a_row_per_call_with_references_and_a_menu_of_measures(trace):
    figure = views.attribution(trace)
    (heatmap,) = figure.data
    targets = [n for n in trace.calls() if trace.references(n)]
    assert [label.split()[0] for label in heatmap.y] == targets
    reuse = _analysis.attribution(trace)
    for row, target in zip(heatmap.z, targets, strict=True):
        assert list(row) == [reuse[s, target].carried for s in trace.references(target)]
    assert "&lt;script&gt;" not in "".join(
        text for row in heatmap.hovertext for text in row
    )  # the hover names calls only
    assert [b.label for b in figure.layout.updatemenus[0].buttons] == list(_analysis.REUSE_MEASURES)
    copied = views.attribution(trace, measure="copied").data[0].z
    assert copied[0][0] == reuse[trace.references(targets[0])[0], targets[0]].copied


def test_attribution_of_many_calls_is_summarised_by_layer_and_reference_range(trace, monkeypatch):
    monkeypatch.setattr(_reuse, "ROWS_UP_TO", 2)
    monkeypatch.setattr(_reuse, "COLUMNS_UP_TO", 2)
    figure = views.attribution(trace)
    (heatmap,) = figure.data
    assert "summarised" in figure.layout.title.text
    assert list(heatmap.y) == ["layer 2 · 3 calls", "layer 3 · 1 calls"]
    assert list(heatmap.x) == ["1-2", "3-3"]
    reuse = _analysis.attribution(trace)
    cell = [reuse[trace.references(t)[p], t].carried for t in trace.calls(2) for p in (0, 1)]
    assert heatmap.z[0][0] == pytest.approx(sum(cell) / len(cell))
    assert "the mean of 6 edges" in heatmap.hovertext[0][0]


def test_layer_graph_draws_each_calls_strongest_references_beyond_its_edge_budget(trace, monkeypatch):
    monkeypatch.setattr(_graph, "EDGES_UP_TO", 5)  # 12 edges into 4 calls: one edge each
    figure = views.layer_graph(trace)
    reuse = _analysis.attribution(trace)
    drawn = {(start, end) for start, end, _ in _edge_segments(figure)}
    positions = views.node_positions(trace)
    expected = set()
    for target in trace.calls():
        if trace.references(target):
            best = max(trace.references(target), key=lambda s: reuse[s, target].carried)
            expected.add((positions[best], positions[target]))
    assert drawn == expected
    assert "of 12 edges, each call's 1 strongest drawn" in figure.layout.title.subtitle.text


def test_reference_reuse_of_many_references_shows_the_strongest(trace, monkeypatch):
    monkeypatch.setattr(_reuse, "COLUMNS_UP_TO", 2)
    figure = views.reference_reuse(trace)
    aggregator = trace.aggregator()
    reuse = _analysis.attribution(trace)
    read = trace.references(aggregator)
    kept = sorted(read, key=lambda s: -reuse[s, aggregator].carried)[:2]
    labels = list(figure.data[0].x)
    assert [label.split("<br>")[0] for label in labels] == [
        f"{read.index(s) + 1}. {s}" for s in read if s in kept
    ]
    assert "the 2 of its 3 references it carried most from" in figure.layout.title.text


def test_reference_reuse_defaults_to_the_aggregator(trace):
    figure = views.reference_reuse(trace)
    assert [d.name for d in figure.data] == list(_analysis.REUSE_MEASURES)
    assert len(figure.data[0].x) == len(trace.references(trace.aggregator()))
    first_layer = views.reference_reuse(trace, "L1.0")
    assert not first_layer.data and "no references" in first_layer.layout.annotations[0].text


def test_every_figure_handles_a_run_that_stopped_early(broken):
    for build in (views.layer_graph, views.timeline, views.usage, views.evolution, views.attribution):
        assert isinstance(build(broken), go.Figure)


# -- HTML panels --------------------------------------------------------------------------------
def test_diff_html_marks_removed_and_added_words_and_escapes_them():
    page = views.diff_html("alpha <script>x</script> beta", "alpha beta gamma")
    deleted = re.findall(r"<del[^>]*>(.*?)</del>", page)
    inserted = re.findall(r"<ins[^>]*>(.*?)</ins>", page)
    assert deleted == ["&lt;script&gt;x&lt;/script&gt; "] and inserted == ["gamma"]
    assert (
        html.unescape(re.sub(r"<[^>]+>", "", page)).split()
        == "alpha <script>x</script> beta gamma".split()
    )
    _assert_inert(page)


def test_call_panel_shows_the_whole_call_and_keeps_model_text_inert(trace):
    node = trace.aggregator()
    page = views.call_html(trace, node)
    data = trace[node]
    for fact in (node, data.model, "max_tokens", "in / ", "attempts", "Messages sent"):
        assert fact in page
    for source in trace.references(node):
        assert f"<b>{source}</b>" in page
    assert page.count("<del") >= 1 and page.count("<ins") >= 1
    assert "You have been provided with a set of responses" in page  # the system prompt sent
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    _assert_inert(page)
    with pytest.raises(TraceError, match="no call"):
        views.call_html(trace, "L7.0")


def test_call_panel_shows_an_error(broken):
    page = views.call_html(broken, "L1.1")
    assert "injected 400 for beta" in page and "moa-error" in page


def test_layer_panel_lays_out_one_card_per_call(trace):
    page = views.layer_html(trace, 2)
    assert page.count('class="moa-card"') == 3
    assert all(f'data-node="{n}"' in page for n in trace.calls(2))
    _assert_inert(page)
    with pytest.raises(TraceError, match="layer 9"):
        views.layer_html(trace, 9)


def test_a_trace_displays_as_a_compact_summary(trace):
    page = trace._repr_html_()
    assert trace.run_id in page and "3 layers" in page and "7 calls" in page
    assert all(model in page for model in ("alpha", "beta", "gamma", "omega"))
    assert "You have been provided" not in page  # no message dump
    assert len(page) < 8_000
    _assert_inert(page)


def test_views_load_plotly_and_ipywidgets_only_when_needed():
    code = (
        "import sys, moa_lab.views as v\n"
        "v.summary_html, v.summary_text, v.diff_html\n"
        "print(sorted(m for m in ('plotly', 'ipywidgets') if m in sys.modules))\n"
        "v.layer_graph\n"
        "print('plotly' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True"]
    with pytest.raises(AttributeError):
        views.no_such_view  # noqa: B018


# -- the explorer widget --------------------------------------------------------------------------
def _click(explorer: views.TraceExplorer, node: str) -> None:
    """What plotly does when a node is clicked in the browser: dispatch to the trace's handlers."""
    for data in explorer.figure.data:
        if data.meta == views.NODE_TRACE and node in data.customdata:
            at = list(data.customdata).index(node)
            points = Points(
                point_inds=[at], xs=[data.x[at]], ys=[data.y[at]], trace_name=data.name, trace_index=0
            )
            data._dispatch_on_click(points, None)
            return
    raise AssertionError(f"{node} is not drawn")


def test_explorer_starts_on_the_aggregator_and_a_click_shows_that_call(trace):
    explorer = views.TraceExplorer(trace)
    assert explorer.selected == trace.aggregator()
    assert f'data-node="{trace.aggregator()}"' in explorer.call_panel.value
    _click(explorer, "L1.1")
    assert explorer.selected == "L1.1"
    panel = explorer.call_panel.value
    assert 'data-node="L1.1"' in panel and trace["L1.1"].model in panel
    assert "&lt;img src=x onerror=" in panel
    _assert_inert(panel)
    ring = next(d for d in explorer.figure.data if d.meta == views.SELECTED_TRACE)
    assert (ring.x[0], ring.y[0]) == views.node_positions(trace)["L1.1"]
    assert explorer.tabs.selected_index == 0


def test_explorer_shows_a_layer_side_by_side_and_rejects_unknown_calls(trace):
    explorer = views.TraceExplorer(trace)
    assert 'data-node="L1.0"' in explorer.layer_panel.value  # layer 1 is shown first
    explorer.show_layer(2)
    assert explorer.tabs.selected_index == 1
    assert all(f'data-node="{n}"' in explorer.layer_panel.value for n in trace.calls(2))
    assert 'data-node="L1.0"' not in explorer.layer_panel.value
    with pytest.raises(TraceError):
        explorer.select("L5.5")
    assert explorer.selected == trace.aggregator()


def test_explorer_builds_a_figure_tab_when_it_is_opened(trace):
    explorer = views.TraceExplorer(trace)
    titles = [explorer.tabs.get_title(i) for i in range(len(explorer.tabs.children))]
    timeline_tab = titles.index("timeline")
    assert explorer.tabs.children[timeline_tab].children == ()
    explorer.tabs.selected_index = timeline_tab
    (figure,) = explorer.tabs.children[timeline_tab].children
    assert isinstance(figure, go.FigureWidget) and figure.layout.title.text.startswith("Timeline")


# -- export ---------------------------------------------------------------------------------------
def test_export_is_one_offline_page_with_every_call(trace, tmp_path):
    path = views.export_html(trace, tmp_path / "out" / "trace.html")
    page = path.read_text("utf-8")
    tags = _Tags(page).tags
    assert not [attrs for tag, attrs in tags if tag == "script" and attrs.get("src")]
    assert not [attrs for tag, attrs in tags if tag == "link"]
    assert "cdn.plot.ly" not in page.replace("https://cdn.plot.ly/", "")  # plotly.js names itself
    assert len(page) > 3_000_000  # plotly.js is inlined
    for node in trace.calls():
        assert f'data-call="{node}"' in page
    assert page.count("&lt;script&gt;window.__pwned=1&lt;/script&gt;") >= len(trace) * 2
    assert "You have been provided with a set of responses" in page  # the prompts sent
    for div in ("moa-graph", "moa-evolution", "moa-attribution", "moa-timeline", "moa-usage"):
        assert f'id="{div}"' in page
    _assert_inert(page)


def _call_data(page: str) -> list:
    """The call data a page carries instead of panels (None when it has none)."""
    found = re.search(r'<script type="application/json" id="moa-call-data">(.*?)</script>', page, re.S)
    assert found, "no call data in the page"
    assert "<" not in found.group(1) and ">" not in found.group(1)  # cannot end its block
    return json.loads(found.group(1))


def test_export_of_a_big_trace_carries_each_call_once_as_inert_data(trace, tmp_path):
    page = views.export_html(trace, tmp_path / "trace.html", panels=False).read_text("utf-8")
    assert 'class="moa-call-details"' not in page  # no panel rendered in advance
    calls = dict(_call_data(page))
    assert list(calls) == trace.calls()
    for node, shown in calls.items():
        assert shown["response"] == trace[node].response  # the model's markup, as text
        assert shown["model"] == trace[node].model
        assert f'data-show="{node}"' in page
    aggregator = calls[trace.aggregator()]
    reuse = _analysis.attribution(trace)
    assert [ref[:2] for ref in aggregator["references"]] == [
        [i, s] for i, s in enumerate(trace.references(trace.aggregator()), 1)
    ]
    first = aggregator["references"][0]
    assert first[2] == round(reuse[first[1], trace.aggregator()].carried, 3)
    assert "You have been provided with a set of responses" in json.dumps(aggregator["messages"])
    script = page.rsplit("<script>", 1)[1]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script  # the page's script builds DOM nodes, never parses HTML
    _assert_inert(page)


def test_export_carries_data_instead_of_panels_beyond_its_panel_budget(trace, monkeypatch):
    assert 'class="moa-call-details"' in views.to_html(trace)
    monkeypatch.setattr(_export, "PANELS_UP_TO", len(trace) - 1)
    page = views.to_html(trace)
    assert 'class="moa-call-details"' not in page and len(_call_data(page)) == len(trace)


def test_export_clips_the_longest_texts_when_the_page_runs_out_of_room(monkeypatch):
    def answer(body: dict) -> dict:
        text = "long " * 600 if body["model"] == "alpha" else f"{body['model']} is brief"
        return completion(body["model"], text, prompt_tokens=10, completion_tokens=5)

    with ChatServer(answer) as server:
        chatty = run("q", fake_config(server.url), cache=False, trace_path=False, progress=False)
    monkeypatch.setattr(_export_data, "MESSAGE_CHARS", 150)
    monkeypatch.setattr(_export_data, "TEXT_BUDGET", 1_500)
    calls = dict(_call_data(views.to_html(chatty, panels=False)))
    cut = "\n\n… (the first "
    for node, shown in calls.items():
        whole = chatty[node].response
        if chatty[node].model == "alpha":  # the long answers lose their end, and say so
            assert shown["response"].startswith(whole[:100]) and len(shown["response"]) < len(whole)
            assert "the page ran out of room for text" in shown["response"]
        else:
            assert shown["response"] == whole
        for _, text in shown["messages"]:
            assert len(text.split(cut)[0]) <= 150


def test_summary_lists_a_few_settings_of_a_big_layer_and_counts_the_rest(trace, monkeypatch):
    monkeypatch.setattr(_card, "SETTINGS_UP_TO", 2)
    page = views.summary_html(trace)
    assert "alpha" in page and "beta" in page and "… 1 more settings" in page


def _cli(argv: list[str]) -> int:
    return main(argv)


def test_view_command_writes_the_page(trace, tmp_path, capsys, cli_fails):
    saved = trace.save(tmp_path / "run.json")
    assert _cli(["view", str(saved), "--html", str(tmp_path / "page.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "page.html")
    assert (tmp_path / "page.html").read_text("utf-8").startswith("<!DOCTYPE html>")
    assert _cli(["view", str(saved)]) == 0
    assert (tmp_path / "run.html").is_file()
    cli_fails("no such trace file", ["view", str(tmp_path / "missing.json")])


def test_no_dollar_reaches_plotly_where_jupyterlab_would_read_it_as_math():
    """Two $ in a title make plotly hand it to MathJax, and JupyterLab's MathJax makes it vanish."""
    import json as _json

    def money(body):
        return completion(
            body["model"], "It costs $1.10 or $0.05, not $$x$$", prompt_tokens=3, completion_tokens=9
        )

    with ChatServer(money) as server:
        config = fake_config(server.url)
        trace = run("What does $5 buy? Or $6?", config, cache=False, trace_path=False, progress=False)
    for name in ("layer_graph", "timeline", "usage", "evolution", "reference_reuse"):
        data = views.__getattr__(name)(trace).to_plotly_json()
        data["layout"].pop("template", None)
        assert "$" not in _json.dumps(data), name


def test_a_model_has_the_same_colour_in_every_trace_and_models_of_one_trace_differ(trace, cached):
    one, other = views.model_colors(trace), views.model_colors(cached[0])
    for model in set(one) & set(other):
        assert one[model] == other[model]
    assert len(set(one.values())) == len(one)
    from moa_lab.views._style import model_color

    firsts = {trace[n].model for n in trace.calls()[:1]}
    assert all(one[m] == model_color(m) for m in firsts)
