"""`judgeforge merge` end to end on tiny real models: methods, recipes, validation, output folder, LoRA,
and a merge killed midway."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from judgeforge.cli import main as jf_main

ROOT = Path(__file__).resolve().parents[1]
_MODELS: dict = {}


def _copy_side_files(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith("model"):
            shutil.copy(f, dst / f.name)


def _derived(src: Path, dst: Path, fn, metadata=None) -> Path:
    """A copy of ``src`` whose tensors are ``fn(state_dict)`` (single safetensors file)."""
    _copy_side_files(src, dst)
    save_file(fn(load_file(src / "model.safetensors")), dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def merge_models(tmp_path_factory) -> dict:
    """base (tiny Mistral), two fine-tuned-looking experts (base + small noise), built once per session."""
    if _MODELS:
        return _MODELS
    from judgeforge.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("merge-models")
    base = make_tiny_model(root / "base", seed=0)

    def noisy(seed):
        g = torch.Generator().manual_seed(seed)
        return lambda sd: {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in sd.items()}

    _MODELS.update(
        base=base,
        abs=_derived(base, root / "abs", noisy(1)),
        rel=_derived(base, root / "rel", noisy(2)),
        root=root,
    )
    return _MODELS


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return merge_models(tmp_path_factory)


def run(argv, capsys) -> tuple[int, str, str]:
    code = jf_main(["merge", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def tensors(folder: Path) -> dict:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        out = {}
        for f in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            out.update(load_file(folder / f))
        return out
    return load_file(folder / "model.safetensors")


def test_short_form_writes_a_complete_model_folder(models, tmp_path, capsys):
    out = tmp_path / "judge"
    code, stdout, err = run(["--weights", "0.5,0.5", models["abs"], models["rel"], "-o", out], capsys)
    assert code == 0, err
    assert stdout.strip() == str(out)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    first = AutoTokenizer.from_pretrained(models["abs"])
    assert tok.chat_template == first.chat_template and tok.chat_template
    assert tok("[INST] hi [/INST]").input_ids == first("[INST] hi [/INST]").input_ids
    a, b, m = tensors(models["abs"]), tensors(models["rel"]), tensors(out)
    for k in a:
        torch.testing.assert_close(m[k], (a[k] + b[k]) / 2, rtol=0, atol=1e-6)
    assert model.config.model_type == "mistral"
    card = (out / "README.md").read_text()
    for needle in (
        "linear",
        "[0.5, 0.5]",
        str(models["abs"]),
        str(models["rel"]),
        "judgeforge 0.1.0",
        "mergekit",
        "fast linear",
    ):
        assert needle in card, needle
    recipe = (out / "judgeforge_merge.yaml").read_text()
    assert "method: linear" in recipe and "- 0.5" in recipe
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no partial folder left behind
    assert not (out / ".judgeforge-merge.pid").exists()
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # not the temp folder's private mode


def test_json_summary_on_stdout(models, tmp_path, capsys):
    out = tmp_path / "judge"
    code, stdout, err = run(["--weights", "0.3,0.7", models["abs"], models["rel"], "-o", out, "--json"], capsys)
    assert code == 0, err
    got = json.loads(stdout)
    assert got["output"] == str(out) and got["method"] == "linear" and got["weights"] == [0.3, 0.7]
    assert got["models"] == [str(models["abs"]), str(models["rel"])] and got["engine"] == "judgeforge fast linear"
    assert got["bytes_written"] > 0 and got["card"] == str(out / "README.md") and got["hub_url"] is None
    assert "--json" not in (out / "README.md").read_text()  # the card's reproduce command has no output flag


def _with_format(src: Path, dst: Path, name: str | None) -> Path:
    """``src`` (its weights linked, not copied) with ``chat_format.json`` naming ``name``."""
    if not dst.exists():
        _copy_side_files(src, dst)
        (dst / "model.safetensors").symlink_to(src / "model.safetensors")
    if name:
        (dst / "chat_format.json").write_text(json.dumps({"chat_format": name}))
    return dst


def test_merge_keeps_the_experts_chat_format_and_refuses_disagreeing_ones(models, tmp_path, capsys):
    r = models["root"]
    raw_a = _with_format(models["abs"], r / "abs-raw", "raw")
    raw_b = _with_format(models["rel"], r / "rel-raw", "raw")
    model_b = _with_format(models["rel"], r / "rel-model", "model")
    code, _, err = run([raw_a, raw_b, "-o", tmp_path / "m"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "m" / "chat_format.json").read_text()) == {"chat_format": "raw"}
    assert "- chat format: raw" in (tmp_path / "m" / "README.md").read_text()
    code, _, err = run([raw_a, model_b, "-o", tmp_path / "x"], capsys)  # disagreeing: refused, nothing written
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and not (tmp_path / "x").exists(), err
    assert f"different chat formats ({raw_a}: raw, {model_b}: model)" in lines[0] and "--chat_format" in lines[0]
    code, _, err = run([raw_a, model_b, "--chat_format", "model", "-o", tmp_path / "o"], capsys)  # overridden
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "chat_format.json").read_text()) == {"chat_format": "model"}
    code, _, err = run([models["abs"], models["rel"], "-o", tmp_path / "none"], capsys)  # none recorded: none
    assert code == 0 and not (tmp_path / "none" / "chat_format.json").exists()


def test_task_arithmetic_through_mergekit_equals_its_formula(models, tmp_path, capsys):
    out = tmp_path / "ta"
    code, _, err = run(
        [
            "--method",
            "task_arithmetic",
            "--base",
            models["base"],
            "--weights",
            "0.3,0.7",
            "--lambda",
            "0.8",
            models["abs"],
            models["rel"],
            "-o",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    base, a, b = (tensors(models[k]) for k in ("base", "abs", "rel"))
    m = tensors(out)
    for k in base:
        want = base[k] + 0.8 * (0.3 * (a[k] - base[k]) + 0.7 * (b[k] - base[k]))
        torch.testing.assert_close(m[k], want, rtol=0, atol=1e-6)
    assert "task_arithmetic" in (out / "README.md").read_text()


def test_slerp_at_t0_returns_the_first_model(models, tmp_path, capsys):
    out = tmp_path / "slerp"
    code, _, err = run(["--method", "slerp", "--t", "0", models["abs"], models["rel"], "-o", out], capsys)
    assert code == 0, err
    a, m = tensors(models["abs"]), tensors(out)
    for k in a:
        torch.testing.assert_close(m[k], a[k], rtol=0, atol=1e-6)


def test_paper_recipes_parse_and_validate(models):
    """Every shipped recipe builds (keys, method, parameters) when its models are pointed at local folders."""
    from judgeforge.config import load_recipe
    from judgeforge.merge.recipe import MergeRecipe

    recipes = sorted((ROOT / "configs" / "merge").glob("*.yaml"))
    assert {r.name for r in recipes} >= {
        "prometheus2-7b-linear.yaml",
        "prometheus2-7b-dare-linear.yaml",
        "prometheus2-8x7b-dare.yaml",
    }
    for path in recipes:
        r = load_recipe(MergeRecipe, path)
        assert r.output and len(r.models) == 2, path
    lin = load_recipe(MergeRecipe, ROOT / "configs/merge/prometheus2-7b-linear.yaml")
    assert (lin.method, lin.weights, lin.dtype) == ("linear", [1.0, 1.0], "bfloat16")
    moe = load_recipe(MergeRecipe, ROOT / "configs/merge/prometheus2-8x7b-dare.yaml")
    assert moe.method == "dare_linear" and moe.base
    assert moe.parameters["density"] == pytest.approx(0.9) and moe.parameters["lambda"] == pytest.approx(1.95)


def test_recipe_file_with_overrides(models, tmp_path, capsys):
    out = tmp_path / "from-recipe"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"method: linear\nmodels: [{models['abs']}, {models['rel']}]\nweights: [1.0, 3.0]\n"
        f"dtype: bf16\noutput: {tmp_path / 'ignored'}\n"
    )
    code, _, err = run([recipe, "-o", out, "--weights", "1,1", "--chunk-mb", "0.5"], capsys)
    assert code == 0, err
    m = tensors(out)
    assert all(v.dtype == torch.bfloat16 for v in m.values())
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert not (tmp_path / "ignored").exists()


def test_mergekit_yaml_is_accepted(models, tmp_path, capsys):
    cfg = tmp_path / "mk.yaml"
    cfg.write_text(
        f"merge_method: linear\nmodels:\n  - model: {models['abs']}\n    parameters: {{weight: 1.0}}\n"
        f"  - model: {models['rel']}\n    parameters: {{weight: 3.0}}\ndtype: float32\n"
    )
    out = tmp_path / "mk"
    code, _, err = run([cfg, "-o", out], capsys)
    assert code == 0, err
    a, b, m = tensors(models["abs"]), tensors(models["rel"]), tensors(out)
    k = "model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(m[k], (a[k] + 3 * b[k]) / 4, rtol=0, atol=1e-6)


def test_force_replaces_and_refuses_without_it(models, tmp_path, capsys):
    out = tmp_path / "judge"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, _, err = run([models["abs"], models["rel"], "-o", out], capsys)
    assert code == 1 and "already exists; pass --force" in err and (out / "keep.txt").exists()
    code, _, err = run([models["abs"], models["rel"], "-o", out, "--force"], capsys)
    assert code == 0, err
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()


# ------------------------------------------------------------------ validation: one clear line, exit 1
def _variant(models, name, fn=None, config=None):
    dst = models["root"] / name
    if not dst.exists():
        _derived(models["rel"], dst, fn or (lambda sd: sd))
        if config:
            cfg = json.loads((dst / "config.json").read_text())
            cfg.update(config)
            (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _drop(sd):
    sd.pop("model.layers.1.mlp.down_proj.weight")
    return sd


def _reshape(sd):
    sd["model.layers.0.self_attn.q_proj.weight"] = sd["model.layers.0.self_attn.q_proj.weight"][:32].clone()
    return sd


def _vocab(sd):
    sd["model.embed_tokens.weight"] = torch.cat([sd["model.embed_tokens.weight"], torch.zeros(2, 64)])
    return sd


CASES = {
    "architecture": (
        lambda m: [
            m["abs"],
            _variant(m, "llama", config={"architectures": ["LlamaForCausalLM"], "model_type": "llama"}),
        ],
        r"architectures differ: '.*abs' is MistralForCausalLM but '.*llama' is LlamaForCausalLM",
    ),
    "vocab": (
        lambda m: [m["abs"], _variant(m, "vocab", _vocab, {"vocab_size": 32002})],
        r"vocab sizes differ: '.*abs' has 32000 tokens but '.*vocab' has 32002",
    ),
    "missing tensor": (
        lambda m: [m["abs"], _variant(m, "missing", _drop)],
        r"tensor 'model.layers.1.mlp.down_proj.weight' is in '.*abs' but missing from '.*missing'",
    ),
    "shape": (
        lambda m: [m["abs"], _variant(m, "shape", _reshape)],
        r"tensor 'model.layers.0.self_attn.q_proj.weight' has shape \[64, 64\] in '.*abs' but \[32, 64\] in "
        r"'.*shape'",
    ),
    "weight count": (lambda m: ["--weights", "0.2,0.3,0.5", m["abs"], m["rel"]], r"3 weights for 2 models"),
    "zero-sum weights": (
        lambda m: ["--weights", "1,-1", m["abs"], m["rel"]],
        r"weights \[1.0, -1.0\] sum to zero, but method 'linear' divides by their sum",
    ),
    "unknown method": (
        lambda m: ["--method", "dare_lnear", m["abs"], m["rel"]],
        r"unknown merge method 'dare_lnear' \(did you mean 'dare_linear'\?\)",
    ),
    "unknown parameter": (
        lambda m: ["--method", "ties", "--base", m["base"], "--densty", "0.5", m["abs"], m["rel"]],
        r"method 'ties' has no parameter 'densty' \(did you mean 'density'\?\)",
    ),
    "bad parameter value": (
        lambda m: ["--method", "ties", "--base", m["base"], "--density", "lots", m["abs"], m["rel"]],
        r"argument --density: invalid float value",
    ),
    "missing base": (lambda m: ["--method", "ties", m["abs"], m["rel"]], r"method 'ties' needs a base model"),
    "base for linear": (
        lambda m: ["--base", m["base"], m["abs"], m["rel"]],
        r"method 'linear' does not use a base model",
    ),
    "no such model": (lambda m: [m["abs"], m["root"] / "nope"], r"model 2 '.*nope' does not exist"),
    "pickle weights": (lambda m: [m["abs"], _pickle_only(m)], r"has only pickle weights \(.bin\)"),
    "bad dtype": (lambda m: ["--dtype", "bf61", m["abs"], m["rel"]], r"unknown dtype 'bf61'"),
}


def _pickle_only(m):
    dst = m["root"] / "pickle"
    if not dst.exists():
        _copy_side_files(m["rel"], dst)
        (dst / "pytorch_model.bin").write_bytes(b"\x80")
    return dst


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_mistakes_give_one_line_and_no_output(case, models, tmp_path, capsys):
    argv_fn, pattern = CASES[case]
    out = tmp_path / "judge"
    code, stdout, err = run([*argv_fn(models), "-o", out], capsys)
    assert code == 1, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_asking_for_a_gpu_without_one_is_one_line(models, tmp_path, capsys):
    code, _, err = run([models["abs"], models["rel"], "--device", "cuda", "-o", tmp_path / "o"], capsys)
    assert code == 1 and "torch sees no GPU; use --device cpu" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_output_overlapping_an_input_is_refused(models, capsys):
    code, _, err = run([models["abs"], models["rel"], "-o", models["abs"], "--force"], capsys)
    assert code == 1 and "overlaps the input" in err
    assert (models["abs"] / "model.safetensors").exists()


def test_list_methods_reads_mergekits_registry(capsys):
    code, out, _ = run(["--list-methods"], capsys)
    assert code == 0
    for name in (
        "linear",
        "slerp",
        "task_arithmetic",
        "ties",
        "dare_ties",
        "dare_linear",
        "della",
        "model_stock",
    ):
        assert f"  {name} " in out
    assert "density[per model]=1.0" in out


# ------------------------------------------------------------------ LoRA experts
@pytest.fixture(scope="module")
def lora(models):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dst = models["root"] / "lora"
    if not dst.exists():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(models["base"])
        cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        peft_model = get_peft_model(model, cfg)
        peft_model.save_pretrained(dst)
        adapter = json.loads((dst / "adapter_config.json").read_text())
        assert adapter["base_model_name_or_path"] == str(models["base"])
    return dst


def test_lora_fold_equals_base_plus_scaled_BA(models, lora, tmp_path):
    from judgeforge.merge.lora import merge_lora

    out = merge_lora(lora, tmp_path / "folded")
    base, merged = tensors(models["base"]), tensors(out)
    ad = load_file(lora / "adapter_model.safetensors")
    scale = 8 / 4
    changed = 0
    for k, w in base.items():
        stem = k.removesuffix(".weight")
        a_key = next((x for x in ad if x.endswith(stem + ".lora_A.weight")), None)
        if a_key is None:
            assert torch.equal(merged[k], w), k
            continue
        b = ad[a_key.replace("lora_A", "lora_B")]
        torch.testing.assert_close(merged[k], w + scale * b @ ad[a_key], rtol=0, atol=1e-6)
        changed += 1
    assert changed == 4  # q_proj and v_proj in 2 layers


def test_lora_expert_merges_like_any_other(models, lora, tmp_path, capsys):
    out = tmp_path / "judge"
    code, _, err = run([lora, models["rel"], "--weights", "0.25,0.75", "-o", out], capsys)
    assert code == 0, err
    from judgeforge.merge.lora import merge_lora

    folded = tensors(merge_lora(lora, tmp_path / "folded"))
    rel, m = tensors(models["rel"]), tensors(out)
    for k in rel:
        torch.testing.assert_close(m[k], 0.25 * folded[k] + 0.75 * rel[k], rtol=0, atol=1e-6)
    assert "LoRA adapter" in (out / "README.md").read_text()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # scratch folder removed


def test_lora_with_unreachable_base_is_a_clear_error(models, lora, tmp_path, capsys):
    broken = tmp_path / "adapter"
    shutil.copytree(lora, broken)
    cfg = json.loads((broken / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "mistralai/Mistral-7B-Instruct-v0.2"
    (broken / "adapter_config.json").write_text(json.dumps(cfg))
    code, _, err = run([broken, models["rel"], "-o", tmp_path / "out"], capsys)
    # a hub id base is fetched (tests/test_hub.py); offline it is one line naming HF_HUB_OFFLINE and lora_base
    assert code == 1 and "HF_HUB_OFFLINE is set" in err and "lora_base" in err and len(err.splitlines()) == 1


def test_8x7b_recipe_shape_runs_on_tiny_lora_experts(models, lora, tmp_path, capsys):
    """The paper's 8x7B recipe (DARE-linear over [base, LoRA abs, LoRA rel], p = 0.1, lambda 1.95) end to end;
    the in-memory merger (which folds the LoRA adapters itself) reproduces it exactly."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from judgeforge.merge.inmemory import InMemoryMerger

    lora2 = tmp_path / "lora2"
    torch.manual_seed(1)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "o_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(models["base"]), cfg).save_pretrained(lora2)
    out = tmp_path / "moe-judge"
    recipe = ROOT / "configs/merge/prometheus2-8x7b-dare.yaml"
    code, _, err = run(
        [
            recipe,
            "--base",
            models["base"],
            "--lora-base",
            models["base"],
            "--models",
            f"{lora},{lora2}",
            "--dtype",
            "float32",
            "-o",
            out,
        ],
        capsys,
    )
    assert code == 0, err
    merger = InMemoryMerger(lora, lora2, base=models["base"], device="cpu", lora_base=str(models["base"]))
    merger.apply(
        weights=[1.0, 1.0],
        method="dare_linear",
        seed=42,
        density=0.9,
        normalize=False,
        rescale=True,
        **{"lambda": 1.95},
    )
    ref, live = tensors(out), merger.model.state_dict()
    assert all(torch.equal(live[k], v) for k, v in ref.items())
    base = tensors(models["base"])
    k = "model.layers.0.self_attn.q_proj.weight"  # adapted in the first expert only
    assert not torch.equal(ref[k], base[k])
    k = "model.layers.0.mlp.up_proj.weight"  # adapted in neither: the task vectors are zero there
    assert torch.equal(ref[k], base[k])


