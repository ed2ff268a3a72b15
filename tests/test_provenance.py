"""Which part of an answer came from which reference (``_analysis.provenance``) and its panel.

The texts are crafted so the truth is known: an answer put together from given sentences of given
references, plus new text.
"""

from __future__ import annotations

import html
import random
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from moa_lab import Call, Trace, TraceError, _analysis, views
from moa_lab._analysis import _spans
from moa_lab._trace import new_graph
from moa_lab.views._style import model_colors

A = [
    "The mitochondria is the powerhouse of the cell and makes most of its energy.",
    "Cells divide by mitosis in a tightly controlled cycle of growth.",
    "Ribosomes translate messenger RNA into the proteins a cell needs.",
]
B = [
    "Photosynthesis turns light into chemical energy inside the chloroplasts.",
    "Plants release oxygen as a by-product of this slow process.",
    "Water climbs up the stem through narrow xylem vessels every day.",
]
NEW = "Nobody expected the quiet violin recital to sell out so quickly."


def _trace(references: dict[str, tuple[str, str | None]], answer: str | None) -> Trace:
    """Proposers ``L1.0``, ``L1.1``, … answering ``references`` (name -> (model, text)), then an
    aggregator ``L2.0`` that read them all in that order and answered ``answer``."""
    trace = Trace(new_graph([{"role": "user", "content": "q"}], {"layers": 2}, run_id="crafted"))
    nodes = []
    for index, (model, text) in enumerate(references.values()):
        nodes.append(_call(trace, f"L1.{index}", "proposer", 1, model, text))
    _call(trace, "L2.0", "aggregator", 2, "model-agg", answer, nodes)
    trace.graph.graph["final"] = answer
    return trace


def _call(trace, node, role, layer, model, text, references=()):
    error = "injected failure" if text is None and role == "proposer" else None
    trace.add_call(
        Call(
            id=node, role=role, layer=layer, index=int(node.split(".")[1]), model=model,
            base_url="http://127.0.0.1:9/v1", params={}, messages=({"role": "user", "content": "q"},),
            started_at=1_700_000_000.0 + layer, ended_at=1_700_000_001.0 + layer, response=text,
            error=error,
        ),
        references,
    )  # fmt: skip
    return node


def _picked() -> tuple[Trace, str]:
    """Sentence 1 of A, sentence 3 of B and a new sentence."""
    answer = f"{A[0]} {B[2]} {NEW}"
    return _trace({"a": ("model-a", " ".join(A)), "b": ("model-b", " ".join(B))}, answer), answer


def _count(text: str) -> int:
    return len(_analysis.words(text))


# -- the spans and the shares -----------------------------------------------------------------------
def test_an_answer_made_of_two_references_and_a_new_sentence_is_cut_at_its_sentences():
    trace, answer = _picked()
    found = _analysis.provenance(trace, "L2.0")
    assert [(span.text.strip(), span.source) for span in found.spans] == [
        (A[0], "L1.0"),
        (B[2], "L1.1"),
        (NEW, None),
    ]
    assert "".join(span.text for span in found.spans) == answer
    assert all(answer[span.start : span.end] == span.text for span in found.spans)
    assert [span.score for span in found.spans] == [1.0, 1.0, 0.0]
    words = _count(answer)
    assert found.words == words
    assert found.shares == {"L1.0": _count(A[0]) / words, "L1.1": _count(B[2]) / words}
    assert found.new == pytest.approx(_count(NEW) / words)
    assert found.node == "L2.0" and found.references == ("L1.0", "L1.1")


def test_a_phrase_copied_from_b_is_not_credited_to_a_that_holds_part_of_it():
    # A holds "hurt latency in interactive" too, but B holds the whole phrase: the longer run wins.
    rust = "Rust programs are fast because the compiler checks memory safety,"
    a = f"{rust} while bugs hurt latency in interactive tools."
    b = "Garbage collection pauses can hurt latency in interactive services."
    answer = f"{rust} and {b[0].lower()}{b[1:]}"
    found = _analysis.provenance(_trace({"a": ("m", a), "b": ("m", b)}, answer), "L2.0")
    sources = {span.text.strip(): span.source for span in found.spans}
    assert sources == {
        rust: "L1.0",
        "and": None,
        "garbage collection pauses can hurt latency in interactive services.": "L1.1",
    }
    assert all(span.also == () for span in found.spans)


