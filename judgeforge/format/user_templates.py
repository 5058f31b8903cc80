"""A user's own judge template (prometheus-eval's ``absolute_grade_template=`` / ``relative_grade_template=``).

A template is a ``str.format`` string with prometheus-eval's placeholders; it replaces the
default wording for every item, as in the package.  Checked once when the Judge is built.
"""

from __future__ import annotations

import string

from judgeforge.errors import UserError
from judgeforge.format.prompts import ABSOLUTE, RELATIVE

PLACEHOLDERS = {
    ABSOLUTE: ({"instruction", "response", "rubric"}, {"reference_answer"}),
    RELATIVE: ({"instruction", "response_A", "response_B", "rubric"}, {"reference_answer"}),
}


def check_template(template, mode: str, where: str) -> str | None:
    """None, or a template string whose placeholders are ``mode``'s (else one line naming the fix)."""
    if template is None:
        return None
    if not isinstance(template, str):
        raise UserError(f"{where}: a template is a string with {{instruction}}-style placeholders, "
                        f"not {type(template).__name__}")
    required, optional = PLACEHOLDERS[mode]
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise UserError(f"{where}: the template is not a str.format template ({e}); double literal braces") from None
    unknown, missing = names - required - optional, required - names
    if unknown or missing:
        problem = f"unknown placeholder {{{sorted(unknown)[0]}}}" if unknown else \
            f"no {{{sorted(missing)[0]}}} placeholder"
        raise UserError(f"{where}: {problem}; a {mode} template uses "
                        f"{', '.join('{' + n + '}' for n in sorted(required | optional))}")
    return template


def fill_template(template: str, where: str, **fields) -> str:
    """``template.format(**fields)`` as prometheus-eval does; a missing reference answer is an error, not "None"."""
    if "{reference_answer}" in template and fields.get("reference_answer") is None:
        raise UserError(f"{where}: the template has {{reference_answer}} but this item has none; "
                        "pass reference_answers, or use the template without a reference (…_WO_REF)")
    if "{reference_answer}" not in template and fields.get("reference_answer") is not None:
        raise UserError(f"{where}: a reference answer was given but the template has no {{reference_answer}}; "
                        "use ABSOLUTE_PROMPT / RELATIVE_PROMPT, or drop reference_answers")
    return template.format(**fields)


__all__ = ["PLACEHOLDERS", "check_template", "fill_template"]
