"""Model folders on disk: safetensors layouts read from their headers, checked before anything loads.

Every stage that takes a local model (train's base, eval's judge, merge's experts) asks
:func:`inspect_checkpoint` first: it reads only ``config.json``, the index and each shard's
8-byte length + JSON header, and turns every way a folder can be wrong (no weights, pickle
weights only, a truncated shard, a crafted header or index, an index pointing outside the
folder, a LoRA adapter where a model belongs) into one :class:`UserError` line.  Safetensors
only: judgeforge never unpickles weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

from judgeforge.errors import UserError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
MAX_HEADER = 100_000_000

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


def _bad(file: Path, why: str) -> UserError:
    return UserError(f"{file}: not a valid safetensors file ({why}); re-save the model with "
                     "save_pretrained(..., safe_serialization=True)")


def read_header(file: Path) -> tuple[dict, int]:
    """The JSON header of a safetensors file and the absolute offset where its data starts.

    The header is checked entry by entry (a mapping of tensor name -> {dtype, shape,
    data_offsets} whose offsets fit the file and match the shape), so a crafted or cut file is
    one line, never a traceback or a read past the end."""
    file = Path(file)
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise _bad(file, "shorter than 8 bytes")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER or 8 + n > size:
                raise _bad(file, f"header length {n} does not fit the file of {size} bytes")
            header = json.loads(f.read(n))
    except UserError:
        raise
    except (OSError, ValueError, RecursionError) as e:
        raise _bad(file, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    if not isinstance(header, dict):
        raise _bad(file, f"the header is a JSON {type(header).__name__}, not a mapping")
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            if info is not None and not isinstance(info, dict):
                raise _bad(file, "__metadata__ is not a mapping")
            continue
        if not isinstance(info, dict):
            raise _bad(file, f"tensor '{name}' is not described by a mapping")
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in ST_DTYPES:
            raise _bad(file, f"tensor '{name}' has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise _bad(file, f"tensor '{name}' has no valid shape")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs)
                or not 0 <= offs[0] <= offs[1]):
            raise _bad(file, f"tensor '{name}' has no valid data_offsets")
        if offs[1] > data_len:
            raise UserError(f"{file.parent}: {file.name} is truncated ({size} bytes; tensor '{name}' needs "
                            f"{8 + n + offs[1]}); copy or save the model again")
        if offs[1] - offs[0] != math.prod(shape) * ST_DTYPES[dtype][1]:
            raise _bad(file, f"tensor '{name}' has {offs[1] - offs[0]} bytes for shape {shape} {dtype}")
    return header, 8 + n


def _inside(folder: Path, name, what: Path) -> Path:
    """``folder/name`` for a plain file name from an index; anything escaping the folder is refused."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise UserError(f"{what}: shard name {name!r} is not a file name inside the model folder; "
                        "the index is damaged or crafted")
    return folder / name


def read_config(folder: Path, role: str) -> dict:
    cfg_file = folder / "config.json"
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{cfg_file}: unreadable config ({str(e).splitlines()[0] if str(e) else e}); "
                        f"is '{folder}' a saved Hugging Face {role}?") from None
    if not isinstance(config, dict):
        raise UserError(f"{cfg_file}: the config is not a JSON mapping; save the {role} again")
    return config


