"""Benchmark files read as rows (a JSON list, JSON Lines, parquet) and their gold grades checked.

Non-UTF-8 text, JSON nested too deep and gold scores that are empty, NaN or outside 1-5 are one
:class:`UserError` line naming the file (and row), never a traceback or a silently used label.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from judgeforge.errors import UserError


def read_records(path: str | os.PathLike) -> list[dict]:
    """A JSON list, a single JSON object per line (JSON Lines, whatever the suffix) or parquet."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".parquet":
        from judgeforge.data import read_rows

        return [r.data for r in read_rows(p)]
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save the file as UTF-8") from None
    try:
        return _parse_records(text, path)
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply to be benchmark rows") from None


def _parse_records(text: str, path) -> list[dict]:
    text = text.removeprefix("\ufeff")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
        if not all(isinstance(r, dict) for r in data):
            raise UserError(f"{path}: a JSON list of objects was expected")
        return data
    if stripped.startswith("{"):
        _refuse_keyed_object(text, path)
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: line {lineno}: invalid JSON ({e.msg}); one object per line") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}: line {lineno}: a JSON object was expected")
        out.append(obj)
    return out


def _refuse_keyed_object(text: str, path) -> None:
    """A whole file that is one JSON object of objects (``{"id1": {...}, "id2": {...}}``) is not JSON Lines."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return  # JSON Lines (or broken JSON, reported line by line)
    if isinstance(data, dict) and len(data) > 1 and all(isinstance(v, dict) for v in data.values()):
        keys = ", ".join(repr(k) for k in list(data)[:2])
        raise UserError(f"{path}: one JSON object keyed by item id ({keys}, ...), not rows; write a JSON list of "
                        "rows or JSON Lines, one row per line, with the key as each row's 'id'")


def gold_scores(v, key: str = "gpt4_score") -> list[float]:
    """Gold scores: one number or a list of them, each a finite 1-5 grade (else ValueError naming it)."""
    if isinstance(v, str):
        v = json.loads(v) if v.strip().startswith("[") else float(v)
    if v is None:
        raise ValueError(f"{key} is empty; give the gold grade(s) 1-5")
    vals = [v] if isinstance(v, (int, float, dict)) else list(v)
    if not vals:
        raise ValueError(f"{key} is empty; give the gold grade(s) 1-5")
    out = []
    for x in vals:
        if isinstance(x, bool) or not isinstance(x, (int, float, str)):
            raise ValueError(f"{key} {x!r} is not a number")
        f = float(x)
        if not (math.isfinite(f) and 1 <= f <= 5):
            raise ValueError(f"{key} {x!r} is not a grade from 1 to 5")
        out.append(f)
    return out
