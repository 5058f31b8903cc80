"""Check that models can be merged (the layout reader itself is :mod:`judgeforge.weights`).

Only the safetensors headers are read (8 bytes + a JSON header per shard), so checking two 7B
experts takes milliseconds.  Every mismatch becomes one :class:`UserError` line that names the
tensor (or config key) and both models.
"""

from __future__ import annotations

from judgeforge.errors import UserError
from judgeforge.weights import (  # noqa: F401 - the layout reader lives in the core; merge re-exports it
    ADAPTER_CONFIG,
    FLOAT_CODES,
    INDEX_NAME,
    SINGLE_NAME,
    ST_DTYPES,
    TORCH_TO_ST,
    Checkpoint,
    TensorInfo,
    inspect_checkpoint,
    is_lora_adapter,
    read_header,
)

DTYPE_ALIASES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "fp64": "float64",
    "float64": "float64",
}


def canonical_dtype(name: str | None, where: str = "dtype") -> str | None:
    """'bf16' -> 'bfloat16' (None stays None); a clear error for anything else."""
    if name is None:
        return None
    key = str(name).lower().removeprefix("torch.")
    if key not in DTYPE_ALIASES:
        from judgeforge.errors import did_you_mean

        raise UserError(
            f"{where}: unknown dtype '{name}'{did_you_mean(key, DTYPE_ALIASES)}; "
            "use bfloat16, float16 or float32"
        )
    return DTYPE_ALIASES[key]


def _arch(cfg: dict) -> str:
    archs = cfg.get("architectures") or []
    return ",".join(archs) if archs else str(cfg.get("model_type", "?"))


def _vocab(cfg: dict):
    if "vocab_size" in cfg:
        return cfg["vocab_size"]
    return (cfg.get("text_config") or {}).get("vocab_size")


# config keys that change the tensors' meaning even when shapes agree
STRUCTURE_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "head_dim",
    "num_local_experts",
    "tie_word_embeddings",
)


def check_compatible(ckpts: list[Checkpoint]) -> None:
    """Raise a one-line :class:`UserError` for the first reason these models cannot be merged."""
    ref = ckpts[0]
    for other in ckpts[1:]:
        a, b = ref.label, other.label
        if _arch(ref.config) != _arch(other.config):
            raise UserError(
                f"architectures differ: '{a}' is {_arch(ref.config)} but '{b}' is "
                f"{_arch(other.config)}; merge models fine-tuned from the same base"
            )
        va, vb = _vocab(ref.config), _vocab(other.config)
        if va != vb:
            raise UserError(
                f"vocab sizes differ: '{a}' has {va} tokens but '{b}' has {vb}; resize both to "
                "the same tokenizer before merging"
            )
        for key in STRUCTURE_KEYS:
            if ref.config.get(key) != other.config.get(key):
                raise UserError(
                    f"config key '{key}' differs: {ref.config.get(key)!r} in '{a}' but "
                    f"{other.config.get(key)!r} in '{b}'; the models do not share an architecture"
                )
        only_a = sorted(set(ref.tensors) - set(other.tensors))
        only_b = sorted(set(other.tensors) - set(ref.tensors))
        if only_a:
            raise UserError(
                f"tensor '{only_a[0]}' is in '{a}' but missing from '{b}'"
                + (f" (and {len(only_a) - 1} more)" if len(only_a) > 1 else "")
            )
        if only_b:
            raise UserError(
                f"tensor '{only_b[0]}' is in '{b}' but missing from '{a}'"
                + (f" (and {len(only_b) - 1} more)" if len(only_b) > 1 else "")
            )
        for name in sorted(ref.tensors):
            ta, tb = ref.tensors[name], other.tensors[name]
            if ta.shape != tb.shape:
                raise UserError(
                    f"tensor '{name}' has shape {list(ta.shape)} in '{a}' but {list(tb.shape)} in '{b}'"
                )
            if ta.is_float != tb.is_float:
                raise UserError(f"tensor '{name}' is {ta.dtype} in '{a}' but {tb.dtype} in '{b}'")
