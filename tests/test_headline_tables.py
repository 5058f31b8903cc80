"""Top-level tables and plots (quickstart, sweep, ablation): every value with its n and parse failures;
a value from too few parsed items is a reason, never a number, a bar or a silently missing point."""

from __future__ import annotations

from judgeforge.eval.ablation import ablation_markdown, headline
from judgeforge.pipeline import quickstart, sweep


def _report(da_n: int, pr_n: int) -> dict:
    def mode(n, key, value):
        m = {"items": 100, "n_scored": n, "samples": 100, "parse_failures": 100 - n,
             "parse_failure_rate": (100 - n) / 100, key: value if n >= 10 else None,
             f"{key}_ci": [value - 0.05, value + 0.03] if n >= 10 else None}
        if n < 10:
            m["no_result"] = f"too few parsed (n={n} of 100)"
        return m

    return {"benchmarks": {
        "mine_abs": {"kind": "absolute", "title": "a", "modes": {"absolute": mode(da_n, "pearson", 0.91)}},
        "mine_rel": {"kind": "pair", "title": "r", "modes": {"relative": mode(pr_n, "accuracy", 0.62)}}}}


def test_headline_carries_n_and_withholds_too_few():
    h = headline(_report(5, 80), "all")
    assert h["da"] is None and h["da_note"] == "too few parsed (n=5 of 100)" and h["da_parse_failure_rate"] == 0.95
    assert h["pr"] == 0.62 and (h["pr_n"], h["pr_total"]) == (80, 100) and h["pr_parse_failure_rate"] == 0.2


def test_quickstart_table_and_plot(tmp_path):
    results = {name: {**{k: headline(rep, "all")[k] for k in quickstart.HEADLINE_KEYS}}
               for name, rep in (("absolute only", _report(100, 90)), ("relative only", _report(5, 97)))}
    md = quickstart._table_md(results)
    assert "| absolute only | 0.910 (n=100/100) | 0.0 | 62.0 (n=90/100) | 10.0 |" in md
    assert "| relative only | too few parsed (n=5 of 100) | 95.0 | 62.0 (n=97/100) | 3.0 |" in md
    assert "0.910 (n=5" not in md
    quickstart._plot(results, tmp_path / "q.png")
    assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_table_and_plot_keep_a_point_without_value(tmp_path):
    points = [{"method": m, "alpha": a, **headline(_report(da, 50), "all")}
              for m, a, da in (("linear", 0.3, 40), ("dare_linear", 0.3, 2), ("dare_linear", 0.7, 60))]
    md = sweep._table(points)
    assert "| dare_linear | 0.3 | too few parsed (n=2 of 100) | 98.0 | 62.0 (n=50/100) | 50.0 |" in md
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    seen = []
    orig = plt.Axes.scatter
    plt.Axes.scatter = lambda self, *a, **k: seen.append(k.get("label")) or orig(self, *a, **k)
    try:
        sweep.plot(points, tmp_path)
    finally:
        plt.Axes.scatter = orig
    assert "dare_linear: n/a (too few parsed) at alpha 0.3" in seen  # marked, not dropped


