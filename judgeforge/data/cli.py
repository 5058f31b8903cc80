"""``judgeforge data``: validate | convert | show | split | mini (and synthesize | pair | from-benchmarks).

    judgeforge data mini -o DIR                     write the built-in mini datasets
    judgeforge data validate FILE [FILE ...]        one line per problem, exit 1 if any (--json: a summary)
    judgeforge data convert IN -o OUT.jsonl         to training rows (prompt, completion)
                                                    or --to collection (the collections' schemas)
    judgeforge data show IN [--row N] [--prompt]    a row as the judge sees it
    judgeforge data split IN -o DIR                 the paper's 1% hold-out (seed 42)
    judgeforge data from-benchmarks -o DIR          rows from Vicuna/MT Bench's GPT-4 feedbacks
                                                    (judgeforge.pipeline.benchmark_data)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from judgeforge.cli_args import ArgumentParser
from judgeforge.errors import UserError

SUBCOMMANDS = {
    "validate": "check every row; print one line per problem (file, row, field); exit 1 if any",
    "convert": "convert a dataset to training rows or to the collections' schemas",
    "show": "print rows as the judge sees them",
    "split": "the paper's deterministic hold-out split (datasets train_test_split, seed 42)",
    "mini": "write the built-in mini datasets (absolute/relative, train/test)",
    # domain-specific data (registered by judgeforge.synth)
    "synthesize": "synthesize absolute rows for your rubric with a teacher model",
    "pair": "make relative rows from absolute rows (as the Preference Collection did)",
    # registered by judgeforge.pipeline.benchmark_data (it reads with the eval stage's reader)
    "from-benchmarks": "training rows from Vicuna/MT Bench's GPT-4 feedbacks, split by question",
}

SCHEMA_HELP = (
    "schema of the input (detected from the columns when omitted): "
    "feedback-collection, preference-collection, absolute, relative"
)


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="judgeforge data",
        description="Judge datasets: the Feedback/Preference Collection schemas and judgeforge's own "
        "(see 'judgeforge.data' docs). Sources: .jsonl/.json/.parquet/.csv files, folders, hub ids.",
    )
    sub = p.add_subparsers(dest="cmd", metavar="{" + ",".join(SUBCOMMANDS) + "}")

    v = sub.add_parser("validate", help=SUBCOMMANDS["validate"])
    v.add_argument("sources", nargs="+", help="files, folders or hub dataset ids")
    v.add_argument("--schema", default=None, help=SCHEMA_HELP)
    v.add_argument("--split", default="train", help="split of a hub dataset (default: train)")
    v.add_argument("--unlabeled", action="store_true", help="rows need no score/preference/feedback (eval data)")
    v.add_argument("--no-feedback", action="store_true", help="rows need labels but no feedback")
    v.add_argument("--max-length", type=int, default=None, help="flag rows whose prompt+output exceed N tokens")
    v.add_argument("--tokenizer", default="mistral-v1", help="tokenizer for --max-length (default: mistral-v1)")
    v.add_argument("--json", action="store_true",
                   help="print one JSON summary on stdout (per source: rows, schema, every problem) instead of lines")

    c = sub.add_parser("convert", help=SUBCOMMANDS["convert"])
    c.add_argument("source")
    c.add_argument("-o", "--output", required=True, help="output .jsonl")
    c.add_argument("--schema", default=None, help=SCHEMA_HELP)
    c.add_argument("--split", default="train")
    c.add_argument(
        "--to",
        default="training",
        choices=["training", "collection", "messages"],
        help="training: {id, mode, prompt, completion}; messages: chat messages; "
        "collection: Feedback/Preference Collection columns",
    )
    c.add_argument("--variant", default=None, help="template variant for rows that are rendered here")
    c.add_argument("--force", action="store_true", help="overwrite the output")

    s = sub.add_parser("show", help=SUBCOMMANDS["show"])
    s.add_argument("source")
    s.add_argument("--schema", default=None, help=SCHEMA_HELP)
    s.add_argument("--split", default="train")
    s.add_argument("--row", type=int, default=1, help="1-based row number (default 1)")
    s.add_argument("-n", type=int, default=1, help="how many rows (default 1)")
    s.add_argument("--prompt", action="store_true", help="print the full chat prompt as the model sees it")

    sp = sub.add_parser("split", help=SUBCOMMANDS["split"])
    sp.add_argument("source")
    sp.add_argument("-o", "--output-dir", required=True)
    sp.add_argument("--test-size", type=float, default=0.01)
    sp.add_argument("--seed", type=int, default=42)
    sp.add_argument("--split", default="train", help="split of a hub dataset")
    sp.add_argument("--force", action="store_true", help="overwrite train.jsonl / test.jsonl / split.json there")

    m = sub.add_parser("mini", help=SUBCOMMANDS["mini"])
    m.add_argument("-o", "--output-dir", default="mini-data")
    m.add_argument("--train", type=int, default=2000, help="rows per training file")
    m.add_argument("--test", type=int, default=200, help="rows per test file")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--force", action="store_true", help="overwrite the mini files there")

    sub.add_parser("synthesize", help=SUBCOMMANDS["synthesize"], add_help=False)
    sub.add_parser("pair", help=SUBCOMMANDS["pair"], add_help=False)
    sub.add_parser("from-benchmarks", help=SUBCOMMANDS["from-benchmarks"], add_help=False)
    return p


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("synthesize", "pair", "from-benchmarks"):  # judgeforge.cli routes them
        raise UserError(f"data {argv[0]}: run it as 'judgeforge data {argv[0]} ...'")
    p = _parser()
    args = p.parse_args(argv)
    if not args.cmd:
        p.print_help()
        return 2
    return {"validate": _validate, "convert": _convert, "show": _show, "split": _split, "mini": _mini}[args.cmd](args)


def _validate(args) -> int:
    from judgeforge.data import read_rows, validate_rows

    tokenizer = None
    if args.max_length is not None and args.max_length < 1:
        raise UserError(f"data validate: --max-length must be a positive number of tokens, got {args.max_length}")
    if args.max_length:
        from judgeforge.tokenization import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    bad = 0
    summary = []
    for src in args.sources:
        rows = read_rows(src, split=args.split)
        v = validate_rows(
            rows,
            args.schema,
            require_labels=not args.unlabeled,
            require_feedback=not (args.unlabeled or args.no_feedback),
            tokenizer=tokenizer,
            max_length=args.max_length,
        )
        bad += len(v.problems)
        if args.json:
            summary.append({"source": str(src), "schema": v.schema, "rows": v.rows, "ok": v.ok,
                            "problems": [{"where": p.where, "field": p.field, "message": p.message}
                                         for p in v.problems]})
            continue
        for prob in v.problems:
            print(prob, file=sys.stderr)
        if v.problems:
            print(f"{src}: {len(v.problems)} problem(s) in {v.rows} rows ({v.schema})", file=sys.stderr)
        else:
            print(f"{src}: ok, {v.rows} rows ({v.schema})")
    if args.json:
        import json

        print(json.dumps({"ok": not bad, "problems": bad, "sources": summary}, indent=2))
    return 1 if bad else 0


def _convert(args) -> int:
    from judgeforge.data import load_examples, to_collection_row, to_training_rows
    from judgeforge.format.prompts import messages_for
    from judgeforge.io import write_jsonl

    check_output_file(args.output, [args.source], force=args.force)
    out = Path(args.output)
    if out.suffix != ".jsonl":
        raise UserError(f"-o {out}: data convert writes JSON Lines; name the output file .jsonl")
    if args.variant is not None:
        from judgeforge.errors import did_you_mean
        from judgeforge.format.prompts import TEMPLATES

        known = sorted({v for variants in TEMPLATES.values() for v in variants})
        if args.variant not in known:
            raise UserError(f"data convert: unknown template variant '{args.variant}'"
                            f"{did_you_mean(args.variant, known)}; choose one of: {', '.join(known)}")
    examples = load_examples(args.source, args.schema, split=args.split)
    if args.to == "training":
        rows = to_training_rows(examples, args.variant)
    elif args.to == "messages":
        rows = [
            {"id": ex.id, "mode": ex.mode, "messages": messages_for(ex.render(args.variant), ex.mode, ex.target())}
            for ex in examples
        ]
    else:
        rows = [to_collection_row(ex, args.variant) for ex in examples]
    n = write_jsonl(out, rows)
    print(f"wrote {n} rows to {out}")
    return 0


def _show(args) -> int:
    from judgeforge.data import read_rows, row_to_example, schema_of
    from judgeforge.format.prompts import chat_prompt

    if args.n < 1:
        raise UserError(f"data show: -n must be a positive number of rows, got {args.n}")
    rows = read_rows(args.source, split=args.split)
    schema = schema_of(rows, args.schema)
    if not 1 <= args.row <= len(rows):
        raise UserError(f"{args.source}: --row {args.row} is out of range (1-{len(rows)})")
    for row in rows[args.row - 1 : args.row - 1 + args.n]:
        ex, problems = row_to_example(row, schema, require_labels=False)
        print(f"=== {row.where} ({schema})")
        if ex is None:
            for prob in problems:
                print(f"  problem: {prob}")
            continue
        text = chat_prompt(ex.render(), ex.mode) if args.prompt else ex.render()
        print(text)
        try:
            print("--- target\n" + ex.target())
        except ValueError:
            pass
    return 0


def _split(args) -> int:
    from judgeforge.data import read_rows, split_rows
    from judgeforge.io import atomic_write_json, write_jsonl

    out = Path(args.output_dir)
    check_output_dir(args.output_dir, [args.source], ("train.jsonl", "test.jsonl", "split.json"), force=args.force)
    if args.seed < 0:
        raise UserError(f"--seed must be an integer >= 0, got {args.seed}")
    rows = read_rows(args.source, split=args.split)
    bad = [r for r in rows if r.data is None]
    if bad:
        raise UserError(f"{bad[0].where}: {bad[0].error}; run 'judgeforge data validate' first")
    train, test = split_rows([r.data for r in rows], args.test_size, args.seed)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    atomic_write_json(out / "split.json", {"source": str(args.source), "test_size": args.test_size,
                                           "seed": args.seed, "train": len(train), "test": len(test)})
    print(f"train: {len(train)} rows, test: {len(test)} rows -> {out}")
    return 0


def _mini(args) -> int:
    from judgeforge.data.mini import MAX_ROWS, write_mini

    for key in ("train", "test"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key} must be a positive number of rows, got {getattr(args, key)}")
        if getattr(args, key) > MAX_ROWS:  # built in memory: a typo's extra zeros would run out of it
            raise UserError(f"--{key} {getattr(args, key):,}: mini writes at most {MAX_ROWS:,} rows per file (the "
                            "Preference Collection's size); ask for fewer")
    if args.seed < 0:
        raise UserError(f"--seed must be an integer >= 0, got {args.seed}")
    check_output_dir(args.output_dir, [], tuple(f"{m}_{s}.jsonl" for m in ("absolute", "relative")
                                                    for s in ("train", "test")), force=args.force)
    paths = write_mini(args.output_dir, args.train, args.test, args.seed)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == Path(b).resolve()
    except OSError:
        return False


def check_output_file(out: str | Path, sources: list[str], *, force: bool) -> None:
    """``-o FILE``: not a folder, not under a file, not one of the inputs, not there unless --force."""
    if not str(out).strip():  # Path("") is the current folder
        raise UserError("-o is empty; give a file name such as rows.jsonl")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"-o {out}: is a folder; give a file name such as {out / 'rows.jsonl'}")
    if any(p.exists() and not p.is_dir() for p in out.parents):
        raise UserError(f"-o {out}: a parent of the output is a file; choose another path")
    if any(_same(out, Path(s)) for s in sources):
        raise UserError(f"-o {out}: is the input file; write to another file")
    if out.exists() and not force:
        raise UserError(f"{out}: already exists; pass --force to overwrite")


def check_output_dir(out: str | Path, sources: list[str], names: tuple[str, ...], *, force: bool) -> None:
    """``-o DIR``: a folder (or nothing yet) whose files to be written are not the inputs or folders, and
    not there already unless --force (as ``-o FILE``: a finished output is never overwritten silently)."""
    from judgeforge.io import check_output_folder

    check_output_folder(out, "-o")  # the text as given: an empty one is refused
    out = Path(out)
    for name in names:
        target = out / name
        if target.is_dir():
            raise UserError(f"-o {out}: {target} is a folder; remove it or choose another folder")
        if any(_same(target, Path(s)) for s in sources):
            raise UserError(f"-o {out}: would overwrite the input {target}; choose another folder")
    there = [name for name in names if (out / name).exists()]
    if there and not force:
        raise UserError(f"-o {out}: already holds {', '.join(there)}; pass --force to overwrite, or choose another "
                        "folder")
