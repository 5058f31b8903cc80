"""Hostile inputs, stage by stage: every user mistake is one line on stderr, exit status 1, no
traceback, and nothing half-written that looks finished.  In-process CLI calls (fast); the tiny
float32 fixtures only.  Serve has its own suite."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import pytest
from cli_checks import one_line_failure as _one_line_failure

from judgeforge.cli import main


def _safetensors(path: Path, header, data: bytes = b"") -> Path:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------------- model folders (core)


@pytest.fixture
def bad_models(tmp_path, tiny_model) -> dict[str, tuple[Path, str]]:
    """name -> (a broken model folder or file, what its one line says)."""
    out: dict[str, tuple[Path, str]] = {}
    cfg = (tiny_model / "config.json").read_text()

    def folder(name: str) -> Path:
        p = tmp_path / name
        p.mkdir()
        (p / "config.json").write_text(cfg)
        return p

    trunc = _copy_model(tiny_model, tmp_path / "truncated")
    st = trunc / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    out["truncated"] = (trunc, "truncated")
    out["pickle_only"] = (folder("pickle"), "pickle weights")
    (out["pickle_only"][0] / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    out["no_weights"] = (folder("noweights"), "no model.safetensors")
    nocfg = tmp_path / "noconfig"
    nocfg.mkdir()
    shutil.copy(tiny_model / "model.safetensors", nocfg)
    out["no_config"] = (nocfg, "no config.json")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    _safetensors(adapter / "adapter_model.safetensors", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                 b"\0\0\0\0")
    out["lora_adapter"] = (adapter, "LoRA adapter")
    afile = tmp_path / "model.safetensors"
    shutil.copy(tiny_model / "model.safetensors", afile)
    out["a_file"] = (afile, "is a file")
    garbage = folder("garbage")
    (garbage / "model.safetensors").write_bytes(b"\xde\xad\xbe\xef" * 10)
    out["garbage"] = (garbage, "not a valid safetensors|does not fit")
    listhdr = folder("listheader")
    _safetensors(listhdr / "model.safetensors", [1, 2, 3])
    out["list_header"] = (listhdr, "not a mapping")
    nooffs = folder("nooffsets")
    _safetensors(nooffs / "model.safetensors", {"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8)
    out["no_data_offsets"] = (nooffs, "data_offsets")
    badcfg = folder("badconfig")
    (badcfg / "config.json").write_text("[1, 2]")
    shutil.copy(tiny_model / "model.safetensors", badcfg)
    out["config_list"] = (badcfg, "not a JSON mapping")
    wmlist = folder("weightmaplist")
    (wmlist / "model.safetensors.index.json").write_text('{"weight_map": ["model-00001.safetensors"]}')
    out["weight_map_list"] = (wmlist, "weight_map")
    escape = folder("escape")
    _safetensors(tmp_path / "outside.safetensors", {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                 b"\0" * 4)
    (escape / "model.safetensors.index.json").write_text('{"weight_map": {"w": "../outside.safetensors"}}')
    out["index_escapes"] = (escape, "not a file name inside the model folder")
    return out


CASES = ["truncated", "pickle_only", "no_weights", "no_config", "lora_adapter", "a_file", "garbage",
         "list_header", "no_data_offsets", "config_list", "weight_map_list", "index_escapes"]


@pytest.mark.parametrize("case", CASES)
def test_broken_model_folders_are_one_line_in_the_core_check(bad_models, case):
    from judgeforge.errors import UserError
    from judgeforge.weights import inspect_checkpoint

    path, match = bad_models[case]
    with pytest.raises(UserError, match=match):
        inspect_checkpoint(path, "judge")


def test_crafted_headers_never_read_past_the_file(tmp_path):
    from judgeforge.errors import UserError
    from judgeforge.weights import read_header

    cases = {
        "offsets past the end": {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
        "offsets reversed": {"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}},
        "size disagrees with shape": {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}},
        "negative shape": {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
        "unknown dtype": {"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 4]}},
        "entry not a mapping": {"w": [0, 4]},
    }
    for name, header in cases.items():
        with pytest.raises(UserError):
            read_header(_safetensors(tmp_path / f"{name}.safetensors", header, b"\0" * 4))
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 10**15) + b"{}")
    with pytest.raises(UserError, match="does not fit"):
        read_header(huge)


# --------------------------------------------------------------------------- eval


def _suite(tmp_path: Path, rows: list[dict], name: str = "bench.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


PROMPT = "###Task Description:\nGrade it.\n\n###Response to evaluate:\nhi\n\n###Feedback: "


@pytest.mark.parametrize("flag,value,match", [
    ("--max_new_tokens", "0", "max_new_tokens"),
    ("--temperature", "-1", "temperature"),
    ("--temperature", ".nan", "finite"),
    ("--top_p", "0", "top_p"),
    ("--top_p", "1.5", "top_p"),
    ("--repetition_penalty", "0", "repetition_penalty"),
    ("--batch_size", "0", "batch_size"),
    ("--retries", "-1", "retries"),
    ("--chunk_size", "0", "chunk_size"),
    ("--bootstrap", "-5", "bootstrap"),
    ("--seed", "-3", "seed"),
    ("--backend", "hff", "backend"),
])
def test_eval_options_out_of_range(capsys, tmp_path, tiny_model, flag, value, match):
    suite = _suite(tmp_path, [{"instruction": PROMPT, "gpt4_score": 3}])
    _one_line_failure(capsys, ["eval", "--judge", tiny_model, "--suite", suite, flag, value], match)


def test_eval_out_naming_a_file(capsys, tmp_path, tiny_model):
    suite = _suite(tmp_path, [{"instruction": PROMPT, "gpt4_score": 3}])
    (tmp_path / "out").write_text("x")
    _one_line_failure(capsys, ["eval", "--judge", tiny_model, "--suite", suite, "--out", tmp_path / "out"],
                      "is a file")


@pytest.mark.parametrize("case", ["truncated", "pickle_only", "lora_adapter", "a_file", "list_header",
                                  "index_escapes"])
def test_eval_judge_folders_checked_before_loading(capsys, tmp_path, bad_models, case):
    suite = _suite(tmp_path, [{"instruction": PROMPT, "gpt4_score": 3}])
    path, match = bad_models[case]
    out = tmp_path / "run"
    _one_line_failure(capsys, ["eval", "--judge", path, "--suite", suite, "--out", out, "--progress", "false"],
                      match)
    assert not (out / "report.json").exists()


@pytest.mark.parametrize("gold,match", [
    ([], "empty"), ("nan", "not a grade"), (float("nan"), "not a grade"), (0, "not a grade"), (7, "not a grade"),
    ([3, 9, 4], "not a grade"), ("", "could not convert|not a grade"), (None, "empty"), ({"a": 1}, "not a number"),
])
def test_eval_gold_labels_checked_with_the_row_named(capsys, tmp_path, tiny_model, gold, match):
    rows = [{"instruction": PROMPT, "gpt4_score": 3}, {"instruction": PROMPT, "gpt4_score": gold}]
    suite = _suite(tmp_path, rows)
    line = _one_line_failure(capsys, ["eval", "--judge", tiny_model, "--suite", suite], match)
    assert "row 2" in line


def test_eval_benchmark_file_not_utf8(capsys, tmp_path, tiny_model):
    suite = tmp_path / "bench.jsonl"
    suite.write_bytes(b'{"instruction": "\xff\xfe", "gpt4_score": 3}\n')
    _one_line_failure(capsys, ["eval", "--judge", tiny_model, "--suite", suite], "not UTF-8")


def _eval(capsys, judge: Path, suite: Path, out: Path) -> dict:
    rc = main(["eval", "--judge", str(judge), "--suite", str(suite), "--out", str(out), "--greedy",
               "--max_new_tokens", "4", "--samples_absolute", "1", "--bootstrap", "0", "--progress", "false",
               "--engine", "generate"])
    captured = capsys.readouterr()
    assert rc == 0 and "Traceback" not in captured.err, captured.err
    report = json.loads((out / "report.json").read_text())
    report["_stderr"] = captured.err
    return report


def test_eval_cache_survives_a_cut_tail_garbage_and_a_replaced_model(capsys, tmp_path, tiny_model):
    from judgeforge.tiny import make_tiny_model

    judge = _copy_model(tiny_model, tmp_path / "judge")
    suite = _suite(tmp_path, [{"instruction": PROMPT + str(i), "gpt4_score": 3, "id": str(i)} for i in range(2)])
    out = tmp_path / "run"
    gen = out / "generations.jsonl"
    assert _eval(capsys, judge, suite, out)["run"]["generations"] == 2

    raw = gen.read_bytes()
    gen.write_bytes(raw[:-15])  # a kill in the middle of the last record
    assert _eval(capsys, judge, suite, out)["run"]["generations"] == 1  # only that slot again
    lines = gen.read_bytes().splitlines()
    assert len(lines) == 2 and all(isinstance(json.loads(x), dict) for x in lines)  # nothing glued on

    with open(gen, "ab") as f:  # garbage of every kind, and a cut tail
        f.write(b"garbage\n\xff\xfe\xfd\n[1, 2]\n{\"no\": \"key\"}\n{\"key\": 5}\n" + b"[" * 100000 + b"\n")
        f.write(b'{"key": "abc')
    report = _eval(capsys, judge, suite, out)
    assert report["run"]["generations"] == 0 and report["run"]["cache_lines_skipped"] == 6
    assert "skipped 6 line(s)" in report["_stderr"]

    shutil.rmtree(judge)  # another model saved at the same path
    make_tiny_model(judge, seed=1)
    report = _eval(capsys, judge, suite, out)
    assert report["run"]["generations"] == 2 and report["judge"] == str(judge)


# --------------------------------------------------------------------------- train


def _train_args(tmp_path: Path, *extra) -> list:
    return ["train", "--init_from_config", "{hidden: 64, layers: 1, heads: 4, kv_heads: 2}", "--datasets",
            "mini:absolute:8", "--output_dir", tmp_path / "run", "--max_length", "512", "--save_steps", "0",
            *extra]


@pytest.mark.parametrize("flag,value,match", [
    ("--weight_decay", ".nan", "finite"),
    ("--learning_rate", ".inf", "finite"),
    ("--max_grad_norm", ".nan", "finite"),
    ("--warmup_ratio", ".nan", "finite"),
    ("--epochs", "-.inf", "finite"),
    ("--adam_beta1", "1.5", "adam_beta1"),
    ("--adam_beta2", "-0.1", "adam_beta2"),
    ("--adam_epsilon", "0", "adam_epsilon"),
    ("--seed", "-1", "seed"),
    ("--split_seed", "-1", "split_seed"),
    ("--dataloader_workers", "-2", "dataloader_num_workers"),
    ("--lr_scheduler", "reduce_lr_on_plateau", "runs no evaluation loop"),
    ("--lr_scheduler_type", "greedy", "runs no evaluation loop"),
    ("--lr_scheduler", "cosine_with_min_lr", "must set min_lr or min_lr_rate"),
    ("--lr_scheduler_type", "warmup_stable_decay", "must set num_decay_steps"),
    ("--lr_scheduler_kwargs", "{min_lr_rat: 0.1}", "not a setting of cosine"),
    ("--optim", "adamw_torh", "did you mean 'adamw_torch'"),
    ("--training_args", "{torch_compil: true}", "not a TrainingArguments field"),
    ("--training_args", "{learning_rate: 1.0}", "is a recipe key; set learning_rate"),
    ("--training_args", "{eval_strategy: steps}", "runs no evaluation loop"),
    ("--fp16", "true", "judgeforge sets 'fp16' itself"),
    ("--torch_compile", "true", "put it under training_args"),
    ("--warmup_steps", "2.5", "whole number of steps"),
    ("--init_from_config", "{hidden: 0}", "hidden"),
    ("--init_from_config", "{heads: 3}", "heads"),
    ("--init_from_config", "{hidden: 64, heads: 4, kv_heads: 3}", "kv_heads"),
])
def test_train_numbers_checked_before_anything_loads(capsys, tmp_path, flag, value, match):
    _one_line_failure(capsys, _train_args(tmp_path, flag, value), match)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", ["truncated", "pickle_only", "no_weights", "no_config", "lora_adapter", "a_file",
                                  "garbage", "weight_map_list", "index_escapes"])
def test_train_base_model_checked_before_anything_loads(capsys, tmp_path, bad_models, case):
    path, match = bad_models[case]
    argv = ["train", "--model", path, "--datasets", "mini:absolute:8", "--output_dir", tmp_path / "run"]
    _one_line_failure(capsys, argv, match)
    assert not (tmp_path / "run").exists()


def test_train_paths_that_are_not_what_they_claim(capsys, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    _one_line_failure(capsys, _train_args(tmp_path)[:-6] + ["--output_dir", tmp_path / "afile"], "is a file")
    (tmp_path / "recipe.yaml").mkdir()
    _one_line_failure(capsys, ["train", tmp_path / "recipe.yaml"], "is a folder")
    (tmp_path / "latin1.yaml").write_bytes(b"model: caf\xe9\n")
    _one_line_failure(capsys, ["train", tmp_path / "latin1.yaml"], "UTF-8")
    (tmp_path / "ds.json").write_text("{not json")
    _one_line_failure(capsys, _train_args(tmp_path, "--deepspeed", tmp_path / "ds.json"), "not a readable JSON")
    (tmp_path / "plain").mkdir()
    _one_line_failure(capsys, _train_args(tmp_path, "--resume", tmp_path / "plain"), "not a training checkpoint")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    _one_line_failure(capsys, _train_args(tmp_path, "--report_to", "wandb"), "wandb needs a login")


def test_train_refuses_a_checkpoint_with_a_cut_optimizer(capsys, tmp_path):
    ck = tmp_path / "run" / "checkpoint-4"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text('{"global_step": 4}')
    (ck / "optimizer.pt").write_bytes(b"PK\x03\x04 cut short")
    (ck / ".complete").write_text('{"step": 4}')
    _one_line_failure(capsys, _train_args(tmp_path), "optimizer.pt is damaged or truncated")  # resume: auto
    _one_line_failure(capsys, _train_args(tmp_path, "--resume", ck), "optimizer.pt is damaged")
    assert not (tmp_path / "run" / "model").exists()


def test_train_garbage_parquet_dataset(capsys, tmp_path):
    bad = tmp_path / "rows.parquet"
    bad.write_bytes(b"PAR1 this is not parquet PAR1")
    argv = _train_args(tmp_path)
    argv[argv.index("mini:absolute:8")] = bad
    _one_line_failure(capsys, argv, "not a readable parquet file")
    assert not (tmp_path / "run" / "model").exists()


def test_non_finite_weights_are_never_saved_as_a_finished_model(tmp_path):
    import torch

    from judgeforge.errors import UserError
    from judgeforge.train.checks import check_finite

    check_finite({"w": torch.ones(3), "step": torch.tensor(3)}, tmp_path / "model")
    with pytest.raises(UserError, match="non-finite weights .'w'"):
        check_finite({"ok": torch.ones(2), "w": torch.tensor([1.0, math.nan])}, tmp_path / "model")


# --------------------------------------------------------------------------- merge


def test_merge_weights_and_densities_out_of_range(capsys, tmp_path, tiny_model):
    out = tmp_path / "merged"
    other = _copy_model(tiny_model, tmp_path / "other")
    for weights in ("nan,0.5", "inf,1", "1,-inf"):
        _one_line_failure(capsys, ["merge", "--weights", weights, tiny_model, other, "-o", out], "finite")
    base = _copy_model(tiny_model, tmp_path / "base")
    for density in ("2", "0", "-0.5", "nan"):
        _one_line_failure(capsys, ["merge", "--method", "dare_linear", "--base", base, "--density", density,
                                   tiny_model, other, "-o", out], "density|finite")
    assert not out.exists()


@pytest.mark.parametrize("case", ["truncated", "pickle_only", "list_header", "no_data_offsets", "weight_map_list",
                                  "index_escapes"])
def test_merge_inputs_checked(capsys, tmp_path, tiny_model, bad_models, case):
    path, match = bad_models[case]
    out = tmp_path / "merged"
    _one_line_failure(capsys, ["merge", "--weights", "0.5,0.5", tiny_model, path, "-o", out], match)
    assert not out.exists() and not list(tmp_path.glob(".merged*"))


def test_merge_lora_adapter_saved_as_pickle(capsys, tmp_path, tiny_model):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4,
                                                            "base_model_name_or_path": str(tiny_model)}))
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    out = tmp_path / "merged"
    _one_line_failure(capsys, ["merge", "--weights", "0.5,0.5", tiny_model, adapter, "-o", out],
                      "pickle weights .adapter_model.bin")
    assert not out.exists()


# --------------------------------------------------------------------------- data


def _absolute_row(i: int, **over) -> dict:
    """A valid Feedback Collection row (the mini data's), with an id and any fields replaced."""
    from judgeforge.data.mini import absolute_rows

    row = {"id": str(i), **absolute_rows(1, i)[0]}
    row.update(over)
    return row


def _validate(capsys, path: Path) -> tuple[int, str]:
    rc = main(["data", "validate", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def test_data_bom_csv_keeps_the_id_column(capsys, tmp_path):
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(_absolute_row(0)))
    w.writeheader()
    w.writerow(_absolute_row(1))
    w.writerow(_absolute_row(1))
    p = tmp_path / "rows.csv"
    p.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode())
    rc, err = _validate(capsys, p)
    assert rc == 1 and "duplicate id '1'" in err


@pytest.mark.parametrize("score,match", [('"\u00b2"', "not an integer"), ("9" * 5000, "invalid JSON"),
                                         ('"' + "9" * 5000 + '"', "not an integer"), ("NaN", "not an integer")])
def test_data_hostile_scores_are_row_problems(capsys, tmp_path, score, match):
    p = tmp_path / "rows.jsonl"
    second = json.dumps(_absolute_row(1, orig_score="SCORE")).replace('"SCORE"', score)  # raw JSON for the score
    p.write_text(json.dumps(_absolute_row(0)) + "\n" + second + "\n")
    rc, err = _validate(capsys, p)
    assert rc == 1 and "row 2" in err and match in err, err


def test_data_unreadable_files_are_one_line(capsys, tmp_path, monkeypatch):
    cases = {}
    cases["corrupt.parquet"] = (b"PAR1 garbage PAR1", "not a readable parquet")
    cases["utf16.jsonl"] = (json.dumps(_absolute_row(0)).encode("utf-16"), "UTF-16")
    cases["array.jsonl"] = (json.dumps([_absolute_row(0)]).encode(), "one JSON array")
    cases["deep.json"] = (b"[" * 100000 + b"]" * 100000, "nested too deeply")
    cases["latin1.csv"] = (b"id,score\n1,caf\xe9\n", "not UTF-8")
    for name, (raw, match) in cases.items():
        (tmp_path / name).write_bytes(raw)
        _one_line_failure(capsys, ["data", "validate", tmp_path / name], match)
    _one_line_failure(capsys, ["data", "validate", "dats/train.jsonl"], "no such file")  # a mistyped path, no hub
    (tmp_path / "nodir").mkdir()
    _one_line_failure(capsys, ["data", "validate", f"{tmp_path / 'nodir'}/x"], "no such file")

    locked = tmp_path / "locked.jsonl"
    locked.write_text(json.dumps(_absolute_row(0)) + "\n")
    real = Path.read_bytes

    def deny(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    _one_line_failure(capsys, ["data", "validate", locked], "Permission denied")


def test_data_readable_oddities_are_read(capsys, tmp_path):
    import csv

    big = tmp_path / "big.csv"
    row = _absolute_row(0, orig_response="h" * 200_000)  # over the csv module's 128 KiB default
    with open(big, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerow(row)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(_absolute_row(0)).encode() + b"\n")
    for p in (big, bom):
        rc, err = _validate(capsys, p)
        assert rc == 0, err
    deep = tmp_path / "deep.jsonl"
    deep.write_bytes(json.dumps(_absolute_row(0)).encode() + b"\n" + b"[" * 100000 + b"\n")
    rc, err = _validate(capsys, deep)
    assert rc == 1 and "row 2" in err and "nested too deeply" in err


def test_data_output_collisions(capsys, tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps(_absolute_row(0)) + "\n" + json.dumps(_absolute_row(1)) + "\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    _one_line_failure(capsys, ["data", "convert", src, "-o", tmp_path / "folder"], "is a folder")
    _one_line_failure(capsys, ["data", "convert", src, "-o", src, "--force"], "is the input")
    _one_line_failure(capsys, ["data", "convert", src, "-o", tmp_path / "afile" / "x.jsonl"], "parent")
    _one_line_failure(capsys, ["data", "split", src, "-o", tmp_path / "afile"], "is a file")
    (tmp_path / "split" / "train.jsonl").mkdir(parents=True)
    _one_line_failure(capsys, ["data", "split", src, "-o", tmp_path / "split"], "is a folder")
    inplace = tmp_path / "inplace"
    inplace.mkdir()
    shutil.copy(src, inplace / "train.jsonl")
    _one_line_failure(capsys, ["data", "split", inplace / "train.jsonl", "-o", inplace], "would overwrite the input")
    _one_line_failure(capsys, ["data", "mini", "-o", tmp_path / "afile"], "is a file")


@pytest.mark.parametrize("flag,value", [("--train", "-1"), ("--train", "0"), ("--test", "-5"), ("--seed", "-1")])
def test_data_mini_counts(capsys, tmp_path, flag, value):
    _one_line_failure(capsys, ["data", "mini", "-o", tmp_path / "mini", flag, value], flag.lstrip("-"))
    assert not (tmp_path / "mini").exists()


def test_eval_report_of_damaged_run_folders(capsys, tmp_path):
    for name, text in {"garbage": "{not json", "a_list": "[1, 2]", "no_judge": '{"config": {}}'}.items():
        run = tmp_path / name
        run.mkdir()
        (run / "run.json").write_text(text)
        _one_line_failure(capsys, ["eval", "report", run], "run.json")


def test_eval_mistyped_local_judge_is_not_tried_on_the_hub(capsys, tmp_path, monkeypatch):
    suite = _suite(tmp_path, [{"instruction": PROMPT, "gpt4_score": 3}])
    (tmp_path / "judges").mkdir()
    monkeypatch.chdir(tmp_path)
    _one_line_failure(capsys, ["eval", "--judge", "judges/mine", "--suite", suite], "judges/mine' does not exist")


@pytest.mark.parametrize("settings,match", [
    ({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": -1}, "temperature"),
    ({"temperature": math.nan}, "finite"), ({"top_p": 0}, "top_p"), ({"repetition_penalty": math.inf}, "finite"),
    ({"seed": -1}, "seed"),
])
def test_sampling_settings_are_checked_once_for_every_entry_point(settings, match):
    from judgeforge.backends import Sampling, check_generation_options
    from judgeforge.errors import UserError
    from judgeforge.judge import make_sampling

    with pytest.raises(UserError, match=match):
        make_sampling(settings)  # the Judge API (and what serve can reuse)
    with pytest.raises(UserError, match=match):
        Sampling(**{**Sampling().__dict__, **settings}).validate("eval")
    for key, bad in (("n", 0), ("retries", -1), ("batch_size", 0)):
        with pytest.raises(UserError, match=key):
            check_generation_options("serve", **{key: bad})
