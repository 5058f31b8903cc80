"""The streaming linear path writes mergekit's bytes; the in-memory judge equals the written one."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_merge_cli import _copy_side_files, merge_models, run, tensors

from judgeforge.merge.checkpoint import inspect_checkpoint
from judgeforge.merge.core import mergekit_config, run_mergekit
from judgeforge.merge.fast_linear import merge_linear
from judgeforge.merge.recipe import MergeRecipe


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    m = merge_models(tmp_path_factory)
    root = m["root"]
    if "abs-bf16-sharded" not in m:
        from transformers import AutoModelForCausalLM

        # differently sharded inputs: abs in 3 MB shards (bf16), rel in one file (bf16)
        AutoModelForCausalLM.from_pretrained(m["abs"], dtype=torch.bfloat16).save_pretrained(
            root / "abs-bf16-sharded", max_shard_size="3MB"
        )
        _copy_side_files(m["abs"], root / "abs-bf16-sharded")
        dst = root / "rel-bf16"
        _copy_side_files(m["rel"], dst)
        save_file(
            {k: v.to(torch.bfloat16) for k, v in load_file(m["rel"] / "model.safetensors").items()},
            dst / "model.safetensors",
            metadata={"format": "pt"},
        )
        m["abs-bf16-sharded"], m["rel-bf16"] = root / "abs-bf16-sharded", dst
    return m


def _mergekit_linear(paths, weights, out, **kw):
    recipe = MergeRecipe(models=[str(p) for p in paths], weights=weights, **kw)
    recipe.validate("test")
    run_mergekit(mergekit_config(recipe, recipe.models, None), out, device="cpu", seed=0)
    return tensors(out)


CASES = {
    "fp32, equal weights": ("abs", "rel", [1.0, 1.0], {}),
    "fp32, 0.3/0.7 merged in bf16": ("abs", "rel", [0.3, 0.7], {"dtype": "bfloat16"}),
    "fp32 not normalised, written fp16": (
        "abs",
        "rel",
        [0.5, 0.25],
        {"parameters": {"normalize": False}, "out_dtype": "float16"},
    ),
    "bf16, sharded differently": ("abs-bf16-sharded", "rel-bf16", [0.1, 0.9], {}),
    "fp32 + bf16 inputs (promoted)": ("abs", "rel-bf16", [0.6, 0.4], {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_is_byte_identical_to_mergekit(case, models, tmp_path):
    a, b, weights, kw = CASES[case]
    cks = [inspect_checkpoint(models[a]), inspect_checkpoint(models[b])]
    params = kw.get("parameters", {})
    stats = merge_linear(
        cks,
        weights,
        tmp_path / "fast",
        normalize=params.get("normalize", True),
        dtype=kw.get("dtype"),
        out_dtype=kw.get("out_dtype"),
        device="cpu",
        chunk_mb=0.02,
    )
    assert stats["chunks"] > len(stats["shards"])  # really streamed in pieces
    ref = _mergekit_linear([models[a], models[b]], weights, tmp_path / "mk", **kw)
    ours = tensors(tmp_path / "fast")
    assert sorted(ours) == sorted(ref)
    for k in ref:
        assert ours[k].dtype == ref[k].dtype, k
        assert torch.equal(ours[k], ref[k]), k


def test_fast_path_streams_and_mirrors_the_first_models_shards(models, tmp_path):
    src = inspect_checkpoint(models["abs-bf16-sharded"])
    other = inspect_checkpoint(models["rel-bf16"])
    seen = []
    stats = merge_linear(
        [src, other],
        [0.5, 0.5],
        tmp_path / "o",
        device="cpu",
        chunk_mb=0.5,
        on_shard=lambda p: seen.append(p.name),
    )
    assert seen == [f.name for f in src.files] == stats["shards"]  # each shard finished on disk in turn
    index = json.loads((tmp_path / "o" / "model.safetensors.index.json").read_text())
    want = json.loads((models["abs-bf16-sharded"] / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == want["weight_map"]
    largest_tensor = max(t.nbytes for t in src.tensors.values())
    # host memory: `prefetch` (2) buffers per input and for the output, each ~chunk_mb (or the largest tensor)
    assert stats["host_buffer_bytes"] <= 2 * 3 * (max(512 << 10, largest_tensor) + 64 * len(src.tensors))
    assert stats["bytes_written"] == sum((tmp_path / "o" / f).stat().st_size for f in stats["shards"])


def test_cli_routes_linear_to_the_fast_path_unless_told(models, tmp_path, capsys):
    code, _, err = run([models["abs"], models["rel"], "-o", tmp_path / "a"], capsys)
    assert code == 0 and "streaming fast path" in err
    code, _, err = run([models["abs"], models["rel"], "-o", tmp_path / "b", "--engine", "mergekit"], capsys)
    assert code == 0 and "(mergekit)" in err
    assert "engine: mergekit" in (tmp_path / "b" / "README.md").read_text()
    fa, fb = tensors(tmp_path / "a"), tensors(tmp_path / "b")
    assert all(torch.equal(fa[k], fb[k]) for k in fb)


def test_truncated_input_shard_is_an_error_not_a_model(models, tmp_path, capsys):
    bad = tmp_path / "trunc"
    shutil.copytree(models["rel"], bad)
    f = bad / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-1000])
    code, _, err = run([models["abs"], bad, "-o", tmp_path / "out"], capsys)
    assert code == 1 and "model.safetensors is truncated" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())


# ------------------------------------------------------------------ in memory == written
def test_in_memory_judge_equals_the_written_one(models, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from judgeforge.merge.inmemory import InMemoryMerger

    merger = InMemoryMerger(models["abs"], models["rel"], base=models["base"], device="cpu")
    ids = torch.tensor([[1, 733, 16289, 28793, 22557, 733, 28748, 16289, 28793]])
    for alpha in (0.3, 0.9):
        out = tmp_path / f"lin-{alpha}"
        code, _, err = run(
            ["--weights", f"{alpha},{1 - alpha}", models["abs"], models["rel"], "-o", out], capsys
        )
        assert code == 0, err
        live = merger.apply(alpha)
        written = AutoModelForCausalLM.from_pretrained(out)
        sd = live.state_dict()
        for k, v in written.state_dict().items():
            assert torch.equal(sd[k], v), (alpha, k)
        with torch.no_grad():
            assert torch.equal(live(ids).logits, written(ids).logits)

    out = tmp_path / "dare"
    code, _, err = run(
        [
            "--method",
            "dare_linear",
            "--base",
            models["base"],
            "--weights",
            "0.5,0.5",
            "--density",
            "0.5",
            "--seed",
            "7",
            models["abs"],
            models["rel"],
            "-o",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    merger.apply(0.5, "dare_linear", seed=7, density=0.5)
    ref, sd = tensors(out), merger.model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ref.items())
    merger.apply(0.5, "dare_linear", seed=8, density=0.5)
    assert not all(torch.equal(merger.model.state_dict()[k], v) for k, v in ref.items())
    assert merger.last["method"] == "dare_linear" and merger.last["seconds"] > 0


def test_in_memory_merger_writes_into_a_callers_model(models):
    from transformers import AutoModelForCausalLM

    from judgeforge.merge.inmemory import InMemoryMerger

    model = AutoModelForCausalLM.from_pretrained(models["base"])
    ptr = model.model.embed_tokens.weight.data_ptr()
    merger = InMemoryMerger(models["abs"], models["rel"], model=model, device="cpu")
    assert merger.apply(0.5) is model
    assert model.model.embed_tokens.weight.data_ptr() == ptr  # in place: the caller's tensors, no copy
    a, b = tensors(models["abs"]), tensors(models["rel"])
    k = "model.layers.1.self_attn.o_proj.weight"
    torch.testing.assert_close(model.state_dict()[k], (a[k] + b[k]) / 2, rtol=0, atol=1e-6)
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)  # tied weights stay tied
