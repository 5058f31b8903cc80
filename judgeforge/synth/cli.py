"""``judgeforge data synthesize`` and ``judgeforge data pair``: arguments, checks, the summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from judgeforge.cli_args import ArgumentParser
from judgeforge.errors import UserError
from judgeforge.synth.inputs import read_instructions, read_reference_answers
from judgeforge.synth.jobs import Summary, state_path
from judgeforge.synth.pairing import pair
from judgeforge.synth.synthesis import synthesize
from judgeforge.synth.teacher import make_teacher, scored_messages, teacher_sampling

SYNTH_EPILOG = """\
rubric file (YAML; see docs/domain-judges.md):
  name: support-resolution        # optional
  description: ...                # optional, for humans
  criteria: Does the reply resolve the customer's problem?
  scores:
    1: ...
    2: ...
    3: ...
    4: ...
    5: ...

instructions: a .txt file (one instruction per line) or .jsonl/.json/.csv/.parquet rows with
'instruction' (optional 'id', 'reference_answer').  --reference-answers: rows with
'reference_answer' and 'id' or 'instruction'; the teacher writes the missing ones.

teachers:
  --teacher https://api.openai.com/v1 --teacher-model gpt-4o      (key from $OPENAI_API_KEY)
  --teacher http://127.0.0.1:8000/v1 --teacher-model NAME          (a vLLM / TGI / llama.cpp server)
  --teacher path/to/hf-model-folder                                (local transformers model)

