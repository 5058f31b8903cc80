"""``judgeforge sweep``: merge ratios and methods in memory, each point evaluated, with tables and plots.

    judgeforge sweep --absolute EXPERT_A --relative EXPERT_B --alphas 0.1:0.9:0.1 \\
        --methods linear,dare_linear --suite absolute,relative [--base BASE] [--out sweep-out] [eval options]

``alpha`` is the weight of the absolute expert (the paper's Figure 3 sweeps absolute:relative
from 1:9 to 9:1).  Both experts are loaded once (:class:`judgeforge.merge.inmemory.InMemoryMerger`);
each point writes its merge into the same live model and evaluates it with
:func:`judgeforge.eval.runner.evaluate`, so no checkpoint is written.  Every point caches its
generations under ``OUT/METHOD-ALPHA/``: a rerun (after a kill, or with more alphas) generates
only what is missing.

Outputs in ``--out``: ``sweep.json`` (every point's headline metrics and full reports),
``sweep.md`` (a table), ``sweep_da.png`` (direct assessment vs alpha) and ``sweep_pr.png``
(pairwise ranking vs alpha), one line per method.  DA and PR are the paper's Table 17 means
(:func:`judgeforge.eval.ablation.headline`); on other benchmarks, the mean Pearson over the
absolute ones and the mean accuracy over the relative ones.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from judgeforge.backends import PAPER_SAMPLING
from judgeforge.cli_args import ArgumentParser
from judgeforge.errors import UserError

MAX_ALPHAS = 1001  # points of one sweep (a step of 0.001 over [0, 1])
DEFAULT_DENSITY = 0.9  # DARE keeps 90% of each task vector (drop rate p = 0.1)
PUSHED = ["README.md", "sweep.json", "sweep.md", "*.png", "*/report.json", "*/report.md"]  # not the caches


def parse_alphas(text: str) -> list[float]:
    """``"0.1:0.9:0.1"`` (start:stop:step, inclusive) or ``"0.3,0.5,0.7"``."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            n = int(round((stop - start) / step))
            if n + 1 > MAX_ALPHAS:
                raise UserError(f"--alphas '{text}': {n + 1:,} points, each a full evaluation; use a step that gives "
                                f"at most {MAX_ALPHAS} (e.g. 0.1:0.9:0.1)")
            values = [round(start + i * step, 10) for i in range(n + 1)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except (ValueError, OverflowError):
        raise UserError(f"--alphas '{text}': use start:stop:step (e.g. 0.1:0.9:0.1) or a list (0.3,0.5)") from None
    if not values:
        raise UserError(f"--alphas '{text}': no alpha given; use start:stop:step (e.g. 0.1:0.9:0.1) or a list (0.3,0.5)")
    bad = [a for a in values if not 0.0 <= a <= 1.0]
    if bad:
        raise UserError(f"--alphas '{text}': every alpha must be in [0, 1]")
    twice = sorted({a for a, k in Counter(values).items() if k > 1})
    if twice:
        raise UserError(f"--alphas '{text}': {', '.join(f'{a:g}' for a in twice)} given twice; give each alpha once")
    return values


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="judgeforge sweep",
        description="Merge two experts in memory at several ratios (and methods), evaluate each point, "
        "and write a table and plots like the paper's Figure 3.",
    )
    p.add_argument("--absolute", required=True, help="the absolute expert (model folder or LoRA adapter)")
    p.add_argument("--relative", required=True, help="the relative expert")
    p.add_argument("--alphas", default="0.1:0.9:0.1", help="weights of the absolute expert: start:stop:step or a list")
    p.add_argument("--methods", default="linear", help="comma-separated merge methods (linear, dare_linear, ...)")
    p.add_argument("--base", default=None, help="base model for task-vector methods (dare_*, ties, task_arithmetic)")
    p.add_argument("--density", type=float, default=DEFAULT_DENSITY, help="DARE/TIES density (fraction kept)")
    p.add_argument("--suite", default="paper", help="benchmarks, as for 'judgeforge eval --suite'")
    p.add_argument("--data-dir", default=None, help="folder with the benchmark files")
    p.add_argument("--limit", type=int, default=None, help="first N items of each benchmark")
    p.add_argument("--out", default="sweep-out", help="output folder (caches, sweep.md/json, plots)")
    p.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, cuda:N")
    p.add_argument("--dtype", default=None, help="merge/eval dtype (default: the experts')")
    p.add_argument("--seed", type=int, default=42, help="DARE masks and sampling")
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of the paper's sampling")
    p.add_argument("--max-new-tokens", type=int, default=PAPER_SAMPLING.max_new_tokens)
    p.add_argument("--samples-absolute", type=int, default=3, help="samples per absolute item (paper: 3)")
    p.add_argument("--retries", type=int, default=10, help="regenerate unparseable outputs up to N times")
    p.add_argument("--chat_format", "--chat-format", default=None, choices=("mistral", "model", "raw"),
                   help="the merged judges' chat format (default: the experts' chat_format.json, which must agree)")
    p.add_argument("--min-scored", type=int, default=10,
                   help="fewer scored items than this: 'too few parsed (n=...)' instead of a number")
    p.add_argument("--engine", default="fast", choices=("fast", "generate"),
                   help="generation engine, as for 'judgeforge eval --engine' (generate: the reference path)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--push-to-hub", "--push_to_hub", action="store_true",
                   help="upload the results (README.md card, sweep.md/json, plots, reports) to --hub-model-id")
    p.add_argument("--hub-model-id", "--hub_model_id", default=None, help="the hub repository (owner/name)")
    p.add_argument("--hub-private-repo", "--hub_private_repo", action="store_true", help="create it as private")
    p.add_argument("--report-to", "--report_to", default="none",
                   help="none | wandb: one wandb run, a step per point (WANDB_MODE=offline writes it under --out)")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from judgeforge.tracking import check_report_to

    check_report_to(args.report_to, "sweep: --report-to")
    if args.push_to_hub or args.hub_model_id:
        from judgeforge.hub import check_repo_id

        if not args.hub_model_id:
            raise UserError("sweep: --push-to-hub needs --hub-model-id owner/name")
        check_repo_id(args.hub_model_id, "sweep: --hub-model-id")
    result = sweep(
        args.absolute, args.relative, alphas=parse_alphas(args.alphas),
        methods=[m.strip() for m in args.methods.split(",") if m.strip()], base=args.base, density=args.density,
        suite=args.suite, out=args.out, device=args.device, dtype=args.dtype, seed=args.seed,
        chat_format=args.chat_format, eval_options=dict(data_dir=args.data_dir, limit=args.limit, greedy=args.greedy,
                          max_new_tokens=args.max_new_tokens, samples_absolute=args.samples_absolute,
                          retries=args.retries, min_scored=args.min_scored, progress=not args.no_progress,
                          engine=args.engine),
    )
    if "wandb" in check_report_to(args.report_to, "sweep: --report-to"):
        print(f"sweep: wandb run {to_wandb(result, args.out)}")
    print(result["table_md"])
    print(f"\nsweep: {Path(args.out) / 'sweep.md'}, plots: sweep_da.png, sweep_pr.png")
    if args.push_to_hub:
        from judgeforge.hub import push_folder

        url = push_folder(args.out, args.hub_model_id, private=args.hub_private_repo, where="sweep: --push-to-hub",
                          allow_patterns=PUSHED)
        print(f"sweep: pushed to {args.hub_model_id}: {url}")
    return 0


