"""Training data: rows -> tokens -> micro-batches -> tensors.

1. **Rows.**  Each source of the recipe is read and validated by :mod:`judgeforge.data`
   (``load_examples``); the collections' pre-rendered ``instruction`` and ``output`` are used
   as is, exactly as Prometheus 2 trained (``to_training_rows``).  The expert decides which
   modes are allowed (absolute: Feedback-Collection-like rows, relative: Preference-like,
   joint: both).  Each source is split with the paper's hold-out (``split_rows``: datasets'
   ``train_test_split(test_size, seed)``); the held-out rows are written to
   ``output_dir/data/heldout-<mode>.jsonl`` in the collections' schemas for evaluation.
2. **Tokens.**  ``judgeforge.tokenization.encode_for_training`` (BOS + prompt + output + EOS,
   prompt masked, overlong rows dropped or truncated and counted).  With several processes
   each one tokenises every W-th row and writes a shard to ``output_dir/.cache``; every
   process then reads all shards (a shard it cannot find - no shared disk - it tokenises
   itself).  A cache key covers the sources, tokenizer and settings, so a resumed run skips
   this step.
3. **Micro-batches.**  Rows are shuffled once (seed) and cut into micro-batches: either
   ``per_device_train_batch_size`` rows each (the paper's batches), or, with ``pack_tokens``,
   as many rows as fit the token budget.  The Trainer sees one micro-batch per dataset
   item (its batch size is 1) and shuffles their order every epoch with its seeded sampler,
   which is also what makes a resumed run see the same data order.
4. **Tensors.**  :class:`Collator` builds either one packed row (padding-free:
   ``position_ids`` restart at 0 per sequence, ``cu_seq_lens`` for the varlen attention)
   or a right-padded batch with an attention mask (pad = unk, id 0).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from judgeforge.errors import UserError

IGNORE_INDEX = -100
MODE_OF_EXPERT = {"absolute": {"absolute"}, "relative": {"relative"}, "joint": {"absolute", "relative"}}


# --------------------------------------------------------------------------- rows


def load_training_rows(recipe, write_heldout_to: Path | None = None, log=print, chat=None) -> tuple[list[dict], dict]:
    """Training rows (``id, mode, prompt, completion``) of every source, hold-out removed; ``chat`` (a
    ChatFormat) wraps the prompts (default: Prometheus' ``[INST]`` folding)."""
    from judgeforge.data import load_examples, split_rows, to_collection_row, to_training_rows

    allowed = MODE_OF_EXPERT[recipe.expert]
    train: list[dict] = []
    heldout: dict[str, list] = {}
    counts = {}
    for src in recipe.dataset_sources():
        examples = _mini_examples(src) if src.startswith("mini:") else load_examples(src)
        modes = {ex.mode for ex in examples}
        wrong = modes - allowed
        if wrong:
            raise UserError(
                f"{src}: holds {'/'.join(sorted(wrong))} rows but the expert is '{recipe.expert}' "
                f"(it trains on {'/'.join(sorted(allowed))} rows); fix datasets or expert"
            )
        if recipe.eval_split > 0:
            if len(examples) < 2:
                raise UserError(f"{src}: {len(examples)} row(s) cannot be split; set eval_split: 0")
            kept, held = split_rows(examples, test_size=recipe.eval_split, seed=recipe.split_seed)
        else:
            kept, held = examples, []
        for ex in held:
            heldout.setdefault(ex.mode, []).append(ex)
        rows = to_training_rows(kept, chat=chat)
        for i, r in enumerate(rows):
            if r["id"] is None:
                r["id"] = f"{Path(src).name}:{i}"
        train.extend(rows)
        counts[src] = {"rows": len(examples), "train": len(kept), "heldout": len(held)}
        log(f"data: {src}: {len(examples)} rows, {len(kept)} for training, {len(held)} held out")
    if write_heldout_to is not None and heldout:
        from judgeforge.io import usual_permissions, write_jsonl

        for mode, exs in heldout.items():
            write_jsonl(write_heldout_to / f"heldout-{mode}.jsonl", [to_collection_row(ex) for ex in exs])
            usual_permissions(write_heldout_to / f"heldout-{mode}.jsonl")
    if not train:
        raise UserError("no training rows left after the hold-out split; add data or lower eval_split")
    return train, counts


def _mini_examples(src: str):
    from judgeforge.data import Row, raise_on_problems, validate_rows
    from judgeforge.data.mini import absolute_rows, relative_rows
    from judgeforge.train.recipe import parse_mini

    mode, n = parse_mini(src)
    raw = (absolute_rows if mode == "absolute" else relative_rows)(n, seed=0)
    v = validate_rows([Row(src, i, d) for i, d in enumerate(raw, start=1)])
    raise_on_problems(v, src)
    return v.examples


# --------------------------------------------------------------------------- tokens


@dataclass
class TokenizedRows:
    """Rows as one flat int32 token array; row i is ``ids[offsets[i]:offsets[i]+lengths[i]]``,
    its first ``n_prompt[i]`` tokens masked from the loss."""

    ids: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray
    n_prompt: np.ndarray
    row_ids: list
    stats: dict

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def row(self, i: int) -> tuple[np.ndarray, int]:
        o = int(self.offsets[i])
        return self.ids[o : o + int(self.lengths[i])], int(self.n_prompt[i])

    def summary(self) -> str:
        s = self.stats
        parts = [f"{s['kept']} rows kept"]
        if s["dropped_overlong"]:
            parts.append(f"{s['dropped_overlong']} dropped as longer than max_length")
        if s["truncated"]:
            parts.append(f"{s['truncated']} truncated to max_length")
        if s["dropped_no_target"]:
            parts.append(f"{s['dropped_no_target']} dropped with no output token left after truncation")
        total = int(self.lengths.sum())
        tgt = int((self.lengths - self.n_prompt).sum())
        parts.append(f"{total:,} tokens ({tgt:,} targets), longest {s['longest']}")
        return ", ".join(parts)


def from_encoded(encoded: list[tuple[int, dict]], stats: dict) -> TokenizedRows:
    """``[(row index, {"input_ids", "labels"})]`` -> :class:`TokenizedRows` (in row-index order)."""
    encoded = sorted(encoded, key=lambda x: x[0])
    lengths = np.array([len(e["input_ids"]) for _, e in encoded], dtype=np.int64)
    n_prompt = np.array(
        [
            next((j for j, v in enumerate(e["labels"]) if v != IGNORE_INDEX), len(e["labels"]))
            for _, e in encoded
        ],
        dtype=np.int64,
    )
    offsets = np.zeros(len(encoded), dtype=np.int64)
    if len(encoded):
        offsets[1:] = np.cumsum(lengths)[:-1]
    ids = np.fromiter(
        (t for _, e in encoded for t in e["input_ids"]), dtype=np.int32, count=int(lengths.sum())
    )
    return TokenizedRows(ids, offsets, lengths, n_prompt, [i for i, _ in encoded], stats)


def _encode_shard(tokenizer, rows: list[dict], indices, max_length: int, overlong: str, chat=None):
    from judgeforge.tokenization import EncodeStats, encode_for_training, encode_many

    stats = EncodeStats()
    out = []
    indices = list(indices)
    pre = encode_many(tokenizer, [rows[i]["prompt"] for i in indices], [rows[i]["completion"] for i in indices], chat)
    for i, e in zip(indices, pre):
        r = rows[i]
        enc = encode_for_training(
            tokenizer, r["prompt"], r["completion"], max_length, overlong, stats, r.get("id"), chat, encoded=e
        )
        if enc is not None:
            out.append((i, enc))
    st = {
        "kept": stats.kept,
        "dropped_overlong": stats.dropped_overlong,
        "truncated": stats.truncated,
        "dropped_no_target": stats.dropped_no_target,
        "longest": stats.longest,
        "dropped_ids": [str(x) for x in stats.dropped_ids],
    }
    return out, st


def _save_shard(path: Path, encoded, stats) -> None:
    t = from_encoded(encoded, stats)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            ids=t.ids,
            lengths=t.lengths,
            n_prompt=t.n_prompt,
            row_index=np.array(t.row_ids, dtype=np.int64),
            stats=np.array(json.dumps(stats)),
        )
    os.replace(tmp, path)


