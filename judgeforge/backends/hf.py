"""The ``hf`` backend: a judge run with transformers.

``HFBackend(model, ...)``: ``model`` is a local folder, a hub id, or an already-loaded
``PreTrainedModel`` (with ``tokenizer=``), so a sweep can evaluate an in-memory merge.
Prompts are :meth:`Request.chat_text` in the judge's chat format (``chat_format``: the one its
folder records, else detected; :mod:`judgeforge.format.chat`), tokenised exactly as in training;
generation stops at that format's end token.  Two engines:

``generate``  the reference: ``model.generate`` on left-padded batches.
``fast``      :mod:`judgeforge.backends.fastgen` (the default: continuous batching over a static
              KV cache, one prefill per prompt for its samples, CUDA-graph decoding on GPUs).  Greedy output is token-identical to
              ``generate``; the tests and ``scripts/bench/eval_speed.py`` check it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from judgeforge.backends import Backend, Generated, Request, Sampling
from judgeforge.backends.plain import generation_kwargs, left_pad, plain_generate, trim  # noqa: F401 - re-exported
from judgeforge.errors import UserError, hub_fix

ENGINES = ("fast", "generate")


def load_model(model: str | os.PathLike, *, dtype: str = "auto", device: str | None = None,
               trust_remote_code: bool = False):
    """A causal LM from a local folder or hub id, in eval mode on ``device``; one-line errors."""
    from transformers import AutoModelForCausalLM

    from judgeforge.devices import load_dtype, resolve_device
    from judgeforge.weights import check_local_model, first_non_finite

    if isinstance(model, (str, os.PathLike)):
        check_local_model(str(model), "judge")  # a local folder: config + safetensors, checked before loading
    device = resolve_device(device)
    torch_dtype = load_dtype(  # an unknown name is one line from devices.choose_dtype, before any load
dtype, cuda=str(device).startswith("cuda"),
                             stored=_stored_dtype(model)).torch_dtype()
    try:
        m = AutoModelForCausalLM.from_pretrained(
            model, dtype=torch_dtype, trust_remote_code=trust_remote_code, use_safetensors=True
        )
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load the judge '{model}': {first}; pass a local model folder "
                        f"(with safetensors weights) or a reachable hub id; {hub_fix(model)}") from None
    m = m.to(device).eval()
    # a judge with NaN/inf weights cannot score anything, and sampling from it fails deep in generation
    bad = first_non_finite(m.named_parameters())
    if bad is not None:
        raise UserError(f"the judge '{model}': weight '{bad}' holds NaN or inf; the checkpoint is broken (a diverged "
                        "training run or a failed merge?): rebuild it")
    return m


def _stored_dtype(model) -> str | None:
    """The dtype a local checkpoint's config.json records (None for a hub id or no record)."""
    import json
    from pathlib import Path

    cfg = Path(model) / "config.json"
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (data.get("dtype") or data.get("torch_dtype")) if isinstance(data, dict) else None


