"""One report from the caches of several shard folders of one evaluation (``eval merge``).

Above both the runner (which scores) and the report (which writes): it joins them.
"""

from __future__ import annotations

from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.eval.report import write_report

# run.json config keys that say how a shard ran, not what it generated: shards may differ in them
RUN_ONLY_KEYS = frozenset({"shard", "out", "progress", "data_dir", "fetch", "chunk_size", "batch_size", "engine",
                           "concurrency", "tensor_parallel_size", "report_to", "base_url"})


def _check_dirs(dirs: list[str], out: str | None, data_dir: str | None) -> None:
    seen: dict[Path, str] = {}
    for d in dirs:
        key = Path(d).resolve()
        if key in seen:
            raise UserError(f"{d}: given twice (also as {seen[key]}); pass each shard folder once")
        seen[key] = d
    if out:
        from judgeforge.io import check_output_folder

        check_output_folder(out, "--out")
    if data_dir:
        from judgeforge.eval.benchmarks import check_data_dir

        check_data_dir(data_dir)


def _check_shards(dirs: list[str], num_shards: int) -> None:
    """Every shard's cache of a --num-shards K evaluation must be there: a report over some shards
    would look finished while it is over part of the items."""
    if num_shards <= 1:
        return
    import re

    have = set()
    for d in dirs:
        for f in Path(d).glob("generations.shard-*-of-*.jsonl"):
            m = re.fullmatch(r"generations\.shard-(\d+)-of-(\d+)\.jsonl", f.name)
            if m and int(m.group(2)) == num_shards:
                have.add(int(m.group(1)))
    missing = [k for k in range(num_shards) if k not in have]
    if missing:
        raise UserError(f"{', '.join(dirs)}: shard {', '.join(map(str, missing))} of {num_shards} is missing (no "
                        f"generations.shard-{missing[0]}-of-{num_shards}.jsonl); pass every shard's folder, or run "
                        f"'judgeforge eval ... --num-shards {num_shards} --shard {missing[0]}' first")


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
                run.get("config"), dict) or not isinstance(run.get("benchmarks"), list) or not all(
                isinstance(b, str) and b for b in run["benchmarks"]):
            raise UserError(f"{p}: not a run.json written by 'judgeforge eval --out DIR' (judge, config, "
                            "benchmarks missing); run the evaluation of that folder again")
        runs.append(run)
    _check_dirs(dirs, out, data_dir)
    first = runs[0]
    for d, r in zip(dirs[1:], runs[1:]):
        if r.get("judge_key", r["judge"]) != first.get("judge_key", first["judge"]) or r["config"].get("suite") != first["config"].get("suite"):
            raise UserError(f"{d}: a different evaluation (judge '{r['judge']}', suite '{r['config'].get('suite')}') "
                            f"than {dirs[0]} (judge '{first['judge']}', suite '{first['config'].get('suite')}')")
        differ = sorted(k for k in set(r["config"]) | set(first["config"])
                        if k not in RUN_ONLY_KEYS and r["config"].get(k) != first["config"].get(k))
        if differ:
            show = ", ".join(f"{k} {r['config'].get(k)!r} vs {first['config'].get(k)!r}" for k in differ[:3])
            raise UserError(f"{d}: not a shard of the same evaluation as {dirs[0]} ({show}); merge only the "
                            "shards of one command, or run the odd shard again with the others' settings")
    _check_shards(dirs, int(first["config"].get("num_shards") or 1))
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
