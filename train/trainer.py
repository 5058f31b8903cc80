"""The training loop: transformers' ``Trainer`` with our own micro-batches and loss.

Why ``Trainer`` and not TRL's ``SFTTrainer``: judgeforge already renders, tokenises and masks
the rows (:mod:`judgeforge.tokenization`, byte-exact with what Prometheus 2 trained on), so
SFTTrainer's dataset preparation would only re-tokenise and its packing (padding-free only
with flash-attn) would have to be switched off or worked around.  What we need from a loop -
DeepSpeed ZeRO 2/3 and offload, checkpoints and resume with the same data order, the
schedulers, gradient checkpointing, peft, wandb/tensorboard - is ``Trainer`` itself (SFTTrainer
is a subclass of it).  Two methods are overridden:

* :meth:`JudgeTrainer.get_batch_samples` counts the target tokens of the whole optimizer step
  (all micro-batches of the accumulation, all processes) - the normaliser of the loss;
* :meth:`JudgeTrainer.compute_loss` computes the loss on target positions only
  (:mod:`judgeforge.train.loss`) and normalises it:

  ``tokens`` (default; transformers 5's own rule)
      sum of the step's target-token losses / the step's target tokens.  Every target token
      weighs the same however the rows are grouped, so packed and padded micro-batches of
      the same rows give the same gradient.
  ``micro_batch`` (transformers 4.38, the Prometheus 2 stack)
      the mean over each micro-batch's target tokens, averaged over the accumulation steps
      and the processes.

The returned loss is scaled so that after DeepSpeed/DDP average the gradients over the
processes, the gradient is that of the rule above.
"""

from __future__ import annotations

import json
import math
import time

from transformers import Trainer, TrainerCallback

from judgeforge.train.loss import target_loss_sum

EXTRA_KEYS = ("n_tokens", "n_rows", "row_ids")


TOTALS = "judgeforge_totals.json"  # in each checkpoint: the run's rows, tokens and loss so far


