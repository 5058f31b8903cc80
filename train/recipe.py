"""The training recipe: one dataclass, read from YAML with ``--key value`` overrides.

Every key is documented here (``judgeforge train --help`` prints them).  The recipe is
validated before anything heavy is imported, so a mistake (unknown key, negative learning
rate, a dataset or DeepSpeed file that does not exist) costs one line and exit 1, not a
traceback after a minute of model loading.

The resolved recipe (every key, defaults filled in) is written to ``output_dir/recipe.yaml``
when a run starts and beside the final model.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from judgeforge.errors import UserError
from judgeforge.train.arguments import KEY_ALIASES, SCHEDULERS, check_optimisation, top_level_hint
from judgeforge.train.checks import check_lora_targets, report_targets  # noqa: F401 - report_targets: also run.py's
from judgeforge.train.deepspeed_configs import resolve_deepspeed_path  # noqa: F401 - also run.py's

EXPERTS = ("absolute", "relative", "joint")
# What each expert trains on when `datasets` is left empty (the paper's collections on the hub).
DEFAULT_DATASETS = {
    "absolute": ["prometheus-eval/Feedback-Collection"],
    "relative": ["prometheus-eval/Preference-Collection"],
    "joint": ["prometheus-eval/Feedback-Collection", "prometheus-eval/Preference-Collection"],
}
ATTENTION = ("auto", "sdpa", "eager", "varlen", "flash_attention_2", "flash_attention_3")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class LoraRecipe:
    r: int = field(default=16, metadata=_help("LoRA rank"))
    alpha: int = field(default=32, metadata=_help("LoRA alpha (scale = alpha / r)"))
    dropout: float = field(default=0.05, metadata=_help("LoRA dropout"))
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        metadata=_help("module names that get adapters (lm_head allowed)"),
    )
    target_parameters: list[str] = field(
        default_factory=list,
        metadata=_help(
            "3-D expert parameters that get adapters (transformers 5 Mixtral: "
            "experts.gate_up_proj = w1+w3, experts.down_proj = w2)"
        ),
    )
    qlora: bool = field(default=False, metadata=_help("load the base in 4-bit NF4 (bitsandbytes, CUDA only)"))
    merge: bool = field(
        default=True,
        metadata=_help(
            "save the adapter merged into the base as a full model "
            "(what the merge stage needs); the adapter is kept too"
        ),
    )

    def validate(self, where: str) -> None:
        if self.r <= 0:
            raise UserError(f"{where}: lora.r must be a positive integer, got {self.r}")
        if self.alpha <= 0:
            raise UserError(f"{where}: lora.alpha must be positive, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"{where}: lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules and not self.target_parameters:
            raise UserError(f"{where}: lora needs target_modules or target_parameters")
        check_lora_targets(self, where)


@dataclass
class TrainRecipe:
    """Keys named as in transformers' TrainingArguments / TRL's SFTConfig where those have one; the older
    judgeforge names are aliases (``KEY_ALIASES``; docs/training.md, "Key names")."""

    KEY_ALIASES = KEY_ALIASES  # a class attribute, not a field (no annotation)

    # ---- what to train
    model: str | None = field(default=None, metadata=_help("base model: a local folder or a hub id"))
    init_from_config: dict | str | None = field(
        default=None,
        metadata=_help(
            "build a randomly initialised model instead of loading one: a mapping of "
            "judgeforge.tiny.tiny_config keys (hidden, layers, heads, kv_heads, intermediate, tie), "
            "{preset: mistral-7b-v0.2}, or a path to a config.json"
        ),
    )
    tokenizer: str | None = field(default=None, metadata=_help("tokenizer (default: the model's; 'mistral-v1' with init_from_config)"))
    chat_format: Literal["auto", "mistral", "model", "raw"] = field(default="auto", metadata=_help(
        "prompt wrapping: auto (Mistral-family: Prometheus' [INST] folding; others: their chat template), mistral, model, raw"))
    expert: Literal["absolute", "relative", "joint"] = field(
        default="absolute",
        metadata=_help("absolute (Feedback Collection), relative (Preference Collection) or joint (both)"),
    )
    datasets: list[str] = field(
        default_factory=list,
        metadata=_help(
            "files, folders, hub ids, or mini:absolute[:N] / mini:relative[:N] (built-in mini data); "
            "empty = the paper's collection(s) for the expert"
        ),
    )
    eval_split: float = field(
        default=0.01, metadata=_help("held-out fraction (paper: train_test_split 0.01); 0 = none")
    )
    split_seed: int = field(default=42, metadata=_help("seed of the held-out split (paper: 42)"))
    max_length: int = field(default=4096, metadata=_help("max tokens per row (prompt + output + EOS)"))
    overlong: Literal["drop", "truncate"] = field(default="drop", metadata=_help("rows over max_length"))
    # ---- optimisation
    learning_rate: float = field(default=1e-5, metadata=_help("peak learning rate"))
    lr_scheduler_type: str = field(default="cosine", metadata=_help(
        "transformers scheduler: " + ", ".join(SCHEDULERS) + " (the min_lr ones and warmup_stable_decay need "
        "lr_scheduler_kwargs)"))
    lr_scheduler_kwargs: dict = field(default_factory=dict, metadata=_help(
        "the scheduler's own settings, e.g. {min_lr_rate: 0.1} or {num_decay_steps: 100}"))
    warmup_ratio: float = field(default=0.1, metadata=_help("warmup as a fraction of the optimizer steps"))
    warmup_steps: float | None = field(default=None, metadata=_help(
        "warmup in optimizer steps (a value < 1 is a ratio, as in transformers 5); set, it replaces warmup_ratio"))
    optim: str = field(default="adamw_torch", metadata=_help(
        "transformers optimizer name (adamw_torch, adamw_torch_fused, adafactor, sgd, ...; not with a DeepSpeed "
        "config that names its own)"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping (0 = off)"))
    num_train_epochs: float = field(default=1.0, metadata=_help("passes over the training rows"))
    max_steps: int = field(
        default=-1, metadata=_help("stop after N optimizer steps (smoke runs); -1 = num_train_epochs")
    )
    per_device_train_batch_size: int = field(default=4, metadata=_help("rows per micro-batch per process"))
    gradient_accumulation_steps: int | None = field(
        default=1, metadata=_help("micro-batches per optimizer step; null = derived from global_batch_size")
    )
    global_batch_size: int | None = field(
        default=None,
        metadata=_help(
            "rows per optimizer step over all processes; sets gradient_accumulation_steps "
            "= global / (per_device_train_batch_size x processes)"
        ),
    )
    loss_normalization: Literal["tokens", "micro_batch"] = field(
        default="tokens",
        metadata=_help(
            "tokens: sum of target-token losses / target tokens of the whole optimizer step "
            "(transformers 5); micro_batch: mean per micro-batch, averaged (transformers 4.38, the paper)"
        ),
    )
    seed: int = field(default=42, metadata=_help("seed of initialisation, shuffling and dropout"))
    # ---- speed and memory
    bf16: bool | Literal["auto"] = field(
        default="auto",
        metadata=_help(
            "bfloat16 mixed precision: true, false, or auto (bf16 on GPUs and on CPUs that compute it "
            "natively, fp32 elsewhere; the first log line says which and why)"
        ),
    )
    gradient_checkpointing: bool = field(default=True, metadata=_help("recompute activations in backward"))
    attn_implementation: str = field(
        default="auto",
        metadata=_help(
            "auto | sdpa | eager | varlen | flash_attention_2 | flash_attention_3 "
            "(auto = varlen when packing, else sdpa)"
        ),
    )
    packing: bool = field(
        default=True,
        metadata=_help(
            "padding-free micro-batches: rows concatenated into one row, attention "
            "isolated per row (same rows per step as unpacked)"
        ),
    )
    pack_tokens: int | None = field(
        default=None,
        metadata=_help(
            "token budget per micro-batch (rows are added until it is full); null = "
            "per_device_train_batch_size rows per micro-batch (the paper's batches)"
        ),
    )
    kernels: Literal["auto", "liger", "none"] = field(
        default="auto",
        metadata=_help(
            "liger-kernel (RMSNorm/SwiGLU/RoPE + fused linear cross-entropy) on CUDA; "
            "auto = when installed and on CUDA"
        ),
    )
    deepspeed: str | None = field(
        default=None,
        metadata=_help(
            "DeepSpeed JSON (configs/deepspeed/zero2.json, zero3.json, zero3_offload.json) or null"
        ),
    )
    lora: LoraRecipe | None = field(
        default=None,
        metadata=_help(
            "null = full fine-tuning; else LoRA keys (r, alpha, dropout, target_modules, qlora, merge)"
        ),
    )
    dataloader_num_workers: int = field(default=0, metadata=_help("DataLoader worker processes"))
    training_args: dict = field(default_factory=dict, metadata=_help(
        "any other transformers TrainingArguments field, e.g. {optim_args: ..., torch_compile: true}; "
        "checked against the installed TrainingArguments before anything loads"))
    # ---- outputs
    output_dir: str = field(
        default="outputs/train", metadata=_help("checkpoints, logs and the final model (output_dir/model)")
    )
    save_steps: int = field(default=500, metadata=_help("checkpoint every N optimizer steps (0 = never)"))
    save_total_limit: int | None = field(default=2, metadata=_help("checkpoints to keep (null = all)"))
    resume_from_checkpoint: str = field(
        default="auto",
        metadata=_help("auto (from the last checkpoint in output_dir), never, or a checkpoint folder"),
    )
    overwrite_output_dir: bool = field(default=False, metadata=_help("replace an existing output_dir/model"))
    push_to_hub: bool = field(default=False, metadata=_help("upload output_dir/model (with its card) to hub_model_id"))
    hub_model_id: str | None = field(default=None, metadata=_help("the hub repository to push to (owner/name)"))
    hub_private_repo: bool = field(default=False, metadata=_help("create the hub repository as private"))
    report_to: str = field(
        default="none",
        metadata=_help(
            "none | wandb | tensorboard | wandb,tensorboard (wandb honours WANDB_MODE, e.g. offline)"
        ),
    )
    run_name: str | None = field(default=None, metadata=_help("run name for the loggers"))
    logging_steps: int = field(default=10, metadata=_help("log every N optimizer steps"))
    log_rows: bool = field(
        default=False,
        metadata=_help(
            "write the row ids of every micro-batch to output_dir/rows-rank<N>.jsonl (data-order audits)"
        ),
    )
    trust_remote_code: bool = field(default=False, metadata=_help("allow model code from the hub"))

    @staticmethod
    def unknown_key_hint(key: str) -> str | None:
        return top_level_hint(key)

    # ------------------------------------------------------------------ validation (cheap: no torch)
    def validate(self, where: str) -> None:
        def bad(key: str, msg: str) -> UserError:
            return UserError(f"{where}: {key} {msg}")

        if self.model is None and self.init_from_config is None:
            raise bad(
                "model", "is missing; give a model folder or hub id (or init_from_config for a random model)"
            )
        if self.model is not None and self.init_from_config is not None:
            raise bad("init_from_config", "and model are both set; keep one")
        if self.model is not None and _looks_local(self.model) and not Path(self.model).expanduser().exists():
            raise bad(
                "model",
                f"'{self.model}' does not exist; check the path (or give a hub id like "
                "mistralai/Mistral-7B-Instruct-v0.2)",
            )
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise bad("learning_rate", f"must be a positive number, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise bad("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.max_grad_norm < 0:
            raise bad("max_grad_norm", f"must be >= 0, got {self.max_grad_norm}")
        if not 0 <= self.eval_split < 1:
            raise bad("eval_split", f"must be in [0, 1), got {self.eval_split}")
        for key in ("max_length", "per_device_train_batch_size"):
            if getattr(self, key) <= 0:
                raise bad(key, f"must be a positive integer, got {getattr(self, key)}")
        if self.num_train_epochs <= 0:
            raise bad("num_train_epochs", f"must be positive, got {self.num_train_epochs}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise bad("max_steps", f"must be -1 (use num_train_epochs) or a positive integer, got {self.max_steps}")
        if self.gradient_accumulation_steps is not None and self.gradient_accumulation_steps <= 0:
            raise bad(
                "gradient_accumulation_steps",
                f"must be a positive integer, got {self.gradient_accumulation_steps}",
            )
        if self.global_batch_size is not None and self.global_batch_size <= 0:
            raise bad("global_batch_size", f"must be a positive integer, got {self.global_batch_size}")
        if self.gradient_accumulation_steps is None and self.global_batch_size is None:
            raise bad(
                "gradient_accumulation_steps", "is null but global_batch_size is not set; set one of them"
            )
        if self.pack_tokens is not None:
            if not self.packing:
                raise bad("pack_tokens", "needs packing: true")
            if self.pack_tokens < self.max_length:
                raise bad(
                    "pack_tokens",
                    f"({self.pack_tokens}) must be >= max_length ({self.max_length}) so every row fits",
                )
            if self.global_batch_size is not None:
                raise bad(
                    "global_batch_size",
                    "counts rows, but pack_tokens makes the rows per step vary; "
                    "use gradient_accumulation_steps with pack_tokens",
                )
        if self.attn_implementation not in ATTENTION:
            raise bad(
                "attn_implementation",
                f"must be one of {', '.join(ATTENTION)}, got '{self.attn_implementation}'",
            )
        if self.packing and self.attn_implementation in ("sdpa", "eager"):
            raise bad(
                "attn_implementation",
                f"'{self.attn_implementation}' lets packed rows attend to each other; "
                "use auto/varlen (or flash_attention_2), or set packing: false",
            )
        if self.attn_implementation == "varlen" and not self.packing:
            raise bad("attn_implementation", "varlen is for packed rows; set packing: true or use sdpa")
        if self.save_steps < 0:
            raise bad("save_steps", f"must be >= 0, got {self.save_steps}")
        if self.save_total_limit is not None and self.save_total_limit <= 0:
            raise bad("save_total_limit", f"must be a positive integer or null, got {self.save_total_limit}")
        if self.logging_steps <= 0:
            raise bad("logging_steps", f"must be a positive integer, got {self.logging_steps}")
        if self.resume_from_checkpoint not in ("auto", "never") and not Path(self.resume_from_checkpoint).is_dir():
            raise bad("resume_from_checkpoint",
                      f"'{self.resume_from_checkpoint}' is neither auto, never nor a checkpoint folder")
        check_optimisation(self, where)
        for name in report_targets(self.report_to):
            if name not in ("wandb", "tensorboard"):
                raise bad("report_to", f"'{name}' is not a logger; use none, wandb or tensorboard")
        from judgeforge.train.checks import check_inputs

        check_inputs(self, where)  # paths, sizes, numbers and loggers, before anything loads
        if self.deepspeed is not None:
            resolve_deepspeed_path(self.deepspeed, where)
        if (
            self.lora is not None
            and self.lora.qlora
            and self.deepspeed
            and "zero3" in Path(self.deepspeed).name
        ):
            raise bad("lora.qlora", "does not work with ZeRO-3 here; use zero2.json or no DeepSpeed")
        for src in self.dataset_sources():
            check_dataset_source(src, where)

    # ------------------------------------------------------------------ derived values
    def dataset_sources(self) -> list[str]:
        return list(self.datasets) if self.datasets else list(DEFAULT_DATASETS[self.expert])

    def accumulation_for(self, world_size: int) -> int:
        """Gradient accumulation steps at ``world_size`` processes (from global_batch_size when set)."""
        per_step = self.per_device_train_batch_size * world_size
        if self.global_batch_size is None:
            return int(self.gradient_accumulation_steps)
        if self.global_batch_size % per_step:
            raise UserError(
                f"global_batch_size {self.global_batch_size} is not a multiple of per_device_train_batch_size "
                f"{self.per_device_train_batch_size} x {world_size} processes; change one of them"
            )
        ga = self.global_batch_size // per_step
        if self.gradient_accumulation_steps is not None and self.gradient_accumulation_steps != ga:
            raise UserError(
                f"gradient_accumulation_steps {self.gradient_accumulation_steps} disagrees with "
                f"global_batch_size "
                f"{self.global_batch_size} at {world_size} processes (needs {ga}); "
                "set gradient_accumulation_steps: null"
            )
        return ga


def _looks_local(name: str, *, data: bool = False) -> bool:
    """A name that can only be a local path, not a hub id (``owner/name``; a model may also be a
    legacy one-word id).  Data: a file suffix or a name without an owner is local too."""
    s = str(name)
    if s.startswith(("/", "./", "../", "~")) or s.count("/") > 1:
        return True
    return data and (s.endswith(DATA_SUFFIXES) or "/" not in s)


def check_dataset_source(src: str, where: str) -> None:
    if src.startswith("mini:"):
        parse_mini(src, where)
        return
    if _looks_local(src, data=True) and not Path(src).expanduser().exists():
        raise UserError(
            f"{where}: datasets: '{src}' does not exist; check the path "
            "(or give a hub id like prometheus-eval/Feedback-Collection)"
        )


def parse_mini(src: str, where: str = "recipe") -> tuple[str, int]:
    """``mini:absolute:2000`` -> ("absolute", 2000); the default size is 2000 rows."""
    parts = src.split(":")
    if len(parts) not in (2, 3) or parts[1] not in ("absolute", "relative"):
        raise UserError(f"{where}: datasets: '{src}' should look like mini:absolute or mini:relative:2000")
    n = 2000
    if len(parts) == 3:
        try:
            n = int(parts[2])
        except ValueError:
            n = -1
        if n <= 0:
            raise UserError(f"{where}: datasets: '{src}': the row count must be a positive integer")
    return parts[1], n


def load(path: str | os.PathLike | None, overrides: list[str] | dict | None = None) -> TrainRecipe:
    from judgeforge.config import load_recipe

    return load_recipe(TrainRecipe, path, overrides)
