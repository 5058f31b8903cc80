"""Recipes (YAML + overrides) and the command line."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from judgeforge.config import dump_recipe, load_recipe, parse_overrides, read_yaml
from judgeforge.errors import UserError


@dataclass
class Lora:
    r: int = 8
    alpha: float = 16.0


@dataclass
class Recipe:
    model: str
    learning_rate: float = 1e-5
    epochs: int = 1
    bf16: bool = True
    datasets: list[str] = field(default_factory=list)
    lora: Lora | None = None

    def validate(self, where):
        if self.learning_rate <= 0:
            raise UserError(f"{where}: learning_rate must be > 0, got {self.learning_rate}")


def _yaml(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_yaml_and_overrides(tmp_path):
    p = _yaml(tmp_path, "model: m\nlearning_rate: 1e-5\ndatasets: [a, b]\nlora: {r: 4}\n")
    r = load_recipe(Recipe, p, ["--epochs", "3", "--lora.alpha=8", "--learning-rate", "2e-5"])
    assert r.learning_rate == 2e-5 and isinstance(r.learning_rate, float)  # YAML reads 1e-5 as a string
    assert r.epochs == 3 and r.lora == Lora(4, 8.0) and r.datasets == ["a", "b"]
    out = tmp_path / "resolved.yaml"
    dump_recipe(r, out)
    assert load_recipe(Recipe, out) == r


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        ("model: m\nlearing_rate: 0.1\n", [], "unknown key 'learing_rate' (did you mean 'learning_rate'?)"),
        ("model: m\n", ["--epochs", "two"], "key 'epochs' must be an integer, got 'two'"),
        ("model: m\nlearning_rate: -1\n", [], "learning_rate must be > 0"),
        ("learning_rate: 0.1\n", [], "missing required key 'model'"),
        ("model: m\nbf16: yes please\n", [], "key 'bf16' must be true or false"),
        ("model: m\n  bad: [\n", [], "invalid YAML"),
        ("model: m\nlora: {rank: 4}\n", [], "unknown key 'lora.rank'"),
        ("- a\n- b\n", [], "must be a YAML mapping"),
    ],
)
def test_bad_recipes_are_one_clear_line(tmp_path, text, args, message):
    with pytest.raises(UserError) as e:
        load_recipe(Recipe, _yaml(tmp_path, text), args)
    assert message in str(e.value)
    assert str(tmp_path / "r.yaml") in str(e.value) or "recipe" in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(UserError, match="no such recipe file"):
        read_yaml(tmp_path / "nope.yaml")


def test_override_syntax_errors():
    with pytest.raises(UserError, match="needs a value"):
        parse_overrides(["--lr"])
    with pytest.raises(UserError, match="unexpected argument"):
        parse_overrides(["lr", "1"])


def _run(*args):
    return subprocess.run([sys.executable, "-m", "judgeforge", *args], capture_output=True, text=True)


def test_help_is_instant_and_imports_nothing_heavy():
    code = (
        "import sys, io, contextlib\n"
        "from judgeforge.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'deepspeed', 'datasets', 'mergekit') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    proc = _run("--help")
    assert proc.returncode == 0
    for name in ("quickstart", "data", "train", "merge", "eval", "sweep", "serve"):
        assert f"  {name}" in proc.stdout


def test_unknown_command_suggests_the_right_one():
    proc = _run("trian")
    assert proc.returncode == 2
    assert "unknown command 'trian' (did you mean 'train'?)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_data_mini_and_convert_round_trip(tmp_path):
    proc = _run("data", "mini", "-o", str(tmp_path / "mini"), "--train", "20", "--test", "5")
    assert proc.returncode == 0, proc.stderr
    src = tmp_path / "mini" / "relative_train.jsonl"
    proc = _run("data", "convert", str(src), "-o", str(tmp_path / "rows.jsonl"))
    assert proc.returncode == 0, proc.stderr
    import json

    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and rows[0]["prompt"].startswith("[INST] You are a fair judge")
    assert rows[0]["completion"].endswith(("[RESULT] A", "[RESULT] B"))
    again = _run("data", "convert", str(src), "-o", str(tmp_path / "rows.jsonl"))
    assert again.returncode == 1 and "already exists; pass --force" in again.stderr
    proc = _run("data", "split", str(src), "-o", str(tmp_path / "split"), "--test-size", "0.25")
    assert proc.returncode == 0 and "train: 15 rows, test: 5 rows" in proc.stdout
    proc = _run("data", "show", str(src), "--row", "2")
    assert proc.returncode == 0 and "###Response B:" in proc.stdout and "--- target" in proc.stdout


def test_eval_help_lists_every_eval_subcommand(capsys):
    from judgeforge.cli import main

    assert main(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    assert "judgeforge eval report DIR" in out and "judgeforge eval ablation --run NAME=DIR" in out
