"""``judgeforge quickstart``: the whole Prometheus 2 pipeline at tiny scale, offline, on a CPU.

    judgeforge quickstart [-o quickstart-out] [--seed 0] [--base MODEL_DIR]

1. mini datasets in the Feedback / Preference Collection schemas (``judgeforge.data.mini``);
2. a tiny Mistral-architecture base, briefly tuned on both formats so the experts share
   a starting point (the paper starts both experts from Mistral-7B-Instruct);
3. an absolute expert and a relative expert fine-tuned from that base (``judgeforge train``);
4. the two merged, linear 0.5 / 0.5 (``judgeforge merge``);
5. all judges evaluated on held-out mini data in both formats (``judgeforge eval``);
6. a table shaped like the paper's Table 5, ``report.md`` / ``report.json`` and a plot.

``--base DIR`` replaces steps 2's tiny random base with a real pretrained model (for instance
``judgeforge models get smollm2-135m-instruct -o DIR``): the experts are fine-tuned from it in
its own chat format, with sizes for a real model (``REAL_BASE``: fewer, smaller steps at a
pretrained model's learning rate; any size option given still wins).

Everything lands in one folder; a rerun with the same folder reuses finished stages.
The experts' thresholds (absolute Pearson >= 0.5, relative accuracy >= 75%) are asserted
by the test suite; the merged judge's numbers are reported as they come out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from judgeforge.cli_args import ArgumentParser, add_options, option, options_of
from judgeforge.errors import UserError

# The training recipe every quickstart stage starts from (the shape of configs/train/tiny-cpu.yaml,
# kept here so the quickstart needs no file outside the package); each stage overrides a few keys.
TINY_RECIPE = {
    "tokenizer": "mistral-v1",
    "max_length": 1024,
    "overlong": "drop",
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
    "num_train_epochs": 1,
    "gradient_accumulation_steps": 1,
    "bf16": "auto",  # bf16 only where the CPU computes it natively (judgeforge.devices.choose_dtype)
    "gradient_checkpointing": False,
    "packing": True,
    "deepspeed": None,
    "lora": None,
    "save_steps": 0,
    "logging_steps": 20,
    "report_to": "none",
}


# --base: sizes for a real pretrained model (a 135M model: a few minutes on 2 CPU cores, seconds on a GPU)
REAL_BASE = {"train_rows": 200, "test_rows": 24, "absolute_steps": 20, "relative_steps": 20, "batch_size": 4,
             "expert_learning_rate": 1e-4}

# sequences per generation batch when evaluating the tiny judges: on 2 CPU cores 64 took 20 CPU-s per judge
# where the hf backend's CPU default of 8 took 28.5, with the same greedy outputs (--base keeps the default)
TINY_EVAL_BATCH = 64

# what each judge's row keeps of judgeforge.eval.ablation.headline: values, n, parse failures, notes
HEADLINE_KEYS = ("da", "da_n", "da_total", "da_parse_failure_rate", "da_note", "da_ci",
                 "pr", "pr_n", "pr_total", "pr_parse_failure_rate", "pr_note", "pr_ci", "parse_failure_rate")


@dataclass
class QuickstartConfig:
    """The run's settings; the ``option`` ones are also its command-line options."""

    out: str = option("quickstart-out", "output folder (default: {default})", "-o", "--out")
    seed: int = option(0)
    train_rows: int = option(2240, "training rows per format")  # each expert sees a row at most once
    test_rows: int = option(100, "held-out rows per format")
    base_steps: int = option(110, "joint steps that make the shared base")
    absolute_steps: int = option(80)
    relative_steps: int = option(120)
    hidden: int = 128
    layers: int = 2
    batch_size: int = option(12, "rows per optimizer step")
    learning_rate: float = 2e-3  # the base, from random weights
    expert_learning_rate: float = option(7e-4, "experts' learning rate", "--expert-lr")  # from the base
    merge_weight: float = option(0.5, "weight of the absolute expert")
    max_new_tokens: int = 40
    base: str | None = None  # a real pretrained model folder instead of the tiny random base


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="judgeforge quickstart",
        description="The Prometheus 2 pipeline at tiny scale on the CPU, offline: mini data -> tiny base -> "
        "absolute and relative experts -> linear merge -> evaluation of all three in both formats.",
    )
    add_options(p, QuickstartConfig)
    p.add_argument("--base", metavar="MODEL_DIR", default=None,
                   help="fine-tune the experts from this real pretrained model (e.g. from 'judgeforge models get "
                        f"smollm2-135m-instruct -o DIR') instead of a tiny random base; sizes then default to {REAL_BASE}")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of a live display")
    return p