def sweep(absolute, relative, *, alphas: list[float], methods: list[str], suite: str, out: str | Path,
          base=None, density: float = DEFAULT_DENSITY, device: str = "auto", dtype=None, seed: int = 42,
          chat_format: str | None = None, eval_options: dict | None = None, log=print) -> dict:
    """Evaluate every (method, alpha); returns ``{"points": [...], "table_md": ...}`` and writes the files.

    The merged judges are prompted in the chat format the experts were trained with (their
    ``chat_format.json``, which must agree, as for ``judgeforge merge``), or ``chat_format``."""
    if not 0 < density <= 1:  # also refuses NaN
        raise UserError(f"--density {density}: the fraction of weights kept must be in (0, 1]")
    from judgeforge.eval.ablation import headline, headline_cell, rate_cell
    from judgeforge.eval.runner import evaluate
    from judgeforge.format.chat import agreed_format
    from judgeforge.hub import resolve_model
    from judgeforge.io import atomic_write_json, atomic_write_text
    from judgeforge.merge.inmemory import InMemoryMerger
    from judgeforge.merge.methods import FIRST_IS_BASE, get_method
    from judgeforge.tokenization import load_tokenizer

    if not methods:
        raise UserError("sweep: --methods is empty; name at least one merge method, e.g. --methods linear")
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:
        raise UserError(f"sweep: --methods: {', '.join(twice)} given twice; name each method once")
    infos = {m: get_method(m, "--methods") for m in methods}
    # mergekit's own contract says which methods need a base (slerp & co. use the first expert)
    needs_base = [m for m in methods if infos[m].base == "required" and m not in FIRST_IS_BASE]
    if needs_base and base is None:
        raise UserError(f"--methods {','.join(needs_base)}: task-vector methods need --base (the model both "
                        "experts were fine-tuned from)")
    from judgeforge.io import check_output_folder

    out = check_output_folder(out, "sweep: --out")  # the text: an empty one would be the current folder
    named = {"absolute": str(absolute), "relative": str(relative), "base": None if base is None else str(base)}
    given = {"absolute": absolute, "relative": relative, "base": base if needs_base else None}
    _check_distinct(given)  # before a hub id is fetched, and again for the folders they are
    local = {k: resolve_model(v, f"--{k}") if isinstance(v, (str, Path)) else v for k, v in given.items()}
    # (hub ids -> their snapshot folders; the base only when a method uses it)
    _check_distinct(local)
    fmt = agreed_format([local["absolute"], local["relative"]], chat_format, "sweep")  # before anything loads
    options = {**(eval_options or {}), **({"chat_format": fmt} if fmt else {})}
    if dtype is not None:
        from judgeforge.devices import dtype_name

        dtype_name(dtype, "sweep: --dtype")
    _check_before_loading(local, suite, device, {**options, "seed": seed})
    tokenizer = load_tokenizer(str(local["absolute"]))  # a broken tokenizer is one line before the weights load
    t0 = time.time()
    merger = InMemoryMerger(local["absolute"], local["relative"], base=local["base"] if needs_base else None,
                            device=device, dtype=dtype)
    out.mkdir(parents=True, exist_ok=True)  # once the experts loaded: a failed load leaves no empty --out
    log(f"judgeforge sweep: experts loaded on {merger.device} in {time.time() - t0:.1f} s; "
        f"{len(methods)} method(s) x {len(alphas)} alpha(s)")
    points = []
    for method in methods:
        params = {"density": density} if method in ("dare_linear", "dare_ties", "ties", "della", "della_linear",
                                                    "breadcrumbs", "breadcrumbs_ties") else {}
        for alpha in alphas:
            name = f"{method}-{alpha:g}"
            t = time.time()
            merger.apply(alpha, method, seed=seed, **params)
            report = evaluate(merger.model, suite, tokenizer=tokenizer, out=str(out / name), judge_name=name,
                              seed=seed, **options)
            h = headline(report, "table17")
            points.append({"method": method, "alpha": alpha, **h, "seconds": round(time.time() - t, 2),
                           "report": str(out / name / "report.json")})
            log(f"judgeforge sweep: {name}: DA {headline_cell(h, 'da')}, PR {headline_cell(h, 'pr', True)}, "
                f"parse failures {rate_cell(h['parse_failure_rate'])}% ({time.time() - t:.1f} s)")
            for note in report.get("token_limit_notes") or []:  # failures cut at max_new_tokens, and the fix
                log(f"judgeforge sweep: {name}: {note}")
    table = _table(points)
    result = {**named, "suite": suite, "alphas": alphas, "methods": methods, "density": density, "seed": seed,
              "chat_format": fmt,
              "points": points, "table_md": table}
    atomic_write_json(out / "sweep.json", result)
    atomic_write_text(out / "sweep.md", "# Merge-ratio sweep\n\nalpha = weight of the absolute expert "
                      f"({absolute}); 1 - alpha goes to the relative expert ({relative}).\nDA: mean Pearson over the "
                      "absolute benchmarks; PR: mean accuracy over the relative benchmarks.\n\n" + table + "\n")
    plot(points, out)
    atomic_write_text(out / "README.md", _card(named, result, table))
    return result