class JudgeTrainer(Trainer):
    def __init__(self, *args, loss_normalization: str = "tokens", fused_loss: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_normalization = loss_normalization
        self.fused_loss = fused_loss
        # our compute_loss already normalises over the accumulated step: tell Trainer not to divide again
        self.model_accepts_loss_kwargs = True
        if hasattr(self, "loss_is_scaled_for_ga"):
            self.loss_is_scaled_for_ga = True
        self._micro_in_step = 1
        self.step_stats = {"tokens": 0, "targets": 0, "rows": 0}
        self.prior_totals = {"tokens": 0, "targets": 0, "rows": 0, "loss_sum": 0.0}  # before a resume
        self.row_trace: list | None = None  # set to a list to record the row ids of every micro-batch

    # ------------------------------------------------------------------ totals that survive a resume
    def run_totals(self, final: bool = False) -> dict:
        """Rows, tokens and summed step losses of the whole run, the steps before a resume included.
        Trainer drains the loss summed since the last log (``_tr_loss``) into ``_total_loss_scalar`` at
        each log and once at the end (``final``)."""
        pending = getattr(self, "_tr_loss", None)
        pending = 0.0 if final or pending is None else float(pending.item())
        out = {k: self.prior_totals[k] + self.step_stats[k] for k in ("tokens", "targets", "rows")}
        out["loss_sum"] = self.prior_totals["loss_sum"] + float(getattr(self, "_total_loss_scalar", 0.0)) + pending
        return out

    def save_totals(self, checkpoint) -> None:
        from pathlib import Path

        from judgeforge.io import atomic_write_json

        atomic_write_json(Path(checkpoint) / TOTALS, self.run_totals())

    def load_totals(self, checkpoint) -> None:
        import json
        from pathlib import Path

        try:
            data = json.loads((Path(checkpoint) / TOTALS).read_text(encoding="utf-8"))
            self.prior_totals = {k: type(v)(data[k]) for k, v in self.prior_totals.items()}
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a checkpoint from before totals were saved: counts start at the resume

    # ------------------------------------------------------------------ one optimizer step of batches
    def get_batch_samples(self, epoch_iterator, num_batches, device):
        import torch

        batches = []
        for _ in range(num_batches):
            try:
                batches.append(next(epoch_iterator))
            except StopIteration:
                break
        self._micro_in_step = max(len(batches), 1)
        local = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
        tokens = sum(int(b.get("n_tokens", b["input_ids"].numel())) for b in batches)
        rows = sum(int(b.get("n_rows", b["input_ids"].shape[0])) for b in batches)
        counts = torch.tensor([local, tokens, rows], dtype=torch.long, device=device)
        if self.args.world_size > 1:
            counts = self.accelerator.gather(counts).reshape(-1, 3).sum(0)
        self.step_stats["targets"] += int(counts[0])
        self.step_stats["tokens"] += int(counts[1])
        self.step_stats["rows"] += int(counts[2])
        if self.row_trace is not None:
            self.row_trace.append([b.get("row_ids") for b in batches])
        return batches, counts[0].clamp(min=1)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        for k in EXTRA_KEYS:
            inputs.pop(k, None)
        loss_sum, n_local = target_loss_sum(model, inputs, labels, fused=self.fused_loss)
        if self.loss_normalization == "tokens" and num_items_in_batch is not None:
            loss = loss_sum / num_items_in_batch * self.accelerator.num_processes
        else:
            loss = loss_sum / max(n_local, 1) / self._micro_in_step
        return (loss, None) if return_outputs else loss


class ProgressCallback(TrainerCallback):
    """Calls ``progress(event)`` with ``stage, step, total_steps, loss, eta_s, tokens_per_s`` and writes
    every log line to ``log_path`` (jsonl).  ``tokens_per_s`` counts non-padding tokens of all processes."""

    def __init__(self, trainer_ref, progress=None, log_path=None):
        self.trainer_ref = trainer_ref
        self.progress = progress
        self.log_path = log_path
        self.t0 = None
        self.step0 = 0
        self.last_loss = None
        self.step_times: list[float] = []
        self._t_last = None

    def _emit(self, **event):
        if self.progress is not None:
            self.progress(event)

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = self._t_last = time.perf_counter()
        self.step0 = state.global_step
        self._emit(
            stage="train",
            step=state.global_step,
            total_steps=state.max_steps,
            loss=None,
            eta_s=None,
            tokens_per_s=None,
        )

    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter()
        self.step_times.append(now - self._t_last)
        self._t_last = now
        done = state.global_step - self.step0
        left = state.max_steps - state.global_step
        elapsed = now - self.t0
        eta = elapsed / done * left if done else None
        tr = self.trainer_ref()
        tps = tr.step_stats["tokens"] / elapsed if tr is not None and elapsed > 0 else None
        self._emit(
            stage="train",
            step=state.global_step,
            total_steps=state.max_steps,
            loss=self.last_loss,
            eta_s=eta,
            tokens_per_s=tps,
        )

    def on_log(self, args, state, control, logs=None, **kw):
        logs = dict(logs or {})
        if "loss" in logs:
            self.last_loss = logs["loss"]
        tr = self.trainer_ref()
        eta = None
        if tr is not None and self.t0 is not None:
            elapsed = time.perf_counter() - self.t0
            if elapsed > 0:
                logs["tokens_per_s"] = round(tr.step_stats["tokens"] / elapsed, 1)
            done = state.global_step - self.step0
            if done:
                eta = elapsed / done * (state.max_steps - state.global_step)
        self._emit(stage="log", step=state.global_step, total_steps=state.max_steps, eta_s=eta, **logs)
        if self.log_path is not None and state.is_world_process_zero:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(
                    json.dumps({"step": state.global_step, **{k: _num(v) for k, v in logs.items()}}) + "\n"
                )


def _num(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    try:
        return float(v) if not isinstance(v, (int, str)) else v
    except (TypeError, ValueError):
        return str(v)