def parse_args(argv: list[str]) -> tuple[QuickstartConfig, bool]:
    """(the config, whether to show live progress) from the command line."""
    args = _parser().parse_args(argv)
    values = options_of(args, QuickstartConfig)
    if args.base:  # a real model: REAL_BASE's sizes, except the options given on the command line
        given = {a.split("=")[0] for a in argv if a.startswith("-")}
        for f in dataclasses.fields(QuickstartConfig):
            flags = f.metadata.get("cli", ((), None))[0] or ("--" + f.name.replace("_", "-"),)
            if f.name in REAL_BASE and not given & set(flags):
                values[f.name] = REAL_BASE[f.name]
    return QuickstartConfig(**values, base=args.base), not args.no_progress


def main(argv: list[str]) -> int:
    cfg, progress = parse_args(argv)
    report = run(cfg, progress=progress)
    print(report["table_md"])
    print(f"\nreport: {Path(cfg.out) / 'report.md'}")
    return 0


# --------------------------------------------------------------------------- display


class _Display:
    """The quickstart's stages on the one progress helper (judgeforge.progress): a live bar per stage
    on a terminal, plain lines (one at least every 30 s inside a long stage) anywhere else."""

    def __init__(self, live: bool):
        from judgeforge.progress import Progress

        self._progress = Progress(live=live)
        self._task = None

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        self._progress.__exit__(*exc)

    def stage(self, name: str, total: int | None = None, unit: str = "parts"):
        self._task = self._progress.task(name, total=total or 1, unit=unit)
        return self

    def update(self, completed: int | None = None, info: str = "", total: int | None = None):
        if self._task is not None:
            self._task.update(completed=completed, total=total, info=info)

    def advance(self, k: int):
        if self._task is not None:
            self._task.advance(k)

    def done(self, info: str = ""):
        if self._task is not None:
            self._task.done(info)


# --------------------------------------------------------------------------- pipeline


def _train(display: _Display, name: str, cfg: QuickstartConfig, *, model: Path | None, expert: str,
           datasets: list[str], steps: int, out: Path) -> Path:
    from judgeforge.train.recipe import load
    from judgeforge.train.run import train

    final = out / "model"
    if (final / "config.json").exists():
        display.stage(name, 1).done("reused")
        return final
    overrides = {
        **TINY_RECIPE,
        "expert": expert,
        "datasets": datasets,
        "max_steps": steps,
        "output_dir": str(out),
        "seed": cfg.seed,
        "per_device_train_batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate if model is None else cfg.expert_learning_rate,
        "eval_split": 0.0,
        "overwrite_output_dir": True,
    }
    if model is not None:
        overrides.update(model=str(model), init_from_config=None)
        if cfg.base:  # a real model: its own tokenizer and chat format
            overrides["tokenizer"] = None
    else:
        overrides["init_from_config"] = {"hidden": cfg.hidden, "layers": cfg.layers, "heads": 4, "kv_heads": 2,
                                         "tie": True}
    recipe = load(None, overrides)
    display.stage(name, steps, unit="steps")

    def on_event(ev: dict):
        if ev.get("stage") in ("train", "log") and "step" in ev:
            info = f"loss {ev['loss']:.3f}" if ev.get("loss") is not None else ""
            display.update(ev["step"], info, ev.get("total_steps"))

    path = train(recipe, progress=on_event)
    display.done("done")
    return Path(path)


def _merge(display: _Display, a: Path, b: Path, weight: float, out: Path) -> Path:
    from judgeforge.merge.core import merge
    from judgeforge.merge.recipe import MergeRecipe

    display.stage(f"merge linear {weight:g}/{1 - weight:g}", 1)
    if (out / "config.json").exists():
        display.done("reused")
        return out
    recipe = MergeRecipe(method="linear", models=[str(a), str(b)], weights=[weight, 1 - weight], output=str(out),
                         force=True)
    merge(recipe, command="judgeforge quickstart")
    display.done("done")
    return out


