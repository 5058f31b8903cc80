"""One report from the caches of several shard folders of one evaluation (``eval merge``).

Above both the runner (which scores) and the report (which writes): it joins them.
"""

from __future__ import annotations

from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.eval.report import write_report


def merge_report(dirs: list[str], out: str | None = None, data_dir: str | None = None) -> dict:
    """One report from the caches of several shard folders of one evaluation."""
    import json

    from judgeforge.config import build
    from judgeforge.eval.benchmarks import load_benchmark
    from judgeforge.eval.cache import GenerationCache
    from judgeforge.eval.runner import EvalConfig, build_report, sampling_fingerprint

    runs = []
    for d in dirs:
        p = Path(d) / "run.json"
        if not p.exists():
            raise UserError(f"{d}: no run.json; pass folders written by 'judgeforge eval --out DIR'")
        try:
            run = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            raise UserError(f"{p}: unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                            "run the evaluation of that folder again") from None
        if not isinstance(run, dict) or not isinstance(run.get("judge"), str) or not isinstance(
                run.get("config"), dict) or not isinstance(run.get("benchmarks"), list):
            raise UserError(f"{p}: not a run.json written by 'judgeforge eval --out DIR' (judge, config, "
                            "benchmarks missing); run the evaluation of that folder again")
        runs.append(run)
    first = runs[0]
    for d, r in zip(dirs[1:], runs[1:]):
        if r.get("judge_key", r["judge"]) != first.get("judge_key", first["judge"]) or r["config"].get("suite") != first["config"].get("suite"):
            raise UserError(f"{d}: a different evaluation (judge '{r['judge']}', suite '{r['config'].get('suite')}') "
                            f"than {dirs[0]} (judge '{first['judge']}', suite '{first['config'].get('suite')}')")
    cfgd = dict(first["config"])
    cfgd.update(num_shards=1, shard=0)
    if data_dir:
        cfgd["data_dir"] = data_dir
    cfg = build(EvalConfig, cfgd, f"{dirs[0]}/run.json")
    cache = GenerationCache(None)
    files = 0
    for d in dirs:
        for f in sorted(Path(d).glob("generations*.jsonl")):
            cache.load(f)
            files += 1
    if not files:
        raise UserError(f"no generations*.jsonl in {', '.join(dirs)}")
    benches = [load_benchmark(n, cfg.data_dir, limit=cfg.limit, fetch=cfg.fetch) for n in first["benchmarks"]]
    fp = sampling_fingerprint(cfg.sampling())
    greedy_det = cfg.greedy and cfg.backend != "openai"
    budget = 1 + (0 if greedy_det else max(0, cfg.retries))
    results = build_report(benches, cfg, first.get("judge_key", first["judge"]), cache, fp, budget,
                           backend_name=first.get("backend"))
    results["judge"] = first["judge"]
    results["merged_from"] = [str(d) for d in dirs]
    write_report(out or dirs[0], results)
    return results
