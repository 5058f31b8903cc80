"""``train(recipe) -> Path``: one expert, from recipe to a finished Hugging Face model folder.

Usable in-process (the quickstart calls it) and under any launcher (``deepspeed``,
``torchrun``, ``accelerate``): the process group, world size and rank come from the
launcher's environment; without one a single process runs (DeepSpeed included: a one-process
gloo/NCCL group is set up here).

Layout of ``output_dir``::

    recipe.yaml            the resolved recipe (every key)
    log.jsonl              one line per log step (loss, learning rate, grad norm, tokens/s)
    data/heldout-*.jsonl   the held-out rows (collections' schemas) for evaluation
    checkpoint-N/          Trainer checkpoints (model, optimizer, scheduler, RNG, data position);
                           a ``.complete`` marker is written once every process has finished it
    model/                 the final model: safetensors, config, generation config, tokenizer with
                           the judge chat template, train_recipe.yaml, train_results.json.
                           Written under a temporary name and renamed when complete.
    adapter/               LoRA runs: the adapter alone (peft format)

Progress: ``train(recipe, progress=fn)`` calls ``fn(event)`` with a dict: ``stage`` (data,
model, train, save, done), and during training ``step``, ``total_steps``, ``loss``,
``eta_s``, ``tokens_per_s``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
import weakref
from pathlib import Path

from judgeforge.backends import PAPER_SAMPLING
from judgeforge.errors import UserError
from judgeforge.io import usual_permissions
from judgeforge.train.arguments import build_training_args, preflight, warmup_for
from judgeforge.train.recipe import TrainRecipe, report_targets, resolve_deepspeed_path

FINAL = "model"
COMPLETE = ".complete"
# The Prometheus 2 evaluation protocol, stored as the model's sampling defaults.
GENERATION_DEFAULTS = dict(do_sample=True, **PAPER_SAMPLING.decoding())


def rank_and_world() -> tuple[int, int, int]:
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def use_bf16(recipe: TrainRecipe) -> bool:
    """The recipe's ``bf16`` resolved for this machine (``auto``: judgeforge.devices.choose_dtype)."""
    from judgeforge.devices import choose_dtype

    return choose_dtype(recipe.bf16).bf16


def _log(msg: str) -> None:
    if rank_and_world()[0] == 0:
        print(f"judgeforge train: {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_distributed(use_deepspeed: bool) -> None:
    """A one-process group for DeepSpeed when no launcher set one up; CPU DeepSpeed settings."""
    import torch

    if use_deepspeed and "WORLD_SIZE" not in os.environ:
        os.environ.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(_free_port()),
            RANK="0",
            LOCAL_RANK="0",
            WORLD_SIZE="1",
            LOCAL_WORLD_SIZE="1",
        )
    if use_deepspeed and not torch.cuda.is_available():
        import deepspeed
        import deepspeed.ops

        # otherwise DeepSpeed compiles a shared-memory comm op for ~20 s on the CPU
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        # On the CPU accelerate sets up a plain torch process group, which DeepSpeed's own comm layer
        # does not see (ZeRO-3's zero.Init would then size batches for one process): start it here.
        deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)


def checkpoint_to_resume(recipe: TrainRecipe) -> str | None:
    if recipe.resume_from_checkpoint == "never":
        return None
    if recipe.resume_from_checkpoint != "auto":
        return recipe.resume_from_checkpoint
    out = Path(recipe.output_dir)
    if not out.is_dir():
        return None
    found = []
    for p in out.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and p.name[11:].isdigit():
            if (p / COMPLETE).exists():
                found.append((int(p.name[11:]), p))
            else:
                _log(f"ignoring {p} (incomplete: the run stopped while writing it)")
    if not found:
        return None
    from judgeforge.train.checks import check_checkpoint
    check_checkpoint(max(found)[1], f"{out}: the last complete checkpoint")  # a cut optimizer: one line now
    return str(max(found)[1])


# --------------------------------------------------------------------------- the model


