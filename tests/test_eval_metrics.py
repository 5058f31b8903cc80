"""Metrics and scoring, checked against values worked out by hand on small fixtures."""

from __future__ import annotations

import math

import pytest

from judgeforge.eval import metrics
from judgeforge.eval.benchmarks import BENCHMARKS, Benchmark, Item
from judgeforge.eval.scoring import score_benchmark


def test_correlations_by_hand():
    # pred vs gold: ranks differ by two adjacent swaps
    pred, gold = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    c = metrics.correlations(pred, gold)
    # Pearson: cov = sum(dx*dy)/n with means 3: dx=[-2,-1,0,1,2], dy=[-1,-2,1,0,2] -> 2+2+0+0+4 = 8; var 10 each
    assert c["pearson"] == pytest.approx(8 / 10)
    assert c["spearman"] == pytest.approx(0.8)  # no ties: Pearson of the ranks
    # Kendall: 10 pairs, discordant (1,2) and (3,4) -> (8 - 2) / 10
    assert c["kendall"] == pytest.approx(0.6)
    assert c["n"] == 5


def test_correlation_undefined_is_none():
    c = metrics.correlations([3, 3, 3], [1, 2, 3])
    assert c["pearson"] is None and c["spearman"] is None and c["kendall"] is None
    assert metrics.correlations([1], [2])["pearson"] is None


def test_krippendorff_interval_by_hand(monkeypatch):
    # units (1,1), (2,2), (3,4): D_o = 2/6; D_e = 82/30 (all ordered pairs of 1,1,2,2,3,4); alpha = 1 - 10/82
    data = [[1, 1], [2, 2], [3, 4]]
    expected = 1 - (2 / 6) / (82 / 30)
    assert metrics._alpha_interval(__import__("numpy").array(data, float).T) == pytest.approx(expected)
    assert metrics.krippendorff_alpha(data) == pytest.approx(expected)
    # missing values: a unit with one value does not count
    assert metrics.krippendorff_alpha(data + [[5, None]]) == pytest.approx(expected)
    assert metrics.krippendorff_alpha([[2, 2], [2, 2]]) is None  # no variation


def test_krippendorff_library_and_numpy_agree():
    pytest.importorskip("krippendorff", reason="the krippendorff package is not installed; numpy path only")
    import numpy as np

    rng = np.random.default_rng(0)
    data = rng.integers(1, 6, size=(40, 3)).tolist()
    data[3][1] = None
    lib = metrics.krippendorff_alpha(data)
    arr = np.array([[np.nan if v is None else v for v in row] for row in data], float).T
    assert lib == pytest.approx(metrics._alpha_interval(arr), abs=1e-9)


def test_transitivity_by_hand():
    edges = [("g", "a", "b"), ("g", "b", "c"), ("g", "a", "c"),  # a > b > c, a > c: transitive
             ("h", "x", "y"), ("h", "y", "z"), ("h", "z", "x"),  # a cycle
             ("k", "p", "q"), ("k", "q", "r")]  # incomplete triad: not counted
    t = metrics.transitivity(edges)
    assert t == {"transitivity": 0.5, "triads": 2}


def test_position_consistency_by_hand():
    first = ["chosen", "chosen", "rejected", None]
    second = ["chosen", "rejected", "rejected", "chosen"]
    pc = metrics.position_consistency(first, second)
    assert pc["consistency"] == pytest.approx(2 / 4)
    assert pc["consistency_parsed"] == pytest.approx(2 / 3)
    assert pc["pairs_parsed"] == 3


