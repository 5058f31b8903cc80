"""Issue #17: the Prometheus 1 repository's copies of the benchmark files, and JSON objects keyed by id."""

from __future__ import annotations

import json

import pytest

from judgeforge.errors import UserError
from judgeforge.eval.benchmarks import load_benchmark


def _p1_copy(rows: list[dict], fields: tuple[str, ...], drop: tuple[str, ...] = ()) -> str:
    """JSON Lines, every rendered prompt ending '###Feedback: ",' plus a newline (as the P1 files do)."""
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k not in drop}
        for f in fields:
            assert r[f].endswith("###Feedback: ")
            r[f] = r[f] + '",\n'
        out.append(json.dumps(r))
    return "\n".join(out) + "\n"


def test_prometheus1_absolute_copy_loads_like_the_original(shared_data, tmp_path):
    rows = json.loads((shared_data / "vicuna_eval.json").read_text(encoding="utf-8"))[:5]
    (tmp_path / "vicuna_eval.json").write_text(_p1_copy(rows, ("instruction",)), encoding="utf-8")
    got = load_benchmark("vicuna", tmp_path, fetch=False)
    want = load_benchmark("vicuna", shared_data, limit=5, fetch=False)
    assert [i.prompt for i in got.items] == [i.prompt for i in want.items]
    assert all(i.prompt.endswith("###Feedback: ") for i in got.items)
    assert [i.gold for i in got.items] == [i.gold for i in want.items]
    assert "normalised" in got.items[0].extra


def test_prometheus1_pair_copy_loads_like_the_original(shared_data, tmp_path):
    rows = json.loads((shared_data / "hhh_alignment_eval.json").read_text(encoding="utf-8"))[:4]
    (tmp_path / "hhh_alignment_eval.json").write_text(
        _p1_copy(rows, ("chosen_instruction", "rejected_instruction")), encoding="utf-8")
    got = load_benchmark("hhh", tmp_path, fetch=False)
    want = load_benchmark("hhh", shared_data, limit=4, fetch=False)
    for g, w in zip(got.items, want.items):
        assert (g.chosen, g.rejected, g.chosen_response, g.rejected_response, g.rubric_text) == \
            (w.chosen, w.rejected, w.chosen_response, w.rejected_response, w.rubric_text)


def test_prometheus1_mt_bench_without_gold_is_refused_in_one_line(shared_data, tmp_path):
    rows = json.loads((shared_data / "mt_bench_eval.json").read_text(encoding="utf-8"))[:3]
    (tmp_path / "mt_bench_eval.json").write_text(
        _p1_copy(rows, ("instruction",), drop=("gpt4_score", "gpt4_feedback")), encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_benchmark("mt_bench", tmp_path, fetch=False)
    msg = str(e.value)
    assert "\n" not in msg and "gpt4_score" in msg and "mt_bench_eval.json" in msg


def test_json_object_keyed_by_id_names_the_problem(shared_data, tmp_path):
    rows = json.loads((shared_data / "vicuna_eval.json").read_text(encoding="utf-8"))[:3]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({f"q{i}": r for i, r in enumerate(rows)}, indent=2), encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_benchmark(str(path), fetch=False)
    msg = str(e.value)
    assert "keyed by item id" in msg and "'q0'" in msg and "JSON list" in msg
    assert "one object per line" not in msg  # not the JSON Lines message


def test_a_one_row_json_lines_file_is_still_json_lines(shared_data, tmp_path):
    row = json.loads((shared_data / "vicuna_eval.json").read_text(encoding="utf-8"))[0]
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert len(load_benchmark(str(path), fetch=False).items) == 1