def resolve_model_config(recipe: TrainRecipe):
    from transformers import AutoConfig

    spec = recipe.init_from_config
    if spec is None:
        try:
            return AutoConfig.from_pretrained(recipe.model, trust_remote_code=recipe.trust_remote_code)
        except OSError as e:
            raise UserError(f"model: cannot load '{recipe.model}': {str(e).splitlines()[0]}") from None
    if isinstance(spec, str):
        return AutoConfig.from_pretrained(spec)
    if not isinstance(spec, dict):
        raise UserError("init_from_config must be a mapping or a path to a config.json")
    spec = dict(spec)
    preset = spec.pop("preset", None)
    if preset is not None:
        from transformers import MistralConfig

        from judgeforge.tiny import MISTRAL_7B_V02

        if preset != "mistral-7b-v0.2":
            raise UserError(f"init_from_config.preset: '{preset}' is unknown; use mistral-7b-v0.2")
        return MistralConfig(**{**MISTRAL_7B_V02, "pad_token_id": 0, **spec})
    import inspect

    from judgeforge.tiny import tiny_config

    known = set(inspect.signature(tiny_config).parameters)
    unknown = set(spec) - known
    if unknown:
        from judgeforge.errors import did_you_mean

        k = sorted(unknown)[0]
        raise UserError(
            f"init_from_config: unknown key '{k}'{did_you_mean(k, known)}; keys: {', '.join(sorted(known))}"
        )
    return tiny_config(**spec)


def attention_for(recipe: TrainRecipe) -> str:
    impl = recipe.attn_implementation
    if impl in ("flash_attention_2", "flash_attention_3"):
        import importlib.util

        mod = "flash_attn" if impl == "flash_attention_2" else "flash_attn_interface"
        if importlib.util.find_spec(mod) is None:
            raise UserError(
                f"attn_implementation: {impl} needs the '{mod}' package; use auto (varlen) instead"
            )
        return impl
    if recipe.packing:
        from judgeforge.train.attention import register

        return register()
    return "sdpa" if impl == "auto" else impl


def use_liger(recipe: TrainRecipe) -> bool:
    import importlib.util

    import torch

    if recipe.kernels == "none":
        return False
    ok = torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None
    if recipe.kernels == "liger" and not ok:
        raise UserError("kernels: liger needs a CUDA GPU and the liger-kernel package; use auto or none")
    return ok


def build_model(recipe: TrainRecipe, config, attn: str, dtype, liger: bool):
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    if liger:
        from liger_kernel.transformers.monkey_patch import _apply_liger_kernel

        # before the model exists, so the patched classes are the ones instantiated
        _apply_liger_kernel(
            config.model_type,
            rope=True,
            rms_norm=True,
            swiglu=True,
            cross_entropy=False,
            fused_linear_cross_entropy=False,
        )
    quant = None
    if recipe.lora is not None and recipe.lora.qlora:
        import importlib.util

        if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
            raise UserError("lora.qlora needs a CUDA GPU and the bitsandbytes package; set lora.qlora: false")
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if use_bf16(recipe) else torch.float32,
        )
    set_seed(recipe.seed)
    if recipe.init_from_config is not None:
        device = None
        if torch.cuda.is_available() and not _is_zero3(recipe):
            # never build a big model on the CPU first (ZeRO-3 builds it partitioned on the GPUs itself)
            device = torch.device("cuda", rank_and_world()[2])
        if device is not None:
            with device:
                model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
        else:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    else:
        kw = dict(dtype=dtype, attn_implementation=attn, trust_remote_code=recipe.trust_remote_code, use_safetensors=True)
        if quant is not None:
            kw.update(quantization_config=quant, device_map={"": rank_and_world()[2]})
        model = AutoModelForCausalLM.from_pretrained(recipe.model, **kw)
    model.config.use_cache = False
    if recipe.lora is not None:
        model = apply_lora(model, recipe)
    return model


def _is_zero3(recipe: TrainRecipe) -> bool:
    if not recipe.deepspeed:
        return False
    cfg = json.loads(resolve_deepspeed_path(recipe.deepspeed).read_text())
    return int(cfg.get("zero_optimization", {}).get("stage", 0)) == 3


