"""Hostile inputs found by probing train / merge / sweep / data / models get: each is one line on stderr,
exit status 1, before any model loads, and no output folder is left behind.  In-process, tiny fixtures."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_checks import one_line_failure as _fails


def _rows(tmp_path, n: int = 20):
    from judgeforge.data.mini import absolute_rows

    p = tmp_path / "rows.jsonl"
    p.write_text("".join(json.dumps({"id": str(i), **r}) + "\n" for i, r in enumerate(absolute_rows(n, 0))))
    return p


def test_train_paths_checked_before_anything_loads(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    base = ["train", "--datasets", "mini:absolute:8", "--max_length", "512"]
    _fails(capsys, [*base, "--init_from_config", "big", "--output_dir", tmp_path / "run"],
           "init_from_config 'big' is neither a mapping .* nor an existing config.json")
    tiny = ["--init_from_config", "{hidden: 64, layers: 1, heads: 4, kv_heads: 2}"]
    _fails(capsys, [*base, *tiny, "--output_dir", tmp_path / "afile" / "run"], "its parent .*afile' is a file")
    assert not (tmp_path / "run").exists()


def test_merge_recipes_that_would_copy_or_mislead(capsys, tmp_path, tiny_model):
    other = shutil.copytree(tiny_model, tmp_path / "other")
    out = tmp_path / "merged"
    _fails(capsys, ["merge", tiny_model, "-o", out], "only one model .* list at least two experts")
    recipe = tmp_path / "one.yaml"
    recipe.write_text(f"models: {tiny_model}\noutput: {out}\n")  # a scalar where a list belongs
    _fails(capsys, ["merge", recipe], "only one model")
    _fails(capsys, ["merge", "--method", "slerp", "--t", "2", tiny_model, other, "-o", out], r"t .* must be in \[0, 1\]")
    _fails(capsys, ["merge", "--device", "tpu", tiny_model, other, "-o", out], "device 'tpu' is not a device")
    _fails(capsys, ["merge", "--seed", "-1", tiny_model, other, "-o", out], "seed must be an integer >= 0")
    _fails(capsys, ["merge", "--lora-base", other, tiny_model, other, "-o", out],
           "lora_base .* is given but no expert is a LoRA adapter")  # was ignored without a word
    assert not out.exists()


@pytest.mark.parametrize("extra,match", [
    (["--methods", ""], "--methods is empty"),
    (["--alphas", ","], "no alpha given"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--samples-absolute", "0"], "samples_absolute must be an integer >= 1"),
    (["--samples-absolute", "1000000"], "samples_absolute must be at most 64, got 1,000,000"),
    (["--retries", "-1"], "retries must be"),
    (["--max-new-tokens", "0"], "max_new_tokens must be"),
    (["--suite", "vicuna_bnch"], "did you mean 'vicuna'"),
    (["--device", "tpu"], "device 'tpu' is not a device"),
    (["--dtype", "bf32"], "unknown dtype 'bf32'"),
    (["--seed", "-3"], "seed must be an integer >= 0"),  # these four were refused only after the experts loaded
    (["--data-dir", "nope"], "--data-dir nope: no such folder"),
    (["--data-dir", "."], "vicuna_eval.json: .*invalid JSON"),  # the suite is read before the experts load
    (["--out", ""], "--out is empty"),
    (["--alphas", "0.5,0.3,0.5"], "0.5 given twice"),
    (["--alphas", "0:1:0.0000001"], "10,000,001 points, each a full evaluation"),
    (["--methods", "linear,linear"], "linear given twice"),
])
def test_sweep_options_checked_before_the_experts_load(capsys, tmp_path, tiny_model, twin, extra, match,
                                                      monkeypatch):
    out = tmp_path / "sweep"
    (tmp_path / "vicuna_eval.json").write_text("[{not json")  # a damaged benchmark file in --data-dir .
    monkeypatch.chdir(tmp_path)
    _fails(capsys, ["sweep", "--absolute", tiny_model, "--relative", twin, "--out", out, "--suite", "vicuna",
                    *extra], match)
    assert not out.exists()


@pytest.fixture(scope="module")
def twin(tiny_model, tmp_path_factory):
    """A second expert folder (a copy of the tiny model): a sweep refuses one folder for both."""
    return shutil.copytree(tiny_model, tmp_path_factory.mktemp("twin") / "model")


def test_sweep_folders_checked_before_the_experts_load(capsys, tmp_path, tiny_model, twin):
    (tmp_path / "afile").write_text("x")
    argv = ["sweep", "--relative", tiny_model, "--suite", "vicuna"]
    _fails(capsys, [*argv, "--absolute", twin, "--out", tmp_path / "afile"], "--out .* is a file")
    _fails(capsys, [*argv, "--absolute", tmp_path / "nope", "--out", tmp_path / "s"], "--absolute .*nope' does not exist")
    wide = shutil.copytree(tiny_model, tmp_path / "wide")
    cfg = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**cfg, "hidden_size": 32}))  # read from the config, no load
    _fails(capsys, [*argv, "--absolute", wide, "--out", tmp_path / "s"], "'hidden_size' differs")
    _fails(capsys, [*argv, "--absolute", twin, "--methods", "dare_linear", "--base", wide, "--out",
                    tmp_path / "s"], "'hidden_size' differs")  # the base too, before loading
    assert not (tmp_path / "s").exists()


def test_sweep_reads_the_tokenizer_before_the_weights_and_leaves_no_folder(capsys, tmp_path, tiny_model, shared_data):
    broken = shutil.copytree(tiny_model, tmp_path / "broken")
    (broken / "tokenizer.json").write_text("{not json")  # read before the weights load, after the other checks
    _fails(capsys, ["sweep", "--absolute", broken, "--relative", tiny_model, "--suite", "vicuna", "--limit", "2",
                    "--data-dir", shared_data, "--out", tmp_path / "s"], "tokenizer.json cannot be read")
    assert not (tmp_path / "s").exists()


def test_sweep_of_an_expert_with_itself_is_refused(capsys, tmp_path, tiny_model, twin, monkeypatch):
    (tmp_path / "link").symlink_to(tiny_model, target_is_directory=True)
    monkeypatch.chdir(tiny_model.parent)
    argv = ["sweep", "--suite", "vicuna", "--out", tmp_path / "s", "--absolute", tiny_model]
    for same in (tiny_model, tmp_path / "link", f"./{tiny_model.name}", f"{tiny_model}/"):
        _fails(capsys, [*argv, "--relative", same], r"--absolute and --relative are the same folder \(.*\); give "
               "the two experts")
    _fails(capsys, ["sweep", "--absolute", "owner/judge", "--relative", "owner/judge", "--out", tmp_path / "s"],
           "same folder")  # a hub id twice: refused before anything is fetched
    _fails(capsys, [*argv, "--relative", twin, "--methods", "dare_linear", "--base", tmp_path / "link"],
           r"--base is the --absolute expert")
    assert not (tmp_path / "s").exists()


def test_data_options_out_of_range(capsys, tmp_path):
    src = _rows(tmp_path)
    _fails(capsys, ["data", "validate", src, "--max-length", "0"], "--max-length must be a positive")
    _fails(capsys, ["data", "show", src, "-n", "0"], "-n must be a positive")
    _fails(capsys, ["data", "convert", src, "-o", tmp_path / "c.jsonl", "--variant", "papr"],
           "unknown template variant 'papr' .did you mean 'paper'")
    _fails(capsys, ["data", "convert", src, "-o", tmp_path / "c.xyz"], "writes JSON Lines; name the output file .jsonl")
    _fails(capsys, ["data", "split", src, "-o", tmp_path / "split", "--test-size", "0.999"],
           "leaves no training rows; use a smaller test_size .at most 0.95")
    assert not list(tmp_path.glob("c.*")) and not (tmp_path / "split" / "train.jsonl").exists()


def test_models_get_output_that_is_a_file(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    _fails(capsys, ["models", "get", "smollm2-135m-instruct", "-o", tmp_path / "afile"], "-o .* is a file")
    _fails(capsys, ["models", "get", "smollm2-135m-instruct", "-o", tmp_path / "afile" / "m"], "parent .* is a file")


def test_a_recipe_key_given_twice_is_refused_with_its_line(capsys, tmp_path):
    recipe = tmp_path / "dup.yaml"
    recipe.write_text("init_from_config: {hidden: 64, layers: 1, heads: 4, kv_heads: 2}\nmax_length: 512\n"
                      f"output_dir: {tmp_path / 'run'}\nmax_length: 256\n")  # PyYAML alone keeps 256 silently
    _fails(capsys, ["train", recipe], r"dup.yaml: line 4: .*key 'max_length' is given twice")
    merge = tmp_path / "merge.yaml"
    merge.write_text("models: [a, b]\nparameters: {density: 0.5, density: 0.9}\n")
    _fails(capsys, ["merge", merge], "key 'density' is given twice")
    assert not (tmp_path / "run").exists()


def test_a_negative_value_after_a_flag_says_how_to_pass_it(capsys, tmp_path):
    _fails(capsys, ["merge", "--weights", "-0.5,1.5", "a", "b", "-o", tmp_path / "m"],
           r"--weights: expected one argument .a value that starts with '-' goes after '=': --weights=-0.5")
    _fails(capsys, ["sweep", "--absolute", "a", "--relative", "b", "--alphas", "-0.1,0.5"], "--alphas=-0.5")


def test_models_usage_mistakes_are_one_line(capsys):
    _fails(capsys, ["models", "gte", "x"], "models: argument command: invalid choice: 'gte'")


def test_data_outputs_already_there_need_force(capsys, tmp_path):
    """split, mini and from-benchmarks refuse to overwrite a finished output without --force, as convert does."""
    from judgeforge.cli import main

    src = _rows(tmp_path)
    split = tmp_path / "split"
    assert main(["data", "split", str(src), "-o", str(split), "--test-size", "0.1"]) == 0
    before = (split / "train.jsonl").read_text()
    _fails(capsys, ["data", "split", src, "-o", split, "--test-size", "0.5"],
           r"-o .*split: already holds train.jsonl, test.jsonl, split.json; pass --force to overwrite")
    assert (split / "train.jsonl").read_text() == before
    assert main(["data", "split", str(src), "-o", str(split), "--test-size", "0.5", "--force"]) == 0
    assert (split / "train.jsonl").read_text() != before
    mini = tmp_path / "mini"
    mini.mkdir()
    (mini / "relative_test.jsonl").write_text("mine\n")  # one file of a run is enough to refuse
    _fails(capsys, ["data", "mini", "-o", mini, "--train", "3", "--test", "2"],
           "already holds relative_test.jsonl; pass --force")
    assert (mini / "relative_test.jsonl").read_text() == "mine\n" and not (mini / "absolute_train.jsonl").exists()
    assert main(["data", "mini", "-o", str(mini), "--train", "3", "--test", "2", "--force"]) == 0
    assert len((mini / "relative_test.jsonl").read_text().splitlines()) == 2
    bench = tmp_path / "bench"
    (bench / "heldout").mkdir(parents=True)
    (bench / "heldout" / "vicuna.json").write_text("[]")
    argv = ["data", "from-benchmarks", "--data-dir", tmp_path / "nowhere", "-o", bench]  # refused before reading
    _fails(capsys, argv, r"heldout: already holds vicuna.json; pass --force")
    (bench / "split.json").write_text("{}")
    _fails(capsys, argv, r"bench: already holds split.json; pass --force")
    capsys.readouterr()
    assert main([str(a) for a in argv] + ["--force"]) == 1  # now it reads the (missing) data
    assert "already holds" not in capsys.readouterr().err


@pytest.mark.parametrize("lora,match", [
    ("{target_modules: 5}", r"key 'lora.target_modules' must be a list of text .*got 5"),
    ("{target_parameters: 1.5}", r"key 'lora.target_parameters' must be a list of text .*got 1.5"),
    ("{target_modules: 'q_proj v_proj'}", r"'q_proj v_proj' is not a module name; list names such as q_proj, v_proj "
                                          r"\(separated by commas"),
    ("{target_modules: 'q_proj,,v_proj'}", "'' is not a module name"),
    ("{target_modules: [q_proj, 7]}", "'7' is not a module name"),
    ("{target_modules: [q_proj, q_proj]}", "q_proj listed twice"),
    ("{target_modules: all-linear}", "'all-linear' is not taken here; list the modules"),
    ("{r: 8.5}", "key 'lora.r' must be an integer"),
    ("{qlora: 1}", "key 'lora.qlora' must be true or false"),
    ("[q_proj]", "key 'lora' must be a mapping"),
])
def test_lora_keys_of_the_wrong_type_are_refused_when_the_recipe_loads(capsys, tmp_path, lora, match):
    """Each was caught only after the model had loaded (peft: target modules not found), or never."""
    recipe = tmp_path / "lora.yaml"
    recipe.write_text(f"init_from_config: {{hidden: 64, layers: 1, heads: 4, kv_heads: 2}}\ndatasets: [mini:absolute:8]\n"
                      f"output_dir: {tmp_path / 'run'}\nlora: {lora}\n")
    _fails(capsys, ["train", recipe], r"lora.yaml: .*" + match)
    assert not (tmp_path / "run").exists()


def test_empty_output_paths_and_oversized_mini_data(capsys, tmp_path, monkeypatch):
    """An empty -o was the current folder (data mini wrote its four files beside everything there)."""
    monkeypatch.chdir(tmp_path)
    src = _rows(tmp_path)
    _fails(capsys, ["data", "mini", "-o", "", "--train", "3", "--test", "2"], r"-o is empty; give a folder")
    _fails(capsys, ["data", "split", src, "-o", ""], r"-o is empty; give a folder")
    _fails(capsys, ["data", "from-benchmarks", "-o", " ", "--data-dir", tmp_path], r"-o is empty; give a folder")
    _fails(capsys, ["data", "convert", src, "-o", ""], r"-o is empty; give a file name")
    _fails(capsys, ["train", "--init_from_config", "{hidden: 64, layers: 1, heads: 4, kv_heads: 2}", "--datasets",
                    "mini:absolute:8", "--output_dir", ""], "output_dir is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
    _fails(capsys, ["data", "mini", "-o", "m", "--train", "100000000000"],
           r"--train 100,000,000,000: mini writes at most 200,000 rows per file")  # it ran out of memory
    _fails(capsys, ["data", "from-benchmarks", "-o", "b", "--data-dir", src], r"--data-dir .*rows.jsonl: is a file")
    _fails(capsys, ["data", "from-benchmarks", "-o", "b", "--data-dir", "nope"], r"--data-dir nope: no such folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]
