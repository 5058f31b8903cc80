"""The CPU dtype follows the hardware (bf16 only where the CPU computes it natively)."""

from __future__ import annotations

import pytest

from judgeforge.devices import choose_dtype, cpu_bf16_native, load_dtype
from judgeforge.errors import UserError

AVX2_ONLY = {"fpu", "sse2", "avx", "avx2", "fma", "f16c"}  # the AMD EPYC this suite was timed on
SAPPHIRE = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
ARM_V9 = {"fp", "asimd", "sve", "bf16", "i8mm"}


@pytest.mark.parametrize("flags, native", [(AVX2_ONLY, False), (SAPPHIRE, True), (ARM_V9, True),
                                           (AVX2_ONLY | {"avx512f"}, False)])
def test_native_bf16_is_read_from_the_cpu_flags(flags, native):
    assert cpu_bf16_native(flags) is native


def test_auto_on_a_cpu_picks_bf16_only_where_native():
    fast = choose_dtype("auto", cuda=False, flags=SAPPHIRE)
    slow = choose_dtype("auto", cuda=False, flags=AVX2_ONLY)
    assert (fast.name, fast.bf16) == ("bfloat16", True)
    assert (slow.name, slow.bf16) == ("float32", False)
    assert "no native bf16" in slow.line() and slow.line().startswith("dtype: float32 (")
    assert "native bf16" in fast.reason


@pytest.mark.parametrize("requested, name", [(True, "bfloat16"), (False, "float32"), ("bf16", "bfloat16"),
                                             ("fp32", "float32"), ("float16", "float16")])
def test_an_explicit_setting_always_wins(requested, name):
    for flags in (AVX2_ONLY, SAPPHIRE):
        c = choose_dtype(requested, cuda=False, flags=flags)
        assert c.name == name and c.reason == "set explicitly"


def test_an_unknown_dtype_is_one_line():
    with pytest.raises(UserError, match="unknown dtype 'bf17'"):
        choose_dtype("bf17", cuda=False, flags=AVX2_ONLY)


@pytest.mark.parametrize("stored, flags, name", [
    ("bfloat16", AVX2_ONLY, "float32"),  # 16-bit weights computed in fp32 where bf16 is emulated
    ("bfloat16", SAPPHIRE, "bfloat16"),
    ("float32", SAPPHIRE, "float32"),  # auto never lowers the precision of a checkpoint on the CPU
    ("float32", AVX2_ONLY, "float32"),
    (None, AVX2_ONLY, "float32"),
])
def test_inference_loads_keep_the_checkpoint_dtype_unless_it_is_slow_here(stored, flags, name):
    assert load_dtype("auto", cuda=False, stored=stored, flags=flags).name == name
    assert load_dtype("bfloat16", cuda=False, stored=stored, flags=flags).name == "bfloat16"


def test_train_recipe_takes_true_false_and_auto():
    from judgeforge.config import load_recipe
    from judgeforge.train.recipe import TrainRecipe

    base = {"init_from_config": {"hidden": 64, "layers": 1}, "datasets": ["mini:absolute:8"]}
    assert load_recipe(TrainRecipe, base=base).bf16 == "auto"
    assert load_recipe(TrainRecipe, base=base, overrides=["--bf16", "false"]).bf16 is False
    assert load_recipe(TrainRecipe, base=base, overrides=["--bf16", "true"]).bf16 is True
    with pytest.raises(UserError, match="bf16"):
        load_recipe(TrainRecipe, base=base, overrides=["--bf16", "maybe"])


def test_the_cli_makes_idle_openmp_threads_sleep(monkeypatch):
    import subprocess
    import sys

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    code = "import os, judgeforge.cli as c; c.main(['--version']); print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "PASSIVE"