def _check_distinct(local: dict) -> None:
    """The two experts (and the base) are different folders: a sweep of a model with itself, or against
    its own base, measures nothing (a name given twice, a symlink or ``./x`` vs ``x`` alike)."""
    def where(v):
        try:
            return Path(v).expanduser().resolve() if isinstance(v, (str, Path)) else None
        except (OSError, RuntimeError):
            return None

    at = {k: where(v) for k, v in local.items() if v is not None}
    if at.get("absolute") is not None and at.get("absolute") == at.get("relative"):
        raise UserError(f"sweep: --absolute and --relative are the same folder ({at['absolute']}); give the two "
                        "experts, each trained on its own format")
    for role in ("absolute", "relative"):
        if at.get("base") is not None and at.get("base") == at.get(role):
            raise UserError(f"sweep: --base is the --{role} expert ({at['base']}); give the model both experts "
                            "were fine-tuned from")


def _check_before_loading(local: dict, suite, device: str, options: dict) -> None:
    """Every mistake a sweep can find without a model (the output folder is checked before): the device, the
    evaluation options, the suite's files (read, and fetched once if need be) and the experts' folders (layouts,
    and that they share an architecture)."""
    import dataclasses

    from judgeforge.devices import resolve_device
    from judgeforge.eval.benchmarks import check_data_dir, load_benchmark, resolve_suite
    from judgeforge.eval.runner import EvalConfig
    from judgeforge.merge.checkpoint import check_compatible
    from judgeforge.weights import check_local_model, is_lora_adapter

    resolve_device(device)
    known = {f.name for f in dataclasses.fields(EvalConfig)}
    dataclasses.replace(EvalConfig(), **{k: v for k, v in options.items() if k in known}).validate("sweep")
    names = resolve_suite(suite)
    check_data_dir(options.get("data_dir"), "sweep: ")  # else the files would be fetched instead
    checked = {role: check_local_model(str(path), f"--{role}") for role, path in local.items()
               if isinstance(path, (str, Path)) and not is_lora_adapter(path)}
    full = [checked[r] for r in ("absolute", "relative", "base") if checked.get(r) is not None]
    if len(full) >= 2:
        check_compatible(full)
    for name in names:  # every point reads them again; a missing or bad file fails here, not after the load
        load_benchmark(name, options.get("data_dir"), limit=options.get("limit"), fetch=options.get("fetch", True))