def check_folder(path: str | Path, role: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{role} '{path}' does not exist; give the folder of a saved Hugging Face model")
    if not p.is_dir():
        raise UserError(f"{role} '{path}' is a file; give the folder that holds config.json and the weights")
    return p


def inspect_checkpoint(path: str | Path, role: str = "model") -> Checkpoint:
    """Layout of a local model folder (config.json + safetensors, sharded or not), fully checked."""
    p = check_folder(path, role)
    if not (p / "config.json").is_file():
        if is_lora_adapter(p):
            raise UserError(f"{role} '{path}' is a LoRA adapter, not a model; fold it into its base first "
                            "(judgeforge merge --models ADAPTER, or train with lora.merge: true)")
        raise UserError(f"{role} '{path}' has no config.json; is it a Hugging Face model folder?")
    config = read_config(p, role)
    index = p / INDEX_NAME
    weight_map = None
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            raise UserError(f"{index}: unreadable index ({str(e).splitlines()[0]}); save the model again") from None
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise UserError(f"{index}: 'weight_map' is not a mapping of tensor names to shard files; "
                            "the index is damaged")
        files = sorted({_inside(p, f, index) for f in weight_map.values()}, key=lambda f: f.name)
        sharded = True
    elif (p / SINGLE_NAME).is_file():
        files, sharded = [p / SINGLE_NAME], False
    else:
        if any(f.suffix in PICKLE_SUFFIXES for f in p.iterdir()):
            raise UserError(f"{role} '{path}' has only pickle weights (.bin); judgeforge reads safetensors "
                            "only: load it once and save_pretrained(..., safe_serialization=True)")
        raise UserError(f"{role} '{path}' has no model.safetensors or {INDEX_NAME}; save the model with "
                        "save_pretrained(..., safe_serialization=True)")

    tensors: dict[str, TensorInfo] = {}
    metadata: dict = {}
    for f in files:
        if not f.is_file():
            raise UserError(f"{role} '{path}': shard {f.name} is listed in {INDEX_NAME} but missing")
        header, data_start = read_header(f)
        metadata.update(header.pop("__metadata__", None) or {})
        for name, info in header.items():
            b, e = info["data_offsets"]
            if name in tensors:
                raise UserError(f"{role} '{path}': tensor '{name}' appears in two shards")
            if weight_map is not None and weight_map.get(name) != f.name:
                raise UserError(f"{role} '{path}': tensor '{name}' is in {f.name} but the index says "
                                f"{weight_map.get(name)}; the folder is inconsistent")
            tensors[name] = TensorInfo(name, info["dtype"], tuple(info["shape"]), f, data_start + b, data_start + e)
    if weight_map is not None:
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise UserError(f"{role} '{path}': tensor '{missing[0]}' is in {INDEX_NAME} but in no shard")
    if not tensors:
        raise UserError(f"{role} '{path}' has no tensors in its safetensors files; save the model again")
    return Checkpoint(p, config, tensors, files, sharded, metadata)


def check_adapter(path: str | Path, role: str = "LoRA adapter") -> Path:
    """A LoRA adapter folder: adapter_config.json and adapter_model.safetensors (checked)."""
    p = check_folder(path, role)
    cfg = p / ADAPTER_CONFIG
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{cfg}: unreadable adapter config ({e}); save the adapter again") from None
    if not isinstance(data, dict):
        raise UserError(f"{cfg}: the adapter config is not a JSON mapping")
    weights = p / ADAPTER_WEIGHTS
    if not weights.is_file():
        if any(f.suffix in PICKLE_SUFFIXES for f in p.iterdir()):
            raise UserError(f"{role} '{path}' has only pickle weights (adapter_model.bin); judgeforge reads "
                            "safetensors only: save the adapter with save_pretrained(..., safe_serialization=True)")
        raise UserError(f"{role} '{path}' has no {ADAPTER_WEIGHTS}")
    read_header(weights)
    return p


def first_non_finite(named) -> str | None:
    """The name of the first floating tensor of ``named`` ((name, tensor) pairs: a state dict's items, a
    model's named_parameters) that holds NaN or inf, or None: a diverged run or a failed merge."""
    import torch

    with torch.no_grad():
        for name, t in named:
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return name
    return None


def looks_local(name: str) -> bool:
    """A name that can only be a local path, not a hub id (``owner/name``): an absolute or dotted
    path, more than one slash, or an ``owner`` that is a local folder (a mistyped ``judges/mine``)."""
    s = str(name)
    parent = Path(s).expanduser().parent
    return (s.startswith(("/", "./", "../", "~", ".")) or s.count("/") > 1 or "\\" in s
            or (str(parent) not in ("", ".") and parent.is_dir()))


def check_local_model(name: str, role: str) -> Checkpoint | None:
    """The checked layout when ``name`` is (or can only be) a local folder; None for a hub id."""
    if Path(name).expanduser().exists() or looks_local(name):
        return inspect_checkpoint(name, role)
    return None


def fingerprint(ck: Checkpoint, extra_files: tuple[str, ...] = ()) -> str:
    """sha256 of the config, every safetensors header, 1 MiB from each end of every shard's data,
    the shard sizes and ``extra_files`` of the folder (e.g. the tokenizer): cheap at 7B, and it
    tells two models of the same architecture apart."""
    h = hashlib.sha256()
    for name in ("config.json", *extra_files):
        f = ck.path / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
    for f in ck.files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            h.update(fh.read(n))
            h.update(fh.read(1 << 20))
            fh.seek(max(8 + n, size - (1 << 20)))
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]
