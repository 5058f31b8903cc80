"""The generation cache: every judge generation, one JSON line, appended as it is made.

A slot is one sample of one job: (judge, benchmark, item, job, sample index, prompt hash,
sampling fingerprint).  The judge part is its name *and* a fingerprint of the model folder
(config, weight headers and edges, tokenizer and chat template files, see
:func:`judgeforge.weights.fingerprint`), so a different model saved at the same path never reuses
the old model's generations.  Every *attempt* is written (a parse failure that will be retried
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


def slot_key(judge: str, benchmark: str, item: str, job: str, sample: int, prompt_hash: str, sampling: str,
             protocol: str = "") -> str:
    """``protocol``: the prompt variant and parse rule where they are not the defaults (see
    :func:`judgeforge.eval.runner.protocol_key`); empty adds nothing, so older caches keep their keys."""
    parts = [judge, benchmark, item, job, str(sample), prompt_hash, sampling] + ([protocol] if protocol else [])
    return sha256_text("\0".join(parts))


def attempt_record(key: str, judge: str, job, sample_no: int, sampling: str, sample, final: bool) -> dict:
    """The cache line of one generation attempt: ``job`` a runner ``Job``, ``sample`` a parsed
    :class:`judgeforge.backends.Sample`.  ``at_limit``: generation stopped at max_new_tokens (None where the
    backend cannot tell; lines written before it existed have none, read as unknown)."""
    return {"key": key, "judge": judge, "benchmark": job.bench, "item": job.item, "job": job.job,
            "sample": sample_no, "prompt_hash": job.prompt_hash, "sampling": sampling, "attempt": sample.attempts,
            "final": final, "output": sample.output, "result": sample.result, "error": sample.error,
            "at_limit": sample.at_limit}


_RESULTS = (None, 1, 2, 3, 4, 5, "A", "B")


def _is_record(rec: dict) -> bool:
    """What a cache line must hold to be used: a string key, an integer attempt, a known result."""
    result = rec.get("result")
    return (isinstance(rec.get("key"), str) and type(rec.get("attempt", 1)) is int
            and not isinstance(result, (bool, float, list, dict)) and result in _RESULTS
            and (rec.get("output") is None or isinstance(rec.get("output"), str)))


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
        self.skipped = 0  # lines of the cache files that were not records
        self._lock = threading.Lock()
        self._log = AppendLog(self.path, announce=False) if self.path is not None else None
        if self.folder is not None and self.folder.is_dir():
            for p in sorted(self.folder.glob("generations*.jsonl")):
                self.load(p)

    def load(self, path: str | os.PathLike) -> int:
        """Read one cache file; lines that are not records (garbage, not UTF-8, a JSON list, a record
        without a ``key``) are skipped and counted in one warning, never fatal."""
        n, bad = 0, []
        try:
            for rec in read_log(path, skipped=bad.append):  # a line cut short by a kill is left out
                if not _is_record(rec):
                    bad.append(0)
                    continue
                self._add(rec)
                n += 1
        except OSError as e:
            from judgeforge.errors import UserError

            raise UserError(f"{path}: cannot read the generation cache ({e.strerror}); fix its permissions "
                            "or remove it") from None
        if bad:
            import sys

            self.skipped += len(bad)
            print(f"judgeforge: warning: {path}: skipped {len(bad)} line(s) that are not cache records "
                  "(those slots are generated again)", file=sys.stderr)
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


def write_run_config(out: Path, cfg, judge_name: str, backend: str, names: list[str], judge_key: str) -> None:
    """``eval_config.yaml`` and ``run.json`` (what ``eval report`` merges shards by) under ``out``."""
    import dataclasses
    import sys

    from judgeforge.config import dump_recipe
    from judgeforge.io import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    dump_recipe(cfg, out / f"eval_config{'' if cfg.num_shards == 1 else f'.shard-{cfg.shard}'}.yaml")
    atomic_write_json(out / "run.json", {"judge": judge_name, "judge_key": judge_key, "backend": backend,
                                         "benchmarks": names, "config": dataclasses.asdict(cfg), "argv": sys.argv})


# files besides the weights that change what a judge generates: its config, tokenizer and chat template
JUDGE_FILES = ("generation_config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
               "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json")


def judge_fingerprint(judge, cfg, tokenizer=None) -> str | None:
    """A fingerprint of a local judge folder (checked here: config, safetensors headers, no adapter),
    or None for a hub id, an API model, a loaded model or a Backend."""
    if not isinstance(judge, (str, os.PathLike)) or cfg.backend == "openai":
        return None
    from judgeforge.weights import check_local_model, fingerprint

    ck = check_local_model(str(judge), "judge")
    if ck is None:
        return None
    tok = "" if tokenizer is None else f"+tok:{getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)}"
    return fingerprint(ck, JUDGE_FILES) + tok
