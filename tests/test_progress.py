"""The one progress helper: plain periodic lines off a terminal, counts, rate and ETA, nesting."""

from __future__ import annotations

import io

from judgeforge.progress import Progress


def test_plain_lines_start_every_and_end():
    buf = io.StringIO()
    with Progress(live=False, every=3600, stream=buf) as prog:
        t = prog.task("eval vicuna", total=10, unit="generations")
        t.advance(4)  # within `every`: no line
        t.add_total(2)  # retries found necessary grow the total
        t.update(info="2 retries", force_line=True)
        t.advance(8)
        t.done()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("eval vicuna: 0/10 generations")
    assert lines[1].startswith("eval vicuna: 4/12 generations, 2 retries, ") and "generations/s" in lines[1]
    assert "ETA " in lines[1] and lines[2].endswith("(done)") and "12/12" in lines[2]


def test_a_line_at_least_every_interval():
    buf = io.StringIO()
    with Progress(live=False, every=0.0, stream=buf) as prog:
        t = prog.task("judgeforge train", total=3, unit="steps")
        for _ in range(3):
            t.advance()
    assert len(buf.getvalue().splitlines()) == 4


def test_nested_progress_uses_the_outer_display_and_disabled_shows_nothing():
    buf, other = io.StringIO(), io.StringIO()
    with Progress(live=False, stream=buf) as outer:
        outer.task("quickstart stage", total=1)
        with Progress(live=True, stream=other) as inner:  # would be a rich bar on its own
            inner.task("eval x", total=5).done()
        with Progress(enabled=False, stream=other) as off:
            off.task("silent", total=5).done()
    assert other.getvalue() == ""
    assert [ln.split(":")[0] for ln in buf.getvalue().splitlines()] == ["quickstart stage", "eval x", "eval x"]


def test_a_resumed_count_rates_only_what_this_run_did():
    buf = io.StringIO()
    with Progress(live=False, stream=buf) as prog:
        t = prog.task("judgeforge train", total=100, unit="steps")
        t.update(completed=90)  # resumed at step 90: nothing done yet in this run
        assert t.rate() is None and t.eta() is None
        t.t0 -= 10.0  # ten seconds later, five steps on
        t.update(completed=95)
        assert abs(t.rate() - 0.5) < 0.01 and abs(t.eta() - 10.0) < 0.5