def test_a_cuda_out_of_memory_is_one_line_naming_the_flag(capsys, monkeypatch):
    import types

    import torch

    from judgeforge import cli

    def boom(argv):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 202.00 GiB. GPU 0 has a total "
                                     "capacity of 139.81 GiB of which 70.00 GiB is free.")

    monkeypatch.setitem(__import__("sys").modules, "jf.eval.fake", types.SimpleNamespace(main=boom))
    monkeypatch.setitem(cli.COMMANDS, "eval", ("jf.eval.fake", "x"))
    assert cli.main(["eval", "--judge", "x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["judgeforge eval: out of GPU memory (Tried to allocate 202.00 GiB); pass a smaller "
                   "--batch_size (the fast engine sizes it from free memory) or --max_new_tokens"]


def test_a_missing_package_is_one_line_naming_the_install(capsys, monkeypatch):
    """Seen on the GPU machine: `judgeforge merge` where mergekit was not installed ended in a traceback."""
    import types

    from judgeforge import cli

    def boom(argv):
        import mergekit_missing_for_this_test  # noqa: F401

    monkeypatch.setitem(__import__("sys").modules, "jf.merge.fake", types.SimpleNamespace(main=boom))
    monkeypatch.setitem(cli.COMMANDS, "merge", ("jf.merge.fake", "x"))
    assert cli.main(["merge", "a", "b", "-o", "c"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("judgeforge merge: error: the 'mergekit_missing_for_this_test' "
                                               "package is not installed"), err
    assert "pip install mergekit-missing-for-this-test" in err[0]

    def broken(argv):  # a judgeforge module that is missing is a bug: the traceback stays
        raise ModuleNotFoundError("No module named 'judgeforge.nothing'", name="judgeforge.nothing")

    monkeypatch.setitem(__import__("sys").modules, "jf.merge.fake", types.SimpleNamespace(main=broken))
    with pytest.raises(ModuleNotFoundError):
        cli.main(["merge", "a", "b", "-o", "c"])


def test_other_runtime_errors_are_not_hidden(monkeypatch):
    import types

    from judgeforge import cli

    def boom(argv):
        raise RuntimeError("a real bug")

    monkeypatch.setitem(__import__("sys").modules, "jf.train.fake", types.SimpleNamespace(main=boom))
    monkeypatch.setitem(cli.COMMANDS, "train", ("jf.train.fake", "x"))
    with pytest.raises(RuntimeError, match="a real bug"):
        cli.main(["train"])


def test_one_dtype_map_for_every_spelling():
    import torch

    from judgeforge.devices import dtype_name, torch_dtype

    assert [dtype_name(x) for x in ("BF16", "torch.bfloat16", torch.float16, "half", "fp32", None)] == [
        "bfloat16", "bfloat16", "float16", "float16", "float32", None]
    assert torch_dtype("bf16") is torch.bfloat16 and torch_dtype("int64") is torch.int64
    assert torch_dtype(torch.float32) is torch.float32 and torch_dtype(None) is None
    with pytest.raises(UserError, match=r"^merge: dtype: unknown dtype 'bf61' \(did you mean"):
        dtype_name("bf61", "merge: dtype")
    with pytest.raises(UserError, match="unknown dtype 'Tensor'"):
        torch_dtype("Tensor")  # a torch attribute, but no dtype


def test_one_device_choice(monkeypatch):
    import torch

    from judgeforge.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == resolve_device("auto") == resolve_device("") == "cpu"
    with pytest.raises(UserError, match="^device 'cuda:1' asked for, but torch sees no GPU; use --device cpu$"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("cpu") == "cpu"


def test_deepspeed_cpu_notice_is_dropped_only_without_a_gpu():
    import logging

    import torch

    from judgeforge.devices import _drop_cpu_notice, quiet_deepspeed_on_cpu

    quiet_deepspeed_on_cpu()
    quiet_deepspeed_on_cpu()  # once, however often it is called
    assert logging.getLogger("DeepSpeed").filters.count(_drop_cpu_notice) == 1

    def rec(msg):
        return logging.LogRecord("DeepSpeed", logging.WARNING, "real_accelerator.py", 213, msg, None, None)

    notice = rec("Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.")
    assert _drop_cpu_notice(notice) is torch.cuda.is_available()  # kept where a GPU is there to be found
    assert _drop_cpu_notice(rec("Setting ds_accelerator to cpu (auto detect)")) is True  # other lines untouched


def test_a_union_key_takes_either_form_and_names_both_in_its_error():
    from judgeforge.config import load_recipe
    from judgeforge.eval.runner import EvalConfig

    def strict(v):
        return load_recipe(EvalConfig, overrides=["--judge", "x", "--strict_parse", v]).strict_parse

    assert (strict("harness"), strict("true"), strict("false")) == ("harness", True, False)
    with pytest.raises(UserError, match=r"key 'strict_parse' must be true or false or one of harness, got 'maybe'"):
        strict("maybe")