class HFBackend(Backend):
    name = "hf"

    def __init__(
        self,
        model,
        *,
        tokenizer=None,
        engine: str = "fast",
        batch_size: int | None = None,
        dtype: str = "auto",
        device: str | None = None,
        trust_remote_code: bool = False,
        progress: Callable[[int], None] | None = None,
        cuda_graphs: bool | None = None,
        chat_format: str | None = None,
    ):
        import torch

        if engine not in ENGINES:
            raise UserError(f"unknown hf engine '{engine}'; choose one of: {', '.join(ENGINES)}")
        self.engine = engine
        self.progress = progress
        self.cuda_graphs = cuda_graphs
        by_name = isinstance(model, (str, os.PathLike))
        self.model_id = str(model) if by_name else getattr(model, "name_or_path", None) or type(model).__name__
        if by_name:
            from judgeforge.weights import check_local_model

            check_local_model(self.model_id, "judge")  # a local folder: config + safetensors, checked first
        # the tokenizer and the chat format first: a broken tokenizer or chat_format.json is one line
        # before the weights load
        if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
            from judgeforge.tokenization import load_tokenizer

            src = tokenizer or self.model_id
            tokenizer = load_tokenizer(src, trust_remote_code=trust_remote_code)
        self.tokenizer = tokenizer
        from judgeforge.format.chat import resolve_chat_format

        folder = self.model_id if by_name else getattr(model, "name_or_path", None)
        self.chat_format = resolve_chat_format(tokenizer, folder=folder, override=chat_format)
        if by_name:
            self.model = load_model(model, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
        else:
            self.model = model.eval()
        self.device = next(self.model.parameters()).device
        self.batch_size_option = batch_size  # None: the fast engine sizes batches from free GPU memory
        self.batch_size = batch_size or (64 if self.device.type == "cuda" else 8)
        if self.tokenizer.pad_token_id is None:
            raise UserError("the judge's tokenizer has no pad, unk or eos token to pad batches with")
        self.pad_id = self.tokenizer.pad_token_id
        self.eos_id = self.chat_format.eos_id
        self._fast = None
        self._torch = torch

    def describe(self) -> str:
        fmt = self.chat_format.name
        return f"hf:{self.model_id}" + ("" if fmt == "mistral" else f"+chat={fmt}")

    # ------------------------------------------------------------------ tokenising

    def encode_requests(self, requests: list[Request]) -> list[list[int]]:
        """Token ids of ``BOS + chat_text()`` per request (the training format)."""
        texts = [r.chat_text(self.chat_format) for r in requests]
        return [list(x) for x in self.tokenizer(texts, add_special_tokens=self.chat_format.add_special_tokens)["input_ids"]]

    def encode_conversations(self, conversations: list[list[dict]]) -> list[list[int]]:
        out = []
        for conv in conversations:
            text = self.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            # the template writes BOS itself when the model wants one
            out.append(list(self.tokenizer(text, add_special_tokens=False)["input_ids"]))
        return out

    def prompt_lengths(self, requests: list[Request]) -> list[int]:
        return [len(x) for x in self.encode_requests(requests)]

    @property
    def context_length(self) -> int | None:
        from judgeforge.backends.fastgen import context_limit

        return context_limit(self.model)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------ generation

    def generate(self, requests: list[Request], sampling: Sampling, n: int = 1) -> list[list[str]]:
        return self.generate_ids(self.encode_requests(requests), sampling, n)

    def chat(self, conversations: list[list[dict]], sampling: Sampling, n: int = 1) -> list[list[str]]:
        return self.generate_ids(self.encode_conversations(conversations), sampling, n)

    def generate_ids(self, prompts: list[list[int]], sampling: Sampling, n: int = 1) -> list[list[str]]:
        """Decoded texts; each knows whether it stopped at ``max_new_tokens``: both engines stop a sequence
        only at the end token (cut off, with what follows) or after ``max_new_tokens`` new tokens, so an
        output of that many tokens never ended by itself."""
        tokens = self.generate_tokens(prompts, sampling, n)
        limit = sampling.max_new_tokens
        return [[Generated(self.decode(t), len(t) >= limit) for t in per] for per in tokens]

    def generate_tokens(self, prompts: list[list[int]], sampling: Sampling, n: int = 1,
                        ids: list | None = None) -> list[list[list[int]]]:
        """For each prompt (token ids), ``n`` lists of new token ids (up to and without EOS/padding).

        A prompt that cannot fit the judge's context with ``max_new_tokens`` is refused before any
        generation, naming its index (and ``ids[k]`` when given); it is never truncated."""
        from judgeforge.backends.fastgen import check_context

        if not prompts:
            return []
        check_context(prompts, sampling.max_new_tokens, self.context_length, ids)
        if sampling.seed is not None:
            self._torch.manual_seed(sampling.seed)
        if self.engine == "fast":
            return self._fast_engine().generate(prompts, sampling, n, progress=self.progress)
        return plain_generate(self.model, prompts, sampling, n, batch_size=self.batch_size, pad_id=self.pad_id,
                              eos_id=self.eos_id, progress=self.progress)

    def _fast_engine(self):
        if self._fast is None:
            from judgeforge.backends.fastgen import FastGenerator

            self._fast = FastGenerator(self.model, pad_id=self.pad_id, eos_id=self.eos_id,
                                       batch_size=self.batch_size_option, cuda_graphs=self.cuda_graphs)
        return self._fast
