"""Hub conventions against a local hub stub on 127.0.0.1 (tests/hub_stub.py; never the real hub): hub ids
where a model folder is (merge inputs, downloaded with snapshot_download), model cards for experts and
merges, push_to_hub for train, merge and sweep outputs, and the one-line errors offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hub_stub import HubStub

from judgeforge.errors import UserError


def _front(readme: Path | str) -> dict:
    text = readme.read_text(encoding="utf-8") if isinstance(readme, Path) else readme
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---", 2)[1])


def _model_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub.constants as C

    with HubStub() as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        monkeypatch.setenv("HF_TOKEN", "hf_stub_token")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        # huggingface_hub reads these when imported (conftest.py sets HF_HUB_OFFLINE=1 for the suite)
        monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setattr(C, "HF_HUB_OFFLINE", False)
        yield stub


def test_merge_takes_hub_ids_writes_base_model_and_pushes(hub, tiny_model, tmp_path, capsys):
    from judgeforge.merge.cli import main

    # two "experts" on the hub: the tiny model, with a card naming its base and data as a judgeforge expert's
    for name, seed_card in (("owner/abs-expert", "absolute"), ("owner/rel-expert", "relative")):
        files = _model_files(tiny_model)
        files["README.md"] = f"---\nbase_model: mistralai/Mistral-7B-Instruct-v0.2\ndatasets: [prometheus-eval/{seed_card}]\n---\n".encode()
        files["pytorch_model.bin"] = b"never downloaded"  # pickles are never fetched
        hub.add_repo(name, files)
    out = tmp_path / "judge"
    code = main(["--weights", "0.5,0.5", "owner/abs-expert", "owner/rel-expert", "-o", str(out),
                 "--push_to_hub", "true", "--hub_model_id", "me/merged-judge", "--hub_private_repo", "true"])
    assert code == 0, capsys.readouterr().err
    meta = _front(out / "README.md")
    assert meta["base_model"] == ["owner/abs-expert", "owner/rel-expert"] and meta["base_model_relation"] == "merge"
    assert meta["library_name"] == "transformers" and "judgeforge" in meta["tags"] and "merge" in meta["tags"]
    assert "owner/abs-expert" in (out / "judgeforge_merge.yaml").read_text()  # the recipe keeps the hub ids
    assert not list((tmp_path / "hf-cache").rglob("pytorch_model.bin"))
    # pushed: the repository created private, every file of the folder uploaded, the card validated
    assert hub.created == [("me/merged-judge", True)]
    pushed = hub.repos["me/merged-judge"]
    assert pushed["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert _front(pushed["README.md"].decode()) == meta and meta in hub.cards


def test_expert_card_and_push_after_training(hub, tokenizer, tmp_path):
    from judgeforge.train import dataset as D
    from judgeforge.train.recipe import load
    from judgeforge.train.run import train

    out = tmp_path / "expert"
    recipe = load(Path(__file__).resolve().parents[1] / "configs/train/tiny-cpu.yaml", [
        "--init_from_config", "{hidden: 32, layers: 1, heads: 2, kv_heads: 1}", "--bf16", "false",
        "--max_steps", "1", "--per_device_train_batch_size", "2", "--output_dir", str(out),
        "--datasets", "prometheus-eval/Feedback-Collection", "--push_to_hub", "true",
        "--hub_model_id", "me/abs-expert"])
    final = train(recipe, synthetic=D.synthetic_rows([16] * 2, 0.5), tokenizer=tokenizer)
    meta = _front(final / "README.md")
    assert meta["datasets"] == ["prometheus-eval/Feedback-Collection"] and "base_model" not in meta  # random init
    assert meta["library_name"] == "transformers" and "absolute-grading" in meta["tags"]
    text = (final / "README.md").read_text()
    assert "lr_scheduler_type: cosine" in text and "judgeforge train train_recipe.yaml" in text
    assert set(hub.repos["me/abs-expert"]) >= {"README.md", "model.safetensors", "config.json", "train_recipe.yaml"}


def test_card_carries_eval_numbers_from_a_report(tmp_path):
    from judgeforge.hub import card

    report = {"benchmarks": {"vicuna_bench": {"modes": {"absolute": {"pearson": 0.61234, "n_scored": 80,
                                                                     "spearman": None}}},
                             "hhh": {"modes": {"relative": {"accuracy": 0.8, "n_scored": 221}}}}}
    text = card({"base_model": "a/b", "tags": ["judgeforge"]}, ["# x"], name="x", report=report)
    meta = _front(text)
    results = meta["model-index"][0]["results"]
    assert [(r["dataset"]["name"], r["metrics"][0]["type"], r["metrics"][0]["value"]) for r in results] == [
        ("vicuna_bench", "pearson", 0.6123), ("hhh", "accuracy", 0.8)]  # None (n/a) is left out, not 0
    assert "| vicuna_bench | absolute | pearson | 0.6123 | 80 |" in text


def test_sweep_results_push_only_the_results(hub, tmp_path):
    from judgeforge.hub import push_folder
    from judgeforge.pipeline.sweep import PUSHED, _card

    out = tmp_path / "sweep-out"
    (out / "linear-0.5" / "cache").mkdir(parents=True)
    (out / "linear-0.5" / "report.json").write_text("{}")
    (out / "linear-0.5" / "cache" / "gen.jsonl").write_text("{}\n")
    for f in ("sweep.json", "sweep.md", "sweep_da.png"):
        (out / f).write_text("x")
    result = {"suite": "paper", "methods": ["linear"], "seed": 42}
    (out / "README.md").write_text(_card({"absolute": "owner/abs", "relative": "owner/rel", "base": None},
                                         result, "| t |"))
    push_folder(out, "me/sweep", allow_patterns=PUSHED)
    assert set(hub.repos["me/sweep"]) == {"README.md", "sweep.json", "sweep.md", "sweep_da.png",
                                          "linear-0.5/report.json"}
    assert _front(hub.repos["me/sweep"]["README.md"].decode())["base_model"] == ["owner/abs", "owner/rel"]


def test_hub_ids_offline_or_unreachable_are_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants as C

    from judgeforge.hub import push_folder, resolve_model

    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as e:
        resolve_model("mistralai/Mistral-7B-Instruct-v0.2", "--base")
    assert "HF_HUB_OFFLINE is set" in str(e.value) and "local folder" in str(e.value)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set, so nothing can be pushed"):
        push_folder(tmp_path, "me/x")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(C, "HF_HUB_OFFLINE", False)
    import socket

    with socket.socket() as s:  # a port nobody listens on: the hub is unreachable
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(UserError) as e:
        resolve_model("owner/model", "model 1")
    assert "\n" not in str(e.value) and "HF_HUB_OFFLINE" in str(e.value) and "DIR" in str(e.value)
    with pytest.raises(UserError, match="not a hub repository id"):
        push_folder(tmp_path, "not a repo")


def test_bad_hub_options_are_one_line_before_anything_runs(tmp_path):
    from judgeforge.merge.cli import build_recipe
    from judgeforge.train.recipe import load

    tiny = Path(__file__).resolve().parents[1] / "configs/train/tiny-cpu.yaml"
    with pytest.raises(UserError, match="push_to_hub needs hub_model_id|needs hub_model_id"):
        load(tiny, ["--push_to_hub", "true"])
    with pytest.raises(UserError, match="not a hub repository id"):
        load(tiny, ["--hub_model_id", "a/b/c"])
    with pytest.raises(UserError, match="needs hub_model_id"):
        build_recipe(["a", "b", "-o", str(tmp_path / "o"), "--push_to_hub", "true"])
    assert json.loads("{}") == {}


def test_sweep_takes_hub_ids_for_its_experts(hub, tiny_model, tmp_path):
    """README's sweep example names hub ids: both experts are fetched and loaded from their snapshots (the
    run then stops at the made-up suite, before any generation)."""
    from judgeforge.pipeline.sweep import sweep

    for name in ("owner/abs", "owner/rel"):
        hub.add_repo(name, _model_files(tiny_model))
    with pytest.raises(UserError, match="no-such-suite"):
        sweep("owner/abs", "owner/rel", alphas=[0.5], methods=["linear"], suite="no-such-suite", out=tmp_path / "s",
              base="owner/never-fetched", device="cpu", log=lambda *a: None)
    fetched = {p.split("/resolve/")[0].strip("/") for m, p in hub.requests if "/resolve/" in p}
    assert fetched == {"owner/abs", "owner/rel"}  # linear uses no base: it is not downloaded
