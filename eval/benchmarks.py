"""The paper's eight benchmarks and users' own, read in their native formats.

Absolute benchmarks (3 samples per item; the mean is scored)
    ``vicuna`` (vicuna_eval.json), ``mt_bench`` (mt_bench_eval.json), ``flask``
    (flask_eval.json, also ``human_score``), ``feedback_bench``
    (feedback_collection_ood_test.json): a JSON list of ``{"instruction": <rendered
    absolute prompt>, "gpt4_score": [s1, s2, s3] | "[s1, s2, s3]" | s, ...}``.
Pairwise benchmarks (1 sample)
    ``hhh`` (hhh_alignment_eval.json, ``source`` = helpful/harmless/honest/other),
    ``mt_bench_human`` (mt_bench_human_judgement_eval.json, ``tie`` 0/1),
    ``preference_bench`` (preference_collection_ood_test.json): ``{"chosen_instruction",
    "rejected_instruction"}``, two rendered absolute prompts that differ only in the
    response.  ``autoj`` (autoj_pairwise.json, JSON Lines despite the name): ``{"scenario",
    "label": 0|1|2 (response 1 better / response 2 better / tie), "prompt", "response 1",
    "response 2"}``, rendered with the Auto-J rubric below.

Where the files come from: ``--data-dir DIR`` (files by their original names), else the
cache (``$JUDGEFORGE_CACHE/benchmarks``), else fetched once from the public
prometheus-eval repository (``BENCHMARK_BASE_URL``, overridable with
``$JUDGEFORGE_BENCHMARK_URL``); Feedback Bench and Preference Bench also live on the hub
(``prometheus-eval/Feedback-Bench``, ``prometheus-eval/Preference-Bench``) in the
collections' schemas, which this module reads too.

Users' own benchmarks: a ``.jsonl``/``.json`` path given as a suite name (see
docs/evaluation.md): rows in any of the formats above, or judgeforge's ``absolute`` /
``relative`` data schemas (:mod:`judgeforge.data`) with their ``score`` / ``preference``
as the gold label (``"tie": true`` marks a tied pair), or RewardBench / JudgeBench rows
(:mod:`judgeforge.eval.preference_formats`).
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from judgeforge.errors import UserError, did_you_mean
from judgeforge.eval import preference_formats
from judgeforge.eval.preference_formats import HHH_RUBRIC
from judgeforge.eval.rows import gold_scores, read_records  # noqa: F401 - read_records is re-exported
from judgeforge.format.prompts import (
    ABSOLUTE,
    RELATIVE,
    parse_rendered,
    render_absolute,
    render_relative,
)

ABSOLUTE_KIND = "absolute"
PAIR_KIND = "pair"

BENCHMARK_BASE_URL = "https://raw.githubusercontent.com/prometheus-eval/prometheus-eval/main/eval/benchmark/data"

# The rubric the prometheus-eval repository renders Auto-J pairs with
# (``AUTOJ_COARSE_SCORE_RUBRIC`` in its evaluation prompts; the pairs carry no rubric of their own).
# Relative mode uses its criteria line, as the repository's relative evaluation intends.
AUTOJ_RUBRIC = HHH_RUBRIC
AUTOJ_FORMAT = "autoj"  # Item.extra["format"] of Auto-J pairs (the paper's script renders them from their parts)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    title: str
    filename: str
    kind: str  # "absolute" | "pair"
    hub_id: str | None = None
    has_human: bool = False
    has_ties: bool = False
    exact_match: bool = False  # Feedback Bench: exact match of the first sample with the gold score
    transitivity: bool = False  # Preference Bench: several responses per instruction

    @property
    def url(self) -> str:
        base = os.environ.get("JUDGEFORGE_BENCHMARK_URL", BENCHMARK_BASE_URL).rstrip("/")
        return f"{base}/{self.filename}"


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        BenchmarkSpec("vicuna", "Vicuna Bench", "vicuna_eval.json", ABSOLUTE_KIND),
        BenchmarkSpec("mt_bench", "MT Bench", "mt_bench_eval.json", ABSOLUTE_KIND),
        BenchmarkSpec("flask", "FLASK", "flask_eval.json", ABSOLUTE_KIND, has_human=True),
        BenchmarkSpec("feedback_bench", "Feedback Bench", "feedback_collection_ood_test.json", ABSOLUTE_KIND,
                      hub_id="prometheus-eval/Feedback-Bench", exact_match=True),
        BenchmarkSpec("hhh", "HHH Alignment", "hhh_alignment_eval.json", PAIR_KIND),
        BenchmarkSpec("mt_bench_human", "MT Bench Human Judgment", "mt_bench_human_judgement_eval.json", PAIR_KIND,
                      has_ties=True),
        BenchmarkSpec("autoj", "Auto-J Eval", "autoj_pairwise.json", PAIR_KIND, has_ties=True),
        BenchmarkSpec("preference_bench", "Preference Bench", "preference_collection_ood_test.json", PAIR_KIND,
                      hub_id="prometheus-eval/Preference-Bench", transitivity=True),
    )
}
SUITES = {
    "paper": list(BENCHMARKS),
    "absolute": [n for n, s in BENCHMARKS.items() if s.kind == ABSOLUTE_KIND],
    "relative": [n for n, s in BENCHMARKS.items() if s.kind == PAIR_KIND],
}


@dataclass
class Item:
    """One benchmark item.  Absolute: ``prompt`` + gold; pair: ``chosen`` / ``rejected`` prompts."""

    benchmark: str
    id: str
    kind: str
    prompt: str | None = None  # absolute: the rendered absolute prompt
    gold: float | None = None  # absolute: mean GPT-4 (or gold) score
    gold_scores: list | None = None
    human: float | None = None
    chosen: str | None = None  # pair: rendered absolute prompt of the preferred response (None: no rubric)
    rejected: str | None = None
    tie: bool = False
    group: str | None = None
    # pair parts for relative mode
    instruction: str | None = None
    chosen_response: str | None = None
    rejected_response: str | None = None
    rubric_text: str | None = None  # relative rubric ("[criteria]")
    reference_answer: str | None = None
    extra: dict = field(default_factory=dict)

    def relative_prompt(self, chosen_first: bool) -> str:
        a, b = (self.chosen_response, self.rejected_response) if chosen_first else \
            (self.rejected_response, self.chosen_response)
        return render_relative(self.instruction, a, b, self.rubric_text, self.reference_answer)

    def chosen_position(self, seed: int) -> str:
        """Where the chosen response goes in relative mode: "A" or "B", fixed by (seed, benchmark, item)."""
        return "A" if random.Random(f"{seed}:{self.benchmark}:{self.id}").random() < 0.5 else "B"


@dataclass
class Benchmark:
    name: str
    title: str
    kind: str
    items: list[Item]
    source: str
    spec: BenchmarkSpec | None = None

    @property
    def has_ties(self) -> bool:
        return any(i.tie for i in self.items)


# --------------------------------------------------------------------------- resolution


def resolve_suite(suite: str | list[str]) -> list[str]:
    """Benchmark names (or user file paths) of a suite: paper|absolute|relative|NAME[,NAME...]."""
    names = suite if isinstance(suite, list) else [s.strip() for s in str(suite).split(",") if s.strip()]
    out: list[str] = []
    for n in names:
        if n in SUITES:
            out.extend(SUITES[n])
        elif n in BENCHMARKS or _looks_like_path(n):
            out.append(n)
        else:
            choices = list(SUITES) + list(BENCHMARKS)
            raise UserError(f"unknown benchmark or suite '{n}'{did_you_mean(n, choices)}; choose from "
                            f"{', '.join(choices)}, or give the path of your own .jsonl benchmark")
    if not out:
        raise UserError(f"--suite '{suite}' names no benchmark; give paper, absolute, relative, benchmark names "
                        "or the path of your own .jsonl benchmark")
    seen: set[str] = set()
    return [n for n in out if not (n in seen or seen.add(n))]


def _looks_like_path(name: str) -> bool:
    return name.endswith((".json", ".jsonl", ".parquet")) or os.sep in name or Path(name).exists()


def cache_dir() -> Path:
    from judgeforge.tokenization import cache_root

    return cache_root() / "benchmarks"


def check_data_dir(data_dir: str | os.PathLike | None, where: str = "", holds: str = "the benchmark files") -> None:
    """A ``--data-dir`` that is not a folder is the user's mistake, never a reason to fetch instead
    (``where``: the message's prefix, e.g. ``"sweep: "``; ``holds``: what the folder should hold)."""
    if data_dir is None:
        return
    p = Path(data_dir).expanduser()
    if not p.is_dir():
        raise UserError(f"{where}--data-dir {data_dir}: {'is a file' if p.exists() else 'no such folder'}; "
                        f"give the folder that holds {holds}")


def locate(spec: BenchmarkSpec, data_dir: str | os.PathLike | None = None, *, fetch: bool = True) -> Path:
    """The local file of a benchmark: ``data_dir``, else the cache, else fetched into the cache."""
    check_data_dir(data_dir)
    if data_dir is not None:
        p = Path(data_dir) / spec.filename
        if p.exists():
            return p
        for alt in (Path(data_dir) / spec.name, Path(data_dir) / Path(spec.filename).stem):
            for suffix in (".jsonl", ".parquet", ""):
                q = alt.with_name(alt.name + suffix) if suffix else alt
                if q.exists():
                    return q
    cached = cache_dir() / spec.filename
    if cached.exists():
        return cached
    if not fetch:
        where = f"{data_dir} or " if data_dir else ""
        raise UserError(f"{spec.title}: {spec.filename} is not in {where}{cache_dir()}; drop --no-fetch or "
                        "put the file there")
    return fetch_benchmark(spec)


def fetch_benchmark(spec: BenchmarkSpec, timeout: float = 60.0) -> Path:
    """Download a benchmark file into the cache (atomically); the hub dataset is the fallback."""
    from judgeforge.http import HTTPClient, HTTPFailure
    from judgeforge.io import atomic_write_text

    dest = cache_dir() / spec.filename
    errors = []
    try:
        with HTTPClient(timeout=timeout, max_retries=2, backoff=1.0, max_connections=1) as client:
            raw = client.get_bytes(spec.url, where=spec.title)
        text = raw.decode("utf-8")
        _check_json_text(text, spec.url)
        atomic_write_text(dest, text)
        return dest
    except (HTTPFailure, OSError, UnicodeDecodeError) as e:
        errors.append(f"{spec.url}: " + (f"HTTP {e.status}" if getattr(e, "retryable", True) is False else
                                         str(getattr(e, "detail", e))))
    if spec.hub_id:
        try:
            from judgeforge.data import read_rows

            rows = read_rows(spec.hub_id, split="train")
            from judgeforge.io import write_jsonl

            dest = dest.with_suffix(".jsonl")
            write_jsonl(dest, [r.data for r in rows])
            return dest
        except UserError as e:
            errors.append(str(e))
    raise UserError(f"{spec.title}: could not fetch {spec.filename} ({'; '.join(errors)}); download it yourself "
                    "and pass --data-dir DIR")


def _check_json_text(text: str, where: str) -> None:
    head = text.lstrip()[:1]
    if head not in ("[", "{"):
        raise UserError(f"{where}: the download is not JSON (starts with {text[:40]!r}); "
                        "download the file yourself and pass --data-dir")


# --------------------------------------------------------------------------- reading


# The Prometheus 1 repository's copies of the benchmark files end every rendered prompt with a stray
# '",' and a newline after "###Feedback: " (left over from how they were exported).
_P1_SUFFIX = re.compile(r'(###Feedback: )",\s*$')


def _normalise_prompt(prompt: str, item_extra: dict | None = None) -> str:
    fixed, n = _P1_SUFFIX.subn(r"\1", prompt)
    if n and item_extra is not None:
        item_extra["normalised"] = "removed the Prometheus 1 files' '\",' after ###Feedback:"
    return fixed


def _refuse_p1_without_gold(keys: set, records: list[dict], source: str) -> None:
    first = records[0].get("instruction")
    if "instruction" in keys and isinstance(first, str) and first.startswith("###Task Description:") \
            and not any("score" in k or "preference" in k or k in ("output", "label") for k in keys):
        raise UserError(f"{source}: rendered prompts without gold scores (no 'gpt4_score'; the Prometheus 1 "
                        "repository's MT Bench copy is like this); use mt_bench_eval.json from prometheus-eval's "
                        "eval/benchmark/data, or add 'gpt4_score' to every row")


def load_benchmark(name: str, data_dir: str | os.PathLike | None = None, *, limit: int | None = None,
                   fetch: bool = True) -> Benchmark:
    """Items of a named benchmark (or a user file path), first ``limit`` only when given."""
    if name in BENCHMARKS:
        spec = BENCHMARKS[name]
        path = locate(spec, data_dir, fetch=fetch)
        title, bname = spec.title, spec.name
    else:
        spec = None
        path = Path(name)
        if not path.exists():
            raise UserError(f"{name}: no such benchmark file")
        bname = path.stem
        title = bname
    records = read_records(path)
    if not records:
        raise UserError(f"{path}: no rows; a benchmark needs at least one item"
                        + ("" if spec is None else f" (download {spec.filename} again or drop it from --suite)"))
    if limit is not None:
        records = records[:limit]
    items = items_from_records(bname, records, str(path))
    kinds = {i.kind for i in items}
    if len(kinds) > 1:
        raise UserError(f"{path}: mixes absolute and pairwise rows; put them in two files")
    kind = kinds.pop() if kinds else (spec.kind if spec else ABSOLUTE_KIND)
    if spec and kind != spec.kind:
        raise UserError(f"{path}: {spec.title} should be {spec.kind} but the rows are {kind}")
    return Benchmark(bname, title, kind, items, str(path), spec)


def items_from_records(bench: str, records: list[dict], source: str) -> list[Item]:
    """Convert rows of any supported format (detected from the first row's keys)."""
    if not records:
        return []
    keys = set().union(*(r.keys() for r in records[:20]))
    _refuse_p1_without_gold(keys, records, source)
    if "chosen_instruction" in keys:
        conv = _pair_rendered
    elif "response 1" in keys and "label" in keys:
        conv = _autoj
    elif "instruction" in keys and ("gpt4_score" in keys or "gold_score" in keys):
        conv = _absolute_rendered
    elif fmt := preference_formats.detect(keys):  # RewardBench / JudgeBench rows
        conv = partial(preference_formats.converter(fmt), Item)
    else:
        return _from_data_schema(bench, records, source)
    items = []
    for i, r in enumerate(records):
        where = f"{source}: row {i + 1}"
        try:
            items.append(conv(bench, i, r, where))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: {type(e).__name__}: {e}; see docs/evaluation.md for the row format") from None
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise UserError(f"{source}: duplicate item id '{dup}'; ids must be unique")
    return items


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def _absolute_rendered(bench: str, i: int, r: dict, where: str) -> Item:
    prompt = r["instruction"]
    if not isinstance(prompt, str):
        raise TypeError("instruction must be text")
    if not prompt.strip():
        raise ValueError("instruction is empty (it holds the whole rendered prompt)")
    extra: dict = {}
    prompt = _normalise_prompt(prompt, extra)
    key = "gpt4_score" if "gpt4_score" in r else "gold_score"
    gold = gold_scores(r[key], key)
    human = gold_scores(r["human_score"], "human_score") if r.get("human_score") not in (None, "") else None
    rid = r.get("id")
    if rid is None:
        rid = f"{i}"
    group = r.get("category") or r.get("group")
    return Item(bench, str(rid), ABSOLUTE_KIND, prompt=prompt, gold=_mean(gold), gold_scores=gold,
                human=_mean(human) if human else None, group=group,
                extra={**extra, **{k: r[k] for k in ("idx", "response_source", "gpt4_feedback") if k in r}})


def _pair_parts(item: Item, chosen: str, rejected: str, where: str) -> Item:
    c = parse_rendered(chosen, where + ": chosen_instruction")
    j = parse_rendered(rejected, where + ": rejected_instruction")
    if c.mode != ABSOLUTE or j.mode != ABSOLUTE:
        raise UserError(f"{where}: chosen/rejected_instruction must be absolute prompts")
    if (c.instruction, c.rubric_text, c.reference_answer) != (j.instruction, j.rubric_text, j.reference_answer):
        raise UserError(f"{where}: chosen_instruction and rejected_instruction differ in more than the response")
    item.instruction = c.instruction
    item.chosen_response, item.rejected_response = c.response, j.response
    item.rubric_text = c.rubric.render(RELATIVE)
    item.reference_answer = c.reference_answer
    return item


def _pair_rendered(bench: str, i: int, r: dict, where: str) -> Item:
    tie = bool(int(r.get("tie") or 0))
    rid = r.get("id", i)
    extra: dict = {}
    chosen, rejected = _normalise_prompt(r["chosen_instruction"], extra), _normalise_prompt(r["rejected_instruction"])
    item = Item(bench, str(rid), PAIR_KIND, chosen=chosen, rejected=rejected, tie=tie, group=r.get("source"),
                extra=extra)
    return _pair_parts(item, item.chosen, item.rejected, where)


def _autoj(bench: str, i: int, r: dict, where: str) -> Item:
    label = int(r["label"])
    if label not in (0, 1, 2):
        raise ValueError(f"label {label} is not 0, 1 or 2")
    r1, r2 = r["response 1"], r["response 2"]
    chosen, rejected = (r2, r1) if label == 1 else (r1, r2)
    prompt = r["prompt"]
    rid = r.get("id", i)
    return Item(
        bench, str(rid), PAIR_KIND,
        chosen=render_absolute(prompt, chosen, AUTOJ_RUBRIC), rejected=render_absolute(prompt, rejected, AUTOJ_RUBRIC),
        tie=label == 2, group=r.get("scenario"), instruction=prompt, chosen_response=chosen,
        rejected_response=rejected, rubric_text=AUTOJ_RUBRIC.render(RELATIVE), extra={"label": label, "format": AUTOJ_FORMAT},
    )


def _from_data_schema(bench: str, records: list[dict], source: str) -> list[Item]:
    """judgeforge's absolute/relative schemas and the collections' schemas, gold = score / preference."""
    from judgeforge.data import Row, raise_on_problems, validate_rows

    rows = [Row(source, i + 1, r) for i, r in enumerate(records)]
    v = validate_rows(rows, require_labels=True, require_feedback=False)
    raise_on_problems(v, source)
    items = []
    for k, (ex, rec) in enumerate(zip(v.examples, records)):
        rid = ex.id if ex.id is not None else str(k)
        if ex.mode == ABSOLUTE:
            items.append(Item(bench, rid, ABSOLUTE_KIND, prompt=ex.render(), gold=float(ex.score),
                              gold_scores=[float(ex.score)], group=rec.get("group")))
            continue
        tie = bool(rec.get("tie"))
        a_wins = ex.preference == "A"
        chosen, rejected = (ex.response_a, ex.response_b) if a_wins else (ex.response_b, ex.response_a)
        item = Item(bench, rid, PAIR_KIND, tie=tie, group=rec.get("group"), instruction=ex.instruction,
                    chosen_response=chosen, rejected_response=rejected,
                    rubric_text=ex.rubric.render(RELATIVE), reference_answer=ex.reference_answer)
        if ex.rubric.descriptions is not None:  # absolute prompts too (the "with ties" mode)
            item.chosen = render_absolute(ex.instruction, chosen, ex.rubric, ex.reference_answer)
            item.rejected = render_absolute(ex.instruction, rejected, ex.rubric, ex.reference_answer)
        items.append(item)
    return items
