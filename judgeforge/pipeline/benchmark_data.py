"""``judgeforge data from-benchmarks``: training rows built from the paper's benchmark files.

    judgeforge data from-benchmarks --data-dir DIR -o OUT [--holdout 0.2] [--seed 0]

Vicuna Bench and MT Bench (``vicuna_eval.json``, ``mt_bench_eval.json``) give, for each item,
the rendered absolute prompt (instruction, response, rubric, reference answer) and three GPT-4
feedbacks with their scores.  From them, the way the two collections were built:

``absolute_train.jsonl`` (Feedback Collection schema)
    each training item x each of its GPT-4 feedbacks: the item's rendered prompt, the feedback
    and that feedback's score as the target.  A feedback that already carries its own
    ``[RESULT]`` (one MT Bench feedback does) is cut there; the target's ``[RESULT] n`` follows.
``relative_train.jsonl`` (Preference Collection schema)
    every pair of training responses to the same question (same instruction, rubric and reference
    answer) whose GPT-4 mean scores differ.  The better response is A in half the rows (a seeded
    choice, balanced to within one row); the comparative feedback is composed from the better
    response's highest-scored feedback and the worse one's lowest-scored feedback (so the two
    scores named always agree with the verdict): "Response A: ... Response B: ... Response A is
    scored 5 and Response B 3 under the rubric, so Response A is better."  MT Bench's items are
    second turns whose dialogue holds each responder's own first answer, so its responses to one
    question rarely share an instruction and give (almost) no pairs.
``heldout/vicuna.json``, ``heldout/mt_bench.json``
    the held-out items in the benchmark files' own format (rendered ``instruction``,
    ``gpt4_score``: the three GPT-4 scores, whose mean is the gold): ``judgeforge eval --suite
    OUT/heldout/vicuna.json,OUT/heldout/mt_bench.json,hhh,autoj`` reads them, and they keep the
    benchmarks' names in the reports (so ``eval ablation`` counts them in DA).
``split.json``
    the seed, the hold-out share, and per benchmark the question ids (``idx``) of each side and
    the row counts.

The split is by question (``idx``), never by row: ``ceil(holdout x questions)`` of each
benchmark's questions are held out, chosen with ``random.Random(f"{seed}:{benchmark}")``.
HHH and Auto-J are never read here: they stay evaluation-only.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction
from itertools import combinations
from pathlib import Path

from judgeforge.cli_args import ArgumentParser
from judgeforge.errors import UserError

TRAIN_BENCHMARKS = ("vicuna", "mt_bench")
OUTPUT_NAMES = ("absolute_train.jsonl", "relative_train.jsonl", "split.json")


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="judgeforge data from-benchmarks",
        description="Absolute (Feedback Collection schema) and relative (Preference Collection schema) "
        "training rows from Vicuna Bench and MT Bench's GPT-4 feedbacks, split by question, with the "
        "held-out items as benchmark files for 'judgeforge eval --suite FILE'.",
    )
    p.add_argument("--data-dir", default=None,
                   help="folder with vicuna_eval.json and mt_bench_eval.json (default: the benchmark cache, "
                        "fetched once)")
    p.add_argument("-o", "--output-dir", required=True)
    p.add_argument("--holdout", type=float, default=0.2, help="share of each benchmark's questions held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite the rows and held-out files there")
    return p


def _feedbacks(item, where: str) -> list[str]:
    fbs = item.extra.get("gpt4_feedback")
    if fbs is None:
        raise UserError(f"{where}: no 'gpt4_feedback' field; from-benchmarks needs the GPT-4 feedbacks of "
                        "prometheus-eval's vicuna_eval.json / mt_bench_eval.json")
    if not (isinstance(fbs, list) and all(isinstance(f, str) and f.strip() for f in fbs)):
        raise UserError(f"{where}: 'gpt4_feedback' must be a list of non-empty texts")
    if len(fbs) != len(item.gold_scores):
        raise UserError(f"{where}: {len(fbs)} GPT-4 feedbacks but {len(item.gold_scores)} scores in 'gpt4_score'")
    return [f.split("[RESULT]")[0].strip() for f in fbs]


def _scores(item, where: str) -> list[int]:
    if not all(float(s).is_integer() for s in item.gold_scores):
        raise UserError(f"{where}: 'gpt4_score' must hold whole scores 1-5, got {item.gold_scores}")
    return [int(s) for s in item.gold_scores]


def _question(item, where: str) -> str:
    q = item.extra.get("idx")
    if q is None:
        raise UserError(f"{where}: no 'idx' field; the question id is needed to split by question")
    return str(q)


def read_benchmark(name: str, data_dir) -> list[dict]:
    """One benchmark's items as dicts (question, parts, scores, feedbacks), read by the eval stage's reader."""
    from judgeforge.eval.benchmarks import BENCHMARKS, load_benchmark, locate
    from judgeforge.format.prompts import ABSOLUTE, parse_rendered

    spec = BENCHMARKS[name]
    if data_dir is None:
        path = locate(spec, None)  # the cache, else fetched once
    else:
        path = Path(data_dir) / spec.filename
        if not path.is_file():
            raise UserError(f"--data-dir {data_dir}: no {spec.filename} ({spec.title}); give the folder with "
                            "prometheus-eval's benchmark files")
    bench = load_benchmark(str(path))
    out = []
    for item in bench.items:
        where = f"{path}: row {int(item.id) + 1}" if item.id.isdigit() else f"{path}: item {item.id}"
        if item.kind != "absolute":
            raise UserError(f"{path}: {spec.title} should hold absolute items")
        parts = parse_rendered(item.prompt, where)
        if parts.mode != ABSOLUTE:
            raise UserError(f"{where}: 'instruction' is not a rendered absolute prompt")
        out.append({"question": _question(item, where), "source": str(item.extra.get("response_source", item.id)),
                    "category": item.group, "prompt": item.prompt, "parts": parts,
                    "scores": _scores(item, where), "feedbacks": _feedbacks(item, where)})
    if not out:
        raise UserError(f"{path}: no items")
    return out


def split_questions(questions: list[str], holdout: float, seed: int, name: str) -> set[str]:
    """The held-out question ids: ceil(holdout x n) of them, a seeded choice per benchmark."""
    unique = sorted(set(questions), key=lambda q: (len(q), q))
    if len(unique) < 2:
        raise UserError(f"{name}: {len(unique)} question(s); need at least 2 to hold some out")
    n = min(len(unique) - 1, math.ceil(holdout * len(unique)))
    return set(random.Random(f"{seed}:{name}").sample(unique, n))


def absolute_rows(name: str, items: list[dict]) -> list[dict]:
    from judgeforge.data import to_collection_row
    from judgeforge.format.records import AbsoluteExample

    rows = []
    for it in items:
        p = it["parts"]
        for k, (fb, s) in enumerate(zip(it["feedbacks"], it["scores"])):
            ex = AbsoluteExample(p.instruction, p.response, p.rubric, p.reference_answer, s, fb,
                                 f"{name}-{it['question']}-{it['source']}-f{k + 1}", rendered=it["prompt"])
            rows.append(to_collection_row(ex))
    return rows


def compose_feedback(fb_a: str, fb_b: str, score_a: int, score_b: int, winner: str) -> str:
    loser = "B" if winner == "A" else "A"
    return (f"Response A: {fb_a} Response B: {fb_b} Response A is scored {score_a} and Response B {score_b} "
            f"under the rubric, so Response {winner} is better than Response {loser}.")


def candidate_pairs(name: str, items: list[dict]) -> list[tuple[dict, dict]]:
    """(better, worse) for every two responses to one question (same instruction, rubric, reference)
    whose GPT-4 means differ."""
    groups: dict[tuple, list[dict]] = {}
    for it in items:
        p = it["parts"]
        groups.setdefault((it["question"], p.instruction, p.rubric_text, p.reference_answer), []).append(it)
    pairs = []
    for group in groups.values():
        for x, y in combinations(group, 2):
            mx, my = Fraction(sum(x["scores"]), len(x["scores"])), Fraction(sum(y["scores"]), len(y["scores"]))
            if mx != my:
                pairs.append((x, y) if mx > my else (y, x))
    return pairs


def relative_rows(pairs: list[tuple[str, dict, dict]], seed: int) -> list[dict]:
    """Preference Collection rows; the better response is A in floor(n/2) or ceil(n/2) rows (seeded)."""
    from judgeforge.data import to_collection_row
    from judgeforge.format.prompts import Rubric
    from judgeforge.format.records import RelativeExample

    n = len(pairs)
    better_first = [True] * (n // 2) + [False] * (n - n // 2)
    random.Random(f"{seed}:positions").shuffle(better_first)
    rows = []
    for (name, good, bad), good_is_a in zip(pairs, better_first):
        kg = max(range(len(good["scores"])), key=lambda k: (good["scores"][k], -k))
        kb = min(range(len(bad["scores"])), key=lambda k: (bad["scores"][k], k))
        (a, ka), (b, kb_) = ((good, kg), (bad, kb)) if good_is_a else ((bad, kb), (good, kg))
        winner = "A" if good_is_a else "B"
        sa, sb = a["scores"][ka], b["scores"][kb_]
        p = good["parts"]
        ex = RelativeExample(p.instruction, a["parts"].response, b["parts"].response, Rubric(p.rubric.criteria, None),
                             p.reference_answer, winner,
                             compose_feedback(a["feedbacks"][ka], b["feedbacks"][kb_], sa, sb, winner),
                             f"{name}-{good['question']}-{a['source']}-vs-{b['source']}", sa, sb)
        row = to_collection_row(ex)
        row["orig_feedback_A"], row["orig_feedback_B"] = a["feedbacks"][ka], b["feedbacks"][kb_]
        rows.append(row)
    return rows


def heldout_records(items: list[dict]) -> list[dict]:
    return [{"id": f"{it['question']}-{it['source']}", "idx": it["question"], "response_source": it["source"],
             "category": it["category"], "instruction": it["prompt"], "gpt4_score": it["scores"],
             "gpt4_feedback": it["feedbacks"]} for it in items]


def build(data_dir, output_dir, holdout: float = 0.2, seed: int = 0, *, force: bool = False) -> dict:
    """Write the rows and held-out files; returns the manifest written to ``split.json``."""
    from judgeforge.data.cli import check_output_dir
    from judgeforge.io import atomic_write_json, write_jsonl

    if not 0 < holdout < 1:
        raise UserError(f"--holdout must be between 0 and 1 (exclusive), got {holdout}")
    if seed < 0:
        raise UserError(f"--seed must be an integer >= 0, got {seed}")
    check_output_dir(output_dir, [], OUTPUT_NAMES, force=force)
    out = Path(output_dir)
    check_output_dir(out / "heldout", [], tuple(f"{n}.json" for n in TRAIN_BENCHMARKS), force=force)
    from judgeforge.eval.benchmarks import check_data_dir

    check_data_dir(data_dir, holds="vicuna_eval.json and mt_bench_eval.json")
    absolute, pairs, manifest = [], [], {"seed": seed, "holdout": holdout, "benchmarks": {}}
    heldout = {}
    for name in TRAIN_BENCHMARKS:
        items = read_benchmark(name, data_dir)
        held = split_questions([it["question"] for it in items], holdout, seed, name)
        train = [it for it in items if it["question"] not in held]
        heldout[name] = [it for it in items if it["question"] in held]
        rows = absolute_rows(name, train)
        bench_pairs = candidate_pairs(name, train)
        absolute += rows
        pairs += [(name, good, bad) for good, bad in bench_pairs]
        manifest["benchmarks"][name] = {
            "train_questions": sorted({it["question"] for it in train}, key=lambda q: (len(q), q)),
            "heldout_questions": sorted(held, key=lambda q: (len(q), q)),
            "train_items": len(train), "heldout_items": len(heldout[name]),
            "absolute_rows": len(rows), "relative_rows": len(bench_pairs),
        }
    relative = relative_rows(pairs, seed)
    write_jsonl(out / "absolute_train.jsonl", absolute)
    write_jsonl(out / "relative_train.jsonl", relative)
    for name, items in heldout.items():
        atomic_write_json(out / "heldout" / f"{name}.json", heldout_records(items))
    manifest["absolute_rows"], manifest["relative_rows"] = len(absolute), len(relative)
    manifest["relative_better_is_a"] = sum(r["orig_preference"] == "A" for r in relative)
    atomic_write_json(out / "split.json", manifest)
    return manifest


def main(argv: list[str]) -> int:
    if argv and argv[0] == "from-benchmarks":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    m = build(args.data_dir, args.output_dir, args.holdout, args.seed, force=args.force)
    out = Path(args.output_dir)
    for name, b in m["benchmarks"].items():
        print(f"{name}: {len(b['train_questions'])} questions for training ({b['absolute_rows']} absolute, "
              f"{b['relative_rows']} relative rows), {len(b['heldout_questions'])} held out "
              f"({b['heldout_items']} items) -> {out / 'heldout' / (name + '.json')}")
    print(f"absolute: {out / 'absolute_train.jsonl'} ({m['absolute_rows']} rows)")
    print(f"relative: {out / 'relative_train.jsonl'} ({m['relative_rows']} rows, better response A in "
          f"{m['relative_better_is_a']})")
    return 0
