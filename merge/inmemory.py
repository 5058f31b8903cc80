"""In-memory merging for sweeps: load two experts once, then make the judge for any ratio in place.

A merge-ratio sweep (the paper's Figure 3: absolute:relative from 1:9 to 9:1) would otherwise
write nine 14.5 GB checkpoints.  Here both experts (and a base, for task-vector methods) are
loaded once onto the device, and :meth:`InMemoryMerger.apply` writes the merged weights straight
into a live ``transformers`` model, which the evaluation then uses as it is::

    from judgeforge.merge.inmemory import InMemoryMerger

    merger = InMemoryMerger("experts/absolute", "experts/relative", device="cuda")  # dtype: the experts'
    model = merger.model                      # a live AutoModelForCausalLM on the device
    for alpha in (0.1, 0.2, ..., 0.9):
        merger.apply(alpha)                   # weights alpha * absolute + (1 - alpha) * relative
        evaluate(model, tokenizer)            # same object every time; nothing touches the disk

    merger = InMemoryMerger(abs_dir, rel_dir, base="mistral-7b-instruct", device="cuda")
    merger.apply(0.5, "dare_linear", seed=42, density=0.9)       # DARE-linear, fixed seed
    merger.apply(0.5, "ties", density=0.5)                         # any mergekit method by name

* ``alpha`` is the weight of the first expert; the second gets ``1 - alpha`` (or pass
  ``weights=[wa, wb]``).  ``slerp`` uses the first expert as its base and ``t = 1 - alpha``.
* ``apply(alpha)`` (linear) equals, bit for bit, the judge that
  ``judgeforge merge --weights alpha,1-alpha A B`` writes (and mergekit's linear merge) for the
  same dtype and device; every other method runs mergekit's own kernel tensor by tensor in
  mergekit's order (tensor names sorted) after mergekit's seeding
  (``transformers.trainer_utils.set_seed``), so ``apply(a, "dare_linear", seed=s)`` equals
  ``judgeforge merge --method dare_linear --seed s ...`` on the same device (CPU: tested;
  a CUDA run draws from the CUDA generator, as ``mergekit --cuda`` does).  Where transformers
  holds a model in another layout than its checkpoint (transformers 5 fuses Mixtral's experts),
  the experts are loaded through transformers; linear merges stay identical, random methods then
  draw their masks in a different order than a written merge.
* ``model=`` lets a caller pass its own already-loaded model (e.g. an evaluation backend's);
  its state dict names must match the experts' tensors.  Experts may be folders (safetensors
  or LoRA adapters, folded with peft) or ``{name: tensor}`` dicts already in memory.
* Memory: two experts + the live model (+ base) on the device: 3 x 14.5 GB for a 7B judge in
  bf16 (4 x with a base), which fits one 80 GB GPU.  Switching the linear ratio of a 7B judge
  takes well under a second on an H100 (``scripts/bench/merge_7b.py`` measures it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.merge.fast_linear import linear_combine, resolve_device


def _torch_dtype(dtype):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    from judgeforge.merge.checkpoint import canonical_dtype

    return getattr(torch, canonical_dtype(dtype))


class InMemoryMerger:
    """Two experts (and an optional base) held on ``device``; :meth:`apply` writes a merge into ``model``."""

    def __init__(
        self,
        expert_a,
        expert_b,
        *,
        base=None,
        model=None,
        device: str | None = "auto",
        dtype=None,
        lora_base: str | None = None,
    ):
        self.device = resolve_device(device)
        self.dtype = _torch_dtype(dtype)
        self.lora_base = lora_base
        if model is None:
            if not isinstance(expert_a, (str, os.PathLike)):
                raise UserError("pass model= when the first expert is given as tensors")
            model = self._load_model(expert_a)
        self.model = model
        self._targets = self._target_tensors(model)
        names = list(self._targets)
        self.a = self._load(expert_a, names, "expert_a")
        self.b = self._load(expert_b, names, "expert_b")
        self.base = self._load(base, names, "base") if base is not None else None
        self.names = sorted(names)  # mergekit merges tensors in sorted-name order (it matters for RNG draws)
        self.last: dict = {}

    # ---------------------------------------------------------------- loading
    def _load_model(self, src):
        from transformers import AutoModelForCausalLM

        from judgeforge.merge.checkpoint import is_lora_adapter

        if is_lora_adapter(src):
            return self._lora_model(src)
        kwargs = {"dtype": self.dtype} if self.dtype is not None else {"dtype": "auto"}
        return AutoModelForCausalLM.from_pretrained(src, use_safetensors=True, **kwargs).to(self.device).eval()

    def _lora_model(self, src):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        from judgeforge.merge.lora import adapter_base

        kwargs = {"dtype": self.dtype} if self.dtype is not None else {"dtype": "auto"}
        m = AutoModelForCausalLM.from_pretrained(adapter_base(src, self.lora_base), use_safetensors=True, **kwargs)
        return PeftModel.from_pretrained(m, str(src)).merge_and_unload().to(self.device).eval()

    @staticmethod
    def _target_tensors(model) -> dict:
        """name -> parameter/buffer of the live model, one name per storage (tied weights once)."""
        out, seen = {}, set()
        for name, t in model.state_dict(keep_vars=True).items():
            if not t.is_floating_point():
                continue
            key = (t.data_ptr(), tuple(t.shape))
            if key in seen:
                continue
            seen.add(key)
            out[name] = t
        return out

    def _load(self, src, names: list[str], role: str) -> dict:
        import torch

        if isinstance(src, dict):
            tensors = src
        elif isinstance(src, (str, os.PathLike)):
            from judgeforge.merge.checkpoint import inspect_checkpoint, is_lora_adapter

            if is_lora_adapter(src):
                m = self._lora_model(src)
                tensors = {k: v.detach() for k, v in m.state_dict().items()}
            else:
                ck = inspect_checkpoint(src, role)
                if set(names) <= set(ck.tensors):
                    from safetensors import safe_open

                    tensors = {}
                    by_file: dict[Path, list[str]] = {}
                    for n in names:
                        by_file.setdefault(ck.tensors[n].file, []).append(n)
                    for f, ns in by_file.items():
                        with safe_open(str(f), framework="pt", device=str(self.device)) as fh:
                            for n in ns:
                                tensors[n] = fh.get_tensor(n)
                else:  # transformers renames/fuses some checkpoints' tensors on load: use its loader
                    m = self._load_model(src)
                    tensors = {k: v.detach() for k, v in m.state_dict().items()}
        else:
            raise UserError(
                f"{role}: give a model folder or a {{name: tensor}} dict, not {type(src).__name__}"
            )
        missing = [n for n in names if n not in tensors]
        if missing:
            raise UserError(
                f"{role} has no tensor '{missing[0]}' that the model has"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        out = {}
        for n in names:
            t, target = tensors[n], self._targets[n]
            if tuple(t.shape) != tuple(target.shape):
                raise UserError(
                    f"tensor '{n}' has shape {list(t.shape)} in {role} but {list(target.shape)} in the model"
                )
            t = t.to(device=self.device, dtype=self.dtype if self.dtype is not None else t.dtype)
            out[n] = t
        del tensors
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        return out

    # ---------------------------------------------------------------- merging
    def apply(
        self,
        alpha: float | None = None,
        method: str = "linear",
        *,
        weights: list[float] | None = None,
        seed: int | None = 42,
        **params,
    ):
        """Write the merge of the experts for ``alpha`` (weight of expert A) into :attr:`model`; returns it.

        ``params`` are the method's parameters (``density``, ``lambda``/``lambda_``, ``normalize``,
        ``epsilon``, ...), as in a recipe.  ``seed`` seeds random methods the way mergekit does.
        """
        import torch

        if "lambda_" in params:
            params["lambda"] = params.pop("lambda_")
        if weights is None:
            if alpha is None:
                raise UserError("apply() needs alpha or weights")
            weights = [float(alpha), 1.0 - float(alpha)]
        if len(weights) != 2:
            raise UserError(f"apply(): {len(weights)} weights for 2 experts")
        t0 = time.perf_counter()
        with torch.no_grad():
            if method == "linear":
                unknown = set(params) - {"normalize"}
                if unknown:
                    raise UserError(
                        f"method 'linear' has no parameter '{sorted(unknown)[0]}'; it takes: normalize"
                    )
                normalize = bool(params.get("normalize", True))
                if normalize and abs(sum(weights)) < 1e-8:
                    raise UserError(f"weights {weights} sum to zero; linear divides by their sum")
                for n in self.names:
                    self._targets[n].copy_(
                        linear_combine([self.a[n], self.b[n]], weights, normalize=normalize)
                    )
            else:
                self._apply_mergekit(method, weights, seed, params)
            if self.device.startswith("cuda"):
                torch.cuda.synchronize(self.device)
        self.last = {
            "alpha": alpha,
            "weights": list(weights),
            "method": method,
            "seed": seed,
            "params": params,
            "seconds": time.perf_counter() - t0,
        }
        return self.model

    def _apply_mergekit(self, method: str, weights: list[float], seed: int | None, params: dict) -> None:
        from mergekit.merge_methods import get
        from mergekit.merge_methods.base import TensorGroup
        from transformers.trainer_utils import set_seed

        from judgeforge.merge.methods import FIRST_IS_BASE, get_method

        info = get_method(method)
        known = {p.name for p in info.params}
        unknown = set(params) - known
        if unknown:
            raise UserError(
                f"method '{method}' has no parameter '{sorted(unknown)[0]}'; it takes: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
        kernel = get(method)
        bound = dict(params)
        if info.param("weight") is not None:
            bound["weight"] = list(weights)
        if method in FIRST_IS_BASE:  # base = expert A; t = weight of expert B
            if "t" in known and "t" not in bound:
                bound["t"] = float(weights[1])

            def tensors(n):
                return [self.a[n], self.b[n]], 0
        elif info.base == "required" or (info.base == "optional" and self.base is not None):
            if self.base is None:
                raise UserError(f"method '{method}' needs a base: InMemoryMerger(..., base=BASE)")

            def tensors(n):
                return [self.a[n], self.b[n], self.base[n]], 2
        else:

            def tensors(n):
                return [self.a[n], self.b[n]], None

        if seed is not None:
            set_seed(seed)
        for n in self.names:
            ts, base_index = tensors(n)
            group = TensorGroup.from_tensors(ts, base_index=base_index, name=n)
            (result,) = kernel((group,), parameters=bound)
            self._targets[n].copy_(result)
