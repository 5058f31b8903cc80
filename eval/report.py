"""Reports: a markdown table and a JSON file with every metric, beside the paper's numbers.

``judgeforge eval report DIR [DIR...] [--out DIR]`` merges the caches of shards (or of
several runs of one judge) into one report.
"""

from __future__ import annotations

import os
from pathlib import Path

from judgeforge.backends import PAPER_SAMPLING
from judgeforge.eval.reference import PAPER_7B, PAPER_MODEL

# (benchmark, mode) -> the headline metrics shown in the table, in order
HEADLINE = {
    "absolute": ["pearson", "spearman", "kendall", "human_pearson", "exact_match", "krippendorff_alpha"],
    "relative": ["accuracy", "accuracy_no_tie", "accuracy_with_tie", "consistency", "agreement", "agreement_no_tie",
                 "agreement_with_tie", "transitivity"],
    "pair_absolute": ["accuracy", "accuracy_no_tie", "accuracy_with_tie"],
}
PERCENT = {"accuracy", "accuracy_no_tie", "accuracy_with_tie", "exact_match", "consistency", "transitivity",
           "agreement", "agreement_no_tie", "agreement_with_tie"}


def compare_with_paper(results: dict) -> list[dict]:
    """Rows ``{benchmark, mode, metric, value, ci, paper, diff}`` for every headline metric."""
    rows = []
    for name, b in results.get("benchmarks", {}).items():
        for mode, m in b.get("modes", {}).items():
            key = mode if b["kind"] == "absolute" else ("relative" if mode == "relative" else "pair_absolute")
            for metric in HEADLINE[key]:
                if metric not in m:
                    continue
                value = m[metric]
                paper = PAPER_7B.get((name, mode, metric))
                human = metric.startswith("human_")
                row = {
                    "benchmark": name, "title": b["title"], "mode": mode, "metric": metric, "value": value,
                    "ci": m.get(f"{metric}_ci"), "paper": paper,
                    "diff": (value - paper) if value is not None and paper is not None else None,
                    "n_scored": m.get("human_n") if human else m.get("n_scored"), "n_total": m.get("items"),
                    "parse_failure_rate": m.get("parse_failure_rate"),
                }
                if m.get("no_result"):
                    row["note"] = m["no_result"]
                elif human and m.get("human_note"):
                    row["note"] = m["human_note"]
                rows.append(row)
    return rows


LIMIT_SHARE = 0.5  # at least this share of a mode's parse failures stopped at max_new_tokens: a line says so


def token_limit_notes(results: dict) -> list[str]:
    """One line per benchmark mode whose parse failures mostly stopped at ``max_new_tokens`` (cut before
    the verdict), with the fix; failures whose stop reason is unknown never count."""
    limit = results.get("max_new_tokens")
    paper = PAPER_SAMPLING.max_new_tokens
    notes = []
    for b in results.get("benchmarks", {}).values():
        for mode, m in b.get("modes", {}).items():
            failed, hit = m.get("parse_failures") or 0, m.get("failures_at_limit") or 0
            if not hit or hit < LIMIT_SHARE * failed:
                continue
            at = "max_new_tokens" + (f"={limit}" if limit else "")
            fix = f"raise --max-new-tokens (the paper uses {paper})" if not limit or limit < paper else \
                "raise --max-new-tokens, or read the outputs: a judge that repeats itself never writes [RESULT]"
            notes.append(f"{b['title']} ({mode}): {hit} of {failed} parse failures stopped at {at} "
                         f"before [RESULT]: {fix}")
    return notes


def _at_limit_cell(m: dict) -> str:
    """The parse-failure table's "at token limit" cell: failures cut at max_new_tokens (unknown where the
    backend or an older cache could not tell)."""
    failed, hit, unknown = m.get("parse_failures") or 0, m.get("failures_at_limit"), m.get("failures_limit_unknown")
    if hit is None or (failed and unknown == failed):
        return "unknown" if failed else "0"
    return f"{hit} (+{unknown} unknown)" if unknown else str(hit)


_PARSE_RULES = {True: "the prometheus-eval package's", "harness": "the paper script's"}


def _fmt(metric: str, v) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.2f}" if metric in PERCENT else f"{v:.3f}"