def test_bootstrap_interval():
    pred = [1, 2, 3, 4, 5, 2, 3, 4, 1, 5, 3, 2]
    gold = [1, 3, 3, 5, 4, 2, 2, 4, 2, 5, 4, 1]
    est = metrics.pearson(pred, gold)
    lo, hi = metrics.bootstrap_ci(metrics.pearson, [pred, gold], n_resamples=400, seed=3)
    assert lo < est < hi and -1 <= lo and hi <= 1
    assert metrics.bootstrap_ci(metrics.pearson, [pred, gold], n_resamples=400, seed=3) == (lo, hi)
    # the same data four times over: a narrower interval
    lo4, hi4 = metrics.bootstrap_ci(metrics.pearson, [pred * 4, gold * 4], n_resamples=400, seed=3)
    assert hi4 - lo4 < hi - lo
    acc = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    lo, hi = metrics.bootstrap_ci(lambda x: sum(x) / len(x), [acc], n_resamples=500, seed=0)
    assert lo < 0.7 < hi
    assert metrics.bootstrap_ci(metrics.pearson, [[1, 1, 1], [1, 2, 3]]) is None


# --------------------------------------------------------------------------- scoring


def _s(result):
    return {"result": result, "error": None if result is not None else "no [RESULT] tag"}


def test_score_absolute_by_hand():
    spec = BENCHMARKS["feedback_bench"]
    items = [Item("feedback_bench", str(i), "absolute", prompt="p", gold=g, gold_scores=[g])
             for i, g in enumerate([1.0, 2.0, 4.0, 5.0])]
    b = Benchmark("feedback_bench", "Feedback Bench", "absolute", items, "x", spec)
    samples = {
        ("0", "abs"): [_s(1), _s(2), _s(None)],  # mean of parsed: 1.5; first sample 1 == gold
        ("1", "abs"): [_s(3), _s(3), _s(3)],  # 3; exact match no
        ("2", "abs"): [_s(None), _s(None), _s(None)],  # never parsed: out of correlations, wrong in exact match
        ("3", "abs"): [_s(5), _s(4), _s(5)],  # 14/3; exact yes
    }
    m = score_benchmark(b, ["absolute"], samples, seed=0, swap=False, boot=0, min_scored=1)["modes"]["absolute"]
    c = metrics.correlations([1.5, 3.0, 14 / 3], [1.0, 2.0, 5.0])
    assert m["pearson"] == pytest.approx(c["pearson"]) and m["kendall"] == pytest.approx(1.0)
    assert m["n_scored"] == 3 and m["items"] == 4
    assert m["exact_match"] == pytest.approx(2 / 4)
    assert m["samples"] == 12 and m["parse_failures"] == 4 and m["parse_failure_rate"] == pytest.approx(4 / 12)
    assert m["score_histogram"] == {"1": 1, "2": 1, "3": 3, "4": 1, "5": 2}
    expected_alpha = metrics.krippendorff_alpha([[1, 2, None], [3, 3, 3], [None] * 3, [5, 4, 5]])
    assert m["krippendorff_alpha"] == pytest.approx(expected_alpha)


def _pair(i, tie=False, group=None):
    return Item("mt_bench_human", str(i), "pair", chosen="c", rejected="r", tie=tie, group=group,
                instruction=f"q{i}", chosen_response=f"good{i}", rejected_response=f"bad{i}", rubric_text="[x]")


