"""The training recipe's inputs checked before anything heavy loads: the base model folder, a
random model's sizes, optimizer numbers, the output folder, the checkpoint to resume from and the
loggers.  Every mistake is one :class:`UserError` line (the recipe's ``validate`` calls
:func:`check_inputs`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.tracking import report_targets, wandb_ready


def check_inputs(recipe, where: str) -> None:
    from judgeforge.weights import check_local_model

    def bad(key: str, msg: str) -> UserError:
        return UserError(f"{where}: {key} {msg}")

    if recipe.model is not None:
        check_local_model(recipe.model, f"{where}: model")  # config + safetensors only, headers checked
    spec = recipe.init_from_config
    if isinstance(spec, dict):
        check_init_config(spec, where)
    if isinstance(spec, str) and Path(spec).is_dir():
        raise bad("init_from_config", f"'{spec}' is a folder; give its config.json")
    if isinstance(spec, str) and not Path(spec).expanduser().is_file():
        raise bad("init_from_config", f"'{spec}' is neither a mapping (e.g. {{hidden: 64, layers: 2}}) nor an "
                  "existing config.json; check the path")
    for key in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(recipe, key) < 1:
            raise bad(key, f"must be in [0, 1), got {getattr(recipe, key)}")
    if not recipe.adam_epsilon > 0:
        raise bad("adam_epsilon", f"must be > 0, got {recipe.adam_epsilon}")
    for key in ("seed", "split_seed", "dataloader_num_workers"):
        if getattr(recipe, key) < 0:
            raise bad(key, f"must be an integer >= 0, got {getattr(recipe, key)}")
    from judgeforge.io import check_output_folder

    check_output_folder(recipe.output_dir, f"{where}: output_dir")  # the text: an empty one is refused
    out = Path(recipe.output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise bad("output_dir", f"'{recipe.output_dir}' is a file; give a folder for checkpoints and the model")
    if recipe.resume_from_checkpoint not in ("auto", "never"):
        check_checkpoint(Path(recipe.resume_from_checkpoint), f"{where}: resume_from_checkpoint")
    elif recipe.resume_from_checkpoint == "auto" and out.is_dir():  # the checkpoint a rerun would resume from
        done = [p for p in out.glob("checkpoint-*") if p.name[11:].isdigit() and (p / ".complete").exists()]
        if done:
            last = max(done, key=lambda p: int(p.name[11:]))
            check_checkpoint(last, f"{where}: resume_from_checkpoint: auto")
    for src in recipe.dataset_sources():
        check_parquet(src, where)
    if recipe.push_to_hub or recipe.hub_model_id:
        from judgeforge.hub import check_repo_id

        if recipe.push_to_hub and not recipe.hub_model_id:
            raise bad("push_to_hub", "needs hub_model_id (owner/name); set --hub_model_id")
        check_repo_id(recipe.hub_model_id, f"{where}: hub_model_id")
    if "wandb" in report_targets(recipe.report_to) and not wandb_ready():
        raise bad("report_to", "wandb needs a login: set WANDB_API_KEY, run 'wandb login', or set "
                  "WANDB_MODE=offline (or report_to: none)")


# a module (or parameter) name or dotted suffix, as peft matches them: q_proj, self_attn.q_proj, experts.down_proj
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.\w+)*")


def check_lora_targets(lora, where: str) -> None:
    """``lora.target_modules`` / ``target_parameters`` hold module names, each once: peft would only
    refuse a number, an empty or space-separated name after the model has loaded."""
    for key in ("target_modules", "target_parameters"):
        names = getattr(lora, key)
        for name in names:  # peft would only refuse these after the model has loaded
            if name.lower() == "all-linear":
                raise UserError(f"{where}: lora.{key}: peft's 'all-linear' is not taken here; list the modules "
                                "(the default lists every linear layer of a Mistral block)")
            if not _MODULE_NAME.fullmatch(name):
                raise UserError(f"{where}: lora.{key}: {name!r} is not a module name; list names such as "
                                "q_proj, v_proj (separated by commas, or a YAML list)")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UserError(f"{where}: lora.{key}: {', '.join(twice)} listed twice; list each module once")


def check_parquet(src: str, where: str) -> None:
    """Local parquet files of a dataset: their footers read now (cheap), so a corrupt file is one line
    before the model loads rather than after."""
    p = Path(src).expanduser()
    files = sorted(p.rglob("*.parquet")) if p.is_dir() else [p] if p.suffix == ".parquet" and p.is_file() else []
    if not files:
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in files:
        try:
            pq.ParquetFile(f)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise UserError(f"{where}: datasets: {f}: not a readable parquet file ({str(e).splitlines()[0]}); "
                            "write it again") from None


def check_init_config(spec: dict, where: str) -> None:
    """Sizes of a random model that transformers would only refuse after tokenising (or never)."""
    if "preset" in spec:
        return
    sizes = {k: spec.get(k) for k in ("hidden", "layers", "heads", "kv_heads", "intermediate", "vocab_size",
                                       "max_positions") if spec.get(k) is not None}
    for k, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise UserError(f"{where}: init_from_config.{k} must be a positive integer, got {v!r}")
    hidden, heads = sizes.get("hidden", 64), sizes.get("heads", 4)
    kv = sizes.get("kv_heads", 2)  # tiny_config's default
    if hidden % heads:
        raise UserError(f"{where}: init_from_config.hidden ({hidden}) must be a multiple of heads ({heads})")
    if heads % kv:
        raise UserError(f"{where}: init_from_config.heads ({heads}) must be a multiple of kv_heads ({kv})")


def check_checkpoint(ck: Path, where: str) -> None:
    """A checkpoint folder to resume from: trainer_state.json, readable weights, and every torch file
    (optimizer, scheduler, RNG, DeepSpeed shards) a whole zip archive, so a cut copy is refused now."""
    import zipfile

    if not (ck / "trainer_state.json").is_file():
        raise UserError(f"{where}: '{ck}' is not a training checkpoint (no trainer_state.json); give a "
                        "checkpoint-N folder from output_dir, or resume_from_checkpoint: auto")
    try:
        json.loads((ck / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{where}: {ck / 'trainer_state.json'} is unreadable ({e}); resume from another "
                        "checkpoint") from None
    from judgeforge.weights import read_header

    for f in sorted(ck.rglob("*")):
        if f.suffix == ".safetensors":
            read_header(f)
        elif f.suffix in (".pt", ".pth", ".bin") and f.is_file():
            try:
                with zipfile.ZipFile(f) as z:
                    z.namelist()
            except (OSError, zipfile.BadZipFile) as e:
                raise UserError(f"{where}: {f} is damaged or truncated ({e}); resume from another checkpoint "
                                "or delete this one") from None


def check_finite(state_dict: dict, final: Path) -> None:
    """Refuse to write a finished model whose weights hold NaN or inf (a diverged run)."""
    from judgeforge.weights import first_non_finite

    name = first_non_finite(state_dict.items())
    if name is not None:
        raise UserError(f"training produced non-finite weights ('{name}' has NaN or inf); {final} is not "
                        "written: lower learning_rate, check the data, or resume from an earlier checkpoint")


def check_loggers(recipe) -> None:
    import importlib.util

    for name in report_targets(recipe.report_to):
        mod = {"wandb": "wandb", "tensorboard": "tensorboard"}[name]
        if importlib.util.find_spec(mod) is None:
            raise UserError(
                f"report_to: {name} needs the '{mod}' package; pip install {mod} or set report_to: none"
            )
