"""Typed judge examples: one absolute (score 1-5) and one relative (A or B) record.

Rows from the Feedback Collection, the Preference Collection or a user's own domain
file all become these records (see :mod:`judgeforge.data`).  A record knows how to
render its prompt and its target output; rows from the collections keep their
pre-rendered ``instruction`` and ``output`` and use them as is, exactly as Prometheus 2
was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from judgeforge.format.prompts import (
    ABSOLUTE,
    RELATIVE,
    Rubric,
    chat_prompt,
    format_output,
    render_absolute,
    render_relative,
)


@dataclass
class AbsoluteExample:
    instruction: str
    response: str
    rubric: Rubric
    reference_answer: str | None = None
    score: int | None = None
    feedback: str | None = None
    id: str | None = None
    rendered: str | None = None  # a collection's pre-rendered prompt, used as is
    output: str | None = None  # a collection's target output, used as is

    mode = ABSOLUTE

    def render(self, variant: str | None = None) -> str:
        if self.rendered is not None:
            return self.rendered
        return render_absolute(self.instruction, self.response, self.rubric, self.reference_answer, variant=variant)

    def target(self) -> str:
        if self.output is not None:
            return self.output
        if self.feedback is None or self.score is None:
            raise ValueError(f"example {self.id}: no feedback/score to build a target from")
        return format_output(self.feedback, self.score)

    @property
    def label(self):
        return self.score


@dataclass
class RelativeExample:
    instruction: str
    response_a: str
    response_b: str
    rubric: Rubric
    reference_answer: str | None = None
    preference: str | None = None  # "A" or "B"
    feedback: str | None = None
    id: str | None = None
    score_a: int | None = None
    score_b: int | None = None
    rendered: str | None = None
    output: str | None = None

    mode = RELATIVE

    def render(self, variant: str | None = None) -> str:
        if self.rendered is not None:
            return self.rendered
        return render_relative(
            self.instruction, self.response_a, self.response_b, self.rubric, self.reference_answer, variant=variant
        )

    def target(self) -> str:
        if self.output is not None:
            return self.output
        if self.feedback is None or self.preference is None:
            raise ValueError(f"example {self.id}: no feedback/preference to build a target from")
        return format_output(self.feedback, self.preference)

    @property
    def label(self):
        return self.preference


Example = AbsoluteExample | RelativeExample


def training_row(ex: Example, variant: str | None = None, chat=None) -> dict:
    """``{"id", "mode", "prompt", "completion"}``: prompt is ``[INST] system\\n\\ninstruction [/INST]``,
    or ``chat.prompt(...)`` for a model in another chat format (:mod:`judgeforge.format.chat`).

    The tokenizer adds BOS in front and training appends EOS after the completion.
    """
    return {
        "id": ex.id,
        "mode": ex.mode,
        "prompt": chat.prompt(ex.render(variant), ex.mode) if chat is not None else chat_prompt(ex.render(variant), ex.mode),
        "completion": ex.target(),
    }