def test_score_relative_and_with_ties_by_hand():
    items = [_pair(0, group="g1"), _pair(1, group="g1"), _pair(2, group="g2"), _pair(3, tie=True)]
    b = Benchmark("mt_bench_human", "MT", "pair", items, "x", BENCHMARKS["mt_bench_human"])
    seed = 7
    pos = {it.id: it.chosen_position(seed) for it in items}
    other = {"A": "B", "B": "A"}
    samples = {}
    # relative: item 0 right, item 1 wrong, item 2 unparsed, item 3 (tie) says A: always wrong
    samples[("0", f"rel:{pos['0']}")] = [_s(pos["0"])]
    samples[("1", f"rel:{pos['1']}")] = [_s(other[pos["1"]])]
    samples[("2", f"rel:{pos['2']}")] = [_s(None)]
    samples[("3", f"rel:{pos['3']}")] = [_s("A")]
    # swapped order: item 0 consistent, item 1 now right (inconsistent), 2 parsed, 3 anything
    samples[("0", f"rel:{other[pos['0']]}")] = [_s(other[pos["0"]])]
    samples[("1", f"rel:{other[pos['1']]}")] = [_s(other[pos["1"]])]
    samples[("2", f"rel:{other[pos['2']]}")] = [_s(other[pos["2"]])]
    samples[("3", f"rel:{other[pos['3']]}")] = [_s("B")]
    # absolute (each response alone): 0 right (4 > 2), 1 wrong (3 < 4), 2 equal (wrong), 3 tie equal (right)
    for i, (c, r) in enumerate([(4, 2), (3, 4), (3, 3), (2, 2)]):
        samples[(str(i), "a2r:chosen")] = [_s(c)]
        samples[(str(i), "a2r:rejected")] = [_s(r)]
    out = score_benchmark(b, ["relative", "absolute"], samples, seed=seed, swap=True, boot=0, min_scored=1)
    rel, ab = out["modes"]["relative"], out["modes"]["absolute"]
    assert rel["ties"] == 1
    assert rel["accuracy_no_tie"] == pytest.approx(1 / 3)  # items 0, 1, 2: one right
    assert rel["accuracy_with_tie"] == pytest.approx(1 / 4)
    assert rel["by_group"] == {"g1": {"accuracy": 0.5, "items": 2}, "g2": {"accuracy": 0.0, "items": 1}}
    # both orders over non-tie items: (1,1), (0,1), (0,1) -> 4 of 6
    assert rel["accuracy_both_orders"] == pytest.approx(4 / 6)
    # winners first/second: chosen/chosen, rejected/chosen, None/rejected, ?/? (tie: A at pos vs B at other)
    assert rel["pairs"] == 4 and rel["pairs_parsed"] == 3
    tie_first = "chosen" if pos["3"] == "A" else "rejected"
    tie_second = "chosen" if other[pos["3"]] == "B" else "rejected"
    agree = 1 + (tie_first == tie_second)
    assert rel["consistency"] == pytest.approx(agree / 4)
    # both orders right (Auto-J's agreement): only item 0 of the three non-tie items; item 3's two
    # verdicts name the same response (A then B with the responses swapped), so its tie is missed
    assert agree == 2
    assert rel["agreement_no_tie"] == pytest.approx(1 / 3)
    assert rel["agreement_with_tie"] == pytest.approx(1 / 4)
    assert rel["agreement_pairs"] == 4
    assert rel["parse_failures"] == 1 and rel["samples"] == 8
    assert ab["accuracy_no_tie"] == pytest.approx(1 / 3)
    assert ab["accuracy_with_tie"] == pytest.approx(2 / 4)
    assert ab["judged_ties"] == 2
    # direct vs pairwise: items whose absolute scores differ (0, 1) and relative parsed: 0 agrees, 1 agrees too
    # (item 1: relative picked rejected, absolute scored rejected higher)
    assert out["direct_pairwise_consistency"] == {"agreement": 1.0, "pairs": 2}


def test_relative_position_randomisation_is_balanced_and_fixed():
    items = [_pair(i) for i in range(400)]
    first = [it.chosen_position(42) for it in items]
    assert first == [it.chosen_position(42) for it in items]  # fixed by the seed
    assert 0.4 < first.count("A") / 400 < 0.6
    assert first != [it.chosen_position(43) for it in items]


def test_nan_never_leaks():
    assert metrics.accuracy([]) is None
    assert metrics._clean(math.nan) is None


