#!/usr/bin/env python
"""A few GRPO steps with a judge as the reward model, on the CPU, with tiny models.

    python scripts/grpo_example.py                          # judge in process (a tiny scripted judge)
    python scripts/grpo_example.py --judge path/to/judge    # your judge folder, in process
    judgeforge serve --judge path/to/judge &                # or a judge server ...
    python scripts/grpo_example.py --judge-url http://127.0.0.1:8765

The policy is a tiny random Mistral model (judgeforge.tiny.make_tiny_model) unless
``--policy`` names a folder.  The reward is :func:`judgeforge.serve.reward.judge_reward`: each
completion is graded in absolute mode with ``--rubric`` and the 1-5 score becomes a reward
in [0, 1].  TRL's GRPOTrainer does the rest (groups of ``--generations`` completions per
prompt, group-normalised advantages).  The default judge is a tiny scripted model
(judgeforge.judge.make_scripted_judge) that grades every completion 2 or 4 at random: the
rewards differ within a group, so gradients flow, but there is nothing to learn -- the
point is the plumbing, which is the same with a real judge.  Prints the rewards of each
reward call and a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

PROMPTS = [
    "Explain why the sky is blue.",
    "Give one tip for writing clear code.",
    "What is the capital of France?",
    "Summarise the water cycle in one sentence.",
]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--steps", type=int, default=3, help="GRPO optimisation steps")
    p.add_argument("--generations", type=int, default=4, help="completions per prompt (GRPO group size)")
    p.add_argument("--max-completion-length", type=int, default=8, help="new tokens per completion")
    p.add_argument("--policy", default=None, help="policy model folder (default: a tiny random Mistral)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--judge", default=None, help="judge model folder, graded in process (default: a tiny "
                                                 "scripted judge that grades 2 or 4 at random)")
    g.add_argument("--judge-url", default=None, help="a 'judgeforge serve' URL: grade over HTTP")
    p.add_argument("--rubric", default="helpfulness", help="rubric preset (or a rendered rubric string)")
    p.add_argument("--conversational", action="store_true", help="chat-message prompts instead of plain text")
    p.add_argument("--judge-max-new-tokens", type=int, default=32, help="judge feedback length (in process)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def build_reward(args, work: Path):
    from judgeforge.serve.reward import judge_reward

    if args.judge_url:
        return judge_reward(args.judge_url, rubric=args.rubric), None
    from judgeforge import Judge
    from judgeforge.judge import make_scripted_judge

    judge_dir = args.judge or make_scripted_judge(work / "judge", scores=(2, 4))
    judge = Judge(str(judge_dir), sampling={"max_new_tokens": args.judge_max_new_tokens}, retries=1,
                  device="cpu")
    return judge_reward(judge, rubric=args.rubric), judge


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from judgeforge.tiny import make_tiny_model
    from judgeforge.tokenization import load_tokenizer

    work = Path(args.out or tempfile.mkdtemp(prefix="jf-grpo-"))
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    policy_dir = Path(args.policy) if args.policy else make_tiny_model(work / "policy", seed=args.seed)
    tokenizer = load_tokenizer(str(policy_dir))
    reward_fn, judge = build_reward(args, work)

    if args.conversational:
        rows = [{"prompt": [{"role": "user", "content": p}]} for p in PROMPTS]
    else:
        rows = [{"prompt": p} for p in PROMPTS]
    dataset = Dataset.from_list(rows)

    calls = []

    def logged_reward(prompts, completions, **kwargs):
        rewards = reward_fn(prompts, completions, **kwargs)
        calls.append({"n": len(rewards), "rewards": rewards, "scores": [r["score"] for r in reward_fn.last_results]})
        print(f"reward call {len(calls)}: {len(rewards)} completions, scores {calls[-1]['scores']}", flush=True)
        return rewards

    logged_reward.__name__ = reward_fn.__name__
    per_device = args.generations  # one prompt per device batch, its whole group
    config = GRPOConfig(
        output_dir=str(work / "run"),
        max_steps=args.steps,
        per_device_train_batch_size=per_device,
        num_generations=args.generations,
        max_completion_length=args.max_completion_length,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=args.seed,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=str(policy_dir), reward_funcs=[logged_reward], args=config,
                          train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h or "reward" in h]
    if judge is not None:
        judge.close()
    summary = {
        "steps": trainer.state.global_step,
        "reward_calls": len(calls),
        "completions_graded": sum(c["n"] for c in calls),
        "mean_reward": (sum(sum(x for x in c["rewards"] if x is not None) for c in calls)
                        / max(1, sum(c["n"] for c in calls))),
        "train_loss": result.training_loss,
        "log": history,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "log"}, indent=2))
    return summary


if __name__ == "__main__":
    main()