def to_wandb(result: dict, out) -> str:
    """The sweep as one wandb run: a step per (method, alpha) with DA, PR, their n and parse failures
    under ``METHOD/...`` (n/a left out, never 0); returns the run's folder."""
    from judgeforge.tracking import log_metrics

    keys = ("da", "da_n", "da_parse_failure_rate", "pr", "pr_n", "pr_parse_failure_rate")
    steps = [{"alpha": p["alpha"], **{f"{p['method']}/{k}": p.get(k) for k in keys}} for p in result["points"]]
    config = {k: result[k] for k in ("absolute", "relative", "base", "suite", "alphas", "methods", "density", "seed")}
    return log_metrics(steps, name=f"sweep-{Path(out).name}", config=config, out_dir=out, job_type="sweep")


def _card(named: dict, result: dict, table: str) -> str:
    """The results folder's card (what --push-to-hub uploads): the experts' lineage and the table."""
    from judgeforge.hub import card, lineage

    bases, datasets = lineage([v for v in named.values() if v])
    meta = {"base_model": bases, "datasets": datasets, "library_name": "transformers",
            "tags": ["judgeforge", "merge", "merge-sweep", "llm-as-a-judge"]}
    body = ["# Merge-ratio sweep", "", f"Experts: absolute `{named['absolute']}`, relative `{named['relative']}`"
            + (f", base `{named['base']}`" if named["base"] else "") + f"; suite `{result['suite']}`, methods "
            f"{', '.join(result['methods'])}, seed {result['seed']}.", "",
            "alpha = weight of the absolute expert. DA: mean Pearson over the absolute benchmarks; PR: mean "
            "accuracy over the relative benchmarks. Each point's full report is in `METHOD-ALPHA/report.json`.",
            "", table, "", "![DA](sweep_da.png) ![PR](sweep_pr.png)"]
    return card(meta, body, name="merge-ratio sweep")


def _table(points: list[dict]) -> str:
    from judgeforge.eval.ablation import headline_cell, rate_cell

    lines = ["| method | alpha (absolute) | DA (Pearson, n) | DA parse failures % | PR (accuracy %, n) "
             "| PR parse failures % |", "|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['method']} | {p['alpha']:g} | {headline_cell(p, 'da')} | "
                     f"{rate_cell(p.get('da_parse_failure_rate'))} | {headline_cell(p, 'pr', True)} | "
                     f"{rate_cell(p.get('pr_parse_failure_rate'))} |")
    return "\n".join(lines)


def plot(points: list[dict], out: Path) -> None:
    """One line per method, each point with its 95% interval as an error bar and labelled with its n.  A
    point without a value (n/a: too few parsed) is never drawn as 0 nor dropped silently: the line breaks
    there, and a hollow marker at the foot of the axis carries its reason in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from judgeforge.pipeline.quickstart import error_bars

    for key, fname, label in (("da", "sweep_da.png", "direct assessment (mean Pearson)"),
                              ("pr", "sweep_pr.png", "pairwise ranking (mean accuracy)")):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for method in dict.fromkeys(p["method"] for p in points):
            mine = sorted((p for p in points if p["method"] == method), key=lambda p: p["alpha"])
            ys, yerr = error_bars([p.get(key) for p in mine], [p.get(key + "_ci") for p in mine])
            bars = ax.errorbar([p["alpha"] for p in mine], ys, yerr=yerr, marker="o", capsize=3, label=method)
            color = bars.lines[0].get_color()
            for p in mine:
                if p.get(key) is not None:
                    ax.annotate(f"n={p.get(key + '_n')}", (p["alpha"], p[key]), textcoords="offset points",
                                xytext=(0, 5), ha="center", fontsize=6)
            bad = [p for p in mine if p.get(key) is None]
            if bad:
                ax.scatter([p["alpha"] for p in bad], [0.02] * len(bad), transform=ax.get_xaxis_transform(),
                           marker="o", facecolors="none", edgecolors=color,
                           label=f"{method}: n/a (too few parsed) at alpha " + ", ".join(f"{p['alpha']:g}" for p in bad))
        ax.set_xlabel("weight of the absolute expert (alpha)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main(sys.argv[1:]))