def test_both_orders_agreement_by_hand():
    first = ["chosen", "chosen", "rejected", None, "chosen", "rejected", "chosen"]
    second = ["chosen", "rejected", "rejected", "chosen", "rejected", "rejected", "chosen"]
    ties = [False, False, False, False, True, True, True]
    got = metrics.both_orders_agreement(first, second, ties)
    # non-tie pairs: right only pair 0 (1 of 4); with ties: + pair 4 (orders disagree = tie) -> 2 of 7
    assert got == {"agreement_no_tie": 0.25, "agreement_with_tie": pytest.approx(2 / 7), "agreement_pairs": 7}
    assert metrics.both_orders_agreement([], [], []) == {
        "agreement_no_tie": None, "agreement_with_tie": None, "agreement_pairs": 0}


def test_agreement_without_gold_ties_is_one_number():
    items = [_pair(i) for i in range(3)]
    b = Benchmark("hhh", "HHH", "pair", items, "x", BENCHMARKS["hhh"])
    other = {"A": "B", "B": "A"}
    samples = {}
    for it, (r1, r2) in zip(items, [(True, True), (True, False), (False, False)]):
        p = it.chosen_position(0)
        samples[(it.id, f"rel:{p}")] = [_s(p if r1 else other[p])]
        samples[(it.id, f"rel:{other[p]}")] = [_s(other[p] if r2 else p)]
    rel = score_benchmark(b, ["relative"], samples, seed=0, swap=True, boot=0, min_scored=1)["modes"]["relative"]
    assert rel["accuracy"] == pytest.approx(2 / 3)  # first order only
    assert rel["accuracy_both_orders"] == pytest.approx(3 / 6)
    assert rel["agreement"] == pytest.approx(1 / 3)
    assert rel["consistency"] == pytest.approx(2 / 3)
    assert "agreement_no_tie" not in rel


def test_nothing_parsed_gives_no_metric_and_a_reason():
    from judgeforge.eval.report import compare_with_paper, to_markdown

    items = [_pair(i) for i in range(3)]
    b = Benchmark("hhh", "HHH Alignment", "pair", items, "x", BENCHMARKS["hhh"])
    samples = {(it.id, f"rel:{it.chosen_position(0)}"): [_s(None)] for it in items}
    rel = score_benchmark(b, ["relative"], samples, seed=0, swap=False, boot=100)["modes"]["relative"]
    assert rel["accuracy"] is None and rel["accuracy_ci"] is None and rel["a_rate"] is None
    assert rel["no_result"] == "no parsed outputs (3 of 3 samples failed to parse)"
    assert rel["parse_failures"] == 3 and rel["items"] == 3
    results = {"judge": "j", "benchmarks": {"hhh": score_benchmark(b, ["relative"], samples, seed=0, swap=False,
                                                                    boot=0)}}
    results["comparison"] = compare_with_paper(results)
    md = to_markdown(results)
    row = next(line for line in md.splitlines() if line.startswith("| HHH Alignment | relative | accuracy"))
    assert "no parsed outputs (3 of 3 samples failed to parse)" in row and "| 0.00 |" not in row
    assert "| 0/3 | 100.00 |" in row  # n and the failure rate beside it
    assert "74.66" in row  # the paper's number is still shown beside it


def test_absolute_nothing_parsed():
    items = [Item("vicuna", str(i), "absolute", prompt="p", gold=float(i % 5 + 1)) for i in range(4)]
    b = Benchmark("vicuna", "Vicuna Bench", "absolute", items, "x", BENCHMARKS["vicuna"])
    samples = {(it.id, "abs"): [_s(None)] * 3 for it in items}
    m = score_benchmark(b, ["absolute"], samples, seed=0, swap=False, boot=0)["modes"]["absolute"]
    assert m["pearson"] is None and m["mean_score"] is None and m["n_scored"] == 0
    assert m["no_result"].startswith("no parsed outputs (12 of 12")