def test_an_edited_word_stays_inside_its_sentence_but_a_short_new_sentence_does_not():
    edited = A[1].replace("tightly", "carefully")  # one word changed
    answer = f"{A[0]} Truly so. {edited}"
    found = _analysis.provenance(_trace({"a": ("m", " ".join(A))}, answer), "L2.0")
    assert [(span.text.strip(), span.source) for span in found.spans] == [
        (A[0], "L1.0"),
        ("Truly so.", None),
        (edited, "L1.0"),
    ]
    assert found.spans[2].score == pytest.approx(1 - 1 / _count(edited))
    assert found.shares["L1.0"] == pytest.approx((_count(A[0]) + _count(edited)) / _count(answer))


def test_an_answer_identical_to_a_reference_is_all_that_reference():
    text = " ".join(B)
    found = _analysis.provenance(_trace({"a": ("m", " ".join(A)), "b": ("m", text)}, text), "L2.0")
    assert [(span.text, span.source, span.score) for span in found.spans] == [(text, "L1.1", 1.0)]
    assert found.shares == {"L1.0": 0.0, "L1.1": 1.0} and found.new == 0.0


def test_two_references_holding_the_same_text_credit_the_first_read_and_name_the_other():
    text = " ".join(A)
    found = _analysis.provenance(_trace({"a": ("m", text), "b": ("m", text)}, text), "L2.0")
    assert [(span.source, span.also) for span in found.spans] == [("L1.0", ("L1.1",))]
    assert found.shares == {"L1.0": 1.0, "L1.1": 0.0}


@pytest.mark.parametrize("missing", [None, "", "   ", "!!!"])
def test_a_reference_without_words_holds_nothing(missing):
    trace = _trace({"a": ("m", missing), "b": ("m", " ".join(B))}, f"{A[0]} {B[0]}")
    found = _analysis.provenance(trace, "L2.0")
    assert found.shares["L1.0"] == 0.0
    assert [span.source for span in found.spans] == [None, "L1.1"]


def test_an_answer_without_words_has_no_share_and_a_call_that_read_nothing_is_all_new():
    empty = _analysis.provenance(_trace({"a": ("m", A[0])}, None), "L2.0")
    assert empty.spans == () and empty.words == 0 and empty.new == 0.0
    assert empty.shares == {"L1.0": 0.0}
    marks = _analysis.provenance(_trace({"a": ("m", A[0])}, " -- "), "L2.0")
    assert [(s.text, s.source) for s in marks.spans] == [(" -- ", None)] and marks.new == 0.0
    alone = _analysis.provenance(_trace({"a": ("m", A[0])}, "x"), "L1.0")
    assert alone.references == () and alone.shares == {} and alone.new == 1.0
    assert [(s.text, s.source) for s in alone.spans] == [(A[0], None)]
    with pytest.raises(TraceError, match=r"no call 'L9\.9'"):
        _analysis.provenance(alone_trace := _trace({}, "x"), "L9.9")
    assert alone_trace.calls() == ["L2.0"]


def test_offsets_hold_for_text_whose_lower_case_is_longer():
    # "İ".lower() is two characters: offsets must come from the text as written.
    ref = "İstanbul straddles the Bosporus between Europe and Asia — naïve café culture 東京 🎉 thrives."
    answer = f"» Ünïcödé first: {ref} Then ß ends it."
    found = _analysis.provenance(_trace({"a": ("m", ref)}, answer), "L2.0")
    assert "".join(span.text for span in found.spans) == answer
    assert [(span.text.strip(), span.source) for span in found.spans] == [
        ("» Ünïcödé first:", None),
        (ref, "L1.0"),
        ("Then ß ends it.", None),
    ]


def test_provenance_round_trips_through_plain_data():
    trace, _ = _picked()
    found = _analysis.provenance(trace, "L2.0")
    assert _analysis.Provenance.from_dict(found.to_dict()) == found
    assert found.to_dict()["spans"][0]["also"] == []


