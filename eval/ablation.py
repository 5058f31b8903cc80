"""Ablation report: a user's runs beside the paper's Table 5 (single-format vs joint vs merged) and
Table 17 (merge methods), so a reproduction reads at a glance.

    judgeforge eval ablation --run absolute=runs/eval/absolute --run relative=runs/eval/relative \\
        [--run joint=runs/eval/joint] --run merged=runs/eval/merged \\
        [--method linear=DIR --method dare_linear=DIR ...] [-o ablation.md]

Each DIR is the ``--out`` folder of ``judgeforge eval`` (or its ``report.json``).

Headline metrics, as the paper defines them:

* Table 5 - DA: mean Pearson over Vicuna Bench, MT Bench and FLASK; PR: mean accuracy over HHH,
  MT Bench Human Judgment and Auto-J (without ties).
* Table 17 - the same, with Feedback Bench added to DA and Preference Bench to PR.

A benchmark left out of a mean is listed by why: "not run" (the report has no result for it) or
"run, not in the mean" (too few parsed -- fewer scored items than the threshold, n=0 when every
output failed to parse -- or a metric that is undefined); a mean over only some of the paper's
benchmarks names those it is over.  The JSON beside ``-o`` keeps the same split
(``not_run``, ``too_few_parsed``, ``no_value``, ``da_used``/``pr_used``).  A report with none of the
paper's benchmarks (users' own files, the quickstart's mini data) falls back to the mean Pearson
over all its absolute benchmarks and the mean accuracy over all its relative ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from judgeforge.cli_args import parser as cli_parser
from judgeforge.errors import UserError
from judgeforge.eval.reference import PAPER_TABLE5, PAPER_TABLE17
from judgeforge.eval.scoring import MIN_SCORED, too_few_note

DA5 = ("vicuna", "mt_bench", "flask")
PR5 = ("hhh", "mt_bench_human", "autoj")
DA17 = DA5 + ("feedback_bench",)
PR17 = PR5 + ("preference_bench",)

RUN_ROWS = {"prompting": "prompting", "base": "prompting", "absolute": "absolute only",
            "relative": "relative only", "joint": "joint training", "merged": "weight merging"}


def _accuracy_key(mode: dict) -> str | None:
    for key in ("accuracy_no_tie", "accuracy"):
        if mode.get(key) is not None:
            return key
    return None


def _accuracy(mode: dict):
    key = _accuracy_key(mode)
    return None if key is None else mode[key]


def mean_ci(values: list[float], cis: list) -> list[float] | None:
    """An approximate 95% interval of the mean of ``values`` from each value's own bootstrap interval:
    the distances below and above each value combined as independent errors (sqrt of the summed squares
    / k).  With one value it is that value's interval; None when any interval is missing."""
    if not values or len(cis) != len(values) or any(not ci or None in tuple(ci) for ci in cis):
        return None
    k = len(values)
    mean = sum(values) / k
    below = sum((v - ci[0]) ** 2 for v, ci in zip(values, cis)) ** 0.5 / k
    above = sum((ci[1] - v) ** 2 for v, ci in zip(values, cis)) ** 0.5 / k
    return [mean - below, mean + above]


def _left_out(m: dict, key: str | None) -> tuple[str, str]:
    """Why a run mode has no value: ("too_few_parsed", "too few parsed (n=2 of 80)") or
    ("no_value", "Pearson undefined (n=80 of 80)") when enough parsed but the metric is undefined."""
    n, items = m.get("n_scored") or 0, m.get("items") or 0
    if m.get("no_result") or n < (m.get("min_scored") or MIN_SCORED):
        return "too_few_parsed", too_few_note(n, items)
    return "no_value", f"{'Pearson' if key == 'pearson' else 'accuracy'} undefined (n={n} of {items})"