def test_plots_draw_intervals_as_error_bars_and_n_a_as_missing(tmp_path):
    import math

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from judgeforge.eval.ablation import mean_ci

    assert mean_ci([0.5], [[0.4, 0.55]]) == [0.4, 0.55]  # one benchmark: its own interval
    lo, hi = mean_ci([0.4, 0.6], [[0.3, 0.5], [0.5, 0.7]])  # two: independent errors, sqrt(2 x 0.1^2) / 2
    assert math.isclose(lo, 0.5 - 0.1 / math.sqrt(2)) and math.isclose(hi, 0.5 + 0.1 / math.sqrt(2))
    assert mean_ci([0.4, 0.6], [[0.3, 0.5], None]) is None
    points = [{"method": "linear", "alpha": a, **headline(_report(da, 50), "all")} for a, da in ((0.3, 40), (0.5, 2))]
    assert points[0]["da_ci"] == [0.91 - 0.05, 0.91 + 0.03] and points[1]["da_ci"] is None
    drawn = []
    orig_eb, orig_bar, orig_sc = plt.Axes.errorbar, plt.Axes.bar, plt.Axes.scatter
    plt.Axes.errorbar = lambda self, x, y, **k: drawn.append(("errorbar", list(y), k["yerr"])) or orig_eb(self, x, y, **k)
    plt.Axes.bar = lambda self, x, h, **k: drawn.append(("bar", list(h), k["yerr"])) or orig_bar(self, x, h, **k)
    plt.Axes.scatter = lambda self, x, y, **k: drawn.append(("scatter", k.get("transform") is self.get_xaxis_transform(),
                                                             None)) or orig_sc(self, x, y, **k)
    try:
        sweep.plot(points, tmp_path)
        quickstart._plot({"merged": points[0], "withheld": points[1]}, tmp_path / "q.png")
    finally:
        plt.Axes.errorbar, plt.Axes.bar, plt.Axes.scatter = orig_eb, orig_bar, orig_sc
    da = [d for d in drawn if d[0] in ("errorbar", "bar") and d[1][0] == 0.91]
    assert {d[0] for d in da} == {"errorbar", "bar"}  # the sweep's DA line and the quickstart's DA bars
    for _kind, ys, yerr in da:
        assert math.isnan(ys[1])  # the n/a point: no value drawn, not 0
        assert [round(e[0], 6) for e in yerr] == [0.05, 0.03]  # the interval below and above 0.91
    assert {d[0] for d in drawn} == {"errorbar", "bar", "scatter"}
    assert ("scatter", True, None) in drawn  # the n/a marker sits at the foot of the axis, not at y = 0


def test_ablation_markdown_shows_n_and_failures():
    md = ablation_markdown({"relative": _report(5, 97)})
    row = next(line for line in md.splitlines() if line.startswith("| relative only (relative) |"))
    assert "too few parsed (n=5 of 100) | 95.0 |" in row and "62.0 (n=97/100) over mine_rel | 3.0 | 72.61 |" in row
    assert row.endswith("| - | too few parsed: mine_abs (n=5 of 100) |")  # none of the paper's: its own, named


def test_readme_table_is_replaced_by_the_quickstarts_own():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("rqt", root / "scripts" / "readme_quickstart_table.py")
    rqt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rqt)
    results = {"absolute only": {k: headline(_report(100, 90), "all")[k] for k in quickstart.HEADLINE_KEYS}}
    report = {"table_md": quickstart._table_md(results), "config": {"seed": 0}, "dtype": "float32",
              "timings": {"base_s": 61.2, "absolute_s": 20.4, "relative_s": 70.0, "merge_s": 0.12, "eval_s": 11.0,
                          "total_s": 176.0}}
    readme = (root / "README.md").read_text()
    new = rqt.updated(readme, report)
    assert report["table_md"] in new and "| absolute only | 0.910 (n=100/100) |" in new
    assert "(2 min 56 s in all: shared base 61 s" in new and new.count("in all:") == readme.count("in all:")
    assert rqt.updated(new, report) == new  # idempotent
    assert len(new.splitlines()) < len(readme.splitlines())  # two rows replaced by one, nothing else


def test_per_benchmark_table_has_each_value_with_n_and_its_parse_failures():
    from judgeforge.eval.ablation import benchmarks_markdown

    md = benchmarks_markdown({"base": _report(5, 97), "merged": _report(100, 40)}, ["mine_abs", "mine_rel"])
    lines = md.splitlines()
    assert lines[0] == ("| judge | mine_abs (Pearson) | mine_rel (accuracy %) | mine_abs parse failures "
                        "| mine_rel parse failures |")
    assert lines[2] == "| base | too few parsed (n=5 of 100) | 62.0 (n=97/100) | 95/100 | 3/100 |"
    assert lines[3] == "| merged | 0.910 (n=100/100) | 62.0 (n=40/100) | 0/100 | 60/100 |"


