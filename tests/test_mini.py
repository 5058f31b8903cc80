"""The mini datasets: exact collection schemas, balanced labels, and a learnable rule."""

from __future__ import annotations

import re

from judgeforge import data as D
from judgeforge.data.mini import absolute_rows, relative_rows
from judgeforge.format.parsing import parse
from judgeforge.format.prompts import parse_rendered


def _keys(criteria: str) -> list[str]:
    words = re.findall(r"\b[a-z]+\b", criteria)
    return [w for w in words if w in set(__import__("judgeforge.data.mini", fromlist=["WORDS"]).WORDS)]


def test_absolute_rows_have_the_feedback_collection_schema_and_rule():
    rows = absolute_rows(100, seed=1)
    assert all(tuple(r) == D.FC_COLUMNS for r in rows)
    assert sorted(int(r["orig_score"]) for r in rows) == sorted([1, 2, 3, 4, 5] * 20)
    for r in rows:
        keys = _keys(r["orig_criteria"])
        assert len(keys) == 4
        mentioned = sum(1 for k in keys if re.search(rf"\b{k}\b", r["orig_response"]))
        assert int(r["orig_score"]) == 1 + mentioned  # the score follows from the response
        assert parse(r["output"], "absolute").result == int(r["orig_score"])
        assert parse_rendered(r["instruction"]).render() == r["instruction"]


def test_relative_rows_have_the_preference_collection_schema_and_balance():
    rows = relative_rows(100, seed=2)
    assert all(tuple(r) == D.PC_COLUMNS for r in rows)
    assert sum(r["orig_preference"] == "A" for r in rows) == 50
    for r in rows:
        keys = _keys(r["orig_criteria"])
        count = {s: sum(1 for k in keys if re.search(rf"\b{k}\b", r[f"orig_response_{s}"])) for s in "AB"}
        assert abs(count["A"] - count["B"]) >= 2
        assert r["orig_preference"] == max(count, key=count.get)
        assert parse(r["output"], "relative").result == r["orig_preference"]


def test_mini_files_validate_and_are_deterministic(mini_data):
    for path in mini_data.values():
        v = D.validate_rows(D.read_rows(path))
        assert v.ok, v.problems[:3]
    assert absolute_rows(5, seed=7) == absolute_rows(5, seed=7)
    assert absolute_rows(5, seed=7) != absolute_rows(5, seed=8)