def apply_lora(model, recipe: TrainRecipe):
    """peft LoRA from the recipe.  Adapters on 3-D expert weights (``target_parameters``, e.g.
    transformers 5 Mixtral's fused experts) cannot use dropout in peft; when the recipe asks for dropout
    they become a second adapter, ``experts``, without it, trained together with the first (both active;
    saved and merged together)."""
    import inspect

    from peft import LoraConfig, get_peft_model

    lo = recipe.lora
    if "lm_head" in lo.target_modules and lo.merge and getattr(model.config, "tie_word_embeddings", False):
        raise UserError(
            "lora.target_modules: lm_head shares its weight with the input embeddings in this model "
            "(tie_word_embeddings), so merging its adapter would change the embeddings too; drop lm_head "
            "or set lora.merge: false"
        )
    common = dict(r=lo.r, lora_alpha=lo.alpha, bias="none", task_type="CAUSAL_LM")
    if lo.target_parameters and "target_parameters" not in inspect.signature(LoraConfig).parameters:
        raise UserError("lora.target_parameters needs peft >= 0.17; upgrade peft")
    configs = []
    if lo.target_parameters and lo.dropout > 0:
        if lo.target_modules:
            configs.append(
                (
                    "default",
                    LoraConfig(lora_dropout=lo.dropout, target_modules=list(lo.target_modules), **common),
                )
            )
        configs.append(
            (
                "experts" if configs else "default",
                LoraConfig(
                    lora_dropout=0.0,
                    target_modules=[],
                    target_parameters=list(lo.target_parameters),
                    **common,
                ),
            )
        )
    else:
        kw = dict(lora_dropout=lo.dropout, target_modules=list(lo.target_modules))
        if lo.target_parameters:
            kw["target_parameters"] = list(lo.target_parameters)
        configs.append(("default", LoraConfig(**kw, **common)))
    if lo.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=recipe.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    try:
        (_, first), rest = configs[0], configs[1:]
        model = get_peft_model(model, first)
        for name, cfg in rest:
            model.add_adapter(name, cfg)
        if rest:
            model.base_model.set_adapter([n for n, _ in configs])
    except ValueError as e:
        raise UserError(
            f"lora: {str(e).splitlines()[0]}; check lora.target_modules / target_parameters"
        ) from None
    return model


# --------------------------------------------------------------------------- the run


