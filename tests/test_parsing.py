"""Output parsing: a table of realistic judge outputs.

Each row: (output, mode, tolerant result, strict result).  ``None`` means a failure.
The strict column is the paper's rule; a second test checks it against the official
prometheus-eval 0.1.20 parser on every row.
"""

from __future__ import annotations

import pytest
from official import official_parser

from judgeforge.format.parsing import parse, parse_absolute, parse_relative

FB = "The response covers the main points clearly but misses the edge cases the rubric asks for."
RUBRIC_ECHO = (
    "###Score Rubrics:\n[Is it helpful?]\nScore 1: Not helpful.\nScore 2: Slightly.\nScore 3: Somewhat.\n"
    "Score 4: Mostly.\nScore 5: Fully helpful.\n\n###Feedback: "
)

A, R = "absolute", "relative"
TABLE = [
    # --- absolute: the canonical form and the formats the official rule also accepts
    (f"{FB} [RESULT] 4", A, 4, 4),
    (f"Feedback: {FB} [RESULT] 3", A, 3, 3),
    (f"{FB} [RESULT] 5\n", A, 5, 5),
    (f"{FB} [RESULT] 1   ", A, 1, 1),
    (f"{FB} [RESULT] (2)", A, 2, 2),
    (f"{FB} [RESULT] 4/5", A, 4, 4),
    (f"{FB} [RESULT] 4 out of 5", A, 4, 4),
    (f"{FB}\nScore: 3", A, 3, 3),
    (f"{FB} So the overall score is 4. [RESULT] 4", A, 4, 4),
    (f"{FB} [SCORE] 2", A, 2, 2),
    (f"{FB} The final score of 3", A, 3, 3),
    # --- absolute: where the official rule fails for no good reason
    (f"{FB} [RESULT] 4.", A, 4, None),
    (f"{FB} [RESULT] 4. The response could add examples.", A, 4, None),
    (f"{FB} **[RESULT]** 4", A, 4, None),
    (f"{FB}\n\n**[RESULT]**: 5", A, 5, None),
    (f"{FB} Score: 4/5.", A, 4, None),
    (f"{FB} [RESULT] 3</s>", A, 3, None),
    (f"{FB} [RESULT]: 2 (Partially meets the criteria)", A, 2, None),
    (f"{FB} [RESULT] Score: 4", A, 4, 4),
    (f"{FB}\n[RESULT] 5\n\nThis concludes the evaluation.", A, 5, None),
    (f"{FB} [Result] 3.", A, 3, None),
    # --- absolute: failures that must not be guessed
    (f"{FB}", A, None, None),
    (f"{FB} [RESULT] 6", A, None, None),
    (f"{FB} [RESULT] 0", A, None, None),
    (f"{FB} [RESULT] 3.5", A, None, None),
    (f"{FB} [RESULT] 3-4", A, None, None),
    (f"{FB} [RESULT] 4 or 5", A, None, None),
    (f"{FB} [RESULT] 7/10", A, None, None),
    (f"{FB} [RESULT]", A, None, None),
    (f"{FB} [RESULT] excellent", A, None, None),
    ("", A, None, None),
    # --- absolute: never read a score out of an echoed prompt or rubric (prometheus-eval #58)
    (RUBRIC_ECHO + FB, A, None, None),
    (RUBRIC_ECHO + f"{FB} [RESULT] 2", A, 2, 2),
    ("The rubric says Score 5: Fully helpful. The response is not that. [RESULT] 2", A, 2, 2),
    ("The response reaches Score 5: it is fully helpful.", A, None, None),
    # --- relative: canonical and officially accepted
    (f"{FB} [RESULT] A", R, "A", "A"),
    (f"Feedback: {FB} [RESULT] B", R, "B", "B"),
    (f"{FB} [RESULT] B\n", R, "B", "B"),
    (f"{FB} [RESULT] b", R, "B", "B"),
    (f"{FB}\nResult: A", R, "A", "A"),
    (f"{FB} [Result] Response B", R, "B", "B"),
    (f"{FB} [Response A]", R, "A", "A"),
    (f"{FB} [RESULT] A\nBoth responses were close.", R, "A", "A"),
    # --- relative: tolerant only
    (f"{FB} [RESULT] Response B", R, "B", "B"),
    (f"{FB} [RESULT] (A)", R, "A", None),
    (f"{FB} [RESULT] A.", R, "A", None),
    (f"{FB} **[RESULT]** B", R, "B", None),
    (f"{FB} [RESULT]: **A**", R, "A", None),
    (f"{FB} [RESULT] B. Response B follows the rubric more closely.", R, "B", None),
    (f"{FB} Better response: A", R, "A", None),
    # --- relative: failures
    (f"{FB} [RESULT] A and B", R, None, None),
    (f"{FB} [RESULT] Both", R, None, None),
    (f"{FB} [RESULT] Tie", R, None, None),
    (f"{FB} [RESULT] C", R, None, None),
    (f"{FB} [RESULT] A or B", R, None, None),
    (f"{FB} Response A is better.", R, None, None),
    (f"{FB} [RESULT] Answer", R, None, None),
]


def test_table_is_large_enough():
    assert len(TABLE) >= 40
    assert {m for _, m, _, _ in TABLE} == {A, R}


@pytest.mark.parametrize(("output", "mode", "tolerant", "strict"), TABLE)
def test_tolerant_and_strict(output, mode, tolerant, strict):
    got = parse(output, mode)
    assert got.result == tolerant, (output, got)
    if tolerant is None:
        assert got.error, "a failure carries its reason"
    else:
        assert got.ok and "[RESULT]" not in got.feedback
    assert parse(output, mode, strict=True).result == strict


@pytest.mark.parametrize(("output", "mode", "tolerant", "strict"), TABLE)
def test_strict_mode_is_the_official_rule(output, mode, tolerant, strict):
    off = official_parser()
    _, official = off.parse_output(output, mode)
    assert parse(output, mode, strict=True).result == official


def test_feedback_is_returned_without_the_tag():
    got = parse_absolute(f"Feedback: {FB} [RESULT] 4.")
    assert got.feedback == FB
    got = parse_relative(f"**Feedback:** {FB}\n\n**[RESULT]** B")
    assert got.feedback == FB


def test_failure_reasons_say_what_went_wrong():
    assert "outside 1-5" in parse_absolute("x [RESULT] 9").error
    assert "not an integer" in parse_absolute("x [RESULT] 2.5").error
    assert "no [RESULT]" in parse_absolute("just words").error
    assert "both" in parse_relative("x [RESULT] A and B").error
    assert "tie" in parse_relative("x [RESULT] tie").error
    assert parse_absolute(None).error == "no output"
