"""Which part of an answer came from which reference (``_analysis.provenance``).

The texts are crafted so the truth is known: an answer put together from given sentences of given
references, plus new text.
"""

from __future__ import annotations

import random
import sys

import pytest

from moa_lab import Call, Trace, TraceError, _analysis
from moa_lab._analysis import _spans
from moa_lab._trace import new_graph

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
