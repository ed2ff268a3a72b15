"""The text measures behind attribution and answer evolution (``moa_lab._analysis``)."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from moa_lab import RunError, run
from moa_lab import _analysis as analysis
from moa_lab.testing import ChatServer, FakeLLM, completion, fake_config

PROPOSALS = {
    "alpha": "Paris is the capital of France and sits on the river Seine in the north",
    "beta": "The French capital city is Paris which has about two million inhabitants today",
    "gamma": "Lyon is a large city known for its food but it is not the capital",
}


def _copy_reference_two(body: dict) -> dict:
    """Proposers answer fixed texts; the aggregator repeats reference 2 verbatim and adds a line."""
    model = body["model"]
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    numbered = dict(
        line.split(". ", 1) for line in system.splitlines() if line[:2] in ("1.", "2.", "3.")
    )
    text = f"{numbered['2']} so that is settled" if model == "omega" else PROPOSALS[model]
    return completion(model, text, prompt_tokens=10, completion_tokens=len(text.split()))


@pytest.fixture(scope="module")
def copying_trace():
    """Two layers: three proposers, then an aggregator that copied reference 2 (beta's answer)."""
    with ChatServer(_copy_reference_two) as server:
        return run(
            "What is the capital of France?", fake_config(server.url), cache=False, trace_path=False
        )


def test_words_are_lowercased_and_keep_apostrophes():
    assert analysis.words("Don't PANIC, it's 42!") == ["don't", "panic", "it's", "42"]


def test_carried_is_the_share_of_source_bigrams_found_in_the_target():
    assert analysis.carried("a b c d", "a b c d") == 1.0
    assert analysis.carried("a b c d", "a b x c d") == pytest.approx(2 / 3)  # ab, cd of ab, bc, cd
    assert analysis.carried("a b c d", "d c b a") == 0.0


def test_copied_counts_words_inside_verbatim_runs_of_three_in_any_order():
    assert analysis.copied("a b c d e f", "x c d e y a b") == pytest.approx(0.5)  # only "c d e"
    assert analysis.copied("a b c d e f", "d e f a b c") == 1.0  # both halves, swapped
    assert analysis.copied("a b c d e f", "a b x c d x e f") == 0.0  # pairs are not runs of three


def test_bleu_is_a_precision_of_the_candidate_against_the_reference():
    reference = "the cat sat on the mat"
    assert analysis.bleu("the cat sat", reference) == pytest.approx(1.0)
    assert analysis.bleu(reference, "the cat sat") < 1.0
    assert analysis.bleu("dogs bark loudly", reference) == 0.0
    partial = analysis.bleu("the cat ran off the mat", reference)
    assert 0.0 < partial < 1.0


@pytest.mark.parametrize("empty", ["", None, "   ", "!!!"])
def test_every_measure_is_zero_for_text_without_words(empty):
    assert analysis.carried(empty, "some words here") == 0.0
    assert analysis.copied("some words here", empty) == 0.0
    assert analysis.bleu(empty, "some words here") == 0.0
    assert analysis.TfIdf([empty, "some words"]).cosine(0, 1) == 0.0


def test_tfidf_cosine_discounts_words_every_text_uses():
    tfidf = analysis.TfIdf(["the red fox", "the red dog", "the blue fox", "the blue cat"])
    assert tfidf.cosine(0, 0) == pytest.approx(1.0)
    # fox/dog/cat appear in fewer texts than "the", so sharing "fox" counts more than sharing "the".
    assert tfidf.cosine(0, 2) > tfidf.cosine(1, 3)
    assert tfidf.cosine(0, 2) == pytest.approx(tfidf.cosine(2, 0))


def test_word_diff_marks_replaced_words_and_rebuilds_the_new_text():
    runs = analysis.word_diff("the cat sat.", "the dog sat!")
    assert runs == [
        ("equal", "the "),
        ("delete", "cat "),
        ("insert", "dog "),
        ("equal", "sat"),
        ("delete", "."),
        ("insert", "!"),
    ]
    old, new = "One  two\nthree four", "One two three five six"
    runs = analysis.word_diff(old, new)
    assert "".join(text for op, text in runs if op != "delete") == new
    assert "".join(text for op, text in runs if op != "insert").split() == old.split()


def test_word_diff_keeps_a_break_between_words_that_only_one_text_has():
    for old, new in (("cat sat", "cat, sat"), ("cat,sat", "cat sat"), ("a b.", "a b. c")):
        runs = analysis.word_diff(old, new)
        assert "".join(text for op, text in runs if op != "delete") == new
        assert "".join(text for op, text in runs if op != "insert").split() == old.split()


def _prose(rng: random.Random, sentences: int) -> list[str]:
    """Sentences of common and rare words with commas and full stops, some in bullets."""
    common = "the of and to a in is that it for as with was on be by this are or".split()
    rare = [f"w{i}" for i in range(3000)]
    out = []
    for _ in range(sentences):
        chosen = [rng.choice(common) if rng.random() < 0.5 else rng.choice(rare) for _ in range(12)]
        chosen[rng.randrange(2, 10)] += ","
        out.append(("- " if rng.random() < 0.1 else "") + " ".join(chosen).capitalize() + ".")
    return out


def test_word_diff_keeps_its_contract_and_finds_shared_passages_in_400_kb_texts():
    rng = random.Random(7)
    sentences = _prose(rng, 7_200)  # 400 KB: far beyond what difflib compares pair by pair
    edited = list(sentences)
    for _ in range(400):  # moved, replaced, dropped and new sentences, and words changed
        at = rng.randrange(len(edited))
        kind = rng.random()
        if kind < 0.25:
            edited.insert(rng.randrange(len(edited)), edited.pop(at))
        elif kind < 0.5:
            edited[at] = _prose(rng, 1)[0]
        elif kind < 0.75:
            del edited[at]
        else:
            edited[at] = edited[at].replace(" the ", " a ", 1) + " New words here."
    old, new = " ".join(sentences), "\n\n".join(edited)
    assert len(old) > 400_000
    runs = analysis.word_diff(old, new)
    assert "".join(text for op, text in runs if op != "delete") == new
    assert "".join(text for op, text in runs if op != "insert").split() == old.split()
    kept = sum(len(text) for op, text in runs if op == "equal")
    assert kept > 0.8 * len(new)  # the passages both texts share are found, not replaced whole


def test_attribution_numbers_are_the_measures_of_each_edge(copying_trace):
    texts = {n: copying_trace[n].response for n in copying_trace.calls()}
    tfidf = analysis.TfIdf([texts[n] for n in copying_trace.calls()] + [copying_trace.final])
    slot = {n: i for i, n in enumerate(copying_trace.calls())}
    for (source, target), numbers in analysis.attribution(copying_trace).items():
        assert numbers.carried == analysis.carried(texts[source], texts[target])
        assert numbers.copied == analysis.copied(texts[source], texts[target])
        assert numbers.bleu == analysis.bleu(texts[target], texts[source])
        assert numbers.tfidf == pytest.approx(tfidf.cosine(slot[source], slot[target]))


def test_attribution_finds_the_reference_the_aggregator_copied(copying_trace):
    reuse = analysis.attribution(copying_trace)
    assert set(reuse) == set(copying_trace.graph.edges)
    aggregator = copying_trace.aggregator()
    by_source = {r.source: r for r in reuse.values() if r.target == aggregator}
    copied_from = copying_trace.references(aggregator)[1]
    assert by_source[copied_from].position == 2
    assert by_source[copied_from].carried == 1.0 and by_source[copied_from].copied == 1.0
    for source, numbers in by_source.items():
        if source != copied_from:
            assert numbers.carried < 0.5 and numbers.copied < 0.5
            assert numbers.bleu < by_source[copied_from].bleu
            assert numbers.tfidf < by_source[copied_from].tfidf
    for numbers in reuse.values():
        for value in (numbers.carried, numbers.copied, numbers.bleu, numbers.tfidf):
            assert 0.0 <= value <= 1.0
    assert by_source[copied_from].to_dict()["source"] == copied_from


def test_attribution_follows_changes_to_the_trace(copying_trace):
    aggregator = copying_trace.aggregator()
    source = copying_trace.references(aggregator)[0]
    before = analysis.attribution(copying_trace)[source, aggregator].carried
    kept = copying_trace[aggregator].response
    try:
        copying_trace.update_call(aggregator, response=copying_trace[source].response)
        assert analysis.attribution(copying_trace)[source, aggregator].carried == 1.0
    finally:
        copying_trace.update_call(aggregator, response=kept)
    assert analysis.attribution(copying_trace)[source, aggregator].carried == before


def test_layer_similarity_and_similarity_to_final(copying_trace):
    nodes, matrix = analysis.layer_similarity(copying_trace, 1)
    assert nodes == copying_trace.calls(1)
    assert [matrix[i][i] for i in range(3)] == [1.0, 1.0, 1.0]
    assert all(matrix[i][j] == matrix[j][i] for i in range(3) for j in range(3))
    # alpha and beta both say Paris is the capital; gamma talks about Lyon.
    assert matrix[0][1] > matrix[0][2]
    to_final = analysis.similarity_to_final(copying_trace)
    assert to_final[copying_trace.aggregator()] == pytest.approx(1.0)
    assert max(to_final, key=lambda n: to_final[n] if n != copying_trace.aggregator() else 0) == "L1.1"


def test_layer_similarity_can_keep_the_first_answers_and_diversity_counts_every_pair(copying_trace):
    nodes, matrix = analysis.layer_similarity(copying_trace, 1)
    first, top = analysis.layer_similarity(copying_trace, 1, first=2)
    assert first == nodes[:2] and top == [row[:2] for row in matrix[:2]]
    pairs = [matrix[i][j] for i in range(3) for j in range(i + 1, 3)]
    assert analysis.layer_diversity(copying_trace, 1) == pytest.approx(sum(pairs) / 3)
    assert analysis.layer_diversity(copying_trace, 2) is None  # one answer: no pair


def test_similarity_to_final_is_empty_for_an_unfinished_run():
    with FakeLLM(broken={"omega": 400}) as fake:
        with pytest.raises(RunError) as caught:
            run("q", fake_config(fake.url), cache=False, trace_path=False)
    trace = caught.value.trace
    assert trace.final is None
    assert analysis.similarity_to_final(trace) == {}
    assert len(analysis.attribution(trace)) == trace.graph.number_of_edges()


def test_the_core_imports_no_plotting_or_widget_library():
    code = (
        "import sys, moa_lab, moa_lab._analysis, moa_lab.cli\n"
        "print(sorted(m for m in ('plotly', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