def headline(report: dict, table: str = "table5") -> dict:
    """``{"da", "pr", "used", "not_run", "too_few_parsed", "parse_failure_rate", "da_n", ...}`` for one report.

    ``table``: "table5" or "table17" (the paper's benchmark sets), or "all" (every benchmark).
    ``da_used`` / ``pr_used``: the benchmarks each mean is taken over (``used``: both).
    Benchmarks of a set left out of its mean, by why: ``not_run`` (the report has no result for that
    benchmark and mode), ``too_few_parsed`` (run, but fewer scored items than the mode's ``min_scored``;
    0 when every output failed to parse), ``no_value`` (run and scored, metric undefined, e.g. a Pearson
    of constant scores); ``left_out_notes``: name -> the reason as a cell reads it; ``missing``: all
    three together (the older key, kept for readers of existing JSON).
    ``da_ci`` / ``pr_ci``: the mean's approximate 95% interval (:func:`mean_ci`; None without intervals).
    ``da_n`` / ``da_total`` (``pr_n`` / ``pr_total``): items scored / items over the benchmarks the
    mean is taken over (with no mean: over the benchmarks run); ``da_parse_failure_rate`` (``pr_...``):
    the share of samples that did not parse over every benchmark of the set that was run;
    ``da_note`` (``pr_note``): why the value is None, e.g. "too few parsed (n=5 of 100)" -- a mode
    below its ``min_scored`` has no value, so it never enters a mean.
    """
    benches = report.get("benchmarks", {})
    da_names, pr_names = {"table5": (DA5, PR5), "table17": (DA17, PR17)}.get(table, ((), ()))
    paper = any(n in benches for n in DA17 + PR17)
    if not (paper and table != "all"):
        da_names = [n for n, b in benches.items() if b.get("kind") == "absolute"]
        pr_names = [n for n, b in benches.items() if "relative" in b.get("modes", {})]
    left: dict[str, list[str]] = {"not_run": [], "too_few_parsed": [], "no_value": []}
    notes: dict[str, str] = {}
    fails = []
    out: dict = {}
    for key, names, mode, metric in (("da", da_names, "absolute", lambda m: "pearson"),
                                     ("pr", pr_names, "relative", _accuracy_key)):
        vals, cis, used = [], [], []
        counts = {"used": [0, 0], "run": [0, 0]}  # [scored, items]
        samples = failed = 0
        for name in names:
            m = benches.get(name, {}).get("modes", {}).get(mode)
            if m is None:
                left["not_run"].append(name)
                notes[name] = "not run"
                continue
            samples += m.get("samples") or 0
            failed += m.get("parse_failures") or 0
            k = metric(m)
            into = ["run"]
            if k is None or m.get(k) is None:
                why, notes[name] = _left_out(m, k or "accuracy")
                left[why].append(name)
            else:
                vals.append(m[k])
                cis.append(m.get(f"{k}_ci"))
                used.append(name)
                into.append("used")
            for c in into:
                counts[c][0] += m.get("n_scored") or 0
                counts[c][1] += m.get("items") or 0
        out[key] = sum(vals) / len(vals) if vals else None
        out[f"{key}_ci"] = mean_ci(vals, cis)
        out[f"{key}_used"] = used
        out[f"{key}_n"], out[f"{key}_total"] = counts["used" if vals else "run"]
        out[f"{key}_parse_failure_rate"] = failed / samples if samples else None
        out[f"{key}_note"] = None
        undefined = [n for n in names if n in left["no_value"]]
        if out[key] is None and undefined:
            out[f"{key}_note"] = "; ".join(f"{n}: {notes[n]}" for n in undefined)
        elif out[key] is None and out[f"{key}_total"]:
            out[f"{key}_note"] = too_few_note(out[f"{key}_n"], out[f"{key}_total"])
    for b in benches.values():
        for mode in b.get("modes", {}).values():
            if mode.get("parse_failure_rate") is not None:
                fails.append(mode["parse_failure_rate"])
    out.update(used=sorted(set(out["da_used"] + out["pr_used"])), **left, left_out_notes=notes,
               missing=[n for n in notes],
               parse_failure_rate=sum(fails) / len(fails) if fails else None)
    return out


