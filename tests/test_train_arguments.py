"""Recipe key names (TrainingArguments / SFTConfig names canonical, older names as aliases), the
``training_args:`` passthrough, and every scheduler that passes validation running for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgeforge.errors import UserError
from judgeforge.train.arguments import KEY_ALIASES, REFUSED_SCHEDULERS, SCHEDULERS
from judgeforge.train.recipe import load

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "train" / "tiny-cpu.yaml"
# what each scheduler that needs settings is given (the fix its validation error names)
KWARGS = {"cosine_with_min_lr": {"min_lr_rate": 0.1}, "cosine_warmup_with_min_lr": {"min_lr": 1e-4},
          "warmup_stable_decay": {"num_decay_steps": 2}}


def test_aliases_are_one_rule_and_canonical_names_are_stored(tmp_path):
    r = load(TINY, ["--epochs", "2", "--per_device_batch_size", "3", "--lr_scheduler", "linear"])
    assert (r.num_train_epochs, r.per_device_train_batch_size, r.lr_scheduler_type) == (2.0, 3, "linear")
    # each source is renamed on its own: the command line's alias overrides the file's canonical key
    assert load(TINY, ["--num_train_epochs", "5"]).num_train_epochs == 5.0
    both = tmp_path / "both.yaml"
    both.write_text(TINY.read_text() + "epochs: 3\n")  # tiny-cpu.yaml already says num_train_epochs
    with pytest.raises(UserError) as e:
        load(both)
    assert str(e.value) == (f"{both}: 'epochs' and 'num_train_epochs' are the same key ('epochs' is the older "
                            "alias of 'num_train_epochs'); keep only 'num_train_epochs'")
    from judgeforge.train.recipe import TrainRecipe

    fields = set(TrainRecipe.__dataclass_fields__)
    assert set(KEY_ALIASES.values()) <= fields and not set(KEY_ALIASES) & fields


def test_canonical_names_are_the_installed_training_arguments_names():
    import dataclasses

    from transformers import TrainingArguments

    from judgeforge.train.arguments import OWNED, RECIPE_KEYS, training_args_fields

    fields = training_args_fields()
    assert fields == [f.name for f in dataclasses.fields(TrainingArguments) if f.init]  # read without importing
    # every recipe key said to be a TrainingArguments field is one, and so are the refused ones
    assert set(RECIPE_KEYS) - {"lr_scheduler_kwargs"} <= set(fields)
    assert set(OWNED) <= set(fields)
    # canonical targets of the aliases: TrainingArguments fields (overwrite_output_dir: transformers 4's name)
    assert set(KEY_ALIASES.values()) - {"overwrite_output_dir"} <= set(fields)


def test_passthrough_reaches_the_training_arguments(tmp_path):
    from judgeforge.train.arguments import build_training_args

    r = load(TINY, ["--training_args", "{logging_nan_inf_filter: false, optim_args: 'foo=1'}", "--optim", "sgd",
                    "--output_dir", str(tmp_path)])
    args = build_training_args(r, out=tmp_path, ga=1, bf16=False, on_gpu=False, ds_path=None, world=1,
                               checkpointing={}, report_to=[])
    assert args.logging_nan_inf_filter is False and args.optim_args == "foo=1" and args.optim == "sgd"
    # a value transformers refuses is one line naming the passthrough key
    r = load(TINY, ["--training_args", "{logging_strategy: sometimes}", "--output_dir", str(tmp_path)])
    with pytest.raises(UserError, match="transformers refuses training_args.logging_strategy"):
        build_training_args(r, out=tmp_path, ga=1, bf16=False, on_gpu=False, ds_path=None, world=1,
                            checkpointing={}, report_to=[])


def test_optim_with_a_deepspeed_optimizer_is_refused():
    with pytest.raises(UserError, match="defines its own optimizer"):
        load(TINY, ["--optim", "sgd", "--deepspeed", "configs/deepspeed/zero2.json"])


def test_every_scheduler_that_passes_validation_runs(tmp_path):
    """Each accepted name: validated like a recipe, then the real scheduler over a short run
    (preflight: transformers' get_scheduler on a one-parameter optimizer, every step); the installed
    transformers' schedulers are all either accepted or refused with the reason."""
    from transformers.trainer_utils import SchedulerType

    from judgeforge.train.arguments import build_training_args, preflight, warmup_for

    assert {s.value for s in SchedulerType} == set(SCHEDULERS) | set(REFUSED_SCHEDULERS)
    for name in SCHEDULERS:
        extra = ["--lr_scheduler_kwargs", json.dumps(KWARGS[name])] if name in KWARGS else []
        r = load(TINY, ["--lr_scheduler_type", name, *extra, "--output_dir", str(tmp_path)])
        args = build_training_args(r, out=tmp_path, ga=1, bf16=False, on_gpu=False, ds_path=None, world=1,
                                   checkpointing={}, report_to=[])
        args.warmup_steps = warmup_for(r, 10)
        preflight(args, 10)
    # a setting the scheduler's own code refuses fails in the preflight, before any model
    r = load(TINY, ["--lr_scheduler_type", "warmup_stable_decay", "--lr_scheduler_kwargs",
                    "{num_decay_steps: 2, decay_type: wobbly}", "--output_dir", str(tmp_path)])
    args = build_training_args(r, out=tmp_path, ga=1, bf16=False, on_gpu=False, ds_path=None, world=1,
                               checkpointing={}, report_to=[])
    with pytest.raises(UserError, match="Unknown decay type"):
        preflight(args, 10)


def test_schedulers_that_need_settings_train_end_to_end(tmp_path):
    """A real tiny train run (fp32, from config, synthetic rows) with each scheduler that needs
    lr_scheduler_kwargs: the learning rates logged are the schedule's."""
    from judgeforge.train import dataset as D
    from judgeforge.train.run import train

    rows = D.synthetic_rows([24] * 8, 0.5, seed=0)
    for name in ("cosine_with_min_lr", "warmup_stable_decay"):
        out = tmp_path / name
        r = load(TINY, ["--init_from_config", "{hidden: 32, layers: 1, heads: 2, kv_heads: 1}", "--bf16", "false",
                        "--lr_scheduler_type", name, "--lr_scheduler_kwargs", json.dumps(KWARGS[name]),
                        "--warmup_steps", "0", "--max_steps", "4", "--per_device_train_batch_size", "2",
                        "--logging_steps", "1", "--learning_rate", "1e-3", "--output_dir", str(out)])
        train(r, synthetic=rows, save=False)
        log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
        lrs = [x["learning_rate"] for x in log if "learning_rate" in x]
        assert len(lrs) == 4 and lrs[0] == pytest.approx(1e-3)
        if name == "cosine_with_min_lr":  # cosine from 1e-3 down towards min_lr_rate x 1e-3
            assert lrs == sorted(lrs, reverse=True) and lrs[-1] > 1e-4
        else:  # stable for 2 steps, then the 2 decay steps (cosine from the peak)
            assert lrs[:3] == [pytest.approx(1e-3)] * 3 and lrs[3] == pytest.approx(5e-4)
        assert json.loads((out / "train_results.json").read_text())["global_step"] == 4


def test_every_optimizer_that_passes_the_check_steps(tmp_path):
    """optim: the names whose package is missing fail check_optimizer in one line; each of the others
    builds its real optimizer and takes a step."""
    import torch
    from transformers import Trainer
    from transformers.training_args import OptimizerNames

    from judgeforge.train.arguments import build_training_args

    ran, refused = [], []
    for name in (o.value for o in OptimizerNames):
        r = load(TINY, ["--optim", name, "--output_dir", str(tmp_path)])
        try:
            args = build_training_args(r, out=tmp_path, ga=1, bf16=False, on_gpu=False, ds_path=None, world=1,
                                       checkpointing={}, report_to=[])
        except UserError as e:
            assert str(e).startswith(f"recipe: optim '{name}' cannot run here") or "transformers refuses" in str(e)
            refused.append(name)
            continue
        cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
        p = torch.nn.Parameter(torch.ones(3))
        opt = cls([p], **kwargs)
        p.sum().backward()
        opt.step()
        assert not torch.equal(p.detach(), torch.ones(3)), name
        ran.append(name)
    assert {"adamw_torch", "sgd", "adafactor"} <= set(ran) and refused
