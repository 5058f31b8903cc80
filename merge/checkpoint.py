"""Read a model folder's layout without loading its weights, and check that models can be merged.

Only the safetensors headers are read (8 bytes + a JSON header per shard), so checking two 7B
experts takes milliseconds.  Every mismatch becomes one :class:`UserError` line that names the
tensor (or config key) and both models.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from judgeforge.errors import UserError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"

# safetensors dtype code -> (torch dtype name, bytes per element)
ST_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
}
TORCH_TO_ST = {v[0]: k for k, v in ST_DTYPES.items()}
FLOAT_CODES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}

@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors code, e.g. "BF16"
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute byte offset of the data in ``file``
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def itemsize(self) -> int:
        return ST_DTYPES[self.dtype][1]

    @property
    def torch_dtype(self) -> str:
        return ST_DTYPES[self.dtype][0]

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_CODES


@dataclass
class Checkpoint:
    """A Hugging Face model folder: its config and the layout of its safetensors shards."""

    path: Path
    config: dict
    tensors: dict[str, TensorInfo]
    files: list[Path]  # shard files in order
    sharded: bool  # has a model.safetensors.index.json
    metadata: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def largest_file_bytes(self) -> int:
        return max(f.stat().st_size for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


def is_lora_adapter(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def read_header(file: Path) -> tuple[dict, int]:
    """The JSON header of a safetensors file and the absolute offset where its data starts."""
    try:
        with open(file, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError("file shorter than 8 bytes")
            (n,) = struct.unpack("<Q", raw)
            if n > 100_000_000:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        raise UserError(
            f"{file}: not a readable safetensors file ({e}); re-save the model with "
            "save_pretrained(..., safe_serialization=True)"
        ) from None
    return header, 8 + n


def inspect_checkpoint(path: str | Path, role: str = "model") -> Checkpoint:
    """Layout of a local model folder (config.json + safetensors, sharded or not)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{role} '{path}' does not exist; give the folder of a saved Hugging Face model")
    if not p.is_dir():
        raise UserError(f"{role} '{path}' is a file; give the folder that holds config.json and the weights")
    cfg_file = p / "config.json"
    if not cfg_file.is_file():
        if is_lora_adapter(p):
            raise UserError(
                f"{role} '{path}' is a LoRA adapter; merge it into its base first (judgeforge "
                "does this for expert models)"
            )
        raise UserError(f"{role} '{path}' has no config.json; is it a Hugging Face model folder?")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{cfg_file}: unreadable config ({e})") from None

    index = p / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{index}: unreadable index ({e})") from None
        files = sorted({p / f for f in weight_map.values()}, key=lambda f: f.name)
        sharded = True
    elif (p / SINGLE_NAME).is_file():
        files, sharded, weight_map = [p / SINGLE_NAME], False, None
    else:
        if list(p.glob("*.bin")) or list(p.glob("*.pt")):
            raise UserError(
                f"{role} '{path}' has only pickle weights (.bin); judgeforge merges safetensors only: "
                "load it and save_pretrained(..., safe_serialization=True)"
            )
        raise UserError(f"{role} '{path}' has no model.safetensors or {INDEX_NAME}")

    tensors: dict[str, TensorInfo] = {}
    metadata: dict = {}
    for f in files:
        if not f.is_file():
            raise UserError(f"{role} '{path}': shard {f.name} is listed in {INDEX_NAME} but missing")
        header, data_start = read_header(f)
        metadata.update(header.pop("__metadata__", None) or {})
        need = data_start + max([v["data_offsets"][1] for v in header.values()] + [0])
        if f.stat().st_size < need:
            raise UserError(
                f"{role} '{path}': {f.name} is truncated ({f.stat().st_size} bytes, its header needs "
                f"{need}); copy or save the model again"
            )
        for name, info in header.items():
            if info.get("dtype") not in ST_DTYPES:
                raise UserError(f"{f}: tensor '{name}' has unsupported dtype {info.get('dtype')}")
            b, e = info["data_offsets"]
            if name in tensors:
                raise UserError(f"{role} '{path}': tensor '{name}' appears in two shards")
            if weight_map is not None and weight_map.get(name) != f.name:
                raise UserError(
                    f"{role} '{path}': tensor '{name}' is in {f.name} but the index says "
                    f"{weight_map.get(name)}; the folder is inconsistent"
                )
            tensors[name] = TensorInfo(
                name, info["dtype"], tuple(info["shape"]), f, data_start + b, data_start + e
            )
    if weight_map is not None:
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise UserError(f"{role} '{path}': tensor '{missing[0]}' is in {INDEX_NAME} but in no shard")
    return Checkpoint(p, config, tensors, files, sharded, metadata)


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