def _evaluate(display: _Display, name: str, model: Path, files: dict[str, Path], cfg: QuickstartConfig,
              out: Path) -> dict:
    from judgeforge.eval.ablation import headline
    from judgeforge.eval.runner import evaluate

    display.stage(f"evaluate {name}", 1)
    suite = f"{files['absolute_test']},{files['relative_test']}"
    report = evaluate(
        str(model), suite, out=str(out), greedy=True, max_new_tokens=cfg.max_new_tokens, samples_absolute=1,
        retries=0, bootstrap=200, judge_name=name, progress=True, pair_modes="relative", seed=cfg.seed,
        batch_size=None if cfg.base else TINY_EVAL_BATCH,
    )
    display.done()
    h = headline(report, "all")
    return {**{k: h[k] for k in HEADLINE_KEYS}, "model": str(model), "report": str(out / "report.json")}


def run(cfg: QuickstartConfig, progress: bool = True) -> dict:
    """Run the quickstart; returns the report dict (also written to ``cfg.out``)."""
    import sys

    from judgeforge.data.mini import write_mini
    from judgeforge.io import atomic_write_json, atomic_write_text

    if cfg.train_rows < cfg.batch_size or cfg.test_rows < 4:
        raise UserError(f"quickstart: --train-rows must be >= {cfg.batch_size} (the batch size) and --test-rows >= 4")
    if cfg.base and not (Path(cfg.base) / "config.json").is_file():
        raise UserError(f"quickstart: --base {cfg.base}: not a model folder (no config.json); make one with "
                        f"'judgeforge models get smollm2-135m-instruct -o {cfg.base}'")
    from judgeforge.io import check_output_folder

    out = check_output_folder(cfg.out, "quickstart: -o")
    out.mkdir(parents=True, exist_ok=True)
    from judgeforge.devices import choose_dtype

    precision = choose_dtype(TINY_RECIPE["bf16"])
    print(f"judgeforge quickstart: {precision.line()}", file=sys.stderr, flush=True)
    t0 = time.time()
    timings: dict[str, float] = {}
    live = progress and sys.stderr.isatty()
    with _Display(live) as display:
        display.stage("mini datasets", 1)
        files = write_mini(out / "data", cfg.train_rows, cfg.test_rows, cfg.seed)
        display.done("done")
        models = out / "models"

        t = time.time()
        base = Path(cfg.base) if cfg.base else None
        if cfg.base_steps > 0 and base is None:
            base = _train(display, "shared base (joint)", cfg, model=None, expert="joint",
                          datasets=[str(files["absolute_train"]), str(files["relative_train"])],
                          steps=cfg.base_steps, out=models / "base")
        timings["base_s"] = time.time() - t
        t = time.time()
        experts = {}
        for fmt, steps in (("absolute", cfg.absolute_steps), ("relative", cfg.relative_steps)):
            experts[fmt] = _train(display, f"{fmt} expert", cfg, model=base, expert=fmt,
                                  datasets=[str(files[f"{fmt}_train"])], steps=steps, out=models / fmt)
            timings[f"{fmt}_s"] = time.time() - t
            t = time.time()
        merged = _merge(display, experts["absolute"], experts["relative"], cfg.merge_weight, models / "merged")
        timings["merge_s"] = time.time() - t
        t = time.time()
        judges = {"absolute only": experts["absolute"], "relative only": experts["relative"], "merged": merged}
        results = {}
        for name, path in judges.items():
            results[name] = _evaluate(display, name, path, files, cfg, out / "eval" / name.replace(" ", "-"))
        timings["eval_s"] = time.time() - t
    timings["total_s"] = time.time() - t0

    table = _table_md(results)
    report = {"config": asdict(cfg), "dtype": precision.name, "results": results, "timings": {k: round(v, 1) for k, v in timings.items()},
              "table_md": table}
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", _report_md(report))
    _plot(results, out / "quickstart.png")
    return report


