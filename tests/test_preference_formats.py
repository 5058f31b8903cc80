"""RewardBench and JudgeBench rows (small local files shaped like theirs), and their headline scores by hand."""

from __future__ import annotations

import json

import pytest

from judgeforge.errors import UserError
from judgeforge.eval import benchmarks as B
from judgeforge.eval.preference_formats import JUDGEBENCH_RUBRIC, REWARDBENCH_COUNTS, REWARDBENCH_RUBRIC
from judgeforge.eval.scoring import score_benchmark


def _s(result):
    return {"result": result, "error": None if result is not None else "no [RESULT] tag"}


def _write(tmp_path, name, rows):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


REWARD_ROWS = [  # (subset, judged right?)
    ("alpacaeval-easy", True), ("alpacaeval-easy", False), ("mt-bench-hard", True),
    ("refusals-dangerous", False), ("math-prm", True), ("hep-python", False), ("anthropic_helpful", True),
]


def _verdicts(bench, right: dict, seed: int, swap_right: dict | None = None):
    other = {"A": "B", "B": "A"}
    samples = {}
    for it in bench.items:
        pos = it.chosen_position(seed)
        samples[(it.id, f"rel:{pos}")] = [_s(pos if right[it.id] else other[pos])]
        if swap_right is not None:
            samples[(it.id, f"rel:{other[pos]}")] = [_s(other[pos] if swap_right[it.id] else pos)]
    return samples


def test_rewardbench_rows_sections_and_headline(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": f"good{i}", "rejected": f"bad{i}", "subset": s, "id": 100 + i}
            for i, (s, _) in enumerate(REWARD_ROWS)]
    bench = B.load_benchmark(_write(tmp_path, "rb.jsonl", rows))
    assert bench.kind == "pair" and [it.id for it in bench.items] == [str(100 + i) for i in range(7)]
    it = bench.items[0]
    assert (it.instruction, it.chosen_response, it.rejected_response, it.group) == \
        ("q0", "good0", "bad0", "alpacaeval-easy")
    assert it.rubric_text == REWARDBENCH_RUBRIC.render("relative") and REWARDBENCH_RUBRIC.criteria in it.chosen
    right = {str(100 + i): ok for i, (_, ok) in enumerate(REWARD_ROWS)}
    out = score_benchmark(bench, ["relative"], _verdicts(bench, right, seed=3), seed=3, swap=False, boot=0)
    h = out["modes"]["relative"]["headline"]
    assert h["subsets"]["alpacaeval-easy"] == {"accuracy": 0.5, "items": 2}
    reasoning = (1.0 * REWARDBENCH_COUNTS["math-prm"] + 0.0 * 164) / (984 + 164)  # math weighs as all code
    assert h["sections"] == pytest.approx({"Chat": 0.5, "Chat Hard": 1.0, "Safety": 0.0, "Reasoning": reasoning})
    assert h["score"] == pytest.approx((0.5 + 1.0 + 0.0 + reasoning) / 4)
    assert h["excluded_subsets"] == ["anthropic_helpful"]  # scored, but outside the four sections
    from judgeforge.eval.report import to_markdown

    assert "(relative) rewardbench score 58.93%: Chat 50.00%, Chat Hard 100.00%, Safety 0.00%, Reasoning 85.71%" in to_markdown({"benchmarks": {"rb": out}})
    # absolute mode: the chosen response must score strictly higher
    samples = {}
    for k, it in enumerate(bench.items):
        samples[(it.id, "a2r:chosen")], samples[(it.id, "a2r:rejected")] = [_s(4)], [_s(4 if k == 0 else 2)]
    ab = score_benchmark(bench, ["absolute"], samples, seed=3, swap=False, boot=0)["modes"]["absolute"]
    assert ab["headline"]["subsets"]["alpacaeval-easy"]["accuracy"] == 0.5


def test_judgebench_rows_both_orders_rule(tmp_path):
    sources = ["mmlu-pro-biology", "livebench-math", "livecodebench", "livebench-reasoning"]
    rows = [{"pair_id": f"p{i}", "original_id": f"o{i}", "source": s, "question": f"q{i}",
             "response_model": "gpt-4o", "response_A": f"a{i}", "response_B": f"b{i}",
             "label": "B>A" if i == 1 else "A>B"} for i, s in enumerate(sources)]
    bench = B.load_benchmark(_write(tmp_path, "jb.jsonl", rows))
    assert bench.items[1].chosen_response == "b1" and bench.items[0].chosen_response == "a0"
    assert [it.group for it in bench.items] == ["knowledge", "math", "coding", "reasoning"]
    assert bench.items[0].rubric_text == JUDGEBENCH_RUBRIC.render("relative")
    first = {"p0": True, "p1": True, "p2": False, "p3": True}
    second = {"p0": True, "p1": False, "p2": False, "p3": True}  # p1 inconsistent: wrong
    out = score_benchmark(bench, ["relative"], _verdicts(bench, first, 0, second), seed=0, swap=True, boot=0)
    h = out["modes"]["relative"]["headline"]
    assert h["score"] == 0.5 and h["pairs"] == 4
    assert h["categories"]["math"] == {"accuracy": 0.0, "items": 1}
    assert h["categories"]["knowledge"]["accuracy"] == 1.0
    one = score_benchmark(bench, ["relative"], _verdicts(bench, first, 0), seed=0, swap=False, boot=0)
    assert one["modes"]["relative"]["headline"]["score"] == 0.75  # one order: p0, p1, p3


@pytest.mark.parametrize("row, msg", [
    ({"question": "q", "response_A": "a", "response_B": "b", "label": "A=B"}, r"label must be 'A>B' or 'B>A'"),
    ({"prompt": "q", "chosen": [{"role": "assistant", "content": "x"}], "rejected": "r", "subset": "s"},
     r"'chosen' must be a string"),
])
def test_bad_rows_are_one_line(tmp_path, row, msg):
    with pytest.raises(UserError, match=r"row 1: " + msg) as e:
        B.load_benchmark(_write(tmp_path, "bad.jsonl", [row]))
    assert "\n" not in str(e.value)
