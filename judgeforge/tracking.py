"""Experiment loggers (``report_to``): the names, whether wandb can log here, and eval / sweep metrics
sent to a wandb run.  Training logs through transformers' own integrations (``TrainingArguments.report_to``);
eval and sweep results go through :func:`log_metrics`.  wandb honours ``WANDB_MODE`` (``offline`` writes
the run under ``WANDB_DIR`` for a later ``wandb sync``) and ``WANDB_PROJECT`` (default ``judgeforge``)."""

from __future__ import annotations

import os
from pathlib import Path

from judgeforge.errors import UserError


def report_targets(report_to: str | list | None) -> list[str]:
    if report_to is None:
        return []
    if isinstance(report_to, (list, tuple)):
        items = list(report_to)
    else:
        items = [s.strip() for s in str(report_to).split(",")]
    return [s for s in items if s and s != "none"]


def wandb_ready() -> bool:
    """wandb can log: an API key, a netrc login, or a mode that needs none (offline, disabled)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled",
                                                                                          "dryrun"):
        return True
    if os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def check_report_to(report_to, where: str, allowed: tuple[str, ...] = ("wandb",)) -> list[str]:
    """The loggers named, checked: known here, installed, and wandb logged in (or offline)."""
    import importlib.util

    names = report_targets(report_to)
    for name in names:
        if name not in allowed:
            raise UserError(f"{where}: report_to '{name}' is not a logger here; use none or {' or '.join(allowed)}")
        if importlib.util.find_spec(name) is None:
            raise UserError(f"{where}: report_to {name} needs the '{name}' package; pip install {name} or use none")
    if "wandb" in names and not wandb_ready():
        raise UserError(f"{where}: report_to wandb needs a login: set WANDB_API_KEY, run 'wandb login', or set "
                        "WANDB_MODE=offline (or report_to: none)")
    return names


def log_metrics(steps: list[dict], *, name: str, config: dict, out_dir, job_type: str,
                summary: dict | None = None) -> str:
    """One wandb run: each dict of ``steps`` logged as a step (None values left out: n/a is not 0), then
    ``summary``.  The run lives under ``WANDB_DIR`` (default: ``out_dir``); returns its folder."""
    import wandb

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "judgeforge"), name=name, job_type=job_type,
                     config=config, dir=os.environ.get("WANDB_DIR", str(out_dir)), reinit="finish_previous")
    try:
        for step in steps:
            run.log({k: v for k, v in step.items() if v is not None})
        for k, v in (summary or {}).items():
            if v is not None:
                run.summary[k] = v
        return str(Path(run.dir).parent)
    finally:
        run.finish()


def eval_metrics(rows: list[dict], headline: dict | None = None) -> dict:
    """``{"BENCH/MODE/METRIC": value, "BENCH/MODE/n": n, "headline/da": ...}`` for a wandb step."""
    out: dict = {}
    for r in rows:
        out[f"{r['benchmark']}/{r['mode']}/{r['metric']}"] = r["value"]
        out[f"{r['benchmark']}/{r['mode']}/n_scored"] = r["n"]
    for k, v in (headline or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"headline/{k}"] = v
    return out
