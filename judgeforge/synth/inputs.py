"""The instructions to answer, and the reference answers a user already has."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from judgeforge.errors import UserError


@dataclass
class Instruction:
    key: str  # the id of the input row, or a hash of the text
    text: str
    reference_answer: str | None = None
    where: str = ""


def _instruction_key(text: str) -> str:
    from judgeforge.io import sha256_text

    return "i" + sha256_text(text)[:10]


def read_instructions(path: str | os.PathLike) -> tuple[list[Instruction], int]:
    """Instructions from ``.txt`` (one per line) or ``.jsonl/.json/.csv/.parquet`` rows with an ``instruction``
    field (optional ``id``, ``reference_answer``).  Returns (instructions, number of duplicates dropped)."""
    from judgeforge.data import read_rows

    p = Path(path)
    if not p.exists():
        raise UserError(f"{path}: no such instructions file; check the path")
    items: list[Instruction] = []
    if p.suffix.lower() == ".txt":
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise UserError(f"{path}: undecodable text (not UTF-8); re-save the file as UTF-8") from None
        for n, line in enumerate(lines, start=1):
            if line.strip():
                items.append(Instruction(_instruction_key(line.strip()), line.strip(), None, f"{path}: line {n}"))
    else:
        from judgeforge.errors import did_you_mean

        rows = read_rows(p)
        ids: dict[str, str] = {}
        for row in rows:
            if row.error:
                raise UserError(f"{row.where}: {row.error}")
            d = row.data
            text = d.get("instruction")
            if text is None:
                hint = did_you_mean("instruction", [k for k in d if isinstance(k, str)])
                raise UserError(f"{row.where}: instruction: missing{hint}; each row needs an 'instruction' field "
                                "(optional: 'id', 'reference_answer')")
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"{row.where}: instruction: must be non-empty text")
            rid = d.get("id")
            if rid is not None and str(rid).strip():
                rid = str(rid).strip()
                if rid in ids:
                    raise UserError(f"{row.where}: id: duplicate id '{rid}' (first at {ids[rid]}); ids must be unique")
                ids[rid] = row.where
            else:
                rid = _instruction_key(text.strip())
            ref = d.get("reference_answer")
            if ref is not None and not isinstance(ref, str):
                raise UserError(f"{row.where}: reference_answer: must be text")
            items.append(Instruction(rid, text.strip(), ref.strip() if ref and ref.strip() else None, row.where))
    if not items:
        raise UserError(f"{path}: holds no instructions")
    seen: set[str] = set()
    out = []
    for it in items:
        if it.text in seen:
            continue
        seen.add(it.text)
        out.append(it)
    return out, len(items) - len(out)


def read_reference_answers(path: str | os.PathLike, instructions: list[Instruction]) -> int:
    """Attach reference answers from a file (rows with ``reference_answer`` and ``id`` or ``instruction``)."""
    from judgeforge.data import read_rows

    if not Path(path).exists():
        raise UserError(f"{path}: no such reference-answers file; check the path")
    by_id = {it.key: it for it in instructions}
    by_text = {it.text: it for it in instructions}
    n = 0
    for row in read_rows(path):
        if row.error:
            raise UserError(f"{row.where}: {row.error}")
        d = row.data
        ref = d.get("reference_answer")
        if not isinstance(ref, str) or not ref.strip():
            raise UserError(f"{row.where}: reference_answer: missing or empty; each row needs the answer text")
        target = None
        if d.get("id") is not None:
            target = by_id.get(str(d["id"]).strip())
            if target is None:
                raise UserError(f"{row.where}: id: '{d['id']}' matches no instruction; check the ids")
        elif isinstance(d.get("instruction"), str):
            target = by_text.get(d["instruction"].strip())
            if target is None:
                raise UserError(f"{row.where}: instruction: matches no instruction in the instructions file")
        else:
            raise UserError(f"{row.where}: give 'id' or 'instruction' to say which instruction the answer is for")
        target.reference_answer = ref.strip()
        n += 1
    return n
