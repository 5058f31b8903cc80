"""The recipe's optimisation keys as transformers sees them: scheduler, optimizer, the
``training_args:`` passthrough, and the ``TrainingArguments`` they become.

Names.  A recipe key that transformers' ``TrainingArguments`` (or TRL's ``SFTConfig``) also has
carries that name (the canonical one); judgeforge's older names are accepted aliases
(:data:`KEY_ALIASES`; one recipe may not give both).  Any other ``TrainingArguments`` field goes
under ``training_args:`` and is checked against the installed dataclass's fields.

Every value that passes validation runs: scheduler names are limited to those a judgeforge run can
step (the two that need an evaluation loop are refused), the ones that need settings must get them
in ``lr_scheduler_kwargs``, and :func:`preflight` builds the real scheduler and optimizer class on a
one-parameter optimizer before the model loads.
"""

from __future__ import annotations

import json
import math

from judgeforge.errors import UserError, did_you_mean

# judgeforge's older names -> the TrainingArguments / SFTConfig names (docs/training.md, "Key names")
KEY_ALIASES = {
    "epochs": "num_train_epochs",
    "lr_scheduler": "lr_scheduler_type",
    "per_device_batch_size": "per_device_train_batch_size",
    "dataloader_workers": "dataloader_num_workers",
    "resume": "resume_from_checkpoint",
    "overwrite": "overwrite_output_dir",
}

# scheduler -> the lr_scheduler_kwargs it needs (a tuple inside = one of them)
SCHEDULERS: dict[str, tuple] = {
    "linear": (),
    "cosine": (),
    "cosine_with_restarts": (),
    "polynomial": (),
    "constant": (),
    "constant_with_warmup": (),
    "inverse_sqrt": (),
    "cosine_with_min_lr": (("min_lr", "min_lr_rate"),),
    "cosine_warmup_with_min_lr": (("min_lr", "min_lr_rate"),),
    "warmup_stable_decay": ("num_decay_steps",),
}
REFUSED_SCHEDULERS = {
    "reduce_lr_on_plateau": "steps on evaluation metrics, and judgeforge train runs no evaluation loop",
    "greedy": "steps on evaluation metrics, and judgeforge train runs no evaluation loop",
}
# set by the schedule itself, never by lr_scheduler_kwargs
_SCHEDULE_OWN = {"optimizer", "num_warmup_steps", "num_training_steps", "last_epoch"}
EXAMPLE_KWARGS = {"min_lr": "{min_lr_rate: 0.1}", "min_lr_rate": "{min_lr_rate: 0.1}",
                  "num_decay_steps": "{num_decay_steps: 100}"}

# TrainingArguments fields that are recipe keys (set them at the top level) ...
RECIPE_KEYS = (
    "output_dir", "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "optim",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "num_train_epochs",
    "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "seed", "bf16",
    "gradient_checkpointing", "deepspeed", "dataloader_num_workers", "save_steps", "save_total_limit",
    "resume_from_checkpoint", "report_to", "run_name", "logging_steps", "push_to_hub", "hub_model_id",
    "hub_private_repo",
)
# ... and fields judgeforge sets itself, with what to do instead
OWNED = {
    "remove_unused_columns": "judgeforge's micro-batches carry their own columns",
    "label_names": "judgeforge computes the loss on its own labels",
    "use_cpu": "judgeforge trains on the GPU when there is one, else on the CPU",
    "ddp_backend": "judgeforge picks nccl on GPUs and gloo on the CPU",
    "data_seed": "the data order follows seed (the same rows per step after a resume)",
    "save_strategy": "use save_steps (0 = never)",
    "activation_checkpointing": "use gradient_checkpointing",
    "activation_checkpointing_kwargs": "use gradient_checkpointing",
    "gradient_checkpointing_kwargs": "use gradient_checkpointing",
    "use_liger_kernel": "use kernels: liger",
    "liger_kernel_config": "use kernels: liger",
    "fp16": "judgeforge trains in bf16 or fp32 (bf16: true / false / auto)",
    "disable_tqdm": "the progress display is judgeforge's",
    "average_tokens_across_devices": "use loss_normalization",
    "eval_strategy": "judgeforge train runs no evaluation loop; evaluate output_dir/model with judgeforge eval",
    "do_eval": "judgeforge train runs no evaluation loop; evaluate output_dir/model with judgeforge eval",
    "load_best_model_at_end": "judgeforge train runs no evaluation loop; output_dir/model is the last step",
    "hub_strategy": "judgeforge pushes output_dir/model once at the end (push_to_hub, hub_model_id)",
    "hub_always_push": "judgeforge pushes output_dir/model once at the end (push_to_hub, hub_model_id)",
    "hub_token": "set HF_TOKEN in the environment (or run 'hf auth login')",
    "local_rank": "torchrun / deepspeed set it",
}


