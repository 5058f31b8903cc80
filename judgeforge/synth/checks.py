"""Checking the teacher's output: what is usable, and why the rest is rejected (:data:`REASONS`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SCORES = (1, 2, 3, 4, 5)

# Why a teacher output was rejected (keys of the summary's "rejected" counts).
REASONS = {
    "no_output": "the teacher returned nothing",
    "unparseable": "no '###Response:' and '###Feedback:' sections",
    "empty_response": "the response is empty",
    "empty_feedback": "the feedback is empty",
    "no_score": "the feedback ends with no readable [RESULT] score",
    "wrong_score": "the feedback's [RESULT] is not the target score",
    "result_in_response": "the response contains a [RESULT] tag (sections mixed up)",
    "duplicate_response": "the response repeats another response to the same instruction",
    "response_is_reference": "a response for a score below 5 repeats the reference answer",
    "empty_reference": "the reference answer is empty",
    "result_in_reference": "the reference answer contains a [RESULT] tag",
    "no_verdict": "the comparison ends with no readable [RESULT] A or B",
    "wrong_verdict": "the comparison's [RESULT] is not the better response",
}


# --------------------------------------------------------------------------- checking teacher output


@dataclass(frozen=True)
class Checked:
    """A teacher output after checking: ``reason`` is None when it is usable."""

    reason: str | None
    response: str = ""
    feedback: str = ""
    detail: str = ""  # a short human explanation (fed back to the teacher on retry)

    @property
    def ok(self) -> bool:
        return self.reason is None


def reject(reason: str, detail: str = "") -> Checked:
    return Checked(reason, detail=detail or REASONS[reason])


# "###Response:", "### Feedback", "**Response:**", "## **Feedback**:" at the start of a line
_SECTION = re.compile(
    r"^[ \t]*(?:#{1,4}[ \t]*(?:\*\*)?|\*\*)[ \t]*(response|feedback)\b[ \t]*(?:\*\*)?[ \t]*"
    r"(?::[ \t]*(?:\*\*)?|$)[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_LABEL = re.compile(r"^\s*(?:#{1,4}\s*)?(?:\*\*)?\s*reference\s+answer\s*(?:\(score 5\))?\s*:?\s*(?:\*\*)?\s*",
                    re.IGNORECASE)
_TAG = re.compile(r"\[\s*RESULT\s*\]", re.IGNORECASE)


def normalize(text: str) -> str:
    """The form used for deduplication: case and whitespace ignored."""
    return " ".join(text.split()).casefold()


def dedup_key(text: str) -> bytes:
    import hashlib

    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).digest()


def check_reference(text: str | None) -> Checked:
    if text is None or not text.strip():
        return reject("no_output" if text is None else "empty_reference")
    ref = _LABEL.sub("", text.strip(), count=1).strip()
    if not ref:
        return reject("empty_reference")
    if _TAG.search(ref):
        return reject("result_in_reference")
    return Checked(None, response=ref)


def check_scored(text: str | None, score: int) -> Checked:
    """Split ``###Response: ... ###Feedback: ... [RESULT] n`` and check it against the target score."""
    from judgeforge.format.parsing import parse_absolute

    if text is None or not text.strip():
        return reject("no_output")
    marks = list(_SECTION.finditer(text))
    first_resp = next((m for m in marks if m.group(1).lower() == "response"), None)
    fb = [m for m in marks if m.group(1).lower() == "feedback" and first_resp and m.start() > first_resp.end()]
    if first_resp is None or not fb:
        return reject("unparseable")
    last_fb = fb[-1]
    response = text[first_resp.end() : last_fb.start()].strip()
    feedback_part = text[last_fb.end() :]
    if not response:
        return reject("empty_response")
    if _TAG.search(response):
        return reject("result_in_response")
    got = parse_absolute(feedback_part)
    if not got.ok:
        if got.feedback.strip() or _TAG.search(feedback_part):
            return reject("no_score", f"the feedback has no readable [RESULT] score ({got.error})")
        return reject("empty_feedback")
    if not got.feedback.strip():
        return reject("empty_feedback")
    if got.result != score:
        return reject("wrong_score", f"the feedback ended with [RESULT] {got.result}, not [RESULT] {score}")
    return Checked(None, response=response, feedback=got.feedback.strip())


def check_comparison(text: str | None, better: str) -> Checked:
    from judgeforge.format.parsing import parse_relative

    if text is None or not text.strip():
        return reject("no_output")
    got = parse_relative(text)
    if not got.ok:
        if not got.feedback.strip():
            return reject("empty_feedback")
        return reject("no_verdict", f"the comparison has no readable [RESULT] A or B ({got.error})")
    if not got.feedback.strip():
        return reject("empty_feedback")
    if got.result != better:
        return reject("wrong_verdict", f"it ended with [RESULT] {got.result}, but Response {better} is better")
    return Checked(None, feedback=got.feedback.strip())
