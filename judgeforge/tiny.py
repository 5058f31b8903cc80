"""Tiny Mistral-architecture models built from a config, for the CPU quickstart and tests.

``make_tiny_model(DIR)`` writes a normal Hugging Face folder (config, safetensors,
the Mistral v1 tokenizer with the judge chat template) that every stage loads as it
would load Mistral-7B-Instruct-v0.2.
"""

from __future__ import annotations

import os
from pathlib import Path

# Mistral-7B-v0.2's configuration, for speed benchmarks with random weights.
MISTRAL_7B_V02 = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    sliding_window=None,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
)


def tiny_config(hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, intermediate: int | None = None,
                tie: bool = True, max_positions: int = 4096, vocab_size: int = 32000):
    from transformers import MistralConfig

    return MistralConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=max_positions,
        rope_theta=10000.0,
        sliding_window=None,
        tie_word_embeddings=tie,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def make_tiny_model(out_dir: str | os.PathLike, *, seed: int = 0, dtype: str = "float32", tokenizer: str = "mistral-v1",
                    **config_kwargs) -> Path:
    """Write a randomly initialised tiny Mistral model + tokenizer to ``out_dir``; returns the path."""
    import torch
    from transformers import AutoModelForCausalLM

    from judgeforge.devices import torch_dtype
    from judgeforge.tokenization import load_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(**config_kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype(dtype))
    model.generation_config.pad_token_id = 0
    model.save_pretrained(out, safe_serialization=True)
    load_tokenizer(tokenizer).save_pretrained(out)
    return out