def headline_cell(h: dict, key: str, pct: bool = False) -> str:
    """A headline metric as a table cell with its n: "0.802 (n=100/100)" or "too few parsed (n=5 of 100)"."""
    if h.get(key) is None:
        return h.get(f"{key}_note") or "-"
    v = f"{100 * h[key]:.1f}" if pct else f"{h[key]:.3f}"
    return f"{v} (n={h.get(f'{key}_n')}/{h.get(f'{key}_total')})"


def rate_cell(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def load_report(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise UserError(f"{path}: no report.json; give the --out folder of 'judgeforge eval'")
    try:
        rep = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        why = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
        raise UserError(f"{p}: not a JSON report ({why}); run 'judgeforge eval' for that folder again") from None
    problem = _report_problem(rep)
    if problem:
        raise UserError(f"{p}: not a report.json of 'judgeforge eval' ({problem}); run the evaluation again or "
                        "rebuild it with 'judgeforge eval report DIR'")
    return rep


def _report_problem(rep) -> str | None:
    """What makes ``rep`` unusable as a report (the shape the tables read), or None."""
    if not isinstance(rep, dict):
        return f"a JSON {type(rep).__name__}, not an object"
    benches = rep.get("benchmarks")
    if not isinstance(benches, dict):
        return "no 'benchmarks' object"
    for name, b in benches.items():
        modes = b.get("modes") if isinstance(b, dict) else None
        if not isinstance(modes, dict) or not all(isinstance(m, dict) for m in modes.values()):
            return f"benchmark '{name}' has no 'modes' object of metrics"
        for mode, m in modes.items():
            for k, v in m.items():
                number = k in ("pearson", "accuracy", "accuracy_no_tie", "n_scored", "items", "samples",
                               "parse_failures", "parse_failure_rate", "min_scored")
                if number and v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    return f"{name}/{mode}: '{k}' is {v!r}, not a number"
    return None


def _fmt(x, pct=False):
    if x is None:
        return "-"
    return f"{100 * x:.2f}" if pct else f"{x:.3f}"


def _diff(mine, paper, pct=False):
    if mine is None or paper is None:
        return ""
    d = (100 * mine - paper) if pct else (mine - paper)
    return f"{d:+.2f}" if pct else f"{d:+.3f}"


def _mean_cell(h: dict, key: str, full: tuple, pct: bool = False) -> str:
    """:func:`headline_cell`, naming the benchmarks the mean is over when they are not all of ``full``."""
    cell, used = headline_cell(h, key, pct), h.get(f"{key}_used") or []
    return f"{cell} over {', '.join(used)}" if used and list(used) != list(full) else cell


def left_out_cells(h: dict) -> tuple[str, str]:
    """The "not run" and "run, not in the mean" cells of one row: "flask, mt_bench_human" and
    "too few parsed: vicuna (n=0 of 80), hhh (n=3 of 221); Pearson undefined: flask (n=80 of 80)"."""
    notes = h.get("left_out_notes") or {}
    groups: dict[str, list[str]] = {}
    for name in (h.get("too_few_parsed") or []) + (h.get("no_value") or []):
        note = notes.get(name, "too few parsed")
        label, _, rest = note.partition(" (")
        groups.setdefault(label, []).append(f"{name} ({rest}" if rest else name)
    run = "; ".join(f"{label}: {', '.join(v)}" for label, v in groups.items())
    return ", ".join(h.get("not_run") or []) or "-", run or "-"


_HEAD = ("| {first} | DA (yours) | DA parse failures % | DA (paper) | diff | PR (yours) | PR parse failures % "
         "| PR (paper) | diff | not run | run, not in the mean |")
_RULE = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
_KEY = ("A mean over only some of the paper's benchmarks names them ('over ...'). Not run: benchmarks of "
        "the paper's mean with no result in the report. Run, not in the mean: evaluated, but fewer scored "
        "items than the threshold (too few parsed; n=0 when every output failed to parse) or a metric "
        "that is undefined (e.g. a Pearson of constant scores). A diff is left blank when the mean is over "
        "none of the paper's benchmarks (your own data, the quickstart's mini data): it would compare "
        "different benchmarks.")


def _comparable(h: dict, key: str, full: tuple) -> bool:
    """Whether the mean is over at least one of the paper's benchmarks (else its diff is left blank)."""
    return any(n in full for n in h.get(f"{key}_used") or [])


def _row(first: str, h: dict, sets: tuple, pda, ppr) -> str:
    not_run, run = left_out_cells(h)
    dda = _diff(h["da"], pda) if _comparable(h, "da", sets[0]) else ""
    dpr = _diff(h["pr"], ppr, True) if _comparable(h, "pr", sets[1]) else ""
    return (f"| {first} | {_mean_cell(h, 'da', sets[0])} | {rate_cell(h['da_parse_failure_rate'])} | "
            f"{_fmt(pda)} | {dda} | {_mean_cell(h, 'pr', sets[1], True)} | "
            f"{rate_cell(h['pr_parse_failure_rate'])} | {'-' if ppr is None else f'{ppr:.2f}'} | "
            f"{dpr} | {not_run} | {run} |")


def ablation_markdown(runs: dict[str, dict], methods: dict[str, dict] | None = None) -> str:
    """Markdown tables: the user's runs beside the paper's Table 5 rows (and Table 17 for methods)."""
    lines = ["## Single-format experts, joint training and weight merging (paper Table 5)", "",
             "DA: mean Pearson over Vicuna Bench, MT Bench, FLASK; PR: mean accuracy (%) over HHH, "
             "MT Bench Human Judgment, Auto-J (without ties).", "",
             "Each value carries n (items scored / items); a mean from fewer than 10 scored items per "
             "benchmark is not shown.", "", _KEY, "", _HEAD.format(first="row"), _RULE]
    shown = set()
    for name, rep in runs.items():
        row = RUN_ROWS.get(name, name)
        shown.add(row)
        lines.append(_row(f"{row} ({name})", headline(rep, "table5"), (DA5, PR5), *PAPER_TABLE5.get(row, (None, None))))
    for row, (pda, ppr) in PAPER_TABLE5.items():
        if row not in shown:
            lines.append(f"| {row} (paper only) | - | | {_fmt(pda)} | | - | | {ppr:.2f} | | | |")
    if methods:
        lines += ["", "## Merge methods (paper Table 17)", "",
                  "DA adds Feedback Bench, PR adds Preference Bench to the means above.", "",
                  _HEAD.format(first="method"), _RULE]
        for method, rep in methods.items():
            lines.append(_row(method, headline(rep, "table17"), (DA17, PR17),
                              *PAPER_TABLE17.get(method, (None, None))))
    return "\n".join(lines) + "\n"


def _bench_metric(bench: dict) -> tuple[str, dict | None, object]:
    """A benchmark's Table 5 column: ("absolute", mode, Pearson) or ("relative", mode, accuracy w/o ties)."""
    modes = bench.get("modes", {})
    if bench.get("kind") == "absolute":
        m = modes.get("absolute")
        return "absolute", m, None if m is None else m.get("pearson")
    m = modes.get("relative")
    return "relative", m, None if m is None else _accuracy(m)


def benchmarks_markdown(runs: dict[str, dict], names: list[str]) -> str:
    """Per benchmark, the paper's Table 5 columns for each run: Pearson with the gold scores (absolute
    benchmarks) or accuracy % without ties (relative ones), each with n (scored / items), then the parse
    failures (failed / samples) of the same mode."""
    kinds = {}
    for name in names:
        bench = next((r["benchmarks"][name] for r in runs.values() if name in r.get("benchmarks", {})), None)
        kinds[name] = "absolute" if bench is None or bench.get("kind") == "absolute" else "relative"
    head = " | ".join(f"{n} ({'Pearson' if kinds[n] == 'absolute' else 'accuracy %'})" for n in names)
    fails = " | ".join(f"{n} parse failures" for n in names)
    lines = [f"| judge | {head} | {fails} |", "|---|" + "---:|" * (2 * len(names))]
    for run, rep in runs.items():
        values, failures = [], []
        for name in names:
            bench = rep.get("benchmarks", {}).get(name)
            kind, m, v = _bench_metric(bench) if bench else (None, None, None)
            if m is None:
                values.append("-")
                failures.append("-")
                continue
            n, total = m.get("n_scored") or 0, m.get("items") or 0
            if v is None:
                values.append(too_few_note(n, total))
            else:
                values.append(f"{100 * v:.1f}" if kind == "relative" else f"{v:.3f}")
                values[-1] += f" (n={n}/{total})"
            failures.append(f"{m.get('parse_failures') or 0}/{m.get('samples') or 0}")
        lines.append(f"| {run} | " + " | ".join(values + failures) + " |")
    return "\n".join(lines) + "\n"


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for v in values or []:
        if "=" not in v:
            raise UserError(f"{flag} {v}: use NAME=DIR (e.g. {flag} merged=runs/eval/merged)")
        k, path = v.split("=", 1)
        k = k.strip()
        if not k or not path.strip():
            raise UserError(f"{flag} {v}: the {'name' if not k else 'folder'} is empty; use NAME=DIR "
                            f"(e.g. {flag} merged=runs/eval/merged)")
        if k in out:
            raise UserError(f"{flag} {k}: given twice ({out[k]} and {path}); give each name once")
        out[k] = path
    return out


def parser():
    ap = cli_parser("judgeforge eval ablation", "Place evaluation runs beside the paper's Table 5 and Table 17.")
    ap.add_argument("--run", action="append", default=[],
                    help="NAME=DIR; NAME one of absolute, relative, joint, merged, prompting (or your own)")
    ap.add_argument("--method", action="append", default=[], help="METHOD=DIR for merge methods (Table 17)")
    ap.add_argument("--benchmarks", default=None,
                    help="also a table per benchmark, e.g. vicuna,mt_bench,hhh,autoj (Pearson / accuracy, n, "
                         "parse failures)")
    ap.add_argument("-o", "--out", default=None, help="write the markdown here (and NAME.json beside it)")
    return ap


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.out and Path(args.out).is_dir():
        raise UserError(f"-o {args.out}: is a folder; give a file for the markdown (e.g. {Path(args.out) / 'ablation.md'})")
    runs = {k: load_report(v) for k, v in _pairs(args.run, "--run").items()}
    methods = {k: load_report(v) for k, v in _pairs(args.method, "--method").items()}
    if not runs and not methods:
        raise UserError("give at least one --run NAME=DIR or --method METHOD=DIR")
    md = "# Ablation against the paper\n\n" + ablation_markdown(runs, methods)
    if args.benchmarks and runs:
        names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
        have = {n for r in runs.values() for n in r.get("benchmarks", {})}
        if not set(names) <= have:
            raise UserError(f"--benchmarks: no run has {', '.join(n for n in names if n not in have)}; "
                            f"they have {', '.join(sorted(have)) or 'none'}")
        md += "\n## Per benchmark\n\n" + benchmarks_markdown(runs, names)
    print(md, end="")
    if args.out:
        from judgeforge.io import atomic_write_json, atomic_write_text

        atomic_write_text(args.out, md)
        atomic_write_json(Path(args.out).with_suffix(".json"), {
            "runs": {k: headline(v, "table5") for k, v in runs.items()},
            "methods": {k: headline(v, "table17") for k, v in methods.items()},
        })
    return 0