def _load_shard(path: Path):
    with np.load(path) as z:
        return z["ids"], z["lengths"], z["n_prompt"], z["row_index"], json.loads(str(z["stats"]))


def cache_key(recipe, tokenizer, rows: list[dict], chat=None) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {
                "max_length": recipe.max_length,
                "overlong": recipe.overlong,
                "tok": getattr(tokenizer, "name_or_path", ""),
                "vocab": len(tokenizer),
                **({"chat": chat.name, "eos": chat.eos_id} if chat is not None else {}),
            }
        ).encode()
    )
    for r in rows:
        h.update(r["prompt"].encode("utf-8", "surrogatepass"))
        h.update(b"\0")
        h.update(r["completion"].encode("utf-8", "surrogatepass"))
        h.update(b"\1")
    return h.hexdigest()[:16]


def tokenize(
    recipe, tokenizer, rows: list[dict], cache_dir: Path | None, rank: int = 0, world: int = 1, barrier=None,
    chat=None,
) -> TokenizedRows:
    """Tokenise ``rows``; with several processes each takes every ``world``-th row (see module doc)."""
    if cache_dir is None:
        encoded, stats = _encode_shard(tokenizer, rows, range(len(rows)), recipe.max_length, recipe.overlong, chat)
        return from_encoded(encoded, stats)
    key = cache_key(recipe, tokenizer, rows, chat)
    folder = Path(cache_dir) / f"tokens-{key}-w{world}"
    folder.mkdir(parents=True, exist_ok=True)
    mine = folder / f"shard-{rank:05d}.npz"
    if not mine.exists():
        encoded, stats = _encode_shard(
            tokenizer, rows, range(rank, len(rows), world), recipe.max_length, recipe.overlong, chat
        )
        _save_shard(mine, encoded, stats)
    if barrier is not None:
        barrier()
    parts = []
    for r in range(world):
        path = folder / f"shard-{r:05d}.npz"
        if not path.exists():  # no shared file system between nodes: do the missing shard here
            encoded, stats = _encode_shard(
                tokenizer, rows, range(r, len(rows), world), recipe.max_length, recipe.overlong, chat
            )
            _save_shard(path, encoded, stats)
        parts.append(_load_shard(path))
    return _merge_shards(parts)


