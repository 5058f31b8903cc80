"""Rubric files: one criterion and its five score descriptions, in YAML.

A domain judge is trained and used with *your* rubric.  Write it once in a small YAML
file and pass it to ``judgeforge data synthesize --rubric FILE`` (and anything else that
takes a rubric)::

    # rubric.yaml
    name: support-resolution            # optional: a short name for logs and reports
    description: >                      # optional: notes for humans, never shown to a model
      Grades replies of a customer-support agent.
    criteria: Does the reply resolve the customer's problem?
    scores:
      1: The reply ignores the problem ...
      2: ...
      3: ...
      4: ...
      5: The reply acknowledges the problem, apologises, gives a concrete fix and offers help.

Rules (each broken rule is reported with the file and the key):

* ``criteria`` and all five ``scores`` (keys 1 to 5, no others) are required; each is
  non-empty text.  Quote texts that YAML would read as something else (``yes``, ``no``,
  ``true``, numbers, texts that start with ``[`` or ``{``).
* The collections' flat names are accepted instead of ``scores:``:
  ``score1_description`` ... ``score5_description`` (not both forms in one file).
* Line breaks inside a text are folded into single spaces: the judge's prompt shows the
  criteria and each score description on one line (``[criteria]``, ``Score 1: ...``).
* Unknown keys are errors (a typo such as ``critera`` would otherwise lose the criterion).

In the prompt the rubric renders exactly as the Feedback Collection's do::

    [Does the reply resolve the customer's problem?]
    Score 1: The reply ignores the problem ...
    ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from judgeforge.errors import UserError, did_you_mean
from judgeforge.format.prompts import PRESET_RUBRICS, Rubric

TOP_KEYS = ("name", "description", "criteria", "scores", *(f"score{i}_description" for i in range(1, 6)))
LEVELS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class RubricFile:
    """A validated rubric file: the :class:`~judgeforge.format.prompts.Rubric` plus its optional name/description."""

    rubric: Rubric
    name: str | None = None
    description: str | None = None
    path: str | None = None

    @property
    def label(self) -> str:
        return self.name or (Path(self.path).stem if self.path else self.rubric.criteria[:40])


def _type_name(v) -> str:
    if v is None:
        return "nothing (an empty value)"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()}; YAML reads yes/no/true/false/on/off as booleans: quote the text)"
    if isinstance(v, (int, float)):
        return f"a number ({v}; quote it if it is meant as text)"
    if isinstance(v, list):
        return "a list (a text starting with '[' or '- ' is read as a list by YAML: quote it)"
    if isinstance(v, dict):
        return "a mapping (a 'key: value' inside a text makes YAML read a mapping: quote the text)"
    return type(v).__name__


def _fold(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _text(value, key: str, problems: list[str], *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        problems.append(f"{key}: must be text, got {_type_name(value)}")
        return None
    folded = _fold(value)
    if not folded:
        problems.append(f"{key}: empty; write the text")
        return None
    return folded


def _level(key) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.strip().isdigit():
        return int(key.strip())
    return None


def rubric_from_mapping(data, where: str) -> RubricFile:
    """Validate a rubric mapping (a parsed YAML file); every problem names ``where`` and the key."""
    if not isinstance(data, dict):
        raise UserError(
            f"{where}: a rubric file must be a YAML mapping with 'criteria' and 'scores' (1-5), "
            f"got {_type_name(data)}; see 'judgeforge data synthesize --help'"
        )
    problems: list[str] = []
    for key in data:
        if not isinstance(key, str) or key not in TOP_KEYS:
            problems.append(
                f"unknown key '{key}'{did_you_mean(str(key), TOP_KEYS)}; "
                "a rubric file has: name, description, criteria, scores"
            )
    name = _text(data.get("name"), "name", problems, required=False)
    description = _text(data.get("description"), "description", problems, required=False)
    if "criteria" not in data:
        problems.append("criteria: missing; add 'criteria: <the question the judge answers>'")
        criteria = None
    else:
        criteria = _text(data["criteria"], "criteria", problems)

    flat = [k for k in (f"score{i}_description" for i in LEVELS) if k in data]
    descs: dict[int, str | None] = {}
    if "scores" in data and flat:
        problems.append(
            f"scores: given twice (a 'scores:' mapping and {', '.join(flat)}); keep one form"
        )
    elif flat:
        for i in LEVELS:
            key = f"score{i}_description"
            if key not in data:
                problems.append(f"{key}: missing; a rubric needs all five score descriptions")
            else:
                descs[i] = _text(data[key], key, problems)
    elif "scores" not in data:
        problems.append("scores: missing; add 'scores:' with five descriptions under the keys 1 to 5")
    else:
        scores = data["scores"]
        if isinstance(scores, list):
            problems.append(
                "scores: must be a mapping with the keys 1 to 5 (write '1: text', not '- text'), "
                "so each description is tied to its score"
            )
        elif not isinstance(scores, dict):
            problems.append(f"scores: must be a mapping with the keys 1 to 5, got {_type_name(scores)}")
        else:
            for key, value in scores.items():
                level = _level(key)
                if level is None:
                    problems.append(f"scores: unexpected key '{key}'; use the score levels 1 to 5 as keys")
                elif level not in LEVELS:
                    problems.append(
                        f"scores: unexpected score level {level}; a rubric has exactly five levels, 1 to 5"
                    )
                elif level in descs:
                    problems.append(f"scores: score {level} is given twice")
                else:
                    descs[level] = _text(value, f"scores.{level}", problems)
            missing = [str(i) for i in LEVELS if i not in descs]
            if missing:
                problems.append(
                    f"scores: missing score level{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                    "a rubric needs all five (1 to 5)"
                )
    if problems:
        if len(problems) == 1:
            raise UserError(f"{where}: {problems[0]}")
        raise UserError(
            f"{where}: {len(problems)} problems in the rubric; fix them and run again",
            lines=[f"{where}: {p}" for p in problems],
        )
    rubric = Rubric(criteria, tuple(descs[i] for i in LEVELS))
    return RubricFile(rubric, name, description, where)


def load_rubric_file(path: str | os.PathLike) -> RubricFile:
    """Read and validate a rubric YAML file (see the module docstring for the format)."""
    import yaml

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{path}: is a folder; pass the rubric's YAML file")
    if not p.exists():
        raise UserError(f"{path}: no such rubric file; check the path")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: undecodable text (not UTF-8); re-save the file as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}:{loc} invalid YAML ({problem}); fix the syntax (quote texts with ': ' or '#')") from None
    if data is None:
        raise UserError(f"{path}: the file is empty; write 'criteria:' and 'scores:' (1-5)")
    return rubric_from_mapping(data, str(path))


def load_rubric(spec: str | os.PathLike) -> RubricFile:
    """A rubric YAML file, or the name of a preset (``helpfulness``, ``harmlessness`` ...)."""
    p = Path(spec)
    if p.exists() or p.suffix.lower() in (".yaml", ".yml"):
        return load_rubric_file(p)
    if str(spec) in PRESET_RUBRICS:
        return RubricFile(PRESET_RUBRICS[str(spec)], str(spec), None, None)
    raise UserError(
        f"{spec}: no such rubric file, and not a preset{did_you_mean(str(spec), PRESET_RUBRICS)} "
        f"({', '.join(PRESET_RUBRICS)}); pass a rubric YAML file (see docs/domain-judges.md)"
    )


def rubric_to_yaml(rubric: Rubric, name: str | None = None, description: str | None = None) -> str:
    """The YAML text of a rubric in the documented format (round-trips through :func:`load_rubric_file`)."""
    import yaml

    data: dict = {}
    if name:
        data["name"] = name
    if description:
        data["description"] = description
    data["criteria"] = rubric.criteria
    data["scores"] = {i: d for i, d in zip(LEVELS, rubric.descriptions or ())}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
