"""Reading a score (1-5) or a verdict (A/B) out of a judge's output.

Two modes:

``strict=True``
    The rule of the paper's code (``prometheus-eval`` 0.1.20, ``parse_output``): the
    result must close the output (``... [RESULT] 4`` with at most a bracket, ``/5`` or
    ``out of 5`` after it).  ``"[RESULT] 4."`` fails.  Use it to reproduce the paper's
    parse-failure rates.  Tests check it against the package on every table row.

``strict="harness"``
    The rule of the paper's evaluation script (prometheus-eval ``eval/run_evaluate.py``,
    its own ``parse_output``): the output holds exactly one ``[RESULT]`` and after it,
    stripped, only the value (``1``-``5`` or ``A``/``B``).  ``"[RESULT] 4/5"`` and
    ``"[RESULT] (A)"`` fail there although the package accepts them.

``strict=False`` (default)
    Tolerant where the official rule fails for no good reason: a trailing period or
    sentence, markdown bold around the tag, ``Score: 4/5``, ``[RESULT] Response B``,
    ``[RESULT] (A)``.  Where ``strict=True`` reads a value it reads the same one or refuses:
    it never reads a different number.  It reads only a verdict the text asserts: a tag (the
    last one), or, without a tag, the last marker whose value ends its sentence (``Score: 4``,
    ``The overall score is 4.``, ``The final score of 4``; not ``the score is 4 rather than 5``).
    An output that asserts two different verdicts (``[RESULT] 4 The final score of 3``,
    ``[RESULT] 2 ... [RESULT] 3``, ``Score: 3 ... [RESULT] 4``) is a failure whichever one
    the package's rule would pick.  A score named in passing
    ("... does not fully align with the criteria for a score of 5.") is never read:
    such an output is a failure, not a guess.  Out-of-range or fractional scores, ranges
    ("3-4"), two verdicts ("A and B") and ties are failures with a reason too.  Only the
    judge's *output* is read; if a backend echoed the prompt, everything up to the last
    ``###Feedback:`` is dropped first, so the rubric's ``Score 5: ...`` lines can never be
    mistaken for a score (prometheus-eval issue #58).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from judgeforge.format.prompts import ABSOLUTE, RELATIVE, check_mode


@dataclass(frozen=True)
class Parsed:
    """What a judge said: ``result`` (int score or "A"/"B") and the feedback without the tag."""

    result: int | str | None
    feedback: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


HARNESS = "harness"
STRICT_MODES = (False, True, HARNESS)


def check_strict(strict) -> bool | str:
    """``False`` (tolerant), ``True`` (the package's rule) or ``"harness"`` (the paper script's rule)."""
    if strict in (False, True, HARNESS):
        return strict
    if isinstance(strict, str) and strict.lower() in ("true", "false", "package", "tolerant"):
        return strict.lower() in ("true", "package")
    from judgeforge.errors import UserError

    raise UserError(f"unknown parse rule {strict!r}; use false (tolerant), true (the package's rule) or "
                    "'harness' (the paper's evaluation script)")


def parse(output: str | None, mode: str, *, strict: bool | str = False) -> Parsed:
    check_mode(mode)
    strict = check_strict(strict)
    if output is None:
        return Parsed(None, "", "no output")
    if strict == HARNESS:
        return _harness(output, mode)
    if mode == ABSOLUTE:
        official = _strict_absolute(output)
        if strict:
            return official
        tolerant = _tolerant_absolute(output)
    else:
        official = _strict_relative(output)
        if strict:
            return official
        tolerant = _tolerant_relative(output)
    # tolerant accepts what the package's rule accepts and never reads another number: where the two
    # readings differ the output asserts two verdicts ("[RESULT] 4 The final score of 3"), a failure
    if official.ok and tolerant.result is None and not tolerant.error.startswith(_TWO):
        return official
    if official.ok and tolerant.ok and tolerant.result != official.result:
        return Parsed(None, tolerant.feedback, f"{_TWO} ({tolerant.result} and {official.result})")
    return tolerant


def parse_absolute(output: str | None, *, strict: bool | str = False) -> Parsed:
    return parse(output, ABSOLUTE, strict=strict)


def parse_relative(output: str | None, *, strict: bool | str = False) -> Parsed:
    return parse(output, RELATIVE, strict=strict)


def _clean_feedback(text: str) -> str:
    text = text.strip()
    text = re.sub(r"[\s*_#]+$", "", text)  # markdown left dangling before the tag
    text = re.sub(r"^\s*(?:\*\*)?feedback(?:\*\*)?\s*:\s*(?:\*\*)?\s*", "", text, flags=re.IGNORECASE)
    return text.strip()


# --------------------------------------------------------------------------- strict (paper rule)

# The paper's acceptance rule for absolute outputs: a marker, an integer, an optional
# closing bracket or "/5" / "out of 5", then only whitespace to the end.
_STRICT_ABS = re.compile(
    r"(?:\[RESULT\]|\[SCORE\]|Score:?|Result:?|\[Result\]:?|score\s+of)"
    r"\s*[(\[\s]*"
    r"(\d+)"
    r"(?:[)\]\s]|$|/\s*5|\s*out\s*of\s*5)?"
    r"\s*$",
    re.IGNORECASE,
)

# The paper's acceptance rule for relative outputs: a marker, A or B, an optional "]",
# then whitespace to the end of a line (the original matches line by line).
_STRICT_REL = re.compile(
    r"(?:\[RESULT\]|\[RESULT:\s*|\[Response\s+|\[Result\](?:\s+Response)?|\[Result:\s*|(?:^|\n)Result:?\s*)"
    r"\s*(A|B)\]?\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def _strict_absolute(output: str) -> Parsed:
    m = _STRICT_ABS.search(output)
    if not m:
        return Parsed(None, output.strip(), "no score at the end of the output (paper rule)")
    score = int(m.group(1))
    if not 1 <= score <= 5:
        return Parsed(None, output.strip(), f"score {score} is outside 1-5")
    return Parsed(score, _clean_feedback(output[: m.start()]))


def _strict_relative(output: str) -> Parsed:
    m = _STRICT_REL.search(output)
    if not m:
        return Parsed(None, output.strip(), "no A/B verdict at the end of a line (paper rule)")
    return Parsed(m.group(1).upper(), _clean_feedback(output[: m.start()]))


def _harness(output: str, mode: str) -> Parsed:
    parts = output.split("[RESULT]")
    if len(parts) != 2:
        return Parsed(None, output.strip(), f"{len(parts) - 1} [RESULT] tags; the paper's script needs exactly one")
    value = parts[1].strip()
    allowed = ("1", "2", "3", "4", "5") if mode == ABSOLUTE else ("A", "B")
    if value not in allowed:
        return Parsed(None, _clean_feedback(parts[0]),
                      f"'{value[:20]}' after [RESULT] is not one of {'/'.join(allowed)} (the paper's script)")
    return Parsed(int(value) if mode == ABSOLUTE else value, _clean_feedback(parts[0]))


# --------------------------------------------------------------------------- tolerant

_BOLD = r"(?:\*\*|__)?"
# Bracketed tags ("[RESULT]", "**[RESULT]**", "[RESULT:") win over words; the last tag counts.
_TAG = re.compile(
    r"\[\s*(?:RESULT|SCORE|VERDICT)\s*(?:\]\s*:?|:)"
    r"|\[(?=\s*Response\s+[AB]\s*\])",  # "[Response A]"
    re.IGNORECASE,
)
# Word markers ("Score: 4/5", "Result: B", "the final score is 4").  "Score" needs a colon,
# "=" or "is" right after it, so rubric lines ("Score 5: The response ...") never count, and a
# word marker counts only when its value ends a sentence (see _CLOSING): "a score of 5" named in
# passing is a comparison with the rubric, not a verdict.
_WORD = re.compile(
    r"(?<![\w\[])(?:(?:final\s+|overall\s+)?(?:result|score|rating|verdict|winner|better\s+response)"
    + _BOLD
    + r"\s*(?::|=|\bis\b)|(?:final|overall)\s+score\s+of\b)",  # "The final score of 3" (the package reads it)
    re.IGNORECASE,
)
_TWO = "the output asserts two different verdicts"
# after a word marker's value its sentence must end (an optional parenthesis first): "Score: 4",
# "The overall score is 4.", "Result: A. Score=3" in relative mode; not "is 4 rather than 5"
_CLOSING = re.compile(r"[ \t)\]*_]*(?:\([^()\n]*\))?[)\]*_]*(?:</s>|[.!]+(?:\s|$)|[ \t]*(?:\n|$))")
_ECHO = re.compile(r"###\s*Feedback\s*:", re.IGNORECASE)

# between the marker and the value: markdown, a colon, a bracket, or a repeated "Score:"
_LEAD = r"\s*" + _BOLD + r"\s*:?\s*" + _BOLD + r"\s*[(\[]?\s*" + _BOLD + r"\s*"
_ABS_VALUE = re.compile(
    _LEAD + r"(?:(?:score|result|rating)\s*(?::|\bof\b|=)?\s*)?"
    r"(?P<num>-?\d+(?:\.\d+)?)"
    r"(?P<den>\s*(?:/|out\s+of)\s*(?P<denv>\d+))?"
    r"(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
_RANGE_AFTER = re.compile(r"\s*(?:-|–|to|or|and)\s*\d", re.IGNORECASE)

_REL_VALUE = re.compile(
    _LEAD +
    r"(?:response\s*|option\s*|answer\s*)?"
    r"(?P<v>[AB])(?![\w])"
    r"(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
_BOTH_AFTER = re.compile(r"\s*[)\]*_]*\s*(?:and|&|or|/|,)\s*(?:response\s*)?[AB](?![\w])", re.IGNORECASE)
_TIE_WORDS = re.compile(_LEAD + r"(?:tie|both|neither|none|equal|draw)\b", re.IGNORECASE)


def _drop_echo(output: str) -> str:
    echoes = list(_ECHO.finditer(output))
    return output[echoes[-1].end() :] if echoes else output


def _marker(text: str, value: re.Pattern):
    """The marker that introduces the result: the last tag, else the last word marker with a value, if that
    value ends its sentence."""
    tags = list(_TAG.finditer(text))
    if tags:
        return tags[-1]
    for m in reversed(list(_WORD.finditer(text))):
        v = value.match(text, m.end())
        if v:
            rest = v.group("rest")
            return m if _CLOSING.match(rest) else None
    return None


def _asserted(text: str, value: re.Pattern, read) -> set:
    """Every verdict the text asserts: each tag's value and each word marker's value that ends its sentence
    (``read`` turns a value match into a score / letter, or None where it is no clean value)."""
    found = set()
    for m in list(_TAG.finditer(text)) + list(_WORD.finditer(text)):
        v = value.match(text, m.end())
        if v and (m.re is _TAG or _CLOSING.match(v.group("rest"))):
            got = read(v)
            if got is not None:
                found.add(got)
    return found


def _abs_read(v) -> int | None:
    num = v.group("num")
    if "." in num or num.startswith("-") or (v.group("den") and v.group("denv") != "5") \
            or _RANGE_AFTER.match(v.group("rest")):
        return None
    return int(num) if 1 <= int(num) <= 5 else None


def _rel_read(v) -> str | None:
    return None if _BOTH_AFTER.match(v.group("rest")) else v.group("v").upper()


def _one_verdict(text: str, result, value: re.Pattern, read, feedback: str) -> Parsed:
    """``result``, unless the text also asserts a different verdict (then a failure naming both)."""
    others = sorted(map(str, _asserted(text, value, read) - {result}))
    if others:
        return Parsed(None, feedback, f"{_TWO} ({result} and {', '.join(others)})")
    return Parsed(result, feedback)


def _tolerant_absolute(output: str) -> Parsed:
    text = _drop_echo(output)
    m = _marker(text, _ABS_VALUE)
    if m is None:
        return Parsed(None, _clean_feedback(text), "no [RESULT] tag in the output")
    v = _ABS_VALUE.match(text, m.end())
    feedback = _clean_feedback(text[: m.start()])
    if not v:
        return Parsed(None, feedback, "the [RESULT] tag is not followed by a score")
    num = v.group("num")
    if "." in num or num.startswith("-"):
        return Parsed(None, feedback, f"score '{num}' is not an integer 1-5")
    if v.group("den") and v.group("denv") != "5":
        return Parsed(None, feedback, f"score '{num}/{v.group('denv')}' is not on the 1-5 scale")
    if _RANGE_AFTER.match(v.group("rest")):
        return Parsed(None, feedback, "the output gives a range of scores, not one score")
    score = int(num)
    if not 1 <= score <= 5:
        return Parsed(None, feedback, f"score {score} is outside 1-5")
    return _one_verdict(text, score, _ABS_VALUE, _abs_read, feedback)


def _tolerant_relative(output: str) -> Parsed:
    text = _drop_echo(output)
    m = _marker(text, _REL_VALUE)
    if m is None:
        return Parsed(None, _clean_feedback(text), "no [RESULT] tag in the output")
    feedback = _clean_feedback(text[: m.start()])
    if _TIE_WORDS.match(text, m.end()):
        return Parsed(None, feedback, "the output declares a tie or both; a verdict must be A or B")
    v = _REL_VALUE.match(text, m.end())
    if not v:
        return Parsed(None, feedback, "the [RESULT] tag is not followed by A or B")
    if _BOTH_AFTER.match(v.group("rest")):
        return Parsed(None, feedback, "the output names both responses; a verdict must be A or B")
    return _one_verdict(text, v.group("v").upper(), _REL_VALUE, _rel_read, feedback)


__all__ = ["Parsed", "parse", "parse_absolute", "parse_relative", "ABSOLUTE", "RELATIVE"]