def _table_md(results: dict) -> str:
    from judgeforge.eval.ablation import headline_cell, rate_cell

    lines = ["| judge (tiny, mini data) | DA: Pearson (n) | DA parse failures % | PR: accuracy % (n) "
             "| PR parse failures % |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {headline_cell(r, 'da')} | {rate_cell(r.get('da_parse_failure_rate'))} | "
                     f"{headline_cell(r, 'pr', True)} | {rate_cell(r.get('pr_parse_failure_rate'))} |")
    return "\n".join(lines)


def _paper_rows() -> str:
    """'absolute only 0.539 / 64.82, relative only - / 72.61, weight merging 0.624 / 73.50'."""
    from judgeforge.eval.reference import PAPER_TABLE5

    rows = []
    for row in ("absolute only", "relative only", "weight merging"):
        da, pr = PAPER_TABLE5[row]
        rows.append(f"{row} {'-' if da is None else f'{da:.3f}'} / {pr:.2f}")
    return ", ".join(rows)


def _report_md(report: dict) -> str:
    t = report["timings"]
    return "\n".join([
        "# judgeforge quickstart",
        "",
        "Shaped like the paper's Table 5 (single-format experts vs their weight merge). DA: Pearson",
        "correlation between the judge's score and the gold score on held-out absolute rows; PR: accuracy on",
        "held-out relative rows. Greedy decoding; a failed parse counts as wrong (PR) and is left out of the",
        "correlation (DA); n: items scored / held-out items; a value from fewer than 10 scored items reads",
        "'too few parsed'. Parse failures: the share of that format's outputs that did not parse.",
        "",
        report["table_md"],
        "",
        "For reference, the paper's Mistral-7B rows (DA = mean Pearson over Vicuna, MT Bench, FLASK; PR = mean",
        f"accuracy over HHH, MT-HJ, Auto-J): {_paper_rows()}.",
        "",
        f"Time: base {t.get('base_s', 0)} s, absolute expert {t.get('absolute_s')} s, relative expert "
        f"{t.get('relative_s')} s, merge {t.get('merge_s')} s, evaluation {t.get('eval_s')} s, "
        f"total {t.get('total_s')} s.",
        "",
        "Config: `" + json.dumps(report["config"]) + "`",
        "",
    ])


def error_bars(values: list, cis: list) -> tuple[list[float], list[list[float]]]:
    """Heights (NaN where a value is n/a, so nothing is drawn) and matplotlib's ``yerr`` (distances below and
    above each value; 0 where there is no interval)."""
    nan = float("nan")
    heights = [nan if v is None else v for v in values]
    below = [0.0 if v is None or not ci else max(v - ci[0], 0.0) for v, ci in zip(values, cis)]
    above = [0.0 if v is None or not ci else max(ci[1] - v, 0.0) for v, ci in zip(values, cis)]
    return heights, [below, above]


def _plot(results: dict, path: Path) -> None:
    """Bars for the values that exist, each labelled with its n and its 95% interval as an error bar; a
    judge whose value is withheld (n/a) gets no bar at all (not a bar of 0) but its reason ("too few
    parsed (n=5 of 100)") written at the foot of the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4))
    for ax, key, title, color in ((axes[0], "da", "direct assessment (Pearson)", "#4C72B0"),
                                  (axes[1], "pr", "pairwise ranking (accuracy)", "#DD8452")):
        vals = [results[n].get(key) for n in names]
        heights, yerr = error_bars(vals, [results[n].get(key + "_ci") for n in names])
        ax.bar(range(len(names)), heights, color=color, yerr=yerr, capsize=3, ecolor="black")
        ax.set_xticks(range(len(names)), names)  # every judge keeps its place, n/a ones too
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(min([0.0] + [v for v in vals if v is not None]), 1.0)
        foot = ax.get_xaxis_transform()  # x in data, y in axes fractions: the foot of the axis, not y = 0
        for x, (n, v) in enumerate(zip(names, vals)):
            r = results[n]
            if v is not None:
                ax.text(x, max(v, 0.0) + 0.02, f"n={r.get(key + '_n')}/{r.get(key + '_total')}", ha="center",
                        va="bottom", fontsize=7)
            else:
                ax.text(x, 0.03, "n/a: " + (r.get(key + "_note") or "no result").replace(" (", "\n("),
                        transform=foot, ha="center", va="bottom", fontsize=7)
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=8)
    axes[1].axhline(0.5, color="gray", lw=0.8, ls="--")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