# ------------------------------------------------------------------ killed midway
def _spawn(argv, stage, cwd):
    env = dict(os.environ, JUDGEFORGE_MERGE_PAUSE=stage, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "judgeforge.cli", "merge", *map(str, argv)],
        cwd=cwd,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def _wait_for_pause(proc, stage, timeout=120):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if f"paused at {stage}" in line:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("merge never reached the pause point:\n" + "".join(seen))


def _sharded(models):
    dst = models["root"] / "abs-sharded"
    if not dst.exists():
        from transformers import AutoModelForCausalLM

        AutoModelForCausalLM.from_pretrained(models["abs"]).save_pretrained(dst, max_shard_size="3MB")
        _copy_side_files(models["abs"], dst)
    return dst


def test_killed_merge_leaves_no_model_and_is_cleaned_up_next_time(models, tmp_path, capsys):
    src = _sharded(models)
    assert len(list(src.glob("model-*.safetensors"))) >= 2
    out = tmp_path / "judge"
    proc = _spawn([src, models["rel"], "-o", out], "shard", tmp_path)  # fast path, after its first shard
    _wait_for_pause(proc, "shard")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    left = list(tmp_path.iterdir())
    assert left and all(
        p.name.startswith(".judge.partial-") for p in left
    )  # hidden, and no config.json in it
    assert not any((p / "config.json").exists() for p in left)
    code, _, err = run([src, models["rel"], "-o", out], capsys)
    assert code == 0, err
    assert "left by an interrupted merge" in err
    assert [p.name for p in tmp_path.iterdir()] == ["judge"]


