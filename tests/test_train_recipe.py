"""Training recipes: the 7B recipes equal the paper's, the 8x7B LoRA ones load, bad recipes fail cleanly.

The CLI tests run the real ``judgeforge train`` in a subprocess: a mistake must give exactly one
line on stderr and exit status 1 (no traceback), before anything heavy loads.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from judgeforge.errors import UserError
from judgeforge.train.recipe import TrainRecipe, load

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "train"
REFERENCE = ROOT.parent / "shared" / "reference" / "prometheus2.md"

# The paper's 7B recipe (../shared/reference/prometheus2.md, "Training recipe (7B)").
PAPER_7B = {
    "model": "mistralai/Mistral-7B-Instruct-v0.2",
    "num_train_epochs": 1.0,
    "learning_rate": 1e-5,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "per_device_train_batch_size": 4,
    "processes": 16,
    "global_batch_size": 64,
    "gradient_accumulation_steps": 1,
    "max_length": 4096,
    "seed": 42,
    "bf16": True,
    "gradient_checkpointing": True,
    "eval_split": 0.01,
    "split_seed": 42,
    "zero_stage": 3,
    "offload": False,
    "lora": None,
}
DATASETS = {
    "absolute": ["prometheus-eval/Feedback-Collection"],
    "relative": ["prometheus-eval/Preference-Collection"],
    "joint": ["prometheus-eval/Feedback-Collection", "prometheus-eval/Preference-Collection"],
}


def test_reference_file_states_the_values_we_check():
    if not REFERENCE.exists():
        pytest.skip(f"the reference file is not at {REFERENCE}")
    text = REFERENCE.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| hyperparameters |"))
    assert "1 epoch" in row and "lr 1e-5" in row and "cosine schedule" in row
    assert "warmup ratio 0.1" in row and "4 sequences per GPU" in row
    assert "16 processes (global batch 64)" in row and "grad accumulation 1" in row
    assert "max length 4096" in row and "seed 42" in row and "AdamW" in row
    assert re.search(r"\| split \| 1% held out \(train_test_split test_size=0\.01, seed 42\)", text)
    assert "DeepSpeed ZeRO-3 without offload" in text and "gradient checkpointing" in text
    assert "mistralai/Mistral-7B-Instruct-v0.2, bf16" in text
    lora = next(line for line in text.splitlines() if line.startswith("| 8x7B |"))
    assert "r=256" in lora and "alpha 512" in lora and "dropout 0.1" in lora and "batch 8" in lora


@pytest.mark.parametrize("expert", ["absolute", "relative", "joint"])
def test_7b_recipes_match_the_paper(expert):
    import json

    r = load(CONFIGS / f"prometheus2-7b-{expert}.yaml")
    assert r.expert == expert
    assert r.dataset_sources() == DATASETS[expert]
    got = {
        "model": r.model,
        "num_train_epochs": r.num_train_epochs,
        "learning_rate": r.learning_rate,
        "lr_scheduler_type": r.lr_scheduler_type,
        "warmup_ratio": r.warmup_ratio,
        "per_device_train_batch_size": r.per_device_train_batch_size,
        "processes": 16,
        "global_batch_size": r.global_batch_size,
        "gradient_accumulation_steps": r.accumulation_for(16),
        "max_length": r.max_length,
        "seed": r.seed,
        "bf16": r.bf16,
        "gradient_checkpointing": r.gradient_checkpointing,
        "eval_split": r.eval_split,
        "split_seed": r.split_seed,
        "lora": r.lora,
    }
    ds = json.loads((ROOT / r.deepspeed).read_text())
    got["zero_stage"] = ds["zero_optimization"]["stage"]
    got["offload"] = (
        "offload_optimizer" in ds["zero_optimization"] or "offload_param" in ds["zero_optimization"]
    )
    assert got == PAPER_7B
    assert r.max_steps == -1 and r.init_from_config is None
    # AdamW with the library defaults the paper's stack used
    assert ds["optimizer"]["type"] == "AdamW"
    assert (r.adam_beta1, r.adam_beta2, r.adam_epsilon, r.weight_decay) == (0.9, 0.999, 1e-8, 0.0)
    # the same rows per step as padded batches: packing may not change the batch composition
    assert r.pack_tokens is None and r.loss_normalization == "micro_batch"
    # at fewer GPUs the global batch stays 64
    assert r.accumulation_for(8) == 2 and r.accumulation_for(2) == 8


@pytest.mark.parametrize("expert", ["absolute", "relative"])
def test_8x7b_lora_recipes(expert):
    r = load(CONFIGS / f"prometheus2-8x7b-{expert}-lora.yaml")
    assert r.model == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert (r.lora.r, r.lora.alpha, r.lora.dropout) == (256, 512, 0.1)
    assert set(r.lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "lm_head"}
    # w1/w3 (gate_up_proj) and w2 (down_proj) of every expert
    assert {p.rsplit(".", 1)[-1] for p in r.lora.target_parameters} == {"gate_up_proj", "down_proj"}
    assert r.global_batch_size == 8 and r.learning_rate == 1e-5


def test_deepspeed_configs_are_valid_json_with_cpu_safe_optimizer():
    import json

    for name in ("zero2", "zero3", "zero3_offload"):
        cfg = json.loads((ROOT / "configs" / "deepspeed" / f"{name}.json").read_text())
        assert (
            cfg["train_micro_batch_size_per_gpu"] == "auto" and cfg["gradient_accumulation_steps"] == "auto"
        )
        stage = cfg["zero_optimization"]["stage"]
        assert stage == (2 if name == "zero2" else 3)
        if stage == 3:
            assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
        if name != "zero3_offload":  # no op to compile
            assert cfg["optimizer"]["params"]["torch_adam"] is True


def test_tiny_recipe_loads():
    r = load(CONFIGS / "tiny-cpu.yaml")
    assert r.deepspeed is None and r.init_from_config["hidden"] == 128 and r.packing


def test_overrides_and_validation(tmp_path):
    r = load(CONFIGS / "tiny-cpu.yaml", ["--learning_rate", "3e-4", "--lora.r", "8", "--packing", "false"])
    assert r.learning_rate == 3e-4 and r.lora.r == 8 and r.packing is False
    with pytest.raises(UserError, match="pack_tokens"):
        load(CONFIGS / "tiny-cpu.yaml", ["--pack_tokens", "100"])
    with pytest.raises(UserError, match="lets packed rows attend"):
        load(CONFIGS / "tiny-cpu.yaml", ["--attn_implementation", "sdpa"])
    with pytest.raises(UserError, match="not a multiple"):
        TrainRecipe(model="x/y", global_batch_size=64, gradient_accumulation_steps=None).accumulation_for(3)
    with pytest.raises(UserError, match="disagrees"):
        TrainRecipe(model="x/y", global_batch_size=64, gradient_accumulation_steps=1).accumulation_for(8)


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "judgeforge", "train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "1e-5"], "unknown key 'lr'"),
        (["--datasets", "data/nowhere.jsonl"], "datasets: 'data/nowhere.jsonl' does not exist"),
        (["--learning_rate", "-1e-5"], "learning_rate must be a positive number"),
        (
            ["--deepspeed", "configs/deepspeed/zero9.json"],
            "deepspeed: 'configs/deepspeed/zero9.json' does not exist",
        ),
    ],
    ids=["unknown-key", "missing-dataset", "negative-lr", "missing-deepspeed"],
)
def test_bad_recipe_is_one_line_and_exit_1(args, message):
    proc = _cli("configs/train/tiny-cpu.yaml", *args)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("judgeforge: error: configs/train/tiny-cpu.yaml: ")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_bad_key_in_yaml_file_names_the_file(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text((CONFIGS / "tiny-cpu.yaml").read_text() + "\nlearning_rat: 1e-4\n")
    proc = _cli(str(bad))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"judgeforge: error: {bad}: unknown key 'learning_rat' "
        "(did you mean 'learning_rate'?); see the recipe reference for the keys"
    )


def test_help_lists_the_keys():
    proc = _cli("--help")
    assert proc.returncode == 0
    for key in ("--learning_rate", "--packing", "--deepspeed", "--lora.r", "--pack_tokens", "--resume_from_checkpoint", "--num_train_epochs"):
        assert key in proc.stdout
    assert "(alias: epochs)" in proc.stdout and "--training_args" in proc.stdout
    for key in ():
        assert key in proc.stdout


def test_deepspeed_configs_are_found_outside_the_checkout(tmp_path, monkeypatch):
    # a wheel install has no configs/ folder: the shipped copy (package data) answers instead
    from judgeforge.train import deepspeed_configs as R

    monkeypatch.setattr(R, "REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    shipped = R.shipped_deepspeed_configs()
    assert {"zero2", "zero3", "zero3_offload"} <= set(shipped)
    for value in ("configs/deepspeed/zero3.json", "zero3"):
        got = R.resolve_deepspeed_path(value)
        assert got.read_bytes() == (ROOT / "configs" / "deepspeed" / "zero3.json").read_bytes()
    with pytest.raises(UserError, match="zero9"):
        R.resolve_deepspeed_path("configs/deepspeed/zero9.json")
