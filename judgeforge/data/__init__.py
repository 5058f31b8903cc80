"""Judge datasets: reading, schemas, validation, conversion to training rows, the paper's split.

Sources
-------
A local ``.jsonl``, ``.json`` (a list of objects, or JSON Lines despite the name),
``.parquet`` or ``.csv`` file, a local folder of such files, or a hub dataset id such as
``prometheus-eval/Feedback-Collection`` (read with ``datasets.load_dataset``).

Schemas (detected from the columns)
-----------------------------------
``feedback-collection``
    The Feedback Collection's columns: ``instruction`` (rendered absolute prompt),
    ``output`` (feedback + `` [RESULT] n``), ``orig_instruction``, ``orig_response``,
    ``orig_reference_answer``, ``orig_criteria``, ``orig_score1_description`` ...
    ``orig_score5_description``, ``orig_feedback``, ``orig_score`` (a string).
``preference-collection``
    The Preference Collection's columns: ``orig_criteria``, ``orig_instruction``,
    ``orig_reference_answer``, ``orig_response_A``, ``orig_response_B``,
    ``orig_score_A``, ``orig_score_B``, ``orig_feedback_A``, ``orig_feedback_B``,
    ``orig_feedback``, ``orig_preference`` ("A"/"B"), ``instruction``, ``output``, ``input``.
``absolute`` / ``relative`` — judgeforge's schema for a user's own domain data (one JSON object per line)::

    {"id": "q17",                                  # optional, unique when given
     "instruction": "...",                         # what the response answers
     "response": "...",                            # absolute; relative: "response_a", "response_b"
     "criteria": "Is the answer legally accurate?",
     "score1_description": "...", ..., "score5_description": "...",   # required for absolute
     "reference_answer": "...",                    # optional
     "score": 4,                                   # absolute: integer 1-5; relative: "preference": "A" | "B"
     "feedback": "..."}                            # the judge's reasoning (required for training)

    The rubric may instead be nested: ``"rubric": {"criteria": ..., "score1_description": ...}``.
    Relative rows may also carry ``score_a`` / ``score_b``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from judgeforge.data.reading import SUFFIXES, Row, read_rows  # noqa: E402,F401 - the readers, re-exported
from judgeforge.errors import UserError
from judgeforge.format.parsing import parse
from judgeforge.format.prompts import ABSOLUTE, RELATIVE, Rubric, chat_prompt
from judgeforge.format.records import AbsoluteExample, Example, RelativeExample, training_row

FEEDBACK_COLLECTION = "feedback-collection"
PREFERENCE_COLLECTION = "preference-collection"
SCHEMAS = (FEEDBACK_COLLECTION, PREFERENCE_COLLECTION, ABSOLUTE, RELATIVE)
HUB_IDS = {
    FEEDBACK_COLLECTION: "prometheus-eval/Feedback-Collection",
    PREFERENCE_COLLECTION: "prometheus-eval/Preference-Collection",
}
FC_COLUMNS = (
    "instruction",
    "output",
    "orig_instruction",
    "orig_response",
    "orig_reference_answer",
    "orig_criteria",
    *(f"orig_score{i}_description" for i in range(1, 6)),
    "orig_feedback",
    "orig_score",
)
PC_COLUMNS = (
    "orig_criteria",
    "orig_instruction",
    "orig_reference_answer",
    "orig_response_A",
    "orig_response_B",
    "orig_score_A",
    "orig_score_B",
    "orig_feedback_A",
    "orig_feedback_B",
    "orig_feedback",
    "orig_preference",
    "instruction",
    "output",
    "input",
)
@dataclass
class Problem:
    where: str
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}" if self.field else f"{self.where}: {self.message}"


# --------------------------------------------------------------------------- schemas


def detect_schema(columns: Iterable[str]) -> str | None:
    cols = set(columns)
    if "orig_response_A" in cols or "orig_preference" in cols:
        return PREFERENCE_COLLECTION
    if "orig_response" in cols or "orig_score" in cols:
        return FEEDBACK_COLLECTION
    if "response_a" in cols or "response_b" in cols or "preference" in cols:
        return RELATIVE
    if "response" in cols or "score" in cols:
        return ABSOLUTE
    return None


def schema_of(rows: list[Row], schema: str | None = None) -> str:
    if schema:
        if schema not in SCHEMAS:
            raise UserError(f"unknown schema '{schema}'; use one of: {', '.join(SCHEMAS)}")
        return schema
    cols: set[str] = set()
    for r in rows[:50]:
        if r.data:
            cols |= set(r.data)
    found = detect_schema(cols)
    if found is None and not cols and any(r.error for r in rows):
        bad = next(r for r in rows if r.error)  # nothing was readable: say why, not "no columns"
        raise UserError(f"{bad.where}: {bad.error}")
    if found is None:
        src = rows[0].source if rows else "input"
        raise UserError(
            f"{src}: cannot tell the schema from the columns ({', '.join(sorted(cols)) or 'none'}); "
            "see 'judgeforge data --help' for the Feedback/Preference Collection and judgeforge schemas"
        )
    return found


def mode_of(schema: str) -> str:
    return ABSOLUTE if schema in (ABSOLUTE, FEEDBACK_COLLECTION) else RELATIVE


# --------------------------------------------------------------------------- validation


def _text(d: dict, key: str, problems: list, where: str, *, required: bool = True) -> str | None:
    v = d.get(key)
    if v is None or (isinstance(v, float) and v != v):  # None or NaN (parquet/pandas nulls)
        if required:
            problems.append(Problem(where, key, "missing; add the field"))
        return None
    if not isinstance(v, str):
        if isinstance(v, (int, float)):
            v = str(v)
        else:
            problems.append(Problem(where, key, f"must be text, got {type(v).__name__}"))
            return None
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        problems.append(Problem(where, key, "undecodable text (broken surrogate characters); re-encode the file as UTF-8"))
        return None
    if required and not v.strip():
        problems.append(Problem(where, key, "empty; fill it in or drop the row"))
        return None
    return v


def _score(v, problems: list, where: str, key: str) -> int | None:
    if v is None or v == "":
        problems.append(Problem(where, key, "missing; give an integer score 1-5"))
        return None
    if isinstance(v, bool):
        problems.append(Problem(where, key, f"{v!r} is not an integer 1-5"))
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, str) and re.fullmatch(r"\+?[0-9]{1,3}", v.strip()):  # ASCII digits only ('²' is a digit)
        v = int(v.strip())
    if not isinstance(v, int):
        problems.append(Problem(where, key, f"{v!r} is not an integer 1-5"))
        return None
    if not 1 <= v <= 5:
        problems.append(Problem(where, key, f"{v} is outside 1-5"))
        return None
    return v


def _preference(v, problems: list, where: str, key: str) -> str | None:
    if v is None or v == "":
        problems.append(Problem(where, key, "missing; give 'A' or 'B'"))
        return None
    if not isinstance(v, str) or v.strip() not in ("A", "B"):
        problems.append(Problem(where, key, f"{v!r} is not 'A' or 'B'"))
        return None
    return v.strip()


def _rubric(d: dict, prefix: str, problems: list, where: str, *, need_descriptions: bool) -> Rubric | None:
    src = d
    keyp = prefix
    if not prefix and isinstance(d.get("rubric"), dict):
        src, keyp = d["rubric"], ""
        where_field = "rubric."
    else:
        where_field = ""
    n = len(problems)
    criteria = _text(src, f"{keyp}criteria", problems, where)
    descs = []
    for i in range(1, 6):
        key = f"{keyp}score{i}_description"
        if not need_descriptions and key not in src:
            descs = None
            break
        descs.append(_text(src, key, problems, where))
    for p in problems[n:]:
        if where_field and p.field and not p.field.startswith(where_field):
            p.field = where_field + p.field
        if p.field and "description" in p.field and "missing" in p.message:
            p.message = "missing; a rubric needs all five score descriptions (score1_description ... score5_description)"
    if len(problems) > n:
        return None
    return Rubric(criteria, tuple(descs) if descs else None)


def row_to_example(row: Row, schema: str, *, require_labels: bool = True, require_feedback: bool = True):
    """Validate one row; returns (example or None, problems)."""
    problems: list[Problem] = []
    where = row.where
    if row.error:
        return None, [Problem(where, None, row.error)]
    d = row.data or {}
    rid = d.get("id")
    rid = None if rid is None else str(rid)
    if schema == FEEDBACK_COLLECTION:
        rendered = _text(d, "instruction", problems, where)
        output = _text(d, "output", problems, where, required=require_labels)
        instr = _text(d, "orig_instruction", problems, where)
        resp = _text(d, "orig_response", problems, where)
        ref = _text(d, "orig_reference_answer", problems, where, required=False)
        rubric = _rubric(d, "orig_", problems, where, need_descriptions=True)
        feedback = _text(d, "orig_feedback", problems, where, required=require_labels and require_feedback)
        score = _score(d.get("orig_score"), problems, where, "orig_score") if require_labels or d.get("orig_score") else None
        if output and score is not None:
            got = parse(output, ABSOLUTE)
            if not got.ok:
                problems.append(Problem(where, "output", f"no readable [RESULT] score ({got.error})"))
            elif got.result != score:
                problems.append(Problem(where, "output", f"[RESULT] {got.result} disagrees with orig_score {score}"))
        if problems:
            return None, problems
        return AbsoluteExample(instr, resp, rubric, ref, score, feedback, rid, rendered, output), []
    if schema == PREFERENCE_COLLECTION:
        rendered = _text(d, "instruction", problems, where)
        output = _text(d, "output", problems, where, required=require_labels)
        instr = _text(d, "orig_instruction", problems, where)
        a = _text(d, "orig_response_A", problems, where)
        b = _text(d, "orig_response_B", problems, where)
        ref = _text(d, "orig_reference_answer", problems, where, required=False)
        rubric = _rubric(d, "orig_", problems, where, need_descriptions=False)
        feedback = _text(d, "orig_feedback", problems, where, required=require_labels and require_feedback)
        pref = _preference(d.get("orig_preference"), problems, where, "orig_preference") if require_labels else None
        sa = _score(d["orig_score_A"], problems, where, "orig_score_A") if d.get("orig_score_A") not in (None, "") else None
        sb = _score(d["orig_score_B"], problems, where, "orig_score_B") if d.get("orig_score_B") not in (None, "") else None
        if output and pref:
            got = parse(output, RELATIVE)
            if not got.ok:
                problems.append(Problem(where, "output", f"no readable [RESULT] verdict ({got.error})"))
            elif got.result != pref:
                problems.append(Problem(where, "output", f"[RESULT] {got.result} disagrees with orig_preference {pref}"))
        if problems:
            return None, problems
        return RelativeExample(instr, a, b, rubric, ref, pref, feedback, rid, sa, sb, rendered, output), []
    if schema == ABSOLUTE:
        instr = _text(d, "instruction", problems, where)
        resp = _text(d, "response", problems, where)
        ref = _text(d, "reference_answer", problems, where, required=False) if d.get("reference_answer") else None
        rubric = _rubric(d, "", problems, where, need_descriptions=True)
        score = _score(d.get("score"), problems, where, "score") if require_labels or d.get("score") is not None else None
        feedback = _text(d, "feedback", problems, where, required=require_labels and require_feedback)
        if problems:
            return None, problems
        return AbsoluteExample(instr, resp, rubric, ref, score, feedback, rid), []
    if schema == RELATIVE:
        instr = _text(d, "instruction", problems, where)
        a = _text(d, "response_a", problems, where)
        b = _text(d, "response_b", problems, where)
        ref = _text(d, "reference_answer", problems, where, required=False) if d.get("reference_answer") else None
        rubric = _rubric(d, "", problems, where, need_descriptions=False)
        pref = (
            _preference(d.get("preference"), problems, where, "preference")
            if require_labels or d.get("preference") is not None
            else None
        )
        feedback = _text(d, "feedback", problems, where, required=require_labels and require_feedback)
        sa = _score(d["score_a"], problems, where, "score_a") if d.get("score_a") is not None else None
        sb = _score(d["score_b"], problems, where, "score_b") if d.get("score_b") is not None else None
        if sa is not None and sb is not None and pref and sa != sb and (pref == "A") != (sa > sb):
            problems.append(Problem(where, "preference", f"'{pref}' disagrees with score_a {sa} / score_b {sb}"))
        if problems:
            return None, problems
        return RelativeExample(instr, a, b, rubric, ref, pref, feedback, rid, sa, sb), []
    raise UserError(f"unknown schema '{schema}'")


@dataclass
class Validation:
    schema: str
    examples: list[Example] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_rows(
    rows: list[Row],
    schema: str | None = None,
    *,
    require_labels: bool = True,
    require_feedback: bool = True,
    tokenizer=None,
    max_length: int | None = None,
    variant: str | None = None,
) -> Validation:
    """Every problem of every row (file, row, field), plus duplicate ids and over-long prompts."""
    schema = schema_of(rows, schema)
    v = Validation(schema, rows=len(rows))
    seen: dict[str, str] = {}
    for row in rows:
        ex, problems = row_to_example(row, schema, require_labels=require_labels, require_feedback=require_feedback)
        v.problems.extend(problems)
        if ex is None:
            continue
        if ex.id is not None:
            if ex.id in seen:
                v.problems.append(Problem(row.where, "id", f"duplicate id '{ex.id}' (first at {seen[ex.id]}); ids must be unique"))
                continue
            seen[ex.id] = row.where
        if tokenizer is not None and max_length:
            from judgeforge.tokenization import count_tokens

            row_ = training_row(ex, variant) if ex.label is not None else None
            n = count_tokens(tokenizer, row_["prompt"] if row_ else chat_prompt(ex.render(variant), ex.mode),
                             row_["completion"] if row_ else "")
            if n > max_length:
                v.problems.append(
                    Problem(row.where, None, f"the prompt and output take {n} tokens, over the max length {max_length}; "
                            "shorten the texts, raise max_length or drop the row")
                )
                continue
        v.examples.append(ex)
    return v


def load_examples(
    source: str | os.PathLike,
    schema: str | None = None,
    *,
    split: str = "train",
    require_labels: bool = True,
    require_feedback: bool = True,
) -> list[Example]:
    """Read and validate a dataset; raise a UserError that lists every problem."""
    rows = read_rows(source, split=split)
    v = validate_rows(rows, schema, require_labels=require_labels, require_feedback=require_feedback)
    raise_on_problems(v, source)
    return v.examples


def raise_on_problems(v: Validation, source) -> None:
    if v.problems:
        n = len(v.problems)
        raise UserError(
            f"{source}: {n} problem{'s' if n != 1 else ''} in {v.rows} rows; fix them and run again",
            lines=[str(p) for p in v.problems],
        )


def to_training_rows(examples: Iterable[Example], variant: str | None = None, chat=None) -> list[dict]:
    return [training_row(ex, variant, chat) for ex in examples]


# --------------------------------------------------------------------------- examples -> rows in the collections' schemas


def to_collection_row(ex: Example, variant: str | None = None) -> dict:
    """An example as a row of the Feedback / Preference Collection (rendered prompt and output included)."""
    if isinstance(ex, AbsoluteExample):
        row = {
            "instruction": ex.render(variant),
            "output": ex.target(),
            "orig_instruction": ex.instruction,
            "orig_response": ex.response,
            "orig_reference_answer": ex.reference_answer or "",
            "orig_criteria": ex.rubric.criteria,
        }
        for i, d in enumerate(ex.rubric.descriptions or ("",) * 5, start=1):
            row[f"orig_score{i}_description"] = d
        row["orig_feedback"] = ex.feedback or ""
        row["orig_score"] = str(ex.score)
    else:
        row = {
            "orig_criteria": ex.rubric.criteria,
            "orig_instruction": ex.instruction,
            "orig_reference_answer": ex.reference_answer or "",
            "orig_response_A": ex.response_a,
            "orig_response_B": ex.response_b,
            "orig_score_A": "" if ex.score_a is None else str(ex.score_a),
            "orig_score_B": "" if ex.score_b is None else str(ex.score_b),
            "orig_feedback_A": "",
            "orig_feedback_B": "",
            "orig_feedback": ex.feedback or "",
            "orig_preference": ex.preference,
            "instruction": ex.render(variant),
            "output": ex.target(),
            "input": "",
        }
    if ex.id is not None:
        row["id"] = ex.id
    return row


# --------------------------------------------------------------------------- the paper's split


def split_rows(rows: list[dict], test_size: float = 0.01, seed: int = 42) -> tuple[list[dict], list[dict]]:
    """The paper's deterministic hold-out: ``datasets``' ``train_test_split(test_size, seed)``.

    Identical to what the Prometheus 2 recipes held out, because it is the same call.
    """
    if not 0 < test_size < 1:
        raise UserError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    if len(rows) < 2:
        raise UserError(f"cannot split {len(rows)} row(s); need at least 2")
    import math

    n_test = math.ceil(test_size * len(rows))  # datasets' own rounding
    if n_test >= len(rows):
        raise UserError(f"test_size {test_size} of {len(rows)} rows leaves no training rows; use a smaller "
                        f"test_size (at most {(len(rows) - 1) / len(rows):.3g})")
    import datasets

    idx = datasets.Dataset.from_dict({"i": list(range(len(rows)))})
    parts = idx.train_test_split(test_size=test_size, seed=seed)
    return [rows[i] for i in parts["train"]["i"]], [rows[i] for i in parts["test"]["i"]]