def _prose(rng: random.Random, sentences: int) -> list[str]:
    vocabulary = [f"w{i}" for i in range(400)]
    return [" ".join(rng.choices(vocabulary, k=rng.randint(6, 18))) + "." for _ in range(sentences)]


def _lines_run(answer: str, references: dict[str, str]) -> int:
    """How many lines of ``_spans`` run while attributing ``answer``: the work done in Python."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code.co_filename != _spans.__file__:
            return None
        count += event == "line"
        return tracer

    sys.settrace(tracer)
    try:
        _analysis.provenance_of(answer, references)
    finally:
        sys.settrace(None)
    return count


def _mixed(rng: random.Random, references: list[list[str]], sentences: int) -> str:
    picked = [
        rng.choice(rng.choice(references)) if rng.random() < 0.6 else None for _ in range(sentences)
    ]
    fresh = iter(_prose(rng, sentences))
    return " ".join(s if s is not None else next(fresh) for s in picked)


def test_the_work_grows_linearly_with_the_text_and_the_references():
    # Counted, not timed: timings belong to benchmarks/bench_scale.py.
    rng = random.Random(7)
    small = [_prose(rng, 100) for _ in range(3)]
    big = [_prose(rng, 400) for _ in range(3)]
    one = _lines_run(_mixed(rng, small, 150), {f"r{i}": " ".join(t) for i, t in enumerate(small)})
    four = _lines_run(_mixed(rng, big, 600), {f"r{i}": " ".join(t) for i, t in enumerate(big)})
    assert 3 < four / one < 5
    many = [_prose(rng, 20) for _ in range(200)]
    answer = _mixed(rng, many, 150)
    few = _lines_run(answer, {f"r{i}": " ".join(t) for i, t in enumerate(many[:50])})
    all_ = _lines_run(answer, {f"r{i}": " ".join(t) for i, t in enumerate(many)})
    assert all_ / few < 5  # 4x the references: at most linear


# -- the panel ---------------------------------------------------------------------------------------
_NEW_STYLE = (
    'style="background:#dcfce7;color:#14532d;text-decoration:none;border-radius:2px" '
    'title="new: in no reference"'
)
EVIL = '<script>alert("x")</script> <img src=x onerror="alert(1)"> & so'


class _Tags(HTMLParser):
    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _assert_inert(page: str) -> None:
    tags = _Tags(page).tags
    assert {t for t, _ in tags} <= {"div", "span", "pre", "h3", "h4", "b", "style", "table", "tr",
                                    "th", "td", "details", "summary", "del", "ins"}  # fmt: skip
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]


def _evil_trace() -> Trace:
    a = f"{A[0]} {EVIL} is what model A wrote."
    return _trace({"a": ('model <b>"a"</b>', a), "b": ("model-b", " ".join(B))}, f"{a} {B[1]} {NEW}")


def test_the_panel_colours_each_span_by_its_reference_and_escapes_model_text():
    trace = _evil_trace()
    page = views.provenance_html(trace, "L2.0")
    _assert_inert(page)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<script>alert" not in page and 'model <b>"a"</b>' not in page
    colors = model_colors(trace)
    spans = re.findall(
        r'<span data-ref="(\d)" style="background:(#\w{6})\w*;[^"]*" title="([^"]*)">', page
    )
    assert [(ref, color) for ref, color, _ in spans] == [
        ("1", colors['model <b>"a"</b>']),
        ("2", colors["model-b"]),
    ]
    assert html.unescape(spans[0][2]).startswith('from 1. L1.0 (model <b>"a"</b>) · 100% of its words')
    text = html.unescape(re.sub(r"<[^>]+>", "", page.split('class="moa-prov-text">')[1]))
    assert text == trace.final  # the answer, whole and in order


def test_the_legend_gives_each_reference_its_share_and_the_new_share():
    trace, answer = _picked()
    page = views.provenance_html(trace, "L2.0")
    legend = html.unescape(
        re.sub(r"<[^>]+>", "", page.split('class="moa-prov-legend">')[1].split("</div>")[0])
    )
    words = _count(answer)
    assert legend == (
        f"from 1. L1.0 (model-a) {_count(A[0]) / words:.0%} · "
        f"from 2. L1.1 (model-b) {_count(B[2]) / words:.0%} · new {_count(NEW) / words:.0%}"
    )


def test_a_legend_of_many_references_names_those_credited_most():
    references = {
        f"r{i}": ("m", f"Reference number {i} says something of its own today.") for i in range(30)
    }
    answer = "Reference number 17 says something of its own today. And more."
    page = views.provenance_html(_trace(references, answer), "L2.0")
    legend = html.unescape(re.sub(r"<[^>]+>", "", page.split('class="moa-prov-legend">')[1]))
    assert legend.startswith("from 18. L1.17 (m) 82% · 29 more references 0% · new 18%")


def test_the_call_panel_shows_provenance_first_and_colours_words_from_another_reference():
    trace, _ = _picked()
    page = views.call_html(trace, "L2.0")
    assert page.index("Where this answer came from") < page.index("layer / index")
    assert "<h4>Response</h4>" not in page  # the coloured answer is the response
    assert "words this call wrote" not in page
    diffs = page.split("<h4>Against each reference</h4>")[1]
    against_a = diffs.split("<details")[1]
    inserted = re.findall(r"<ins ([^>]*)>(.*?)</ins>", against_a)
    kinds = {text.strip(" ."): attrs for attrs, text in inserted}
    assert 'data-ref="2"' in kinds[B[2][:-1]] and 'title="from L1.1"' in kinds[B[2][:-1]]
    assert [a for t, a in kinds.items() if t in NEW] == [_NEW_STYLE, _NEW_STYLE]
    _assert_inert(page)
    alone = views.call_html(trace, "L1.0")  # read nothing: the plain response, no panel
    assert "<h4>Response</h4>" in alone and "Where this answer came from" not in alone


def test_the_call_panel_of_a_call_with_html_in_every_text_stays_inert():
    page = views.call_html(_evil_trace(), "L2.0")
    _assert_inert(page)
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_the_share_figure_has_a_bar_per_reference_and_one_for_new_text():
    trace, _ = _picked()
    found = _analysis.provenance(trace, "L2.0")
    figure = views.provenance_figure(trace)
    bar = figure.data[0]
    assert list(bar.y) == ["1. L1.0 (model-a)", "2. L1.1 (model-b)", "new (in no reference)"]
    assert list(bar.x) == [found.shares["L1.0"], found.shares["L1.1"], found.new]
    evil = views.provenance_figure(_evil_trace(), "L2.0")
    assert evil.data[0].y[0] == '1. L1.0 (model &lt;b&gt;"a"&lt;/b&gt;)'
    alone = views.provenance_figure(trace, "L1.0")
    assert not alone.data and "read no references" in alone.layout.annotations[0].text
    with pytest.raises(TraceError):
        views.provenance_figure(trace, "L7.0")


def test_the_panel_loads_without_plotly():
    code = (
        "import sys\n"
        "from moa_lab import views\n"
        "from moa_lab._trace import Trace\n"
        "trace = Trace.load('traces/open-ended-learning-a-language.json')\n"
        "page = views.provenance_html(trace, trace.aggregator())\n"
        "print('plotly' in sys.modules, 'Where this answer came from' in page)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


def test_a_shipped_trace_credits_each_proposer_with_what_the_aggregator_copied():
    trace = Trace.load("traces/open-ended-learning-a-language.json")
    found = _analysis.provenance(trace, "L2.0")
    # Copied word for word from L1.1, L1.0 and L1.2 (L1.2 holds the first sentence only in part).
    copied = {
        "L1.1": "Learning a new language as an adult can be challenging but rewarding.",
        "L1.0": "There are many online resources available for learning languages",
        "L1.2": "Listen to music, watch TV shows in the target language",
    }
    for source, text in copied.items():
        start = trace.final.index(text)
        holding = [s for s in found.spans if s.start <= start and start + len(text) <= s.end]
        assert [s.source for s in holding] == [source]
    assert found.spans[-1].source is None  # the closing advice is the aggregator's own
    assert sum(found.shares.values()) + found.new == pytest.approx(1.0)
