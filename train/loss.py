"""Causal-LM loss on the judge output only, with the vocabulary projection only where it is needed.

A Prometheus row is mostly prompt (masked); the 32,000-way output layer is needed only at the
positions whose next token is a target.  :func:`target_loss_sum` runs the model's own forward
with ``logits_to_keep`` = those positions (a transformers argument of every causal LM), so the
full ``(tokens x 32,000)`` logits never exist.  It returns the *sum* of the per-token
cross-entropies and the number of target tokens; the trainer divides (see
:mod:`judgeforge.train.trainer` for the normalisation).

Two ways to turn the kept hidden states into the loss:

* ``plain`` (reference, any device): ``lm_head`` -> float32 logits -> ``cross_entropy(sum)``;
  identical to the model's own loss on the same batch (a test checks it).
* ``liger`` (CUDA with liger-kernel installed): liger's fused linear cross-entropy, which
  never materialises the logits (chunked matmul + CE, gradients computed in the forward).
  It runs *inside* ``lm_head``'s forward (the module's forward is swapped for the call), so
  DeepSpeed ZeRO-3's hooks gather the partitioned weight exactly as for a normal call.
  The GPU benchmark checks it against ``plain`` before timing.
"""

from __future__ import annotations

import contextlib

IGNORE_INDEX = -100


def target_positions(labels):
    """Positions whose hidden state predicts a target token.

    Returns ``(positions, select, targets)``: ``positions`` (K,) = positions where any row of the
    batch has a target next (the union, so that one ``logits_to_keep`` tensor serves the batch),
    ``select`` (B, K) bool = which of those are targets for each row, ``targets`` (n,) token ids.
    """
    shifted = labels[:, 1:]
    mask = shifted != IGNORE_INDEX
    positions = mask.any(dim=0).nonzero(as_tuple=False).reshape(-1)
    select = mask[:, positions]
    targets = shifted[:, positions][select]
    return positions, select, targets


def output_head(model):
    """The vocabulary projection of a (possibly DeepSpeed- or peft-wrapped) causal LM."""
    inner = getattr(model, "module", model)  # DeepSpeed engine / DDP
    return inner.get_output_embeddings()


def can_fuse(model) -> bool:
    import torch

    head = output_head(model)
    return type(head) is torch.nn.Linear and head.bias is None


@contextlib.contextmanager
def _fused_head(head, select, targets):
    import torch
    from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

    try:
        loss_fn = LigerFusedLinearCrossEntropyLoss(reduction="sum", accum_dtype=torch.float32)
    except TypeError:  # pragma: no cover - liger without accum_dtype
        loss_fn = LigerFusedLinearCrossEntropyLoss(reduction="sum")

    def forward(hidden):  # hidden: (B, K, H) at the kept positions
        return loss_fn(head.weight, hidden[select], targets)

    head.forward = forward  # an instance attribute: nn.Module.__call__ (and DeepSpeed's hooks) use it
    try:
        yield
    finally:
        del head.forward


def target_loss_sum(model, inputs: dict, labels, fused: bool = False):
    """``(sum of target-token cross-entropies, number of target tokens)`` for one micro-batch."""
    import torch
    import torch.nn.functional as F

    positions, select, targets = target_positions(labels)
    n = int(targets.numel())
    kwargs = dict(inputs, logits_to_keep=positions, use_cache=False)
    if fused:
        with _fused_head(output_head(model), select, targets):
            out = model(**kwargs)
        loss = out.logits if torch.is_tensor(out.logits) else out[0]
        return loss.float(), n
    out = model(**kwargs)
    if select.shape[0] == 1:  # one (packed) row: every kept position is a target; a view, so the backward
        logits = out.logits.view(-1, out.logits.shape[-1]).float()  # writes no zero-filled (K x V) gradient
    else:
        logits = out.logits[select].float()  # (n, V)
    return F.cross_entropy(logits, targets, reduction="sum"), n
