"""How often the parser reads a wrong score out of real judge feedback (issue #17).

The GPT-4 feedbacks of the paper's Vicuna Bench and MT Bench files carry their known scores
(``gpt4_score``, one per feedback).  Each feedback is parsed in four shapes:

``tagless``   the feedback as it is, any ``[RESULT] n`` removed (prose that names scores only
              in passing: "... does not fully align with the criteria for a score of 5.")
``tag``       ``{feedback} [RESULT] {score}``        (the trained format)
``line``      ``{feedback}\\n\\nScore: {score}``      (a closing score line, no tag)
``sentence``  ``{feedback} The overall score is {score}.``

and every parse rule (tolerant, the package's ``strict``, the paper script's ``harness``).
A *wrong read* is a parsed score that differs from the known one (target 0); a failure is
counted, never guessed.

    python scripts/bench/parse_fidelity.py --data-dir ../shared/data/prometheus-eval [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from judgeforge.format.parsing import parse

FILES = ("vicuna_eval.json", "mt_bench_eval.json")
_TAG = re.compile(r"\s*\[RESULT\]\s*(?:Score:\s*)?\d\s*\.?\s*$")
SHAPES = {
    "tagless": lambda fb, s: fb,
    "tag": lambda fb, s: f"{fb} [RESULT] {s}",
    "line": lambda fb, s: f"{fb}\n\nScore: {s}",
    "sentence": lambda fb, s: f"{fb} The overall score is {s}.",
}
RULES = {"tolerant": False, "strict": True, "harness": "harness"}


def feedbacks(data_dir: Path):
    for name in FILES:
        for row in json.loads((data_dir / name).read_text(encoding="utf-8")):
            scores, texts = row["gpt4_score"], row["gpt4_feedback"]
            scores = json.loads(scores) if isinstance(scores, str) else scores
            texts = json.loads(texts) if isinstance(texts, str) and texts.startswith("[") else texts
            texts = [texts] if isinstance(texts, str) else texts
            for s, t in zip(scores, texts):
                yield name, int(s), _TAG.sub("", t).rstrip()


def measure(data_dir: Path) -> dict:
    items = list(feedbacks(data_dir))
    out: dict = {"feedbacks": len(items), "files": list(FILES), "results": {}}
    for shape, make in SHAPES.items():
        for rule, strict in RULES.items():
            wrong = failed = 0
            examples = []
            for _, s, fb in items:
                got = parse(make(fb, s), "absolute", strict=strict).result
                if got is None:
                    failed += 1
                elif got != s:
                    wrong += 1
                    if len(examples) < 3:
                        examples.append({"known": s, "read": got, "end": fb[-120:]})
            out["results"][f"{shape}/{rule}"] = {
                "wrong": wrong, "failed": failed, "wrong_rate": wrong / len(items),
                "failure_rate": failed / len(items), "examples": examples}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data/prometheus-eval")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    res = measure(Path(args.data_dir))
    print(f"{res['feedbacks']} GPT-4 feedbacks with known scores ({', '.join(FILES)})")
    print(f"{'shape/rule':<20} {'wrong':>6} {'wrong %':>8} {'failed':>7} {'failed %':>9}")
    for k, r in res["results"].items():
        print(f"{k:<20} {r['wrong']:>6} {100 * r['wrong_rate']:>7.2f}% {r['failed']:>7} {100 * r['failure_rate']:>8.2f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
