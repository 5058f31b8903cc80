"""Rubric YAML files: the documented format loads; every mistake is one line naming the file and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from judgeforge.errors import UserError
from judgeforge.format.prompts import PRESET_RUBRICS, Rubric, render_rubric
from judgeforge.format.rubric_file import load_rubric, load_rubric_file, rubric_to_yaml

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
name: legal-accuracy
description: >
  For a contracts assistant.
criteria: Is the answer legally accurate?
scores:
  1: Wrong on the law.
  2: Mostly wrong.
  3: Partly right.
  4: Right with small gaps.
  5: Fully right, with the governing rule cited.
"""


def _write(tmp_path, text: str, name: str = "rubric.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_documented_format_loads_and_renders(tmp_path):
    rf = load_rubric_file(_write(tmp_path, GOOD))
    assert rf.name == "legal-accuracy"
    assert rf.description == "For a contracts assistant."
    assert rf.rubric.criteria == "Is the answer legally accurate?"
    assert rf.rubric.descriptions[0] == "Wrong on the law."
    assert rf.rubric.descriptions[4] == "Fully right, with the governing rule cited."
    assert render_rubric(rf.rubric).splitlines() == [
        "[Is the answer legally accurate?]",
        "Score 1: Wrong on the law.",
        "Score 2: Mostly wrong.",
        "Score 3: Partly right.",
        "Score 4: Right with small gaps.",
        "Score 5: Fully right, with the governing rule cited.",
    ]


def test_example_rubric_and_flat_keys_and_folding(tmp_path):
    ex = load_rubric_file(ROOT / "examples" / "domain" / "rubric.yaml")
    assert ex.name == "support-resolution"
    assert "\n" not in ex.rubric.criteria and ex.rubric.criteria.endswith("further help?")
    flat = _write(tmp_path, """\
        criteria: |
          Is the answer
          legally accurate?
        score1_description: a
        score2_description: b
        score3_description: c
        score4_description: d
        score5_description: "e"
        """, "flat.yaml")
    rf = load_rubric_file(flat)
    assert rf.rubric == Rubric("Is the answer legally accurate?", ("a", "b", "c", "d", "e"))
    assert rf.name is None and rf.label == "flat"
    # string keys "1".."5" are the same levels
    quoted = _write(tmp_path, 'criteria: q\nscores: {"1": a, "2": b, "3": c, "4": d, "5": e}\n', "q.yaml")
    assert load_rubric_file(quoted).rubric.descriptions == ("a", "b", "c", "d", "e")


def test_round_trip_and_presets(tmp_path):
    rubric = PRESET_RUBRICS["reasoning"]
    p = tmp_path / "r.yaml"
    p.write_text(rubric_to_yaml(rubric, name="reasoning", description="preset"))
    rf = load_rubric_file(p)
    assert rf.rubric == rubric and rf.name == "reasoning"
    assert load_rubric("helpfulness").rubric == PRESET_RUBRICS["helpfulness"]


BAD = [
    ("scores:\n  1: a\n  2: b\n  3: c\n  4: d\n  5: e\n", "criteria: missing"),
    ("criteria: '   '\nscores: {1: a, 2: b, 3: c, 4: d, 5: e}\n", "criteria: empty"),
    ("criteria: [a, b]\nscores: {1: a, 2: b, 3: c, 4: d, 5: e}\n", "criteria: must be text, got a list"),
    ("criteria: q\nscores: {1: a, 2: b, 3: c, 4: d}\n", "scores: missing score level 5"),
    ("criteria: q\nscores: {1: a, 3: c, 5: e}\n", "scores: missing score levels 2, 4"),
    ("criteria: q\nscores: {1: a, 2: b, 3: c, 4: d, 5: e, 6: f}\n", "scores: unexpected score level 6"),
    ("criteria: q\nscores: {0: z, 1: a, 2: b, 3: c, 4: d, 5: e}\n", "scores: unexpected score level 0"),
    ("criteria: q\nscores: {1: a, 2: yes, 3: c, 4: d, 5: e}\n", "scores.2: must be text, got a boolean"),
    ("criteria: q\nscores: {1: a, 2: 7, 3: c, 4: d, 5: e}\n", "scores.2: must be text, got a number"),
    ("criteria: q\nscores: {1: a, 2: '', 3: c, 4: d, 5: e}\n", "scores.2: empty"),
    ("criteria: q\nscores: {1: a, 2: b, 3: c, 4: d, five: e}\n", "scores: unexpected key 'five'"),
    ("criteria: q\nscores:\n  - a\n  - b\n", "scores: must be a mapping with the keys 1 to 5 (write '1: text'"),
    ("criteria: q\n", "scores: missing"),
    ("critera: q\nscores: {1: a, 2: b, 3: c, 4: d, 5: e}\n", "unknown key 'critera' (did you mean 'criteria'?)"),
    ("criteria: q\nscores: {1: a, 2: b, 3: c, 4: d, 5: e}\nscore1_description: a\n", "scores: given twice"),
    ("- criteria: q\n", "a rubric file must be a YAML mapping"),
    ("", "the file is empty"),
    ("criteria: q\nscores: {1: a, 2: b\n", "invalid YAML"),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[e for _, e in BAD])
def test_errors_name_the_file_and_key(tmp_path, text, expected):
    p = _write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_rubric_file(p)
    msg = "\n".join([str(e.value), *e.value.lines])
    assert str(p) in str(e.value)
    assert expected in msg
    assert "\n" not in str(e.value)  # the headline is one line


def test_several_problems_are_all_listed(tmp_path):
    p = _write(tmp_path, "criteria: ''\nscores: {1: a, 2: b, 9: c}\n")
    with pytest.raises(UserError) as e:
        load_rubric_file(p)
    assert "3 problems" in str(e.value) or "4 problems" in str(e.value)
    text = "\n".join(e.value.lines)
    assert "criteria: empty" in text and "unexpected score level 9" in text and "missing score levels 3, 4, 5" in text
    assert all(line.startswith(str(p)) for line in e.value.lines)


def test_missing_file_folder_and_unknown_preset(tmp_path):
    with pytest.raises(UserError, match="no such rubric file"):
        load_rubric_file(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="is a folder"):
        load_rubric_file(tmp_path)
    with pytest.raises(UserError, match=r"not a preset \(did you mean 'helpfulness'\?\)"):
        load_rubric("helpfulnes")
    with pytest.raises(UserError, match="no such rubric file"):
        load_rubric(str(tmp_path / "missing.yml"))