A rerun with the same -o resumes: finished (instruction, score) slots are skipped, nothing is
written twice.  Exit status 0 when the run ends (failed items are listed, and retried by the next
run); 1 on a user error or when the teacher produced no usable row at all.
"""

PAIR_EPILOG = """\
Input: absolute rows (the output of 'judgeforge data synthesize', the Feedback Collection, or
judgeforge's absolute schema).  Output: Preference Collection rows.  Every pair of responses to
the same instruction with different scores is used unless --pairs-per-instruction K is given;
the better response sits at A in half of the rows.  Without --teacher the comparative feedback is
composed from the two absolute feedbacks (the weaker choice: no direct comparison).
"""


def _teacher_args(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_argument_group("teacher")
    g.add_argument("--teacher", required=required, metavar="URL_OR_MODEL",
                   help="an OpenAI-compatible endpoint (http[s]://...) or a local Hugging Face model folder")
    g.add_argument("--teacher-model", default=None, metavar="NAME", help="model name at the endpoint (URL teachers)")
    g.add_argument("--api-key-env", default=None, metavar="VAR",
                   help="environment variable holding the API key (default: OPENAI_API_KEY)")
    g.add_argument("--concurrency", type=int, default=8, help="parallel requests to an endpoint (default 8)")
    g.add_argument("--batch-size", type=int, default=16,
                   help="teacher calls per batch; rows are written after each batch (default 16)")
    g.add_argument("--retries", type=int, default=3, help="regenerate a rejected output up to N times (default 3)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-new-tokens", type=int, default=2048)
    g.add_argument("--timeout", type=float, default=300.0, help="seconds per HTTP request (default 300)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (shifted per batch; default 0)")


def _parser(cmd: str) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    if cmd == "synthesize":
        p = ArgumentParser(
            prog="judgeforge data synthesize", formatter_class=fmt, epilog=SYNTH_EPILOG,
            description="Absolute judge data for your rubric, written by a teacher model "
            "(Feedback Collection schema).",
        )
        p.add_argument("--rubric", required=True, metavar="RUBRIC.yaml", help="rubric YAML file (or a preset name)")
        p.add_argument("--instructions", required=True, metavar="FILE", help="the instructions to answer")
        p.add_argument("--reference-answers", default=None, metavar="FILE",
                       help="reference answers (score 5) for some or all instructions")
        p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
        p.add_argument("--samples-per-score", type=int, default=1, metavar="K",
                       help="distinct responses per (instruction, score) (default 1, as the Feedback Collection)")
        p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N instructions")
        _teacher_args(p, required=False)
        p.add_argument("--dry-run", action="store_true",
                       help="check the inputs and print the plan and the first teacher prompt; call no teacher")
    else:
        p = ArgumentParser(
            prog="judgeforge data pair", formatter_class=fmt, epilog=PAIR_EPILOG,
            description="Relative judge data (Preference Collection schema) from absolute rows.",
        )
        p.add_argument("input", metavar="IN.jsonl", help="absolute rows")
        p.add_argument("-o", "--output", required=True, metavar="OUT.jsonl")
        p.add_argument("--pairs-per-instruction", type=int, default=None, metavar="K",
                       help="pairs drawn per instruction (default: every pair with different scores)")
        _teacher_args(p, required=False)
        p.set_defaults(seed=42)
    p.add_argument("--summary", default=None, metavar="FILE.json", help="also write the summary as JSON")
    p.add_argument("--force", action="store_true", help="start over: delete the output and its state first")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return p


def _parse(cmd: str, argv: list[str]):
    return _parser(cmd).parse_args(argv)


def _check_common(args) -> None:
    out = Path(args.output)
    if out.suffix.lower() != ".jsonl":
        raise UserError(f"-o {args.output}: the output must be a .jsonl file")
    if out.is_dir():
        raise UserError(f"-o {args.output}: is a folder; give a .jsonl file name")
    for name in ("retries", "concurrency", "batch_size", "max_new_tokens"):
        v = getattr(args, name)
        if v is None or v < (0 if name == "retries" else 1):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} must be {'>= 0' if name == 'retries' else '>= 1'}, got {v}")


def _progress(args):
    if args.quiet:
        return None

    def show(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    return show


def _teacher_from_args(args):
    return make_teacher(
        args.teacher, model=args.teacher_model, api_key_env=args.api_key_env, concurrency=args.concurrency,
        timeout=args.timeout, batch_size=args.batch_size,
    )


def _finish(summary: Summary, args) -> int:
    print(summary.render(args.retries))
    if args.summary:
        from judgeforge.io import atomic_write_json

        atomic_write_json(args.summary, summary.to_dict())
    return 0


def _synthesize_cli(argv: list[str]) -> int:
    from judgeforge.format.rubric_file import load_rubric

    args = _parse("synthesize", argv)
    _check_common(args)
    if args.samples_per_score < 1:
        raise UserError(f"--samples-per-score must be >= 1, got {args.samples_per_score}")
    rf = load_rubric(args.rubric)
    instructions, dups = read_instructions(args.instructions)
    if args.limit is not None:
        if args.limit < 1:
            raise UserError(f"--limit must be >= 1, got {args.limit}")
        instructions = instructions[: args.limit]
    if args.reference_answers:
        read_reference_answers(args.reference_answers, instructions)
    if args.dry_run:
        it = instructions[0]
        print(f"rubric {rf.label}: [{rf.rubric.criteria}]")
        print(f"{len(instructions)} instructions ({dups} duplicates dropped), "
              f"{sum(1 for i in instructions if i.reference_answer)} with a reference answer; "
              f"{len(instructions) * 5 * args.samples_per_score} slots; output {args.output}"
              + (" (exists: a run resumes it)" if Path(args.output).exists() else ""))
        print("--- first teacher prompt (user turn) ---")
        print(scored_messages(it.text, it.reference_answer or "(written by the teacher first)", rf.rubric, 1)[-1]
              ["content"])
        return 0
    if not args.teacher:
        raise UserError("data synthesize: --teacher is required (an http(s):// endpoint or a model folder)")
    teacher = _teacher_from_args(args)
    sampling = teacher_sampling(args.temperature, args.top_p, args.max_new_tokens, args.seed)
    try:
        summary = synthesize(
            teacher, rf.rubric, instructions, args.output, samples_per_score=args.samples_per_score,
            retries=args.retries, batch_size=args.batch_size, sampling=sampling, force=args.force,
            progress=_progress(args),
        )
    finally:
        teacher.close()
    if dups:
        summary.notes.append(f"{dups} duplicate instruction(s) in {args.instructions} were dropped")
    if summary.new_rows == 0 and summary.failures and summary.rows_before == 0:
        print(summary.render(args.retries), file=sys.stderr)
        for p in (Path(args.output), state_path(args.output)):
            if p.exists() and p.stat().st_size == 0:  # leave nothing that looks like an output
                p.unlink()
        reasons = ", ".join(f"{k} {v}" for k, v in summary.rejected.most_common(3))
        raise UserError(
            f"the teacher produced no usable row in {summary.teacher_calls} calls ({reasons}); "
            "check --teacher / --teacher-model (is it an instruction-following model?) and try --dry-run "
            "to see the prompt"
        )
    return _finish(summary, args)


def _pair_cli(argv: list[str]) -> int:
    from judgeforge.data import load_examples, read_rows, schema_of
    from judgeforge.format.prompts import ABSOLUTE
    from judgeforge.io import sha256_text

    args = _parse("pair", argv)
    _check_common(args)
    if args.pairs_per_instruction is not None and args.pairs_per_instruction < 1:
        raise UserError(f"--pairs-per-instruction must be >= 1, got {args.pairs_per_instruction}")
    if Path(args.input).resolve() == Path(args.output).resolve():
        raise UserError(f"-o {args.output}: the same file as the input; choose another output")
    rows = read_rows(args.input)
    schema = schema_of(rows)
    from judgeforge.data import mode_of

    if mode_of(schema) != ABSOLUTE:
        raise UserError(f"{args.input}: holds relative rows ({schema}); pair needs absolute rows with scores "
                        "(e.g. the output of 'judgeforge data synthesize')")
    examples = load_examples(args.input, schema)
    teacher = _teacher_from_args(args) if args.teacher else None
    digest = sha256_text(Path(args.input).read_text(encoding="utf-8", errors="replace"))[:16] \
        if Path(args.input).is_file() else str(args.input)
    try:
        summary = pair(
            examples, args.output, teacher=teacher, pairs_per_instruction=args.pairs_per_instruction,
            seed=args.seed, retries=args.retries, batch_size=args.batch_size,
            sampling=teacher_sampling(args.temperature, args.top_p, args.max_new_tokens, args.seed),
            force=args.force, settings={"input_sha256": digest}, progress=_progress(args),
        )
    finally:
        if teacher is not None:
            teacher.close()
    return _finish(summary, args)


def main(argv: list[str]) -> int:
    """``judgeforge data synthesize ...`` / ``judgeforge data pair ...`` (argv starts with the subcommand)."""
    if not argv or argv[0] not in ("synthesize", "pair"):
        raise UserError("judgeforge.synth handles 'data synthesize' and 'data pair'")
    if argv[0] == "synthesize":
        return _synthesize_cli(argv[1:])
    return _pair_cli(argv[1:])
