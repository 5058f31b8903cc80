"""Datasets: reading every format, schema detection, validation of each kind of bad row, the split."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from judgeforge import data as D
from judgeforge.data.mini import absolute_rows, relative_rows
from judgeforge.errors import UserError
from judgeforge.format.prompts import chat_prompt

GOOD_ABS = {
    "id": "a1",
    "instruction": "Explain what a contract is.",
    "response": "A contract is an agreement the law will enforce.",
    "criteria": "Is the explanation legally accurate?",
    **{f"score{i}_description": f"level {i}" for i in range(1, 6)},
    "reference_answer": "A legally binding agreement between parties.",
    "score": 4,
    "feedback": "Accurate but brief.",
}
GOOD_REL = {
    "id": "r1",
    "instruction": "Explain what a contract is.",
    "response_a": "A binding agreement.",
    "response_b": "A kind of fruit.",
    "criteria": "Is the explanation legally accurate?",
    "preference": "A",
    "feedback": "A is right, B is nonsense.",
}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_kind_of_bad_row_is_reported_with_file_row_and_field(tmp_path):
    rows = [
        GOOD_ABS,
        {**GOOD_ABS, "id": "a2", "response": ""},  # empty field
        {k: v for k, v in GOOD_ABS.items() if k != "instruction"} | {"id": "a3"},  # missing field
        {**GOOD_ABS, "id": "a4", "score": 7},  # out of range
        {**GOOD_ABS, "id": "a5", "score": "four"},  # not an integer
        {**GOOD_ABS, "id": "a6", "score": 3.5},  # not an integer
        {k: v for k, v in GOOD_ABS.items() if k != "score3_description"} | {"id": "a7"},  # rubric hole
        {**GOOD_ABS},  # duplicate id a1
        {**GOOD_ABS, "id": "a9", "feedback": "bad \udc80 text"},  # undecodable (lone surrogate)
    ]
    path = tmp_path / "domain.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_bytes(text.encode("utf-8") + b'{"id": "a10", "instruction": "caf\xe9"}\n' + b"{not json}\n")
    v = D.validate_rows(D.read_rows(path))
    lines = [str(p) for p in v.problems]
    assert v.schema == "absolute"
    expect = [
        ("row 2", "response: empty"),
        ("row 3", "instruction: missing"),
        ("row 4", "score: 7 is outside 1-5"),
        ("row 5", "score: 'four' is not an integer"),
        ("row 6", "score: 3.5 is not an integer"),
        ("row 7", "score3_description: missing; a rubric needs all five"),
        ("row 8", "id: duplicate id 'a1' (first at"),
        ("row 9", "feedback: undecodable text"),
        ("row 10", "undecodable text at byte"),
        ("row 11", "invalid JSON"),
    ]
    for row, msg in expect:
        hits = [ln for ln in lines if f": {row}:" in ln or f": {row} " in ln]
        assert any(msg in ln for ln in hits), (row, msg, lines)
        assert all(ln.startswith(str(path)) for ln in hits)
    assert len(v.examples) == 1


def test_relative_rows_validate_preference(tmp_path):
    rows = [GOOD_REL, {**GOOD_REL, "id": "r2", "preference": "C"},
            {**GOOD_REL, "id": "r3", "preference": "A", "score_a": 2, "score_b": 5}]
    v = D.validate_rows(D.read_rows(_jsonl(tmp_path / "rel.jsonl", rows)))
    lines = [str(p) for p in v.problems]
    assert v.schema == "relative"
    assert any("row 2: preference: 'C' is not 'A' or 'B'" in ln for ln in lines), lines
    assert any("row 3: preference: 'A' disagrees with score_a 2 / score_b 5" in ln for ln in lines), lines


def test_prompt_longer_than_max_length_is_flagged(tmp_path, tokenizer):
    rows = [GOOD_ABS, {**GOOD_ABS, "id": "long", "response": "word " * 600}]
    v = D.validate_rows(D.read_rows(_jsonl(tmp_path / "x.jsonl", rows)), tokenizer=tokenizer, max_length=512)
    assert [p.where.endswith("row 2") for p in v.problems] == [True]
    assert "over the max length 512" in v.problems[0].message


def test_cli_validate_prints_one_line_per_problem_and_exits_1(tmp_path):
    rows = [GOOD_ABS, {**GOOD_ABS, "id": "b", "score": 0}, {**GOOD_ABS, "id": "c", "criteria": ""}]
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    proc = subprocess.run([sys.executable, "-m", "judgeforge", "data", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    err = proc.stderr.strip().splitlines()
    assert err[0] == f"{path}: row 2: score: 0 is outside 1-5"
    assert err[1] == f"{path}: row 3: criteria: empty; fill it in or drop the row"
    assert "2 problem(s) in 3 rows" in err[2]
    assert proc.stdout == ""


def test_cli_validate_json_is_a_machine_readable_summary(tmp_path, capsys):
    import json

    from judgeforge.cli import main

    bad = _jsonl(tmp_path / "bad.jsonl", [GOOD_ABS, {**GOOD_ABS, "id": "b", "score": 0}])
    good = _jsonl(tmp_path / "good.jsonl", [GOOD_ABS])
    assert main(["data", "validate", str(good), str(bad), "--json"]) == 1
    out, err = capsys.readouterr()
    got = json.loads(out)  # stdout is one JSON document, nothing else
    assert got["ok"] is False and got["problems"] == 1 and err == ""
    assert [(s["source"], s["rows"], s["ok"]) for s in got["sources"]] == [(str(good), 1, True), (str(bad), 2, False)]
    assert got["sources"][1]["problems"] == [{"where": f"{bad}: row 2", "field": "score",
                                              "message": "0 is outside 1-5"}]
    assert main(["data", "validate", str(good), "--json"]) == 0 and json.loads(capsys.readouterr().out)["ok"]


def test_cli_missing_file_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "judgeforge", "data", "validate", str(tmp_path / "nope.jsonl")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_collections_read_in_every_format(tmp_path, fmt):
    rows = absolute_rows(6, seed=3)
    path = tmp_path / f"fc.{fmt}"
    if fmt == "jsonl":
        _jsonl(path, rows)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    examples = D.load_examples(path)
    assert len(examples) == 6 and examples[0].mode == "absolute"
    # the collection's own rendered instruction and output are used as is
    assert D.to_training_rows(examples)[0] == {
        "id": None, "mode": "absolute", "prompt": chat_prompt(rows[0]["instruction"], "absolute"),
        "completion": rows[0]["output"],
    }


def test_json_lines_under_a_json_name(shared_data):
    rows = D.read_rows(shared_data / "autoj_pairwise.json")
    assert len(rows) == 1392 and all(r.data for r in rows)


def test_collection_rows_are_checked_against_their_output(tmp_path):
    rows = absolute_rows(3) + relative_rows(3)
    rows[1]["orig_score"] = "5" if rows[1]["orig_score"] != "5" else "1"
    v = D.validate_rows(D.read_rows(_jsonl(tmp_path / "fc.jsonl", rows[:3])))
    assert v.schema == "feedback-collection"
    assert len(v.problems) == 1 and "disagrees with orig_score" in v.problems[0].message
    rel = relative_rows(4)
    rel[2]["orig_preference"] = "AB"
    v = D.validate_rows(D.read_rows(_jsonl(tmp_path / "pc.jsonl", rel)))
    assert v.schema == "preference-collection"
    assert [str(p).split(": ", 2)[2] for p in v.problems] == ["orig_preference: 'AB' is not 'A' or 'B'"]


def test_domain_rows_convert_to_the_collections_and_back(tmp_path):
    ex = D.load_examples(_jsonl(tmp_path / "d.jsonl", [GOOD_ABS]))[0]
    row = D.to_collection_row(ex)
    assert set(D.FC_COLUMNS) <= set(row)
    back = D.load_examples(_jsonl(tmp_path / "fc.jsonl", [row]))[0]
    assert (back.instruction, back.response, back.score, back.feedback) == (
        ex.instruction, ex.response, ex.score, ex.feedback)
    assert back.render() == ex.render()
    assert back.target() == "Accurate but brief. [RESULT] 4"
    rel = D.load_examples(_jsonl(tmp_path / "r.jsonl", [GOOD_REL]))[0]
    prow = D.to_collection_row(rel)
    assert set(D.PC_COLUMNS) <= set(prow)
    assert D.load_examples(_jsonl(tmp_path / "pc.jsonl", [prow]))[0].preference == "A"


def test_nested_rubric_is_accepted(tmp_path):
    row = {k: v for k, v in GOOD_ABS.items() if not k.startswith(("criteria", "score") ) or k == "score"}
    row["rubric"] = {"criteria": "Is it accurate?", **{f"score{i}_description": f"d{i}" for i in range(1, 6)}}
    ex = D.load_examples(_jsonl(tmp_path / "n.jsonl", [row]))[0]
    assert ex.rubric.criteria == "Is it accurate?" and ex.rubric.descriptions[4] == "d5"
    del row["rubric"]["score5_description"]
    with pytest.raises(UserError) as e:
        D.load_examples(_jsonl(tmp_path / "n2.jsonl", [row]))
    assert "rubric.score5_description: missing" in e.value.lines[0]


def test_split_is_the_papers_datasets_split():
    import datasets

    rows = [{"k": i} for i in range(1000)]
    train, test = D.split_rows(rows)
    assert (len(train), len(test)) == (990, 10)
    ref = datasets.Dataset.from_list(rows).train_test_split(test_size=0.01, seed=42)
    assert [r["k"] for r in test] == ref["test"]["k"]
    assert D.split_rows(rows) == (train, test)  # deterministic


def test_hub_loader_path_runs_with_a_local_dataset_folder(tmp_path):
    # The hub code path is datasets.load_dataset(id); it runs here on a local folder.
    folder = tmp_path / "Feedback-Collection"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", absolute_rows(5))
    from judgeforge.data.reading import read_hub

    rows = read_hub(str(folder), "train")
    assert len(rows) == 5 and D.schema_of(rows) == "feedback-collection"


def test_unknown_hub_id_offline_is_one_clear_error(monkeypatch):
    with pytest.raises(UserError, match="could not load from the hub|neither a local path"):
        D.read_rows("no-such-owner/no-such-dataset-xyz")


def test_unknown_schema_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="cannot tell the schema"):
        D.validate_rows(D.read_rows(_jsonl(tmp_path / "x.jsonl", [{"foo": 1}])))
