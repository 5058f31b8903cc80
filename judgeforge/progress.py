"""The one progress display of every long stage (evaluation, training, the quickstart).

    with Progress() as prog:
        task = prog.task("eval vicuna", total=240, unit="generations")
        task.advance(8)            # what was really made (retries and samples count)
        task.add_total(3)          # three retries found necessary
        task.update(info="loss 1.23")

On a terminal: a rich bar per task with count, rate, elapsed time and ETA.  Anywhere else
(a file, a pipe, ``live=False``): plain lines on stderr, one when a task starts, at most one
every ``every`` seconds while it runs (default 30) and one when it ends, so a run writing to
a file is never silent for long.  Rate and ETA are computed here from the counts, the same in
both forms.  ``enabled=False`` shows nothing.  A Progress opened while another is open (an
evaluation inside the quickstart) adds its tasks to the outer one's display, in its form.
"""

from __future__ import annotations

import sys
import time

EVERY_S = 30.0
_open: list[Progress] = []  # the displays open now, outermost first


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Task:
    def __init__(self, prog: Progress, desc: str, total: int | None, unit: str):
        self.prog, self.desc, self.total, self.unit = prog, desc, total, unit
        self.completed = 0
        self._start = None  # where the count stood when the task began (a resumed run's first step)
        self.info = ""
        self.t0 = time.monotonic()
        self._last_line = self.t0
        self._rich_id = None

    # ---- numbers
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def rate(self) -> float | None:
        e = self.elapsed()
        done = self.completed - (self._start or 0)
        return done / e if done > 0 and e > 0 else None

    def eta(self) -> float | None:
        r = self.rate()
        if r is None or self.total is None:
            return None
        return max(0.0, self.total - self.completed) / r

    def line(self) -> str:
        count = f"{self.completed}/{self.total}" if self.total is not None else f"{self.completed}"
        r = self.rate()
        parts = [f"{self.desc}: {count} {self.unit}"]
        if self.info:
            parts.append(self.info)
        parts.append(f"{r:.2f} {self.unit}/s" if r else f"- {self.unit}/s")
        parts.append(f"elapsed {fmt_seconds(self.elapsed())}")
        if self.total is not None:
            parts.append(f"ETA {fmt_seconds(self.eta())}")
        return ", ".join(parts)

    # ---- changes
    def advance(self, k: int = 1) -> None:
        if self._start is None:
            self._start = self.completed
        self.completed += k
        self._changed()

    def add_total(self, k: int) -> None:
        self.total = (self.total or 0) + k
        self._changed()

    def update(self, completed: int | None = None, total: int | None = None, info: str | None = None,
               force_line: bool = False) -> None:
        if completed is not None:
            if self._start is None:
                self._start = completed
            self.completed = completed
        if total is not None:
            self.total = total
        if info is not None:
            self.info = info
        self._changed(force_line)

    def done(self, info: str | None = None) -> None:
        if info is not None:
            self.info = info
        if self.total is not None:
            self.completed = max(self.completed, self.total)
        self._changed(force_line=True, final=True)

    def _changed(self, force_line: bool = False, final: bool = False) -> None:
        self.prog._show(self, force_line, final)


class Progress:
    def __init__(self, enabled: bool = True, *, live: bool | None = None, every: float = EVERY_S, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.live = enabled and (self.stream.isatty() if live is None else live)
        self.every = every
        self._rich = None

    def __enter__(self):
        if self.enabled and _open:  # nested: one display, the outer one's
            outer = _open[0]
            self.live, self.stream, self.every, self._rich = outer.live, outer.stream, outer.every, outer._rich
            self._nested = True
            return self
        self._nested = False
        if self.enabled:
            _open.append(self)
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
                                      TextColumn("{task.fields[line]}"), console=Console(file=self.stream),
                                      transient=False)
            self._rich.__enter__()
        return self

    def __exit__(self, *exc):
        if getattr(self, "_nested", False):
            self._rich = None
            return
        if self in _open:
            _open.remove(self)
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None

    def task(self, desc: str, total: int | None = None, unit: str = "items") -> Task:
        t = Task(self, desc, total, unit)
        if self._rich is not None:
            t._rich_id = self._rich.add_task(desc, total=total or 1, line="")
        self._show(t, force_line=True)
        return t

    def _show(self, t: Task, force_line: bool, final: bool = False) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            rest = t.line().split(": ", 1)[1]
            self._rich.update(t._rich_id, completed=t.completed, total=t.total or max(t.completed, 1), line=rest)
            return
        now = time.monotonic()
        if force_line or now - t._last_line >= self.every:
            t._last_line = now
            print(t.line() + (" (done)" if final else ""), file=self.stream, flush=True)
