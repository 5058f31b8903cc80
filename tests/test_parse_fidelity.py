"""Issue #17: the tolerant parser never reads a score named in passing, and accepts what strict accepts."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from official import official_parser

from judgeforge.format.parsing import parse

# The parse cases of the package's own tests (prometheus-eval libs/prometheus-eval/tests/test_parser.py;
# the tests are not shipped in the installed 0.1.20 wheel, so its cases are copied here as data).
PACKAGE_CASES = [
    ("Excellent. [RESULT] 5 out of 5", "absolute", 5),
    ("Poor performance. [RESULT] score of 1", "absolute", 1),
    ("Good job. [Result] 3", "absolute", 3),
    ("Needs improvement. [Result] Score: 2", "absolute", 2),
    ("Well done. [Result] Result: 4", "absolute", 4),
    ("Average. [Result] 4/5", "absolute", 4),
    ("Excellent. [Result] 5 out of 5", "absolute", 5),
    ("Poor performance. [Result] score of 1", "absolute", 1),
    ("Good job. (Score 5)", "absolute", 5),
    ("Good job. [Score 4]", "absolute", 4),
    ("Good job. score: 3", "absolute", 3),
    ("Good job. Score: 3", "absolute", 3),
    ("Good job. score of 1", "absolute", 1),
    ("Good job. [RESULT] (5)", "absolute", 5),
    ("The score is definitely not 3.", "absolute", None),
    ("I rate this a perfect 10!", "absolute", None),
    ("Score: 2.5", "absolute", None),
    ("Result: A", "absolute", None),
    ("Response A is better. [RESULT] A", "relative", "A"),
    ("Prefer Response B. [RESULT] B", "relative", "B"),
    ("Feedback: Both responses are similar... [Response B]", "relative", "B"),
    ("Feedback: Both responses are clear... [Result] Response B", "relative", "B"),
    ("Feedback: Both responses are clear... Response B Response A", "relative", None),
    ("Feedback: Both responses are clear... [RESULT: B]", "relative", "B"),
    ("Feedback: Both responses are clear... [Result: B]", "relative", "B"),
    ("Feedback: Both responses are clear...Response A. [RESULT] B", "relative", "B"),
    ("After careful consideration, I select Response B.", "relative", None),
    ("Both responses have their merits.", "relative", None),
    ("Response C is clearly superior.", "relative", None),
    ("The better response is obviously B... or is it A? It's hard to decide.", "relative", None),
    ("Good job. [RESULT] 3", "absolute", 3),  # from the package's parser module test list
    ("Needs improvement. [RESULT] Score: 2", "absolute", 2),
    ("Well done. [RESULT] Result: 4", "absolute", 4),
    ("Average. [RESULT] 4/5", "absolute", 4),
]


@pytest.mark.parametrize(("output", "mode", "expected"), PACKAGE_CASES)
def test_package_cases_strict_matches_package(output, mode, expected):
    _, official = official_parser().parse_output(output, mode)
    assert official == expected
    assert parse(output, mode, strict=True).result == expected


@pytest.mark.parametrize(("output", "mode", "expected"), PACKAGE_CASES)
def test_tolerant_accepts_everything_strict_accepts(output, mode, expected):
    strict = parse(output, mode, strict=True)
    tolerant = parse(output, mode)
    if strict.ok:
        assert tolerant.result == strict.result, (output, tolerant)


def test_tolerant_superset_on_the_parsing_table():
    from test_parsing import TABLE

    for output, mode, _, _ in TABLE:
        s = parse(output, mode, strict=True)
        if s.ok:
            assert parse(output, mode).result == s.result, output


# real GPT-4 sentences (Vicuna / MT Bench feedbacks) that mention a score without giving it
IN_PASSING = [
    "Therefore, it does not fully align with the criteria for a score of 5.",
    "This prevents the response from achieving full comprehensibility, as required by a score of 5 in the rubric.",
    "The response provides a plausible example but does not include any explanation. A score of 5 could have "
    "been achieved if the response had explained the logic.",
    "Therefore, the response mostly aligns with the score rubric for a score of 3 but falls slightly short of a "
    "perfect score.",
    "Overall, the response meets the criteria for a score of 5 as per the rubric.",
    "The score is 4 rather than 5 because the example is thin.",
    "A rating of 4: mostly helpful, but not fully.",
]


@pytest.mark.parametrize("text", IN_PASSING)
def test_a_score_named_in_passing_is_a_failure_not_a_guess(text):
    got = parse("The response is clear and well organised. " + text, "absolute")
    assert got.result is None and got.error


@pytest.mark.parametrize(("text", "score"), [
    ("The response is clear.\n\nScore: 4", 4),
    ("The response is clear. The overall score is 3.", 3),
    ("The response is clear.\n**Score:** 2/5", 2),
    ("The response is clear. Final score: 5 (excellent).", 5),
    ("The response falls short of a score of 5. [RESULT] 4", 4),
    ("It meets the criteria for a score of 3.\nScore: 4", 4),
])
def test_an_asserted_verdict_is_read(text, score):
    assert parse(text, "absolute").result == score


@pytest.mark.parametrize(("output", "mode", "expected"), [
    ("Good. [RESULT] 4", "absolute", 4),
    ("Good.[RESULT]3\n", "absolute", 3),
    ("Good. [RESULT] 4.", "absolute", None),
    ("Good. [RESULT] 4/5", "absolute", None),
    ("Good. [RESULT] Score: 4", "absolute", None),
    ("[RESULT] 2 ... [RESULT] 3", "absolute", None),
    ("Good. Score: 4", "absolute", None),
    ("Good. [RESULT] 6", "absolute", None),
    ("Good. [RESULT] B", "relative", "B"),
    ("Good. [RESULT] (A)", "relative", None),
    ("Good. [RESULT] b", "relative", None),
    ("Good. [Response A]", "relative", None),
])
def test_harness_rule(output, mode, expected):
    got = parse(output, mode, strict="harness")
    assert got.result == expected
    assert got.ok == (expected is not None)


def test_harness_rule_is_the_scripts_rule():
    """The paper script's parse_output: split on [RESULT], exactly two parts, the stripped value only."""
    def script(outputs, mode):  # the rule as eval/run_evaluate.py states it (a2a / r2r)
        parts = outputs.split("[RESULT]")
        if len(parts) == 2:
            result = parts[1].strip()
            if mode == "absolute" and result in ["1", "2", "3", "4", "5"]:
                return int(result)
            if mode == "relative" and result in ["A", "B"]:
                return result
        return None

    from test_parsing import TABLE

    for output, mode, _, _ in TABLE + [(o, m, None, None) for o, m, _ in PACKAGE_CASES]:
        assert parse(output, mode, strict="harness").result == script(output, mode), output