def _merge_shards(parts) -> TokenizedRows:
    row_index = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0, np.int64)
    lengths = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    n_prompt = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int32)
    starts = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths):
        starts[1:] = np.cumsum(lengths)[:-1]
    order = np.argsort(row_index, kind="stable")
    stats = {
        "kept": 0,
        "dropped_overlong": 0,
        "truncated": 0,
        "dropped_no_target": 0,
        "longest": 0,
        "dropped_ids": [],
    }
    for p in parts:
        s = p[4]
        for k in ("kept", "dropped_overlong", "truncated", "dropped_no_target"):
            stats[k] += s[k]
        stats["longest"] = max(stats["longest"], s["longest"])
        stats["dropped_ids"].extend(s["dropped_ids"])
    return TokenizedRows(
        ids, starts[order], lengths[order], n_prompt[order], row_index[order].tolist(), stats
    )


def synthetic_rows(lengths, target_fraction, seed: int = 0, vocab: int = 32000) -> TokenizedRows:
    """Random-token rows of the given lengths (benchmarks): BOS first, the last
    ``target_fraction`` of each row (at least one token) is the target."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths, dtype=np.int64)
    fr = np.broadcast_to(np.asarray(target_fraction, dtype=np.float64), lengths.shape)
    n_target = np.clip(np.round(lengths * fr).astype(np.int64), 1, lengths - 1)
    ids = rng.integers(3, vocab, size=int(lengths.sum()), dtype=np.int32)
    offsets = np.zeros(len(lengths), dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)[:-1]
    ids[offsets] = 1  # BOS
    stats = {
        "kept": len(lengths),
        "dropped_overlong": 0,
        "truncated": 0,
        "dropped_no_target": 0,
        "longest": int(lengths.max()) if len(lengths) else 0,
        "dropped_ids": [],
    }
    return TokenizedRows(ids, offsets, lengths, lengths - n_target, list(range(len(lengths))), stats)


# --------------------------------------------------------------------------- micro-batches


def plan_micro_batches(lengths, rows_per_batch: int, pack_tokens: int | None, seed: int) -> list[list[int]]:
    """Shuffle row indices (seeded) and cut them into micro-batches (see module doc)."""
    order = np.random.default_rng(seed).permutation(len(lengths)).tolist()
    if pack_tokens is None:
        return [order[i : i + rows_per_batch] for i in range(0, len(order), rows_per_batch)]
    batches, cur, used = [], [], 0
    for i in order:
        n = int(lengths[i])
        if cur and used + n > pack_tokens:
            batches.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += n
    if cur:
        batches.append(cur)
    return batches


class MicroBatches:
    """A map-style dataset whose items are whole micro-batches (lists of rows)."""

    def __init__(self, rows: TokenizedRows, batches: list[list[int]]):
        self.rows = rows
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict:
        idx = self.batches[i]
        return {"rows": [self.rows.row(j) for j in idx], "row_ids": [self.rows.row_ids[j] for j in idx]}


class Collator:
    """Micro-batch -> model inputs.  ``packed``: one row, no padding; else right-padded rows."""

    def __init__(self, packed: bool, pad_id: int = 0, with_row_ids: bool = False):
        self.packed = packed
        self.pad_id = pad_id
        self.with_row_ids = with_row_ids

    def __call__(self, items: list[dict]) -> dict:
        import torch

        rows = [r for item in items for r in item["rows"]]
        lengths = [len(ids) for ids, _ in rows]
        out: dict = {}
        if self.packed:
            total = sum(lengths)
            input_ids = torch.empty(1, total, dtype=torch.long)
            labels = torch.empty(1, total, dtype=torch.long)
            position_ids = torch.empty(1, total, dtype=torch.long)
            o = 0
            for ids, n_prompt in rows:
                n = len(ids)
                t = torch.from_numpy(np.asarray(ids, dtype=np.int64))
                input_ids[0, o : o + n] = t
                labels[0, o : o + n] = t
                labels[0, o : o + n_prompt] = IGNORE_INDEX
                position_ids[0, o : o + n] = torch.arange(n)
                o += n
            cu = torch.tensor([0, *np.cumsum(lengths).tolist()], dtype=torch.int32)
            out.update(
                input_ids=input_ids,
                labels=labels,
                position_ids=position_ids,
                cu_seq_lens_q=cu,
                cu_seq_lens_k=cu,
                max_length_q=max(lengths),
                max_length_k=max(lengths),
            )
        else:
            width = max(lengths)
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
            attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
            for b, (ids, n_prompt) in enumerate(rows):
                n = len(ids)
                t = torch.from_numpy(np.asarray(ids, dtype=np.int64))
                input_ids[b, :n] = t
                labels[b, n_prompt:n] = t[n_prompt:]
                attention_mask[b, :n] = 1
            out.update(input_ids=input_ids, labels=labels, attention_mask=attention_mask)
        out["n_tokens"] = sum(lengths)  # non-padding tokens, for throughput logs (popped before the model)
        out["n_rows"] = len(rows)
        if self.with_row_ids:
            out["row_ids"] = [rid for item in items for rid in item["row_ids"]]
        return out
