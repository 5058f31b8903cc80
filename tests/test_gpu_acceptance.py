"""scripts/gpu/acceptance.sh: the plan (--dry-run) names the documented commands, and the checks of
scripts/gpu/accept_tools.py catch what they are there to catch.  (The smoke run itself, tiny models on
the CPU, takes ~15 minutes on 2 cores: too slow for the suite; docs/gpu-acceptance.md has its result.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu" / "acceptance.sh"
TOOLS = ROOT / "scripts" / "gpu" / "accept_tools.py"


def _run(args, tmp_path, **env):
    e = {**os.environ, "OUT": str(tmp_path / "out"), "ACCEPT_WORK": str(tmp_path / "w"), "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=e, capture_output=True, text=True, timeout=60)


def test_dry_run_plans_every_documented_command(tmp_path):
    r = _run(["all", "--dry-run"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for cmd in [
        "judgeforge train configs/train/prometheus2-7b-absolute.yaml",
        "judgeforge merge --weights 0.5\\,0.5 --dtype bf16",
        "judgeforge merge --method dare_linear",
        "judgeforge merge --method ties",
        "judgeforge sweep --absolute",
        "judgeforge serve --judge",
        "scripts/bench/serve_load.py --url http://127.0.0.1:8765 --clients 64",
        "scripts/reproduce_prometheus2.sh",
        "python -m judgeforge eval --judge",
        "--suite vicuna\\,hhh",
        "--max_new_tokens 256 --retries 0 --bootstrap 0 --progress false --out runs/e2e",
        "judgeforge eval --config configs/eval/paper.yaml",
        "--suite vicuna\\,mt_bench\\,hhh\\,autoj",
    ]:
        assert cmd in out, cmd
    assert not (tmp_path / "w" / "full").exists()  # a dry run makes nothing


def test_unknown_part_is_refused(tmp_path):
    r = _run(["train,bogus"], tmp_path)
    assert r.returncode == 2
    assert "part1" in r.stdout  # the usage


def _tools(*args):
    return subprocess.run([sys.executable, str(TOOLS), *args], capture_output=True, text=True, timeout=60)


def _rows(run: Path, entries):
    run.mkdir(parents=True, exist_ok=True)
    (run / "rows-rank0.jsonl").write_text("".join(json.dumps({"step": s, "rows": r}) + "\n" for s, r in entries))
    (run / "model").mkdir(exist_ok=True)
    (run / "model" / "train_results.json").write_text(json.dumps({"resumed_from": str(run / "checkpoint-2")}))


def test_resume_check(tmp_path):
    good = tmp_path / "good"
    # killed during step 3 after logging it; the rerun from checkpoint-2 logs 3 again, identically
    good_entries = [(1, [0, 1]), (2, [2, 3]), (3, [4, 5]), (3, [4, 5]), (4, [6, 7])]
    _rows(good, good_entries)
    r = _tools("resume", str(good), "--killed-at", "2", "--lines-before", "3")
    assert r.returncode == 0, r.stdout
    bad = tmp_path / "bad"
    _rows(bad, [(1, [0, 1]), (2, [2, 3]), (3, [4, 5]), (3, [5, 4]), (4, [6, 7])])
    assert _tools("resume", str(bad), "--killed-at", "2", "--lines-before", "3").returncode == 1  # other rows after the resume
    late = tmp_path / "late"
    _rows(late, [(1, [0, 1]), (2, [2, 3]), (1, [0, 1]), (2, [2, 3])])
    assert _tools("resume", str(late), "--killed-at", "2", "--lines-before", "2").returncode == 1  # started over


def test_cache_check_counts_duplicates(tmp_path):
    lines = [{"key": "a", "attempt": 1}, {"key": "b", "attempt": 1}]
    (tmp_path / "generations.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert _tools("cache", str(tmp_path), "--before", "2").returncode == 0
    assert _tools("cache", str(tmp_path), "--before", "3").returncode == 1  # fewer lines than before
    with open(tmp_path / "generations.jsonl", "a") as f:
        f.write(json.dumps({"key": "a", "attempt": 1}) + "\n")
    r = _tools("cache", str(tmp_path))
    assert r.returncode == 1 and "1 generated twice" in r.stdout