def train(
    recipe: TrainRecipe, progress=None, callbacks=None, synthetic=None, tokenizer=None, save: bool = True
) -> Path:
    """Train one expert; returns the final model folder (``output_dir/model``).

    ``progress``: a callable receiving event dicts (see the module doc).  ``callbacks``: extra
    ``transformers.TrainerCallback`` objects.  Benchmarks: ``synthetic`` - ready
    :class:`~judgeforge.train.dataset.TokenizedRows` used instead of the recipe's datasets (then no
    tokenizer is needed unless given); ``save=False`` skips the final model.
    """
    t_start = time.perf_counter()
    emit = progress or (lambda e: None)
    out = Path(recipe.output_dir)
    final = out / FINAL
    if final.exists() and not recipe.overwrite_output_dir:
        raise UserError(f"{final} already exists (a finished run); choose another output_dir or pass --overwrite_output_dir true")
    rank, world, local_rank = rank_and_world()
    ds_path = resolve_deepspeed_path(recipe.deepspeed) if recipe.deepspeed else None
    ga = recipe.accumulation_for(world)
    if report_targets(recipe.report_to):
        from judgeforge.train.checks import check_loggers

        check_loggers(recipe)
        if "wandb" in report_targets(recipe.report_to):
            # runs live beside the outputs unless the user says otherwise; WANDB_MODE (offline, disabled) is
            # wandb's own switch and is left alone
            out.mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("WANDB_DIR", str(out.resolve()))
            os.environ.setdefault("WANDB_PROJECT", "judgeforge")

    prepare_distributed(ds_path is not None)
    rank, world, local_rank = rank_and_world()
    import torch

    from judgeforge.config import dump_recipe
    from judgeforge.train import dataset as D
    from judgeforge.train.trainer import JudgeTrainer, ProgressCallback

    on_gpu = torch.cuda.is_available()
    from judgeforge.devices import choose_dtype

    precision = choose_dtype(recipe.bf16, cuda=on_gpu)
    bf16 = precision.bf16
    _log(precision.line())
    config = resolve_model_config(recipe)
    attn = attention_for(recipe)
    liger = use_liger(recipe)

    # ---- arguments first: with DeepSpeed they set up the process group and ZeRO-3's zero.Init
    args = build_training_args(recipe, out=out, ga=ga, bf16=bf16, on_gpu=on_gpu, ds_path=ds_path, world=world,
                               checkpointing=_checkpointing_args(recipe.gradient_checkpointing),
                               report_to=report_targets(recipe.report_to))
    rank, world = args.process_index, args.world_size
    barrier = _barrier if world > 1 else None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        dump_recipe(recipe, out / "recipe.yaml")
        usual_permissions(out / "recipe.yaml")

    # ---- data
    emit({"stage": "data"})
    from judgeforge.format.chat import resolve_chat_format
    from judgeforge.tokenization import load_tokenizer

    chat = None
    if tokenizer is None and (synthetic is None or save):
        tok_name = recipe.tokenizer or (recipe.model if recipe.model else "mistral-v1")
        tokenizer = load_tokenizer(tok_name, trust_remote_code=recipe.trust_remote_code)
    if tokenizer is not None:  # how prompts are wrapped; written into the final folder by save_final
        chat = resolve_chat_format(tokenizer, folder=recipe.tokenizer or recipe.model, override=recipe.chat_format)
        _log(chat.describe())
    if synthetic is None:
        rows, _ = D.load_training_rows(recipe, write_heldout_to=(out / "data") if rank == 0 else None, log=_log, chat=chat)
        tokens = D.tokenize(recipe, tokenizer, rows, out / ".cache", rank, world, barrier, chat=chat)
        tokens.row_ids = [rows[i]["id"] for i in tokens.row_ids]  # row indices -> the rows' own ids
    else:
        tokens = synthetic
    _log(f"tokens: {tokens.summary()}")
    if len(tokens) == 0:
        raise UserError("no rows left after tokenisation (all longer than max_length?); raise max_length or set "
                        "overlong: truncate")
    batches = D.plan_micro_batches(tokens.lengths, recipe.per_device_train_batch_size, recipe.pack_tokens, recipe.seed)
    train_set = D.MicroBatches(tokens, batches)
    per_rank = math.ceil(len(batches) / world)
    per_epoch = per_rank // ga + int(per_rank % ga > 0)
    total_steps = recipe.max_steps if recipe.max_steps > 0 else math.ceil(recipe.num_train_epochs * per_epoch)
    args.warmup_steps = warmup_for(recipe, total_steps)
    preflight(args, total_steps)  # the scheduler over every step and the optimizer class, before the model
    size = f"<= {recipe.pack_tokens} tokens" if recipe.pack_tokens else f"{recipe.per_device_train_batch_size} rows"
    _log(
        f"{len(batches)} micro-batches ({'packed' if recipe.packing else 'padded'}, {size} each), "
        f"{world} process(es) x {ga} accumulation -> {total_steps} optimizer steps, "
        f"{args.warmup_steps} warmup"
    )

    # ---- model
    emit({"stage": "model"})
    if ds_path or (recipe.lora is not None and bf16):
        dtype = torch.bfloat16 if bf16 else torch.float32
    else:
        dtype = torch.float32  # fp32 master weights, bf16 autocast (Trainer's mixed precision)
    model = build_model(recipe, config, attn, dtype, liger)
    n_params = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in model.parameters())
    n_train = sum(
        (p.ds_numel if hasattr(p, "ds_numel") else p.numel()) for p in model.parameters() if p.requires_grad
    )
    _log(
        f"model: {config.model_type}, {n_params / 1e6:.1f}M parameters ({n_train / 1e6:.1f}M trained), "
        f"attention {attn}, {'liger kernels' if liger else 'no fused kernels'}, "
        f"{'DeepSpeed ' + ds_path.name if ds_path else 'no DeepSpeed'}"
    )

    trainer = JudgeTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        data_collator=D.Collator(
            packed=recipe.packing,
            pad_id=getattr(tokenizer, "pad_token_id", None) or 0,
            with_row_ids=recipe.log_rows,
        ),
        processing_class=tokenizer,
        loss_normalization=recipe.loss_normalization,
        fused_loss=liger and _can_fuse(model),
    )
    if recipe.log_rows:
        trainer.row_trace = []
    prog = ProgressCallback(weakref.ref(trainer), emit, (out / "log.jsonl") if rank == 0 else None)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # raw log dicts; the progress hook prints instead
    trainer.add_callback(prog)
    trainer.add_callback(_CheckpointMarker(out, world, trainer, rank))
    for cb in callbacks or []:
        trainer.add_callback(cb)

    resume = checkpoint_to_resume(recipe)
    if resume:
        _log(f"resuming from {resume}")
        trainer.load_totals(resume)  # rows, tokens and loss of the steps before the checkpoint
    result = trainer.train(resume_from_checkpoint=resume)

    # ---- final model
    emit({"stage": "save"})
    totals = trainer.run_totals(final=True)
    results = {
        "global_step": trainer.state.global_step,
        "train_loss": totals["loss_sum"] / max(trainer.state.global_step, 1),
        "train_runtime_s": result.metrics.get("train_runtime"),
        "tokens_seen": totals["tokens"],
        "target_tokens_seen": totals["targets"],
        "rows_seen": totals["rows"],
        "step_times_s": prog.step_times,
        "world_size": world,
        "gradient_accumulation_steps": ga,
        "tokenization": {k: v for k, v in tokens.stats.items() if k != "dropped_ids"},
        "resumed_from": resume,
        "wall_s": time.perf_counter() - t_start,
    }
    if save:
        save_final(trainer, recipe, tokenizer, final, results, chat)
        if recipe.push_to_hub and rank == 0:
            from judgeforge.hub import push_folder

            url = push_folder(final, recipe.hub_model_id, private=recipe.hub_private_repo)
            _log(f"pushed {final} to {recipe.hub_model_id}: {url}")
    elif rank == 0:
        from judgeforge.io import atomic_write_json

        atomic_write_json(out / "train_results.json", results)
    emit({"stage": "done", "path": str(final)})
    return final