def _paper_report(parsed: dict[str, int]) -> dict:
    """A report.json on some of the paper's benchmarks; ``parsed``: benchmark -> items scored of 40 (every
    other sample failed to parse), the modes made by the scorer's own withholding."""
    from judgeforge.eval.scoring import null_if_too_few

    benches = {}
    for name, n in parsed.items():
        absolute = name in ("vicuna", "mt_bench", "flask")
        key = "pearson" if absolute else "accuracy_no_tie"
        m = null_if_too_few({"items": 40, "n_scored": n, "samples": 40, "parse_failures": 40 - n,
                             "parse_failure_rate": (40 - n) / 40, key: 0.5, f"{key}_ci": [0.4, 0.6]})
        benches[name] = {"kind": "absolute" if absolute else "pair", "items": 40,
                         "modes": {"absolute" if absolute else "relative": m}}
    return {"benchmarks": benches}


def test_ablation_tells_not_run_from_run_with_too_few_parsed(tmp_path, capsys):
    import json

    from judgeforge.eval.ablation import main

    # the relative expert: vicuna, hhh and autoj run but every output failed; mt_bench 40 of 40; flask and
    # mt_bench_human never run
    rel = _paper_report({"vicuna": 0, "mt_bench": 40, "hhh": 0, "autoj": 3})
    h = headline(rel, "table5")
    assert h["not_run"] == ["flask", "mt_bench_human"]
    assert h["too_few_parsed"] == ["vicuna", "hhh", "autoj"] and h["no_value"] == []
    assert h["left_out_notes"]["vicuna"] == "too few parsed (n=0 of 40)"
    assert h["da_used"] == ["mt_bench"] and (h["da_n"], h["da_total"]) == (40, 40)  # vicuna is not in the n
    assert h["pr"] is None and h["pr_note"] == "too few parsed (n=3 of 80)"
    assert set(h["missing"]) == {"flask", "mt_bench_human", "vicuna", "hhh", "autoj"}  # the older key: all left out
    for name, rep in (("relative", rel), ("absolute", _paper_report(dict.fromkeys(("vicuna", "mt_bench", "flask",
                                                                                     "hhh", "mt_bench_human",
                                                                                     "autoj"), 40)))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(rep))
    dest = tmp_path / "ablation.md"
    assert main(["--run", f"relative={tmp_path / 'relative'}", "--run", f"absolute={tmp_path / 'absolute'}",
                 "-o", str(dest)]) == 0
    capsys.readouterr()
    md = dest.read_text()
    assert "| not run | run, not in the mean |" in md
    row = next(line for line in md.splitlines() if line.startswith("| relative only (relative) |"))
    assert row.startswith("| relative only (relative) | 0.500 (n=40/40) over mt_bench | 50.0 |")
    assert row.endswith("| flask, mt_bench_human | too few parsed: vicuna (n=0 of 40), hhh (n=0 of 40), "
                        "autoj (n=3 of 40) |")
    full = next(line for line in md.splitlines() if line.startswith("| absolute only (absolute) |"))
    assert full.startswith("| absolute only (absolute) | 0.500 (n=120/120) | 0.0 |") and full.endswith("| - | - |")
    saved = json.loads(dest.with_suffix(".json").read_text())["runs"]
    assert saved["relative"]["not_run"] == ["flask", "mt_bench_human"]
    assert saved["relative"]["too_few_parsed"] == ["vicuna", "hhh", "autoj"]
    assert saved["absolute"]["not_run"] == saved["absolute"]["too_few_parsed"] == []


def test_ablation_names_an_undefined_metric_as_such():
    rep = _paper_report({"vicuna": 40, "mt_bench": 40})
    rep["benchmarks"]["mt_bench"]["modes"]["absolute"]["pearson"] = None  # constant scores: Pearson undefined
    h = headline(rep, "table5")
    assert h["no_value"] == ["mt_bench"] and h["too_few_parsed"] == []
    assert h["left_out_notes"]["mt_bench"] == "Pearson undefined (n=40 of 40)"
    row = next(line for line in ablation_markdown({"absolute": rep}).splitlines() if "(absolute) |" in line)
    assert row.endswith("| flask, hhh, mt_bench_human, autoj | Pearson undefined: mt_bench (n=40 of 40) |")