def test_real_feedbacks_are_never_misread(shared_data):
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "scripts" / "bench" / "parse_fidelity.py"
    spec = importlib.util.spec_from_file_location("parse_fidelity", here)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("parse_fidelity", mod)
    spec.loader.exec_module(mod)
    res = mod.measure(shared_data)
    assert res["feedbacks"] == 1920
    for key, r in res["results"].items():
        assert r["wrong"] == 0, (key, r["examples"])
    for shape in ("tag", "line", "sentence"):
        assert res["results"][f"{shape}/tolerant"]["failed"] == 0


def test_unknown_strict_value_is_a_user_error():
    from judgeforge.errors import UserError

    with pytest.raises(UserError, match="harness"):
        parse("x [RESULT] 4", "absolute", strict="paper-ish")


# two verdicts in one output: the package reads the one that closes it; tolerant refuses both ways
TWO_VERDICTS = [
    ("Good. [RESULT] 4 The final score of 3", "absolute", 3),
    ("Good. [RESULT] 4 The final score of 3.", "absolute", None),
    ("Good. [RESULT] 4. The final score of 3", "absolute", 3),
    ("Good. [RESULT] 4 Score: 3", "absolute", 3),
    ("Good. [RESULT] 4 so a score of 3", "absolute", 3),
    ("Good. [RESULT] 4 (Score 5)", "absolute", 5),
    ("Good. [RESULT] 2 ... [RESULT] 3", "absolute", 3),
    ("Score: 3\nGood. [RESULT] 4", "absolute", 4),
    ("Good. [RESULT] B\nResult: A", "relative", "B"),  # relative: the package reads the first
    ("Better response: A. [RESULT] B", "relative", "B"),
    ("Good. [RESULT] A so [RESULT] B", "relative", "B"),
]


@pytest.mark.parametrize(("output", "mode", "package"), TWO_VERDICTS)
def test_two_different_verdicts_are_a_counted_failure(output, mode, package):
    assert official_parser().parse_output(output, mode)[1] == package  # what the package reads, if anything
    got = parse(output, mode)
    assert got.result is None and "two different verdicts" in got.error, got


@pytest.mark.parametrize(("output", "mode", "score"), [
    ("Good. [RESULT] 4 The final score of 4", "absolute", 4),  # the same verdict twice is one verdict
    ("Good. The final score of 3.", "absolute", 3),  # the package reads it without the period
    ("Good. [RESULT] 4. It falls short of a score of 5.", "absolute", 4),  # named in passing, not asserted
    ("Needs improvement. [Result] Score: 2", "absolute", 2),
])
def test_one_verdict_stated_twice_or_a_score_in_passing_is_read(output, mode, score):
    assert parse(output, mode).result == score


def test_tolerant_never_reads_a_number_the_package_reads_differently():
    from test_parsing import TABLE

    cases = [(o, m) for o, m, _, _ in TABLE] + [(o, m) for o, m, _ in PACKAGE_CASES + TWO_VERDICTS]
    for output, mode in cases:
        strict, tolerant = parse(output, mode, strict=True), parse(output, mode)
        if strict.ok and tolerant.ok:
            assert tolerant.result == strict.result, output
        if strict.ok and not tolerant.ok:  # refused only for two verdicts, never for a form strict reads
            assert "two different verdicts" in tolerant.error, output