def _fmt_diff(metric: str, v) -> str:
    if v is None:
        return ""
    return f"{100 * v:+.2f}" if metric in PERCENT else f"{v:+.3f}"


def _n(row: dict) -> str:
    return "" if row.get("n_scored") is None else f"{row['n_scored']}/{row.get('n_total')}"


def to_markdown(results: dict) -> str:
    lines = [f"# Evaluation of {results.get('judge')}", ""]
    lines.append(f"backend: {results.get('backend')}; sampling: {results.get('sampling')}; seed {results.get('seed')}"
                 + (f"; prompts: {results['prompt_variant']}" if results.get("prompt_variant", "default") != "default"
                    else "")
                 + (f"; parse rule: {_PARSE_RULES.get(results['strict_parse'], results['strict_parse'])}"
                    if results.get("strict_parse", False) is not False else "")
                 + (f"; first {results['limit']} items per benchmark" if results.get("limit") else ""))
    lines.append("")
    lines.append(f"| benchmark | mode | metric | value | n (scored/items) | parse failures % | 95% CI | {PAPER_MODEL} "
                 "| diff |")
    lines.append("|---|---|---|---:|---:|---:|---|---:|---:|")
    for r in results.get("comparison", []):
        ci = r.get("ci")
        ci_s = f"[{_fmt(r['metric'], ci[0])}, {_fmt(r['metric'], ci[1])}]" if ci else ""
        lines.append(f"| {r['title']} | {r['mode']} | {r['metric']}{' (%)' if r['metric'] in PERCENT else ''} | "
                     f"{r['note'] if r.get('note') else _fmt(r['metric'], r['value'])} | "
                     f"{_n(r)} | {_fmt('accuracy', r.get('parse_failure_rate'))} | {ci_s} | {_fmt(r['metric'], r['paper'])} | "
                     f"{_fmt_diff(r['metric'], r['diff'])} |")
    lines += ["", "| benchmark | mode | items | scored | samples | parse failures | at token limit | missing |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for b in results.get("benchmarks", {}).values():
        for mode, m in b.get("modes", {}).items():
            rate = m.get("parse_failure_rate")
            lines.append(f"| {b['title']} | {mode} | {m.get('items')} | {m.get('n_scored', '')} | {m.get('samples')} | "
                         f"{m.get('parse_failures')} ({_fmt('accuracy', rate)}%) | {_at_limit_cell(m)} | "
                         f"{m.get('missing_samples')} |")
    for note in results.get("token_limit_notes") or []:
        lines += ["", note]
    groups = [(b, mode, m) for b in results.get("benchmarks", {}).values()
              for mode, m in b.get("modes", {}).items() if m.get("by_group") and len(m["by_group"]) <= 8]
    for b, mode, m in groups:
        lines += ["", f"{b['title']} ({mode}) by group: " + ", ".join(
            f"{g} {_fmt('accuracy', v['accuracy'])}% (n={v['items']})" for g, v in m["by_group"].items())]
    for b in results.get("benchmarks", {}).values():
        for mode, m in b.get("modes", {}).items():
            h = m.get("headline")
            if h:  # RewardBench / JudgeBench files: their own grouping
                parts = h.get("sections") or h.get("categories") or {}
                parts = {k: v["accuracy"] if isinstance(v, dict) else v for k, v in parts.items()}
                lines += ["", f"{b['title']} ({mode}) {h['format']} score {_fmt('accuracy', h['score'])}%: " + ", ".join(
                    f"{k} {_fmt('accuracy', v)}%" for k, v in parts.items())]
    run = results.get("run")
    if run:
        lines += ["", f"run: {run.get('jobs')} jobs, {run.get('jobs_generated')} generated now, "
                      f"{run.get('slots_cached')} samples from the cache, {run.get('generations')} generations, "
                      f"{run.get('generate_seconds')} s"]
    return "\n".join(lines) + "\n"


def write_report(out: str | os.PathLike, results: dict) -> None:
    from judgeforge.io import atomic_write_json, atomic_write_text

    out = Path(out)
    atomic_write_json(out / "report.json", _jsonable(results))
    atomic_write_text(out / "report.md", to_markdown(results))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
