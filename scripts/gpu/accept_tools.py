"""Helpers of scripts/gpu/acceptance.sh: data, checks a user would make, and the summary.

    python scripts/gpu/accept_tools.py rows --out rows.jsonl --n 64 [--scale 1] [--tokenizer T]
    python scripts/gpu/accept_tools.py generate DIR [DIR ...]       # AutoModelForCausalLM loads, generates
    python scripts/gpu/accept_tools.py resume RUN --killed-at K --lines-before N  # resumed at K+1, same rows
    python scripts/gpu/accept_tools.py same-rows RUN_A RUN_B         # the same data order in two runs
    python scripts/gpu/accept_tools.py cache DIR [--before N]        # generation cache: lines, duplicates
    python scripts/gpu/accept_tools.py report DIR --benchmarks a,b   # report.json complete
    python scripts/gpu/accept_tools.py summary OUT                   # results.tsv -> summary.json / .md

Each check prints one line and exits 0 (pass) or 1 (fail); acceptance.sh records it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))


def _text_of(tok, rng, n: int) -> str:
    """About n tokens of decoded random vocabulary (real tokenizer, Prometheus-like lengths)."""
    ids = rng.integers(1000, 31000, max(n, 1)).tolist()
    return tok.decode(ids, skip_special_tokens=True).replace("[RESULT]", "[R]")


def cmd_rows(a) -> int:
    """Feedback Collection rows whose (row, output) lengths follow train_length_profile.json."""
    import numpy as np
    from train_7b import sample_lengths

    from judgeforge.data import to_collection_row
    from judgeforge.format.prompts import Rubric
    from judgeforge.format.records import AbsoluteExample
    from judgeforge.tokenization import load_tokenizer

    tok = load_tokenizer(a.tokenizer)
    total, target = sample_lengths(a.n, a.seed, "absolute", a.max_length, a.scale)
    rng = np.random.default_rng(a.seed)
    rubric = Rubric("Is the response helpful?", tuple(f"Score {i} description." for i in range(1, 6)))
    probe = AbsoluteExample("q", "r", rubric, "ref", 3, "f")
    overhead = len(tok(probe.render()).input_ids) + 8
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for i, (s, t) in enumerate(zip(total.tolist(), target.tolist())):
            body = max(s - t - overhead, 16)
            ex = AbsoluteExample(
                _text_of(tok, rng, body // 4), _text_of(tok, rng, body - body // 4 - body // 8), rubric,
                _text_of(tok, rng, body // 8), int(rng.integers(1, 6)), _text_of(tok, rng, max(t - 6, 4)),
                id=f"row{i}",
            )
            f.write(json.dumps(to_collection_row(ex)) + "\n")
    print(f"rows: {a.n} Feedback Collection rows, mean {total.mean():.0f} tokens ({target.mean():.0f} output) -> {out}")
    return 0


def cmd_generate(a) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ok = True
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for d in a.dirs:
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype="auto", device_map=dev)
        ids = tok("[INST] Grade this. [/INST]", return_tensors="pt").to(dev)
        out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out.shape[1] - ids.input_ids.shape[1]
        n = sum(p.numel() for p in model.parameters())
        good = new > 0
        ok &= good
        print(f"generate: {d}: {n / 1e6:,.0f}M params ({model.dtype}), {new} new tokens: {'ok' if good else 'NONE'}")
        del model
        if dev == "cuda":
            torch.cuda.empty_cache()
    return 0 if ok else 1


def _rows(run: Path) -> list[dict]:
    p = run / "rows-rank0.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


def _by_step(entries: list[dict]) -> dict[int, list]:
    steps: dict[int, list] = {}
    for e in entries:
        steps.setdefault(e["step"], []).append(e["rows"])
    return steps


def cmd_resume(a) -> int:
    """After a SIGKILL past checkpoint-K and a rerun: steps continue at K+1; steps logged twice agree."""
    run = Path(a.run)
    entries = _rows(run)
    split = a.lines_before  # rows-rank0.jsonl's lines when the run was killed; the rerun appends
    before, after = _by_step(entries[:split]), _by_step(entries[split:])
    problems = []
    if not after:
        problems.append("the rerun logged no steps")
    elif min(after) != a.killed_at + 1:
        problems.append(f"the rerun began at step {min(after)}, not {a.killed_at + 1}")
    both = sorted(set(before) & set(after))
    for s in both:
        if before[s] != after[s]:
            problems.append(f"step {s}: rows {after[s]} after the resume, {before[s]} before")
    res = json.loads((run / "model" / "train_results.json").read_text()) if (run / "model" / "train_results.json").exists() else {}
    if not str(res.get("resumed_from") or "").endswith(f"checkpoint-{a.killed_at}"):
        problems.append(f"train_results.json resumed_from = {res.get('resumed_from')!r}")
    print(f"resume: killed after checkpoint-{a.killed_at}; steps before {sorted(before)}, after {sorted(after)}; "
          f"{len(both)} step(s) seen twice, identical: {not problems or problems}")
    return 1 if problems else 0


def cmd_same_rows(a) -> int:
    ra, rb = _by_step(_rows(Path(a.a))), _by_step(_rows(Path(a.b)))
    steps = sorted(set(ra) & set(rb))
    # a resumed run logs some steps twice; compare the last logging of each step
    diff = [s for s in steps if ra[s][-len(rb[s]):] != rb[s][-len(ra[s]):]]
    print(f"same-rows: {len(steps)} common steps, {len(diff)} differ {diff[:5]}")
    return 0 if steps and not diff else 1


def cmd_cache(a) -> int:
    from judgeforge.io import read_log

    lines, keys = 0, {}
    for p in sorted(Path(a.dir).glob("generations*.jsonl")):
        for rec in read_log(p):
            lines += 1
            k = (rec["key"], rec.get("attempt"))
            keys[k] = keys.get(k, 0) + 1
    dups = sum(c - 1 for c in keys.values())
    print(f"cache: {lines} generations in {a.dir}, {dups} generated twice"
          + (f", {a.before} before the rerun" if a.before is not None else ""))
    if a.count_file:
        Path(a.count_file).write_text(str(lines))
    return 0 if dups == 0 and lines >= (a.before or 0) else 1


def cmd_report(a) -> int:
    rep = json.loads((Path(a.dir) / "report.json").read_text())
    want = [b for b in a.benchmarks.split(",") if b]
    got = rep.get("benchmarks", {})
    problems = [f"{b} missing" for b in want if b not in got]
    for b in want:
        for mode, m in (got.get(b, {}).get("modes") or {}).items():
            if m.get("missing_samples"):
                problems.append(f"{b}/{mode}: {m['missing_samples']} samples missing")
    sizes = ", ".join(f"{b}: {got[b].get('items', '?')} items" for b in want if b in got)
    print(f"report: {sizes}; {problems or 'complete'}")
    return 1 if problems else 0


def cmd_summary(a) -> int:
    out = Path(a.out)
    steps, checks = {}, []
    for line in (out / "results.tsv").read_text().splitlines():
        kind, *f = line.split("\t")
        if kind == "step":
            name, part, rc, wall, mem, cmd = f
            earlier = steps.get(name, {}).get("checks", [])  # a step recorded after its first checks (serve)
            steps[name] = {"step": name, "part": part, "rc": int(rc), "wall_s": float(wall),
                           "peak_gpu_mib": int(mem) if mem.isdigit() else None, "command": cmd, "checks": earlier}
        else:
            name, check, ok, detail = f
            passed = None if ok == "skip" else ok == "1"  # None: its step did not run
            steps.setdefault(name, {"step": name, "checks": []})["checks"].append(
                {"check": check, "pass": passed, "detail": detail})
            checks.append(passed)
    passed, failed = checks.count(True), checks.count(False)
    res = {"steps": list(steps.values()), "checks_passed": passed, "checks_failed": failed,
           "checks_not_run": checks.count(None), "checks": len(checks)}
    (out / "summary.json").write_text(json.dumps(res, indent=2) + "\n")
    md = ["| step | part | rc | wall s | peak GPU MiB | checks | command |", "|---|---|---:|---:|---:|---|---|"]
    for s in steps.values():
        word = {True: "PASS", False: "FAIL", None: "NOT RUN"}
        cs = "; ".join(f"{word[c['pass']]} {c['check']}" for c in s["checks"]) or "-"
        md.append(f"| {s['step']} | {s.get('part', '')} | {s.get('rc', '')} | {s.get('wall_s', '')} | "
                  f"{s.get('peak_gpu_mib') or 'n/a'} | {cs} | `{s.get('command', '').replace('|', '/')[:300]}` |")
    md += ["", f"checks: {passed} passed, {failed} failed, {checks.count(None)} not run (of {len(checks)})", ""]
    md += [f"- {s['step']} / {c['check']}: {c['detail']}" for s in steps.values() for c in s["checks"]]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    print("\n".join(md[: len(steps) + 3]))
    return 0 if passed == len(checks) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("rows")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--tokenizer", default="mistral-v1")
    p = sub.add_parser("generate")
    p.add_argument("dirs", nargs="+")
    p = sub.add_parser("resume")
    p.add_argument("run")
    p.add_argument("--killed-at", type=int, required=True, help="the newest complete checkpoint at the kill")
    p.add_argument("--lines-before", type=int, required=True, help="lines of rows-rank0.jsonl at the kill")
    p = sub.add_parser("same-rows")
    p.add_argument("a")
    p.add_argument("b")
    p = sub.add_parser("cache")
    p.add_argument("dir")
    p.add_argument("--before", type=int, default=None)
    p.add_argument("--count-file", default=None)
    p = sub.add_parser("report")
    p.add_argument("dir")
    p.add_argument("--benchmarks", required=True)
    p = sub.add_parser("summary")
    p.add_argument("out")
    a = ap.parse_args()
    return {"rows": cmd_rows, "generate": cmd_generate, "resume": cmd_resume, "same-rows": cmd_same_rows,
            "cache": cmd_cache, "report": cmd_report, "summary": cmd_summary}[a.cmd](a)


if __name__ == "__main__":
    raise SystemExit(main())
