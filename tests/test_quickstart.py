"""End to end: the CPU quickstart, the merge-ratio sweep on its experts, the ablation report.

The quickstart runs once per module (about 4.5 minutes on 2 cores with other jobs beside it) and
the other tests reuse its folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "quickstart-out"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # the suite's critical path: both cores (conftest.py)
    proc = subprocess.run([sys.executable, "-m", "judgeforge", "quickstart", "-o", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


# Thresholds from the measured spread, not one run (the current defaults, seed 0 fp32 on an AVX2 CPU:
# absolute-only DA 0.708, relative-only PR 88%; the earlier, 1.4x longer defaults: 0.802 / 97% there,
# 0.787 / 95% on an Intel bf16 CPU, and one run with relative-only PR 72%).  PR over
# 100 pairs: chance is 50% and a coin exceeds 60% with probability ~3%, so 65% says "learned" with room
# under the lowest run seen; DA: Pearson 0.5 is well under 0.71-0.80.  Each expert must also beat the
# other on its own format (relative-only DA was -0.11 to 0.11, absolute-only PR 47% or unparsed).
MIN_ABSOLUTE_DA = 0.5
MIN_RELATIVE_PR = 0.65


def test_each_expert_learns_its_own_format(quickstart):
    out, stdout = quickstart
    report = json.loads((out / "report.json").read_text())
    res = report["results"]
    ab, rel = res["absolute only"], res["relative only"]
    assert ab["da"] >= MIN_ABSOLUTE_DA and ab["da_n"] >= 10, ab  # absolute expert: Pearson on held-out data
    assert rel["pr"] >= MIN_RELATIVE_PR and rel["pr_n"] >= 10, rel  # relative expert: accuracy on held-out data
    assert ab["pr"] is None or ab["pr"] < rel["pr"], res
    assert rel["da"] is None or rel["da"] < ab["da"], res
    # the merged judge is reported as it comes out, every value with its n and parse failures
    assert set(res["merged"]) >= {"da", "da_n", "pr", "pr_n", "da_parse_failure_rate", "pr_parse_failure_rate"}
    assert "| merged |" in stdout and "DA: Pearson (n)" in stdout


def test_quickstart_folder_has_report_plots_and_loadable_models(quickstart):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = quickstart
    for name in ("report.md", "report.json", "quickstart.png", "data/absolute_test.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "quickstart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for model in ("models/absolute/model", "models/relative/model", "models/merged"):
        AutoModelForCausalLM.from_pretrained(out / model)
        tok = AutoTokenizer.from_pretrained(out / model)
        assert tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False) == "<s>[INST] x [/INST]"
    card = (out / "models/merged/README.md").read_text()
    assert "linear" in card


def test_rerun_reuses_finished_stages(quickstart):
    out, _ = quickstart
    proc = subprocess.run([sys.executable, "-m", "judgeforge", "quickstart", "-o", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("reused") == 4, proc.stderr  # base, both experts, the merge


def test_three_point_sweep_on_the_quickstart_experts(quickstart, tmp_path):
    out, _ = quickstart
    sweep_out = tmp_path / "sweep"
    suite = f"{out / 'data/absolute_test.jsonl'},{out / 'data/relative_test.jsonl'}"
    cmd = [sys.executable, "-m", "judgeforge", "sweep", "--absolute", str(out / "models/absolute/model"),
           "--relative", str(out / "models/relative/model"), "--alphas", "0.3,0.5,0.7", "--suite", suite,
           "--limit", "10", "--greedy", "--max-new-tokens", "40", "--samples-absolute", "1", "--retries", "0",
           "--min-scored", "5", "--out", str(sweep_out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((sweep_out / "sweep.json").read_text())
    assert [(p["method"], p["alpha"]) for p in result["points"]] == [("linear", 0.3), ("linear", 0.5), ("linear", 0.7)]
    assert all(p["da"] is not None or p["pr"] is not None for p in result["points"])
    for png in ("sweep_da.png", "sweep_pr.png"):
        assert (sweep_out / png).read_bytes()[:4] == b"\x89PNG"
    assert "| linear | 0.5 |" in (sweep_out / "sweep.md").read_text()
    # a rerun resumes from the caches: nothing is generated again
    caches = {p: p.read_text() for p in sweep_out.rglob("generations*.jsonl")}
    assert len(caches) == 3
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p: p.read_text() for p in sweep_out.rglob("generations*.jsonl")} == caches

    def metrics(points):
        return [{k: v for k, v in p.items() if k != "seconds"} for p in points]

    assert metrics(json.loads((sweep_out / "sweep.json").read_text())["points"]) == metrics(result["points"])


def test_ablation_report_places_runs_beside_the_paper(quickstart, tmp_path):
    out, _ = quickstart
    dest = tmp_path / "ablation.md"
    proc = subprocess.run(
        [sys.executable, "-m", "judgeforge", "eval", "ablation", "--run", f"absolute={out / 'eval/absolute-only'}",
         "--run", f"relative={out / 'eval/relative-only'}", "--run", f"merged={out / 'eval/merged'}",
         "-o", str(dest)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    md = dest.read_text()
    assert "| weight merging (merged) |" in md and "| 0.624 |" in md  # the paper's Table 5 merged DA
    assert "| joint training (paper only) |" in md
    data = json.loads(dest.with_suffix(".json").read_text())
    report = json.loads((out / "report.json").read_text())["results"]
    assert data["runs"]["merged"]["da"] == pytest.approx(report["merged"]["da"])


def test_quickstart_base_option_sizes_and_bad_folder(tmp_path, monkeypatch):
    """--base DIR: real-model sizes unless an option says otherwise; a folder without a model is one line."""
    from judgeforge.errors import UserError
    from judgeforge.pipeline import quickstart as qs

    seen = {}
    monkeypatch.setattr(qs, "run", lambda cfg, progress=True: seen.setdefault("cfg", cfg) and {"table_md": ""})
    qs.main(["--base", "some/model", "--relative-steps", "7", "-o", str(tmp_path / "o")])
    cfg = seen.pop("cfg")
    assert (cfg.base, cfg.absolute_steps, cfg.relative_steps, cfg.batch_size) == (
        "some/model", qs.REAL_BASE["absolute_steps"], 7, qs.REAL_BASE["batch_size"])
    assert cfg.expert_learning_rate == qs.REAL_BASE["expert_learning_rate"]
    qs.main(["-o", str(tmp_path / "o")])
    assert seen.pop("cfg") == qs.QuickstartConfig(out=str(tmp_path / "o"))  # the default run is unchanged
    monkeypatch.undo()
    with pytest.raises(UserError, match=r"--base .*nope: not a model folder \(no config.json\)"):
        qs.run(qs.QuickstartConfig(out=str(tmp_path / "o2"), base=str(tmp_path / "nope")))
