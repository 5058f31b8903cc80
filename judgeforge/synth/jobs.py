"""What ``synthesize`` and ``pair`` share: their output file and state file, the run summary, and
the retry loop that asks the teacher, checks each answer and asks again."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.format.prompts import Rubric
from judgeforge.synth.checks import Checked
from judgeforge.synth.teacher import ask


def state_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.state.jsonl")


def iter_own_output(out: Path):
    """Rows of a jsonl file this tool appends to, streamed; a partial last line (a write cut by a
    kill) is cut off the file first, a complete last row gets its newline."""
    from judgeforge.io import read_log, repair_log_tail

    repair_log_tail(out)
    yield from read_log(out, bad_line=lambda lineno: UserError(
        f"{out}: line {lineno} is not a JSON row; the file was not written by this tool or is "
        "damaged; use a new -o or pass --force to start over"))


def RowWriter(path: Path):
    """Appends rows to a jsonl file one by one, flushed, so a kill loses nothing written."""
    from judgeforge.io import AppendLog

    return AppendLog(path)


def rubric_fingerprint(rubric: Rubric) -> str:
    from judgeforge.io import sha256_text

    return sha256_text(json.dumps(rubric.to_dict(), sort_keys=True))[:16]


# --------------------------------------------------------------------------- summary


@dataclass
class Summary:
    command: str
    output: str
    rows_per_score: dict = field(default_factory=dict)  # in the whole file after this run
    new_rows: int = 0
    rows_before: int = 0
    teacher_calls: int = 0
    rejected: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)  # {"id", "score"/"pair", "attempts", "reasons"}
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "command": self.command,
            "output": self.output,
            "complete": self.complete,
            "rows_before": self.rows_before,
            "new_rows": self.new_rows,
            "rows": self.rows_before + self.new_rows,
            "rows_per_score": {str(k): v for k, v in sorted(self.rows_per_score.items(), key=lambda kv: str(kv[0]))},
            "teacher_calls": self.teacher_calls,
            "rejected": dict(sorted(self.rejected.items())),
            "failures": self.failures,
            "notes": self.notes,
            **self.extra,
        }

    def render(self, retries: int | None = None) -> str:
        lines = [f"{self.command}: {self.new_rows} new rows, {self.rows_before + self.new_rows} in all -> {self.output}"]
        if self.rows_per_score:
            keys = sorted(self.rows_per_score, key=str)
            head = "score" if self.command == "synthesize" else "label"
            lines.append(f"  {head:<8}" + "".join(f"{str(k):>7}" for k in keys))
            lines.append("  rows    " + "".join(f"{self.rows_per_score[k]:>7}" for k in keys))
        lines.append(f"  teacher calls: {self.teacher_calls}")
        if self.rejected:
            total = sum(self.rejected.values())
            parts = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items(), key=lambda kv: -kv[1]))
            lines.append(f"  rejected teacher outputs: {total} ({parts})")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.failures:
            lines.append(
                f"  FAILED after {retries if retries is not None else 'all'} retries: {len(self.failures)} item(s); "
                "rerun the same command to try them again:"
            )
            for f in self.failures[:20]:
                what = f"score {f['score']}" if "score" in f else f.get("what", "")
                lines.append(f"    {f['id']} {what}: {', '.join(f['reasons'])}")
            if len(self.failures) > 20:
                lines.append(f"    ... and {len(self.failures) - 20} more (see --summary)")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the retry loop


@dataclass
class Job:
    key: tuple
    attempts: int = 0
    reasons: list = field(default_factory=list)
    last_detail: str | None = None


def run_jobs(
    teacher,
    jobs: list[Job],
    build: Callable[[Job], list[dict]],
    accept: Callable[[Job, str | None], Checked],
    on_ok: Callable[[Job, Checked], None],
    *,
    retries: int,
    batch_size: int,
    sampling,
    summary: Summary,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> list[Job]:
    """Ask the teacher for every job, batch by batch; rejected outputs are asked again (a later batch,
    a new seed, the rejection reason told to the teacher) up to ``retries`` times.  Returns the jobs
    that failed for good."""
    queue = list(jobs)
    failed: list[Job] = []
    import time

    batch_no = 0
    done = 0
    total = len(jobs)
    start = last_shown = time.monotonic()
    while queue:
        batch, queue = queue[:batch_size], queue[batch_size:]
        s = sampling if sampling.seed is None else sampling.with_seed(sampling.seed + 7919 * batch_no)
        batch_no += 1
        replies = ask(teacher, [build(j) for j in batch], s)
        summary.teacher_calls += len(batch)
        for job, text in zip(batch, replies):
            job.attempts += 1
            checked = accept(job, text)
            if checked.ok:
                on_ok(job, checked)
                done += 1
                continue
            summary.rejected[checked.reason] += 1
            job.reasons.append(checked.reason)
            job.last_detail = checked.detail
            if job.attempts <= retries:
                queue.append(job)
            else:
                failed.append(job)
                done += 1
        now = time.monotonic()
        if progress and (now - last_shown >= 2.0 or not queue):
            last_shown = now
            rate = done / max(now - start, 1e-9)
            eta = f", eta {int((total - done) / rate) // 60}m{int((total - done) / rate) % 60:02d}s" \
                if rate > 0 and queue else ""
            progress(f"{label}{done}/{total} done ({rate:.1f}/s{eta}), {len(failed)} failed, "
                     f"{sum(summary.rejected.values())} rejected so far")
    return failed
