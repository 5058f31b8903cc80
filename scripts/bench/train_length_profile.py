#!/usr/bin/env python3
"""Build scripts/bench/train_length_profile.json: the token-length profile of Prometheus training rows.

The 7B training benchmark (train_7b.py) draws row lengths from this profile instead of shipping data.
Rows are tokenised exactly as training does (judgeforge.tokenization.encode: BOS + chat prompt + output +
EOS, the real Mistral v1 tokenizer) from the paper's benchmark files in ../shared/data/prometheus-eval:

absolute  Vicuna Bench and MT Bench: each rendered absolute prompt (with reference answer and rubric)
          with each of its 3 GPT-4 feedbacks as the output ("{feedback} [RESULT] {score}"), as in the
          Feedback Collection; HHH's rendered prompts (no reference answer) with a GPT-4 feedback drawn
          from that pool (HHH has none of its own).
relative  Auto-J pairs rendered as relative prompts (helpfulness rubric criteria, no reference) with an
          output made of two GPT-4 feedbacks from the pool, because a Preference Collection feedback
          discusses both responses (an approximation: the real comparative feedbacks are not public here).

Only a joint histogram of (row tokens, output tokens) in 32-token bins is written; no text.

    python scripts/bench/train_length_profile.py          # here, with the tokenizer (not on the GPU machine)
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "prometheus-eval"
OUT = Path(__file__).with_name("train_length_profile.json")
BIN = 32


def rows(data: Path):
    from judgeforge.format.prompts import PRESET_RUBRICS, chat_prompt, format_output, render_relative

    rng = random.Random(0)
    feedback_pool = []
    absolute = []
    for name in ("vicuna_eval.json", "mt_bench_eval.json"):
        for item in json.loads((data / name).read_text(encoding="utf-8")):
            scores = item["gpt4_score"]
            scores = json.loads(scores) if isinstance(scores, str) else scores
            feedbacks = item["gpt4_feedback"]
            feedbacks = (
                json.loads(feedbacks)
                if isinstance(feedbacks, str) and feedbacks.startswith("[")
                else feedbacks
            )
            if isinstance(feedbacks, str):
                feedbacks = [feedbacks]
            for fb, sc in zip(feedbacks, scores):
                feedback_pool.append(fb)
                absolute.append((chat_prompt(item["instruction"], "absolute"), format_output(fb, int(sc))))
    for item in json.loads((data / "hhh_alignment_eval.json").read_text(encoding="utf-8")):
        for key in ("chosen_instruction", "rejected_instruction"):
            absolute.append((chat_prompt(item[key], "absolute"), format_output(rng.choice(feedback_pool), 3)))
    relative = []
    criteria = PRESET_RUBRICS["helpfulness"].criteria
    for line in (data / "autoj_pairwise.json").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        prompt = render_relative(item["prompt"], item["response 1"], item["response 2"], criteria)
        out = format_output(rng.choice(feedback_pool) + " " + rng.choice(feedback_pool), "A")
        relative.append((chat_prompt(prompt, "relative"), out))
    return {"absolute": absolute, "relative": relative}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args()
    from judgeforge.tokenization import encode, load_tokenizer

    tok = load_tokenizer("mistral-v1")
    profile = {
        "bin_width": BIN,
        "tokenizer": "mistral-v1",
        "source": "../shared/data/prometheus-eval (see scripts/bench/train_length_profile.py)",
        "modes": {},
    }
    for mode, pairs in rows(Path(a.data)).items():
        hist: Counter = Counter()
        totals = []
        for prompt, output in pairs:
            ids, n_prompt = encode(tok, prompt, output)
            n, t = len(ids), len(ids) - n_prompt
            totals.append(n)
            hist[(n // BIN, t // BIN)] += 1
        totals.sort()
        profile["modes"][mode] = {
            "rows": len(pairs),
            "mean_tokens": round(sum(totals) / len(totals), 1),
            "p10_p50_p90_max": [
                totals[len(totals) // 10],
                totals[len(totals) // 2],
                totals[9 * len(totals) // 10],
                totals[-1],
            ],
            # [row-token bin, output-token bin, count]; a bin b covers [b*32, b*32+31]
            "hist": [[n, t, c] for (n, t), c in sorted(hist.items())],
        }
        print(mode, {k: v for k, v in profile["modes"][mode].items() if k != "hist"})
    Path(a.out).write_text(json.dumps(profile, separators=(",", ":")) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
