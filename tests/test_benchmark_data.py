"""``judgeforge data from-benchmarks`` on the real Vicuna Bench / MT Bench files."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from judgeforge.cli import main as cli_main


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    from judgeforge.pipeline.benchmark_data import build

    out = tmp_path_factory.mktemp("from-benchmarks")
    manifest = build(shared_data, out, holdout=0.2, seed=0)
    return out, manifest


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _raw_means(shared_data):
    means = {}
    for name, fname in (("vicuna", "vicuna_eval.json"), ("mt_bench", "mt_bench_eval.json")):
        for r in json.loads((shared_data / fname).read_text()):
            means[(name, str(r["idx"]), r["response_source"])] = Fraction(sum(r["gpt4_score"]), len(r["gpt4_score"]))
    return means


def test_rows_counts_and_schemas(built):
    from judgeforge.data import read_rows, validate_rows

    out, m = built
    absolute, relative = _jsonl(out / "absolute_train.jsonl"), _jsonl(out / "relative_train.jsonl")
    # 80 questions x 4 responses per benchmark; 16 held out; 3 GPT-4 feedbacks per item
    assert len(absolute) == 2 * 64 * 4 * 3 == m["absolute_rows"]
    assert len(relative) == m["relative_rows"] > 200
    for b in m["benchmarks"].values():
        assert len(b["heldout_questions"]) == 16 and len(b["train_questions"]) == 64
        assert b["heldout_items"] == 64
    for name, schema in (("absolute_train.jsonl", "feedback-collection"), ("relative_train.jsonl",
                                                                             "preference-collection")):
        v = validate_rows(read_rows(out / name))
        assert v.ok and v.schema == schema, v.problems[:3]
    assert not any(r["output"].count("[RESULT]") != 1 for r in absolute)


def test_split_is_by_question_and_heldout_is_an_eval_suite(built):
    from judgeforge.eval.benchmarks import load_benchmark

    out, m = built
    rows = _jsonl(out / "absolute_train.jsonl") + _jsonl(out / "relative_train.jsonl")
    trained = {tuple(r["id"].split("-")[:2]) for r in rows}
    for name, b in m["benchmarks"].items():
        held = set(b["heldout_questions"])
        assert not held & set(b["train_questions"])
        assert not {(name, q) for q in held} & trained
        bench = load_benchmark(str(out / "heldout" / f"{name}.json"))
        assert bench.name == name and bench.kind == "absolute" and len(bench.items) == 64
        assert {i.extra["idx"] for i in bench.items} == held
        assert all(i.gold == sum(i.gold_scores) / 3 for i in bench.items)


def test_relative_rows_balanced_and_prefer_the_higher_gpt4_mean(built, shared_data):
    out, _ = built
    relative = _jsonl(out / "relative_train.jsonl")
    a = sum(r["orig_preference"] == "A" for r in relative)
    assert abs(a - (len(relative) - a)) <= 1
    means = _raw_means(shared_data)
    for r in relative:
        name, q, rest = r["id"].split("-", 2)
        src_a, src_b = rest.split("-vs-")
        ma, mb = means[(name, q, src_a)], means[(name, q, src_b)]
        assert ma != mb
        assert r["orig_preference"] == ("A" if ma > mb else "B"), r["id"]
        assert int(r["orig_score_A"]) > int(r["orig_score_B"]) if ma > mb else \
            int(r["orig_score_A"]) < int(r["orig_score_B"])


def test_bad_input_is_one_line(tmp_path, shared_data, capsys):
    assert cli_main(["data", "from-benchmarks", "--data-dir", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vicuna_eval.json" in err[0]
    rows = json.loads((shared_data / "vicuna_eval.json").read_text())[:8]
    for r in rows:
        del r["gpt4_feedback"]
    (tmp_path / "vicuna_eval.json").write_text(json.dumps(rows))
    assert cli_main(["data", "from-benchmarks", "--data-dir", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gpt4_feedback" in err[0], err
    assert not (tmp_path / "o" / "absolute_train.jsonl").exists()