def test_interrupted_merge_removes_its_partial_folder(models, tmp_path):
    out = tmp_path / "judge"
    proc = _spawn([models["abs"], models["rel"], "-o", out], "weights", tmp_path)
    _wait_for_pause(proc, "weights")  # every weight is written
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_help_errors_and_cached_listing_start_without_torch(tmp_path):
    """Answers in well under a second: --help, a command-line error and --list-methods (once cached)
    load neither torch nor mergekit; slerp is listed as running without --base."""
    import subprocess
    import sys

    env = {**os.environ, "JUDGEFORGE_CACHE": str(tmp_path)}
    probe = ("import sys; from judgeforge import cli\n"
             "try: code = cli.main(sys.argv[1:])\n"
             "except SystemExit as e: code = e.code\n"
             "print('HEAVY', sorted(m for m in ('torch', 'mergekit', 'transformers') if m in sys.modules))\n")

    def run_(*argv):
        return subprocess.run([sys.executable, "-c", probe, "merge", *argv], capture_output=True, text=True, env=env,
                              timeout=300)

    first = run_("--list-methods")  # builds the cache from mergekit's registry
    assert "slerp" in first.stdout and "(base: --base, or else the first model)" in first.stdout
    for argv in (["--list-methods"], ["--help"], ["--weights", "x", "a", "b", "-o", "c"],
                 ["--method", "slurp", "a", "b", "-o", "c"]):
        p = run_(*argv)
        assert "HEAVY []" in p.stdout, (argv, p.stdout[-300:], p.stderr[-300:])
    assert run_("--list-methods").stdout.split("HEAVY")[0] == first.stdout.split("HEAVY")[0]
    p = run_("--method", "slurp", "a", "b", "-o", "c")
    assert "unknown merge method 'slurp' (did you mean 'slerp'?)" in p.stderr
