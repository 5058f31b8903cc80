"""Small file helpers shared by every stage: atomic writes, JSONL append logs, hashing.

Nothing half-written may look finished: outputs are written under a temporary name in
the same folder and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; finished outputs get the usual modes.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def usual_permissions(path: str | os.PathLike) -> None:
    """Temporary folders and files are created private (0700 / 0600); give the finished output the
    permissions a normal write would have (umask applied), so others on a cluster can read the model."""
    path = Path(path)
    umask = _umask()
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        try:
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)
        except OSError:  # pragma: no cover - not ours to change
            pass


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows atomically; returns the number written."""
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_log(path: str | os.PathLike, *, bad_line: Callable[[int], Exception] | None = None,
             skipped: Callable[[int], None] | None = None) -> Iterator[dict]:
    """The rows of an append-only JSONL log (what :class:`AppendLog` writes), streamed.

    A last line with no newline that is not a JSON object is a write cut by a kill: it is left out
    (:func:`repair_log_tail` removes it before the next append).  Any other line that is not a JSON
    object (garbage, bytes that are not UTF-8, a list, JSON nested too deep) is skipped and
    reported to ``skipped(lineno)``, or raises ``bad_line(lineno)`` when that is given."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
            except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                if not raw.endswith(b"\n"):
                    return
                if bad_line is not None:
                    raise bad_line(lineno) from None
                if skipped is not None:
                    skipped(lineno)
                continue
            yield obj


def repair_log_tail(path: str | os.PathLike, *, announce: bool = True) -> bool:
    """Make an append log end on a whole line before more is appended: a cut last line (no newline,
    not a JSON object) is removed, a whole last row missing its newline gets one.  True if a cut
    line was removed (said on stderr when ``announce``)."""
    path = Path(path)
    if not path.exists():
        return False
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return False
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return False
        start, chunk = end, b""
        while start > 0 and b"\n" not in chunk:  # find where the last line begins
            step = min(65536, start)
            start -= step
            f.seek(start)
            chunk = f.read(step) + chunk
        nl = chunk.rfind(b"\n")
        line_start = start + nl + 1 if nl >= 0 else 0
        f.seek(line_start)
        tail = f.read()
        try:
            whole = isinstance(json.loads(tail), dict)
        except (ValueError, RecursionError):
            whole = False
        if whole:
            f.seek(end)
            f.write(b"\n")
            return False
        f.truncate(line_start)
    if announce:
        import sys

        print(f"{path}: dropped a partial last row (an interrupted write)", file=sys.stderr)
    return True


class AppendLog:
    """Appends rows to a JSONL log one by one, each flushed, so a kill loses at most the row being
    written; the file is opened (and a cut tail repaired) at the first write."""

    def __init__(self, path: str | os.PathLike, *, announce: bool = True):
        self.path = Path(path)
        self.announce = announce
        self.written = 0
        self._f = None

    def write(self, row: dict) -> None:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair_log_tail(self.path, announce=self.announce)
            self._f = open(self.path, "a", encoding="utf-8")
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        self.written += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, *, force: bool = False):
    """Yield a temporary folder beside ``final``; rename it to ``final`` on success.

    On any exception (or a kill) the temporary folder is removed or left under a
    dot-name that no tool mistakes for a finished output.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    os.chmod(tmp, _DIR_MODE)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if not force:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(str(final))
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_output_folder(path: str | os.PathLike, where: str) -> Path:
    """An output folder to be made: not an existing file and not under one (one line, before any work)."""
    from judgeforge.errors import UserError

    if not str(path).strip():  # Path("") is the current folder: the outputs would land beside everything else
        raise UserError(f"{where} is empty; give a folder for the outputs")
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"{where} '{path}' is a file; give a folder")
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"{where} '{path}': its parent '{blocking}' is a file; choose another folder")
    return out
