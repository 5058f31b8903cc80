"""The layout of a streamed linear merge, decided before a byte is read (:func:`make_plan`).

The output mirrors the first model's sharding (same shard names, same tensors per shard); each
shard's safetensors header is known up front, so the writer can stream its data section.  The
tensors of each shard are cut into chunks of about ``chunk_bytes`` per input (and output), the
unit the reader threads fill, the merge loop computes and the writer writes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

from judgeforge.devices import torch_dtype
from judgeforge.merge.checkpoint import TORCH_TO_ST, Checkpoint

ALIGN = 64  # byte alignment of each tensor inside an input buffer (any dtype can be viewed there)


@dataclass
class Chunk:
    index: int
    shard: int
    names: list[str]
    out_start: int  # offset of the first tensor inside the shard's data section
    out_nbytes: int
    in_offsets: list[dict[str, int]] = field(default_factory=list)  # per input: name -> buffer offset
    in_nbytes: list[int] = field(default_factory=list)


@dataclass
class Shard:
    file: str
    names: list[str]
    header: bytes  # 8-byte length + padded JSON
    offsets: dict[str, tuple[int, int]]  # name -> (begin, end) inside the data section
    data_bytes: int


@dataclass
class Plan:
    shards: list[Shard]
    chunks: list[Chunk]
    out_dtypes: dict[str, str]  # name -> torch dtype name
    merge_dtypes: dict[str, str | None]
    sharded: bool

    @property
    def bytes_written(self) -> int:
        return sum(len(s.header) + s.data_bytes for s in self.shards)


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def make_plan(
    inputs: list[Checkpoint],
    *,
    dtype: str | None = None,
    out_dtype: str | None = None,
    chunk_bytes: int = 256 << 20,
) -> Plan:
    """Output layout (mirrors the first input's shards) and the chunks to stream."""
    ref = inputs[0]
    merge_dtypes, out_dtypes = _dtypes(inputs, dtype, out_dtype)

    def out_nbytes(name: str) -> int:
        n = 1
        for s in ref.tensors[name].shape:
            n *= s
        return n * torch_dtype(out_dtypes[name]).itemsize

    shards: list[Shard] = []
    chunks: list[Chunk] = []
    for si, f in enumerate(ref.files):
        names = sorted((n for n, t in ref.tensors.items() if t.file == f), key=lambda n: ref.tensors[n].start)
        # widest dtype first keeps every tensor aligned to its element size in the file
        names.sort(key=lambda n: -torch_dtype(out_dtypes[n]).itemsize)
        shards.append(_shard(ref, f.name, names, out_dtypes, out_nbytes))
        for cur in _cut(inputs, names, out_nbytes, chunk_bytes):
            chunks.append(_chunk(inputs, len(chunks), si, cur, shards[-1].offsets))
    return Plan(shards, chunks, out_dtypes, merge_dtypes, ref.sharded)


def _dtypes(inputs: list[Checkpoint], dtype: str | None, out_dtype: str | None):
    """Per tensor: the merge dtype (None for integer/bool tensors, copied as they are; else
    ``dtype``, or the inputs' dtypes promoted) and the output dtype (``out_dtype`` or the merge one)."""
    import torch

    out_dtypes: dict[str, str] = {}
    merge_dtypes: dict[str, str | None] = {}
    for name, t in inputs[0].tensors.items():
        if not t.is_float:
            out_dtypes[name], merge_dtypes[name] = t.torch_dtype, None
            continue
        if dtype:
            md = dtype
        else:
            d = torch_dtype(t.torch_dtype)
            for ck in inputs[1:]:
                d = torch.promote_types(d, torch_dtype(ck.tensors[name].torch_dtype))
            md = str(d).removeprefix("torch.")
        merge_dtypes[name] = md
        out_dtypes[name] = out_dtype or md
    return merge_dtypes, out_dtypes


def _shard(ref: Checkpoint, file: str, names: list[str], out_dtypes: dict[str, str], out_nbytes) -> Shard:
    """One output shard: its tensors back to back in ``names`` order, and its safetensors header."""
    offsets, pos = {}, 0
    for n in names:
        offsets[n] = (pos, pos + out_nbytes(n))
        pos += out_nbytes(n)
    header = {"__metadata__": {"format": "pt"}}
    for n in names:
        header[n] = {
            "dtype": TORCH_TO_ST[out_dtypes[n]],
            "shape": list(ref.tensors[n].shape),
            "data_offsets": list(offsets[n]),
        }
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-(len(raw) + 8) % 8)
    return Shard(file, names, struct.pack("<Q", len(raw)) + raw, offsets, pos)


def _cut(inputs: list[Checkpoint], names: list[str], out_nbytes, chunk_bytes: int) -> list[list[str]]:
    """The shard's tensors in runs whose size stays within ``chunk_bytes`` in every input and in the
    output (a tensor larger than that is a chunk of its own).  An empty shard still gets one (empty)
    chunk: its header-only file is written too."""
    runs: list[list[str]] = []
    cur: list[str] = []
    sizes = [0] * (len(inputs) + 1)
    for n in names:
        need = [align(ck.tensors[n].nbytes) for ck in inputs] + [out_nbytes(n)]
        if cur and any(s + x > chunk_bytes for s, x in zip(sizes, need)):
            runs.append(cur)
            cur, sizes = [], [0] * len(sizes)
        cur.append(n)
        sizes = [s + x for s, x in zip(sizes, need)]
    if cur or not names:
        runs.append(cur)
    return runs


def _chunk(inputs: list[Checkpoint], index: int, shard: int, names: list[str],
           offsets: dict[str, tuple[int, int]]) -> Chunk:
    """Where each tensor of the run lies in each input's buffer (aligned) and in the output shard."""
    ch = Chunk(
        index,
        shard,
        list(names),
        offsets[names[0]][0] if names else 0,
        sum(offsets[n][1] - offsets[n][0] for n in names),
    )
    for ck in inputs:
        offs, p = {}, 0
        for n in names:
            offs[n] = p
            p = align(p + ck.tensors[n].nbytes)
        ch.in_offsets.append(offs)
        ch.in_nbytes.append(p)
    return ch