def test_vectorised_bootstrap_equals_scipy_to_the_seed():
    # the vectorised intervals (judgeforge.eval.bootstrap) are scipy.stats.bootstrap's, resample for resample:
    # discrete grades (ties, constant resamples at n=4), continuous means, and an accuracy
    import numpy as np

    rng = np.random.default_rng(7)
    for n, seed in ((4, 0), (12, 1), (60, 2)):
        gold = rng.integers(1, 6, n).astype(float)
        pred = np.clip(gold + rng.integers(-2, 3, n), 1, 5) + (rng.random(n) / 3 if seed == 2 else 0)
        data = [list(pred), list(gold)]
        for fn in (metrics.pearson, metrics.spearman, metrics.kendall):
            new = metrics.bootstrap_ci(fn, data, n_resamples=40, seed=seed)
            old = metrics.scipy_bootstrap_ci(fn, data, n_resamples=40, seed=seed)
            assert (new is None) == (old is None), (n, fn.__name__)
            if new is not None:
                assert new == pytest.approx(old, abs=1e-12), (n, fn.__name__)
        both = metrics.correlation_cis(*data, n_resamples=40, seed=seed)
        assert both["kendall"] == metrics.bootstrap_ci(metrics.kendall, data, n_resamples=40, seed=seed)
        acc = list(rng.integers(0, 2, n))
        assert metrics.bootstrap_ci(metrics.mean, [acc], n_resamples=40, seed=seed) == pytest.approx(
            metrics.scipy_bootstrap_ci(metrics.mean, [acc], n_resamples=40, seed=seed), abs=1e-12)


def test_too_few_parsed_is_no_number():
    """5 of 40 items parsed: a correlation or accuracy from them is noise; the mode says so, with its n."""
    from judgeforge.eval.report import compare_with_paper, to_markdown

    items = [Item("vicuna", str(i), "absolute", prompt="p", gold=float(i % 5 + 1)) for i in range(40)]
    b = Benchmark("vicuna", "Vicuna Bench", "absolute", items, "x", BENCHMARKS["vicuna"])
    samples = {(it.id, "abs"): [_s(int(it.gold) if k < 5 else None)] for k, it in enumerate(items)}
    m = score_benchmark(b, ["absolute"], samples, seed=0, swap=False, boot=0)["modes"]["absolute"]
    assert m["n_scored"] == 5 and m["items"] == 40 and m["pearson"] is None and m["min_scored"] == 10
    assert m["no_result"] == "too few parsed (n=5 of 40)"
    assert m["parse_failures"] == 35  # counts stay
    ok = score_benchmark(b, ["absolute"], samples, seed=0, swap=False, boot=0, min_scored=5)["modes"]["absolute"]
    assert ok["pearson"] == pytest.approx(1.0) and "no_result" not in ok
    pairs = [_pair(i) for i in range(12)]
    hb = Benchmark("hhh", "HHH Alignment", "pair", pairs, "x", BENCHMARKS["hhh"])
    rs = {(it.id, f"rel:{it.chosen_position(0)}"): [_s(it.chosen_position(0) if k < 2 else None)]
          for k, it in enumerate(pairs)}
    rel = score_benchmark(hb, ["relative"], rs, seed=0, swap=False, boot=0)["modes"]["relative"]
    assert rel["n_scored"] == 2 and rel["accuracy"] is None and rel["no_result"] == "too few parsed (n=2 of 12)"
    results = {"judge": "j", "benchmarks": {"hhh": {"title": "HHH Alignment", "kind": "pair", "modes": {"relative": rel}},
                                            "vicuna": {"title": "Vicuna Bench", "kind": "absolute",
                                                       "modes": {"absolute": ok}}}}
    results["comparison"] = compare_with_paper(results)
    md = to_markdown(results)
    row = next(line for line in md.splitlines() if line.startswith("| HHH Alignment | relative | accuracy"))
    assert "too few parsed (n=2 of 12)" in row and "| 2/12 | 83.33 |" in row
    row = next(line for line in md.splitlines() if line.startswith("| Vicuna Bench | absolute | pearson"))
    assert "| 1.000 | 5/40 | 87.50 |" in row
