"""Reading judge datasets: JSON Lines, JSON, CSV and parquet files, folders of them, hub datasets.

Every way a file can be unreadable (not UTF-8, UTF-16, a byte-order mark, a JSON list under a
.jsonl name, JSON nested too deep, a number too long to parse, a corrupt parquet file, a CSV
field over the csv module's limit, no permission) is one :class:`UserError` line naming the file
(and line), or a per-row ``error`` that validation reports with the row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from judgeforge.errors import UserError

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CSV_FIELD_LIMIT = 64 << 20  # judge responses can be long; the csv module's default is 128 KiB


@dataclass
class Row:
    """One raw row and where it came from (1-based ``index``; ``line`` for text formats)."""

    source: str
    index: int
    data: dict | None
    line: int | None = None
    error: str | None = None  # the row could not be read at all (bad JSON, bad UTF-8)

    @property
    def where(self) -> str:
        loc = f"row {self.index}"
        if self.line is not None and self.line != self.index:
            loc += f" (line {self.line})"
        return f"{self.source}: {loc}"


def read_rows(source: str | os.PathLike, split: str = "train") -> list[Row]:
    """Rows of a local file or folder, or of a hub dataset (``owner/name``)."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and not p.name.startswith("."))
        if not files:
            raise UserError(f"{source}: the folder holds no {', '.join(SUFFIXES)} files")
        rows: list[Row] = []
        for f in files:
            rows.extend(read_rows(f))
        return rows
    if path.exists():
        return _read_file(path)
    if not _HUB_ID.match(str(source)) or path.suffix.lower() in SUFFIXES or path.parent.is_dir() and str(
            path.parent) not in (".", ""):
        raise UserError(f"{source}: no such file or folder; check the path")  # not a hub id: no 25 s wait
    return read_hub(str(source), split)


def _refuse_wide(name: str, raw: bytes) -> None:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and b"\x00" in raw[:200]):
        raise UserError(f"{name}: the file is UTF-16 (or another wide encoding), not UTF-8; re-save it as UTF-8")


def _decode(name: str, raw: bytes) -> str:
    """UTF-8 text (a leading byte-order mark dropped); UTF-16/32 and other encodings are one line."""
    _refuse_wide(name, raw)
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{name}: line {line}: undecodable text (not UTF-8); re-save the file as UTF-8") from None


def _read_file(path: Path) -> list[Row]:
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"{name}: unsupported file type '{suffix}'; use .jsonl, .json, .parquet or .csv")
    try:
        if suffix == ".parquet":
            return _read_parquet(path)
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{name}: cannot read ({e.strerror or e}); check the file and its permissions") from None
    try:
        if suffix == ".csv":
            return _read_csv(name, _decode(name, raw))
        if suffix == ".json":
            return _read_json(name, raw)
        return _read_jsonl_bytes(name, raw)
    except RecursionError:
        raise UserError(f"{name}: JSON nested too deeply to be rows; each row is one flat object") from None


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, ValueError) as e:
        raise UserError(f"{path}: not a readable parquet file ({str(e).splitlines()[0]}); write it again") from None
    return [Row(str(path), i, d) for i, d in enumerate(table.to_pylist(), start=1)]


def _read_csv(name: str, text: str) -> list[Row]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        for i, d in enumerate(reader, start=1):
            rows.append(Row(name, i, dict(d), line=reader.line_num))
    except csv.Error as e:
        raise UserError(f"{name}: line {reader.line_num}: unreadable CSV ({e}); fix the quoting or save as "
                        ".jsonl") from None
    return rows


def _read_json(name: str, raw: bytes) -> list[Row]:
    text = _decode(name, raw)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if "Extra data" in e.msg:  # JSON Lines under a .json name (e.g. autoj_pairwise.json)
            return _read_jsonl_bytes(name, raw)
        raise UserError(f"{name}: line {e.lineno}: invalid JSON ({e.msg}); fix the file or save it as .jsonl") from None
    except ValueError as e:  # e.g. an integer longer than Python parses
        raise UserError(f"{name}: invalid JSON ({e})") from None
    if isinstance(data, dict):
        for key in ("data", "rows", "examples"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise UserError(f"{name}: a .json file must hold a list of objects (or be JSON Lines)")
    return [
        Row(name, i, d if isinstance(d, dict) else None, error=None if isinstance(d, dict) else "not a JSON object")
        for i, d in enumerate(data, start=1)
    ]


def _read_jsonl_bytes(name: str, raw: bytes) -> list[Row]:
    _refuse_wide(name, raw)  # a wide encoding is the whole file's problem; bad UTF-8 is a row's
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    if text.lstrip().startswith("[") and name.endswith(".jsonl"):
        try:
            if isinstance(json.loads(text), list):
                raise UserError(f"{name}: holds one JSON array, not JSON Lines; rename it to .json or write "
                                "one object per line")
        except ValueError:
            pass
    rows = []
    index = 0
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        index += 1
        try:
            text = line.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as e:
            rows.append(Row(name, index, None, lineno, f"undecodable text at byte {e.start} (not UTF-8)"))
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            rows.append(Row(name, index, None, lineno, f"invalid JSON ({e.msg} at column {e.colno})"))
            continue
        except ValueError as e:  # an integer longer than Python parses
            rows.append(Row(name, index, None, lineno, f"invalid JSON ({e})"))
            continue
        except RecursionError:
            rows.append(Row(name, index, None, lineno, "JSON nested too deeply"))
            continue
        if not isinstance(obj, dict):
            rows.append(Row(name, index, None, lineno, "not a JSON object"))
            continue
        rows.append(Row(name, index, obj, lineno))
    return rows


def read_hub(repo_id: str, split: str) -> list[Row]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise UserError("reading a hub dataset needs the 'datasets' package") from None
    import logging

    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    datasets.logging.set_verbosity_error()
    try:
        ds = datasets.load_dataset(repo_id, split=split)
    except FileNotFoundError:
        raise UserError(f"{repo_id}: neither a local path nor a dataset on the hub; check the name") from None
    except Exception as e:  # network, auth, offline mode
        if type(e).__name__ in ("DatasetNotFoundError", "ConnectionError", "OfflineModeIsEnabled", "HfHubHTTPError"):
            raise UserError(f"{repo_id}: could not load from the hub ({type(e).__name__}: {e}); "
                            "pass a local file instead") from None
        raise
    return [Row(repo_id, i, dict(d)) for i, d in enumerate(ds, start=1)]