def _checkpointing_args(on: bool) -> dict:
    """transformers renamed gradient_checkpointing to activation_checkpointing (5.2x); GPU image: 5.17."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation" if "activation_checkpointing" in names else "gradient"
    return {f"{prefix}_checkpointing": on, f"{prefix}_checkpointing_kwargs": {"use_reentrant": False}}


def _can_fuse(model) -> bool:
    from judgeforge.train.loss import can_fuse

    return can_fuse(model)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _marker_callback_class():
    from transformers import TrainerCallback

    class CheckpointMarker(TrainerCallback):
        """Marks checkpoint-N complete once every process has written its part."""

        def __init__(self, out, world, trainer, rank):
            self.out, self.world, self.rank = Path(out), world, rank
            self.trainer_ref = weakref.ref(trainer)
            self._rows_written = 0

        def on_save(self, args, state, control, **kw):
            if self.world > 1:
                _barrier()
            ck = self.out / f"checkpoint-{state.global_step}"
            if self.rank == 0 and ck.is_dir():
                self.trainer_ref().save_totals(ck)  # so a resume reports the whole run's totals
                (ck / COMPLETE).write_text(json.dumps({"step": state.global_step}) + "\n")

        def on_step_end(self, args, state, control, **kw):
            tr = self.trainer_ref()
            if tr is None or tr.row_trace is None:
                return
            path = self.out / f"rows-rank{self.rank}.jsonl"
            with open(path, "a", encoding="utf-8") as f:
                for micro in tr.row_trace[self._rows_written :]:
                    f.write(json.dumps({"step": state.global_step, "rows": micro}) + "\n")
            self._rows_written = len(tr.row_trace)

    return CheckpointMarker


def _CheckpointMarker(out, world, trainer, rank):  # noqa: N802 - a factory that keeps transformers lazy
    return _marker_callback_class()(out, world, trainer, rank)


def save_final(trainer, recipe: TrainRecipe, tokenizer, final: Path, results: dict, chat=None) -> None:
    """Gather the weights (ZeRO-3: the full 16-bit state dict on process 0) and write the model folder
    atomically: it appears under its final name only when everything is in it; its chat format too."""
    from judgeforge.config import dump_recipe
    from judgeforge.format.prompts import CHAT_TEMPLATE
    from judgeforge.io import atomic_dir, atomic_write_json

    acc = trainer.accelerator
    state_dict = acc.get_state_dict(trainer.model_wrapped)  # collective under ZeRO-3
    if not acc.is_main_process:
        acc.wait_for_everyone()
        return
    model = acc.unwrap_model(trainer.model_wrapped)
    is_peft = hasattr(model, "peft_config")
    if is_peft:
        adapter_dir = final.parent / "adapter"
        with atomic_dir(adapter_dir, force=True) as tmp:
            model.save_pretrained(tmp, state_dict=state_dict)
            tokenizer.save_pretrained(tmp)
            chat and chat.save(tmp)
    from judgeforge.train.checks import check_finite

    check_finite(state_dict if state_dict is not None else model.state_dict(), final)
    with atomic_dir(final, force=recipe.overwrite_output_dir) as tmp:
        if is_peft and recipe.lora.merge:
            merged = _merged_model(model, recipe, final.parent / "adapter", state_dict)
            _finish_config(merged, chat)
            merged.save_pretrained(tmp, safe_serialization=True)
        elif is_peft:
            model.save_pretrained(tmp, state_dict=state_dict)
        else:
            _finish_config(model, chat)
            model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        if chat is None or chat.name == "mistral":
            tokenizer.chat_template = CHAT_TEMPLATE  # other formats keep the model's own template
        tokenizer.save_pretrained(tmp)
        chat and chat.save(tmp)
        dump_recipe(recipe, tmp / "train_recipe.yaml")
        atomic_write_json(tmp / "train_results.json", results)
        from judgeforge.train.card import expert_card

        (tmp / "README.md").write_text(expert_card(recipe, results, tmp), encoding="utf-8")
        usual_permissions(tmp)
    atomic_write_json(final.parent / "train_results.json", results)
    usual_permissions(final.parent / "train_results.json")
    if is_peft:
        usual_permissions(final.parent / "adapter")
    _log(f"saved {final} (step {results['global_step']}, loss {results['train_loss']:.4f})")
    acc.wait_for_everyone()


def _finish_config(model, chat=None) -> None:
    """What any loader expects: sdpa attention (ours is registered only while training), cache on,
    the paper's sampling defaults, and a stop at the token the judge was trained to end with (``chat``'s
    end of turn, e.g. <|eot_id|> on a Llama 3 base whose config ends text with <|end_of_text|>), so that
    ``generate`` or a server given only the folder stops there too."""
    model.config.use_cache = True
    try:
        model.config._attn_implementation = "sdpa"
    except Exception:  # pragma: no cover - read-only on some versions
        pass
    gc = model.generation_config
    gc.bos_token_id = model.config.bos_token_id
    gc.eos_token_id = model.config.eos_token_id
    end = chat.eos_id if chat is not None else None
    ends = gc.eos_token_id if isinstance(gc.eos_token_id, list) else [gc.eos_token_id]
    if end is not None and end not in ends:
        gc.eos_token_id = [e for e in ends if e is not None] + [end]
    gc.pad_token_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    for k, v in GENERATION_DEFAULTS.items():
        setattr(gc, k, v)


def _merged_model(model, recipe: TrainRecipe, adapter_dir: Path, state_dict):
    """The LoRA adapter merged into its base.  In memory when the weights are whole here (no ZeRO-3,
    no 4-bit base); else the base is reloaded on the CPU in 16 bits and the saved adapter merged in."""
    import torch

    zero3 = any(hasattr(p, "ds_id") for p in model.parameters())
    if not zero3 and not recipe.lora.qlora:
        return model.merge_and_unload()
    if recipe.model is None:
        raise UserError(
            "lora.merge with ZeRO-3 or QLoRA needs the base on disk (model:), not init_from_config; "
            "set lora.merge: false and merge the adapter later"
        )
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from transformers.integrations import deepspeed as hf_ds

    active = getattr(hf_ds, "_hf_deepspeed_config_weak_ref", None)
    active = active() if active is not None else None
    hf_ds.unset_hf_deepspeed_config()  # a whole model on the CPU, not ZeRO-3 shards
    try:
        base = AutoModelForCausalLM.from_pretrained(
            recipe.model, use_safetensors=True,
            dtype=torch.bfloat16 if use_bf16(recipe) else torch.float32,
            trust_remote_code=recipe.trust_remote_code,
        )
        model = PeftModel.from_pretrained(base, adapter_dir)
        if (adapter_dir / "experts" / "adapter_config.json").exists():  # see apply_lora
            model.load_adapter(adapter_dir / "experts", adapter_name="experts")
            model.base_model.set_adapter(["default", "experts"])
        return model.merge_and_unload()
    finally:
        if active is not None:
            hf_ds.set_hf_deepspeed_config(active)