def training_args_fields() -> list[str]:
    """The init fields of the installed ``transformers.TrainingArguments``, read from its source with
    ``ast`` (importing transformers would import torch: seconds, on every recipe mistake).
    tests/test_train_arguments.py checks the list against ``dataclasses.fields``."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.origin:
        raise ImportError("transformers is not installed")
    tree = ast.parse((Path(spec.origin).parent / "training_args.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainingArguments")
    names = []
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if "ClassVar" in ast.unparse(node.annotation):
            continue
        value = node.value
        if isinstance(value, ast.Call) and any(k.arg == "init" and isinstance(k.value, ast.Constant)
                                               and k.value.value is False for k in value.keywords):
            continue
        names.append(node.target.id)
    return names


def _transformers_version() -> str:
    from importlib.metadata import version

    return version("transformers")


def top_level_hint(key: str) -> str | None:
    """Why a top-level key is unknown when it is a TrainingArguments field (for config.build)."""
    if key in OWNED:
        return f"judgeforge sets '{key}' itself: {OWNED[key]}"
    try:
        fields = training_args_fields()
    except ImportError:
        return None
    if key in fields:
        return f"'{key}' is a TrainingArguments field without a recipe key: put it under training_args: {{{key}: ...}}"
    return None


def check_optimisation(recipe, where: str) -> None:
    """Scheduler, its settings, the optimizer and the passthrough; transformers is imported only when
    lr_scheduler_kwargs, a non-default optim or training_args need it."""

    def bad(key: str, msg: str) -> UserError:
        return UserError(f"{where}: {key} {msg}")

    name = recipe.lr_scheduler_type
    if name in REFUSED_SCHEDULERS:
        raise bad("lr_scheduler_type", f"'{name}' {REFUSED_SCHEDULERS[name]}; use cosine, linear or "
                  "cosine_with_min_lr")
    if name not in SCHEDULERS:
        raise bad("lr_scheduler_type", f"'{name}' is not a scheduler{did_you_mean(name, SCHEDULERS)}; use one of "
                  f"{', '.join(SCHEDULERS)}")
    kwargs = recipe.lr_scheduler_kwargs or {}
    for need in SCHEDULERS[name]:
        options = need if isinstance(need, tuple) else (need,)
        given = [k for k in options if k in kwargs]
        if not given:
            raise bad("lr_scheduler_kwargs", f"must set {' or '.join(options)} for lr_scheduler_type {name}; e.g. "
                      f"--lr_scheduler_kwargs '{EXAMPLE_KWARGS[options[-1]]}'")
        if len(given) > 1:
            raise bad("lr_scheduler_kwargs", f"sets both {' and '.join(given)} for {name}; keep one")
    if kwargs:
        import inspect

        from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
        from transformers.trainer_utils import SchedulerType

        params = set(inspect.signature(TYPE_TO_SCHEDULER_FUNCTION[SchedulerType(name)]).parameters) - _SCHEDULE_OWN
        for k in kwargs:
            if k not in params:
                hint = f"; {name} takes {', '.join(sorted(params))}" if params else f"; {name} takes none"
                raise bad("lr_scheduler_kwargs", f"'{k}' is not a setting of {name}{did_you_mean(str(k), params)}{hint}")
    if recipe.warmup_steps is not None:
        w = recipe.warmup_steps
        if w < 0 or (w >= 1 and not float(w).is_integer()):
            raise bad("warmup_steps", f"must be a whole number of steps, or a ratio in [0, 1), got {w}")
    if recipe.optim != "adamw_torch":
        from transformers.training_args import OptimizerNames

        names = [o.value for o in OptimizerNames]
        if recipe.optim not in names:
            raise bad("optim", f"'{recipe.optim}' is not a transformers optimizer{did_you_mean(recipe.optim, names)}")
        if recipe.deepspeed and _deepspeed_has_optimizer(recipe.deepspeed):
            raise bad("optim", f"'{recipe.optim}' would be ignored: the DeepSpeed config {recipe.deepspeed} defines "
                      "its own optimizer; remove its \"optimizer\" section or leave optim at adamw_torch")
    if recipe.training_args:
        check_passthrough(recipe.training_args, where)


def _deepspeed_has_optimizer(path: str) -> bool:
    from judgeforge.train.deepspeed_configs import resolve_deepspeed_path

    try:
        return "optimizer" in json.loads(resolve_deepspeed_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UserError):
        return False


def check_passthrough(extra: dict, where: str) -> None:
    """``training_args:`` keys: fields of the installed TrainingArguments that no recipe key covers."""
    fields = training_args_fields()
    for key in extra:
        k = str(key)
        if k in RECIPE_KEYS:
            raise UserError(f"{where}: training_args.{k} is a recipe key; set {k}: at the top level")
        if k in OWNED:
            raise UserError(f"{where}: training_args.{k}: judgeforge sets it itself; {OWNED[k]}")
        if k not in fields:
            alias = KEY_ALIASES.get(k)
            if alias:
                raise UserError(f"{where}: training_args.{k} is a recipe key (alias of {alias}); set it at the top level")
            raise UserError(f"{where}: training_args.{k} is not a TrainingArguments field (transformers "
                            f"{_transformers_version()}){did_you_mean(k, fields)}")


# --------------------------------------------------------------------------- the TrainingArguments


def warmup_for(recipe, total_steps: int) -> int:
    w = recipe.warmup_steps
    if w is None:
        return math.ceil(recipe.warmup_ratio * total_steps)
    return math.ceil(w * total_steps) if w < 1 else int(w)


def build_training_args(recipe, *, out, ga: int, bf16: bool, on_gpu: bool, ds_path, world: int,
                        checkpointing: dict, report_to):
    """The ``TrainingArguments`` of a run (before the model loads; with DeepSpeed they set up the process
    group).  A value transformers refuses is one line naming the key."""
    from transformers import TrainingArguments

    values = dict(
        output_dir=str(out),
        per_device_train_batch_size=1,  # one dataset item = one whole micro-batch (see dataset.py)
        gradient_accumulation_steps=ga,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler_type,
        lr_scheduler_kwargs=dict(recipe.lr_scheduler_kwargs or {}),
        warmup_steps=0,  # set by the run from warmup_ratio / warmup_steps once the steps are known
        optim=recipe.optim,
        weight_decay=recipe.weight_decay,
        adam_beta1=recipe.adam_beta1,
        adam_beta2=recipe.adam_beta2,
        adam_epsilon=recipe.adam_epsilon,
        max_grad_norm=recipe.max_grad_norm,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=bf16,
        use_cpu=not on_gpu,
        **checkpointing,
        deepspeed=str(ds_path) if ds_path else None,
        ddp_backend="gloo" if not on_gpu and (ds_path or world > 1) else None,
        save_strategy="steps" if recipe.save_steps else "no",
        save_steps=recipe.save_steps or 500,
        save_total_limit=recipe.save_total_limit,
        logging_steps=recipe.logging_steps,
        logging_first_step=True,
        report_to=report_to or "none",
        run_name=recipe.run_name,
        remove_unused_columns=False,
        dataloader_num_workers=recipe.dataloader_num_workers,
        average_tokens_across_devices=True,
        disable_tqdm=True,
    )
    values.update(recipe.training_args or {})
    try:
        args = TrainingArguments(**values)
    except (ValueError, TypeError, ImportError) as e:
        keys = ", ".join(f"training_args.{k}" for k in (recipe.training_args or {})) or "the optimisation keys"
        raise UserError(f"recipe: transformers refuses {keys}: {str(e).splitlines()[0]}; change or remove "
                        "the value") from None
    check_optimizer(args)
    return args


def check_optimizer(args) -> None:
    """The optimizer class ``optim`` names can be built here (its package installed), before data or model."""
    from transformers import Trainer

    try:
        Trainer.get_optimizer_cls_and_kwargs(args)
    except (ImportError, ValueError, RuntimeError) as e:
        name = getattr(args.optim, "value", args.optim)
        raise UserError(f"recipe: optim '{name}' cannot run here: {str(e).splitlines()[0]}; install what it "
                        "names or use optim: adamw_torch") from None


def preflight(args, total_steps: int) -> None:
    """The run's scheduler over all its steps, on a one-parameter optimizer, before the model loads: a
    schedule that cannot run fails here in one line, not after loading."""
    import torch
    from transformers.optimization import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    try:
        sched = get_scheduler(args.lr_scheduler_type, opt, num_warmup_steps=args.warmup_steps,
                              num_training_steps=total_steps, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
        for step in range(min(total_steps, 100_000)):
            opt.step()
            sched.step()
            lr = opt.param_groups[0]["lr"]
            if not (math.isfinite(lr) and lr >= 0):
                raise ValueError(f"the learning rate is {lr} after step {step + 1}")
    except (ValueError, TypeError, ArithmeticError) as e:
        raise UserError(f"recipe: lr_scheduler_type {args.lr_scheduler_type} with lr_scheduler_kwargs "
                        f"{dict(args.lr_scheduler_kwargs or {})} cannot run {total_steps} steps: "
                        f"{str(e).splitlines()[0]}; fix lr_scheduler_kwargs") from None
