"""The generation cache: every judge generation, one JSON line, appended as it is made.

A slot is one sample of one job: (judge, benchmark, item, job, sample index, prompt hash,
sampling fingerprint).  Every *attempt* is written (a parse failure that will be retried
too), flushed at once, so a killed run resumes exactly where it stopped: a slot with a
parsed attempt is done, a slot whose failed attempts used up the retries is a failure,
and a slot with fewer failed attempts continues with the retries it has left.  A line cut
short by a kill is ignored when read and removed before the next append.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from judgeforge.io import AppendLog, read_log, sha256_text


def slot_key(judge: str, benchmark: str, item: str, job: str, sample: int, prompt_hash: str, sampling: str) -> str:
    return sha256_text("\0".join([judge, benchmark, item, job, str(sample), prompt_hash, sampling]))


@dataclass
class SlotState:
    attempts: int = 0  # failed attempts seen
    final: dict | None = None  # the record of the parsed attempt (or the last failed one when final)


class GenerationCache:
    """Reads every ``generations*.jsonl`` under ``folder``; appends to ``filename``."""

    def __init__(self, folder: str | os.PathLike | None, filename: str = "generations.jsonl"):
        self.folder = Path(folder) if folder is not None else None
        self.path = self.folder / filename if self.folder is not None else None
        self.slots: dict[str, SlotState] = {}
        self._lock = threading.Lock()
        self._log = AppendLog(self.path, announce=False) if self.path is not None else None
        if self.folder is not None and self.folder.exists():
            for p in sorted(self.folder.glob("generations*.jsonl")):
                self.load(p)

    def load(self, path: str | os.PathLike) -> int:
        n = 0
        for rec in read_log(path):  # a line cut short by a kill is left out
            self._add(rec)
            n += 1
        return n

    def _add(self, rec: dict) -> None:
        st = self.slots.setdefault(rec["key"], SlotState())
        if st.final is not None and st.final.get("result") is not None:
            return  # already parsed: later duplicates (another shard) change nothing
        if rec.get("result") is not None:
            st.final = rec
        else:
            st.attempts = max(st.attempts, int(rec.get("attempt", st.attempts + 1)))
            if rec.get("final"):
                st.final = rec

    def state(self, key: str) -> SlotState | None:
        return self.slots.get(key)

    def append(self, rec: dict) -> None:
        with self._lock:
            self._add(rec)
            if self._log is not None:
                self._log.write(rec)  # a cut last line of an earlier run is removed first

    @property
    def written(self) -> int:
        return self._log.written if self._log is not None else 0

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
