"""``judgeforge eval``: evaluate a judge; ``eval report DIR...``: merge shards into one report;
``eval ablation``: the paper's ablation tables from finished runs."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.tracking import report_targets

USAGE = """usage: judgeforge eval --judge MODEL [--suite paper|absolute|relative|NAME[,NAME...]] [--backend hf|vllm|openai]
                       [--data-dir DIR] [--limit N] [--out DIR] [--num-shards K --shard I] [--config YAML] [--KEY VALUE ...]
       judgeforge eval report DIR [DIR ...] [--out DIR] [--data-dir DIR]
       judgeforge eval ablation --run NAME=DIR [--run ...] [--method METHOD=DIR ...] [-o FILE]

Evaluate a judge on the Prometheus 2 benchmarks (or your own .jsonl) and write report.md / report.json.
Every generation is cached under --out: run the same command again to resume.
'eval report' merges the shard folders of one evaluation into one report; 'eval ablation' puts
finished runs side by side as the paper's ablation tables (see 'judgeforge eval ablation --help').

benchmarks: vicuna, mt_bench, flask, feedback_bench (absolute); hhh, mt_bench_human, autoj, preference_bench
(pairwise).  Suites: paper (all eight), absolute, relative.

options (YAML recipe keys; --key value or --key=value; flags without a value mean true):
{keys}
"""


def _usage() -> str:
    from judgeforge.config import help_for
    from judgeforge.eval.runner import EvalConfig

    return USAGE.format(keys=help_for(EvalConfig))


def _bool_flags(argv: list[str], cls) -> list[str]:
    """``--swap`` -> ``--swap true``; ``--no-fetch`` -> ``--fetch false`` (for boolean keys)."""
    bools = {f.name for f in dataclasses.fields(cls) if f.type in (bool, "bool")}
    out = []
    for k, a in enumerate(argv):
        name = a[2:].replace("-", "_") if a.startswith("--") and "=" not in a else None
        nxt = argv[k + 1] if k + 1 < len(argv) else None
        bare = nxt is None or nxt.startswith("--")
        if name in bools and bare:
            out += [a, "true"]
        elif name and name.startswith("no_") and name[3:] in bools and bare:
            out += [f"--{name[3:]}", "false"]
        else:
            out.append(a)
    return out


def main(argv: list[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(), end="")
        return 0 if argv else 2
    if argv[0] == "report":
        return _report(argv[1:])
    if argv[0] == "ablation":
        from judgeforge.eval.ablation import main as ablation_main

        return ablation_main(argv[1:])
    from judgeforge.eval.runner import evaluate

    cfg = parse_config(argv)
    if not cfg.judge:
        raise UserError("no judge given; pass --judge MODEL (a local folder, a hub id or an API model name)")
    results = evaluate(cfg.judge, cfg.suite, config=cfg)
    if "wandb" in report_targets(cfg.report_to):
        _to_wandb(cfg, results)
    from judgeforge.eval.report import to_markdown

    print(to_markdown(results), end="")
    if cfg.out:
        print(f"\nreport: {cfg.out}/report.md, {cfg.out}/report.json", file=sys.stderr)
    return 0


def _to_wandb(cfg, results: dict) -> None:
    """Every benchmark's metrics with their n, and the DA/PR headline, as one wandb run."""
    from judgeforge.eval.ablation import headline
    from judgeforge.hub import eval_results
    from judgeforge.tracking import eval_metrics, log_metrics

    h = headline(results, "all")
    keys = ("da", "da_n", "pr", "pr_n", "parse_failure_rate")
    name = cfg.judge_name or Path(str(cfg.judge)).name
    where = log_metrics([eval_metrics(eval_results(results), {k: h.get(k) for k in keys})], name=name,
                        config=dataclasses.asdict(cfg), out_dir=cfg.out or ".", job_type="eval")
    print(f"wandb: {where}", file=sys.stderr)


def report_parser():
    from judgeforge.cli_args import parser

    ap = parser("judgeforge eval report", "merge shard caches into one report")
    ap.add_argument("dirs", nargs="+", help="output folders of 'judgeforge eval --out' (one per shard)")
    ap.add_argument("--out", help="where report.md/report.json go (default: the first folder)")
    ap.add_argument("--data-dir", help="benchmark files, if not where the runs found them")
    return ap


def parse_config(argv: list[str]):
    """``judgeforge eval`` options (``--config YAML`` and ``--key value``) as a checked EvalConfig."""
    from judgeforge.config import load_recipe
    from judgeforge.eval.runner import EvalConfig

    config_path = None
    rest = []
    k = 0
    while k < len(argv):
        if argv[k] == "--config":
            if k + 1 >= len(argv):
                raise UserError("--config needs a YAML file")
            config_path = argv[k + 1]
            k += 2
            continue
        if argv[k].startswith("--config="):
            config_path = argv[k].split("=", 1)[1]
        else:
            rest.append(argv[k])
        k += 1
    return load_recipe(EvalConfig, config_path, _bool_flags(rest, EvalConfig))


def _report(argv: list[str]) -> int:
    from judgeforge.eval.report import to_markdown
    from judgeforge.eval.shards import merge_report

    ap = report_parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    results = merge_report(args.dirs, args.out, args.data_dir)
    print(to_markdown(results), end="")
    return 0
