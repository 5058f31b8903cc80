"""The plain reference decoding: ``model.generate`` on left-padded batches, in the given order.

The ``hf`` backend's ``engine="generate"``, and what the fast engine
(:mod:`judgeforge.backends.fastgen`) falls back to and is checked against token for token.
"""

from __future__ import annotations

from collections.abc import Callable

from judgeforge.backends import Sampling


def generation_kwargs(sampling: Sampling, n: int, pad_id: int, eos_id: int | None) -> dict:
    """``model.generate`` keyword arguments for a :class:`Sampling` (the reference decoding)."""
    kw: dict = dict(max_new_tokens=sampling.max_new_tokens, pad_token_id=pad_id, eos_token_id=eos_id,
                    num_return_sequences=n)
    if sampling.is_greedy:
        kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kw.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
    kw["repetition_penalty"] = sampling.repetition_penalty if sampling.repetition_penalty != 1.0 else None
    if sampling.ignore_eos:
        kw["min_new_tokens"] = sampling.max_new_tokens
    return kw


def left_pad(batch: list[list[int]], pad_id: int, device):
    """(input_ids, attention_mask) tensors with the prompts right-aligned."""
    import torch

    width = max(len(p) for p in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, p in enumerate(batch):
        ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def trim(tokens: list[int], eos_id: int | None, pad_id: int | None, ignore_eos: bool = False) -> list[int]:
    """New tokens up to (not including) the first EOS; trailing padding removed."""
    if eos_id is not None and not ignore_eos and eos_id in tokens:
        return tokens[: tokens.index(eos_id)]
    return tokens


def plain_generate(model, prompts: list[list[int]], sampling: Sampling, n: int = 1, *, batch_size: int = 8,
                   pad_id: int = 0, eos_id: int | None = None,
                   progress: Callable[[int], None] | None = None) -> list[list[list[int]]]:
    """The reference path: ``model.generate`` on left-padded batches of prompts in their given order.

    ``batch_size`` counts sequences, so a batch holds ``batch_size // n`` prompts.  Greedy
    decoding generates once per prompt and repeats the result ``n`` times.
    """
    import torch

    if sampling.is_greedy and n > 1:
        once = plain_generate(model, prompts, sampling, 1, batch_size=batch_size, pad_id=pad_id, eos_id=eos_id,
                              progress=progress)
        return [[list(per[0]) for _ in range(n)] for per in once]

    device = next(model.parameters()).device
    per_batch = max(1, batch_size // n)
    kw = generation_kwargs(sampling, n, pad_id, eos_id)
    out: list[list[list[int]]] = []
    for start in range(0, len(prompts), per_batch):
        batch = prompts[start: start + per_batch]
        ids, mask = left_pad(batch, pad_id, device)
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, **kw)
        new = gen[:, ids.shape[1]:].tolist()
        for r in range(len(batch)):
            out.append([trim(new[r * n + k], eos_id, pad_id, sampling.ignore_eos) for k in range(n)])
        if progress is not None:
            progress(len(batch))
    return out
