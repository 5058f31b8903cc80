"""LoRA experts: fold the adapter into its base with peft, so that any merge method applies.

A LoRA expert is a folder with ``adapter_config.json`` (what ``PeftModel.save_pretrained``
writes).  ``merge_and_unload`` turns it into a full model whose every adapted weight is
``W + (lora_alpha / r) * B @ A`` (``lora_alpha / sqrt(r)`` with rsLoRA), written to a scratch
folder that the merge then reads like any other expert.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from judgeforge.devices import torch_dtype
from judgeforge.errors import UserError
from judgeforge.merge.checkpoint import ADAPTER_CONFIG

TOKENIZER_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer.model",
    "added_tokens.json",
    "merges.txt",
    "vocab.json",
    "chat_template.jinja",
    "chat_template.json",
)


def adapter_base(adapter: str | os.PathLike, override: str | None = None) -> Path:
    """The local base-model folder of a LoRA adapter (``override`` wins over adapter_config.json)."""
    from judgeforge.weights import check_adapter

    check_adapter(adapter)  # adapter_model.safetensors (never a pickle .bin), header checked
    cfg_file = Path(adapter) / ADAPTER_CONFIG
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{cfg_file}: unreadable adapter config ({e})") from None
    if cfg.get("peft_type", "LORA") != "LORA":
        raise UserError(
            f"{adapter}: adapter type {cfg.get('peft_type')} is not LoRA; only LoRA experts can be "
            "folded into their base"
        )
    base = override or cfg.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{cfg_file} names no base model; set lora_base: /path/to/base in the recipe")
    if not override and not Path(base).exists():
        from judgeforge.hub import is_hub_id, resolve_model

        if is_hub_id(base):
            try:
                base = resolve_model(base, f"LoRA adapter '{adapter}': base")
            except UserError as e:
                raise UserError(f"{e}; or set lora_base: /path/to/base (--lora-base)") from None
    if not (Path(base) / "config.json").is_file():
        raise UserError(
            f"LoRA adapter '{adapter}': its base '{base}' is not a local model folder; download it and "
            "set lora_base: /path/to/base (or --lora-base)"
        )
    return Path(base)


def has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() and (
        (folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file()
    )


def merge_lora(
    adapter: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    dtype: str | None = None,
) -> Path:
    """Write ``base + LoRA`` (peft ``merge_and_unload``) as a full safetensors model to ``out_dir``.

    The tokenizer comes from the adapter folder when it has one, else from the base.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir = adapter_base(adapter, str(base) if base else None)
    kwargs = {"dtype": torch_dtype(dtype)} if dtype else {"dtype": "auto"}
    model = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True, **kwargs)
    model = PeftModel.from_pretrained(model, str(adapter))
    model = model.merge_and_unload()
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    donor = Path(adapter) if has_tokenizer(Path(adapter)) else base_dir
    for name in TOKENIZER_FILES + ("generation_config.json",):
        if (donor / name).is_file() and not (name == "generation_config.json" and (out / name).exists()):
            shutil.copy(donor / name, out / name)
    del model
    return out
