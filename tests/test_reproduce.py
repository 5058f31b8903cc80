"""scripts/reproduce_prometheus2.sh: the 7B plan as a dry run, and the same script end to end on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_prometheus2.sh"


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(PYTHON=sys.executable, JUDGEFORGE=str(Path(sys.executable).parent / "judgeforge"))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_dry_run_prints_the_full_7b_plan(tmp_path):
    out = tmp_path / "plan"
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--joint"], capture_output=True, text=True,
                          env=_env(OUT=out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cmds = [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]
    trains = [c for c in cmds if "scripts/train.sh" in c]
    assert len(trains) == 3
    for recipe, data in (("absolute", "Feedback-Collection"), ("relative", "Preference-Collection")):
        assert any(f"prometheus2-7b-{recipe}.yaml" in c and data in c and "Mistral-7B-Instruct-v0.2" in c
                   and "GPUS=8" in c for c in trains)
    assert any("prometheus2-7b-joint.yaml" in c and "Feedback-Collection" in c and "Preference-Collection" in c
               for c in trains)
    assert sum("merge" in c and "prometheus2-7b-linear.yaml" in c for c in cmds) == 1
    shards = [c for c in cmds if " eval --judge " in c]
    assert len(shards) == 4 * 8 and all("--suite paper" in c for c in shards)  # 4 judges x 8 GPUs
    assert sum(" eval report " in c for c in cmds) == 4
    assert cmds[-1].split()[1:3] == ["eval", "ablation"]
    assert not out.exists()  # a dry run writes nothing


@pytest.mark.slow
def test_cpu_end_to_end_then_resume(tmp_path):
    from judgeforge.data.mini import write_mini
    from judgeforge.tiny import make_tiny_model

    base = make_tiny_model(tmp_path / "base", hidden=32, layers=1, heads=2, kv_heads=1)
    data = write_mini(tmp_path / "data", n_train=48, n_test=6)
    out = tmp_path / "run"
    env = _env(
        MODEL=base, ABS_DATA=data["absolute_train"], REL_DATA=data["relative_train"], OUT=out, GPUS=0,
        ABS_RECIPE=ROOT / "configs/train/tiny-cpu.yaml", REL_RECIPE=ROOT / "configs/train/tiny-cpu.yaml",
        TRAIN_ARGS="--init_from_config null --max_steps 2 --eval_split 0 --per_device_batch_size 4",
        EVAL_SUITE=f"{data['absolute_test']},{data['relative_test']}",
        EVAL_ARGS="--limit 3 --greedy --max-new-tokens 8 --samples-absolute 1 --retries 0 --no-progress",
    )
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for path in ("absolute/model/config.json", "relative/model/config.json", "merged/config.json",
                 "eval/merged/report.json", "eval/absolute/report.json", "eval/relative/report.json", "ablation.md"):
        assert (out / path).exists(), path
    assert "| weight merging (merged) |" in (out / "ablation.md").read_text()
    # a rerun skips every finished stage
    again = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("= skip") == 6  # two experts, the merge, three evaluations
    assert "scripts/train.sh" not in again.stdout
