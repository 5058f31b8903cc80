"""Evaluate a judge on benchmarks: jobs -> cached generations -> metrics -> report.

In-process API (the ``judgeforge eval`` command and sweeps call it)::

    from judgeforge.eval.runner import evaluate
    results = evaluate("path/to/judge", "paper", data_dir="...", out="runs/eval")
    results = evaluate(model, "absolute", tokenizer=tok, judge_name="merge-0.5")  # in-memory model
    results = evaluate(backend, "relative")                                        # any Backend

``results`` is the report dict (also written as ``report.json`` / ``report.md`` under
``out``).  With ``out`` set, every generation is cached in ``out/generations*.jsonl`` and a
rerun (after a kill, or to add benchmarks) generates only what is missing.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from judgeforge.backends import GIVE_UP_BELOW, PAPER_SAMPLING, Backend, Request, Sampling, generate_parsed
from judgeforge.errors import UserError
from judgeforge.eval.benchmarks import ABSOLUTE_KIND, Benchmark, load_benchmark, resolve_suite
from judgeforge.eval.cache import GenerationCache, judge_fingerprint, slot_key, write_run_config
from judgeforge.eval.prompt_variants import DEFAULT as DEFAULT_VARIANT
from judgeforge.eval.prompt_variants import check_prompt_variant, job_request
from judgeforge.eval.scoring import MIN_SCORED, jobs_for, score_benchmark
from judgeforge.io import sha256_text

PAIR_MODES = ("auto", "relative", "absolute", "both")


@dataclass
class EvalConfig:
    """An evaluation run (YAML recipe keys; CLI flags override them)."""

    judge: str = field(default="", metadata={"help": "judge model: local folder, hub id, or API model name"})
    suite: str = field(default="paper", metadata={"help": "paper|absolute|relative|NAME[,NAME...] or a .jsonl path"})
    backend: str = field(default="hf", metadata={"help": "hf | vllm | openai"})
    data_dir: str | None = field(default=None, metadata={"help": "folder with the benchmark files (original names)"})
    limit: int | None = field(default=None, metadata={"help": "only the first N items of each benchmark"})
    out: str | None = field(default=None, metadata={"help": "output folder (cache, report.json, report.md)"})
    num_shards: int = field(default=1, metadata={"help": "split the items over K shards (GPUs or nodes)"})
    shard: int = field(default=0, metadata={"help": "which shard this process runs (0..K-1)"})
    pair_modes: str = field(default="auto", metadata={
        "help": "pairwise data: relative | absolute | both | auto (relative + absolute where gold ties exist)"})
    swap: bool = field(default=False, metadata={"help": "relative mode in both orders (position consistency)"})
    samples_absolute: int = field(default=3, metadata={"help": "samples per absolute item (mean is scored)"})
    samples_relative: int = field(default=1, metadata={"help": "samples per relative job (the first is scored)"})
    samples_pair_absolute: int = field(default=1, metadata={"help": "samples per response of a pair graded alone"})
    seed: int = field(default=42, metadata={"help": "position randomisation and sampling seed"})
    retries: int = field(default=10, metadata={"help": "regenerate an unparseable output up to N times"})
    strict_parse: bool | Literal["harness"] = field(default=False, metadata={
        "help": "parse rule: false = tolerant, true = the prometheus-eval package's rule, harness = the paper "
                "script's (eval/run_evaluate.py: exactly one [RESULT], then only the value)"})
    prompt_variant: Literal["default", "paper-harness"] = field(default="default", metadata={
        "help": "prompts and wrapping: default = the training format, paper-harness = what the paper's script "
                "(eval/run_evaluate.py) sends, byte for byte (docs/evaluation.md)"})
    temperature: float = field(default=PAPER_SAMPLING.temperature, metadata={
        "help": f"sampling temperature (paper: {PAPER_SAMPLING.temperature})"})
    top_p: float = field(default=PAPER_SAMPLING.top_p, metadata={
        "help": f"nucleus sampling (paper: {PAPER_SAMPLING.top_p})"})
    max_new_tokens: int = field(default=PAPER_SAMPLING.max_new_tokens, metadata={
        "help": f"max new tokens (paper: {PAPER_SAMPLING.max_new_tokens})"})
    repetition_penalty: float = field(default=PAPER_SAMPLING.repetition_penalty, metadata={
        "help": f"repetition penalty (paper: {PAPER_SAMPLING.repetition_penalty})"})
    greedy: bool = field(default=False, metadata={"help": "greedy decoding instead of the paper's sampling"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for 95% intervals (0: none)"})
    min_scored: int = field(default=MIN_SCORED, metadata={
        "help": "fewer scored items than this: a metric reads 'too few parsed (n=...)', never a number"})
    give_up_below: float = field(default=GIVE_UP_BELOW, metadata={
        "help": "stop retrying when fewer than this share of a first round parses (the judge fails nearly "
                "everything; 0: always retry)"})
    judge_name: str | None = field(default=None, metadata={"help": "name for caches and reports (default: judge)"})
    fetch: bool = field(default=True, metadata={"help": "download missing benchmark files into the cache"})
    chunk_size: int = field(default=512, metadata={"help": "requests per generation call (cache written after each)"})
    engine: str = field(default="fast", metadata={"help": "hf backend: fast | generate (the reference path)"})
    batch_size: int | None = field(default=None, metadata={"help": "hf backend: sequences per batch"})
    dtype: str = field(default="auto", metadata={"help": "hf backend: auto | bfloat16 | float16 | float32"})
    chat_format: str | None = field(default=None, metadata={
        "help": "mistral | model | raw: how prompts are wrapped (hf, vllm, openai completions API; default: the "
                "judge folder's, else from the model's tokenizer; a remote openai model needs it)"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "openai backend, completions API: a local tokenizer or judge folder whose chat format prompts take"})
    base_url: str | None = field(default=None, metadata={"help": "openai backend: endpoint, e.g. http://host:8000/v1"})
    api: str = field(default="completions", metadata={"help": "openai backend: completions | chat"})
    concurrency: int = field(default=8, metadata={"help": "openai backend: parallel requests"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm backend: GPUs per judge"})
    progress: bool = field(default=True, metadata={"help": "progress bars on stderr"})
    report_to: str = field(default="none", metadata={
        "help": "none | wandb: send the metrics to a wandb run (WANDB_MODE=offline writes it under --out)"})

    def validate(self, where: str) -> None:
        from judgeforge.backends import check_count, check_generation_options

        if self.num_shards < 1:
            raise UserError(f"{where}: --num-shards must be >= 1 (got {self.num_shards})")
        if not 0 <= self.shard < self.num_shards:
            raise UserError(f"{where}: --shard must be in 0..{self.num_shards - 1} (got {self.shard}) "
                            f"with --num-shards {self.num_shards}")
        check_prompt_variant(self.prompt_variant, f"{where}: prompt_variant")
        if self.pair_modes not in PAIR_MODES:
            raise UserError(f"{where}: pair_modes must be one of {', '.join(PAIR_MODES)}, got '{self.pair_modes}'")
        for k in ("samples_absolute", "samples_relative", "samples_pair_absolute"):  # the paper: 3, 1, 1
            check_count(where, k, getattr(self, k), minimum=1, maximum=64)
        if self.limit is not None and self.limit < 1:
            raise UserError(f"{where}: --limit must be >= 1")
        if self.min_scored < 3:
            raise UserError(f"{where}: --min-scored must be >= 3 (a correlation over two points is always +-1)")
        if not 0.0 <= self.give_up_below <= 1.0:
            raise UserError(f"{where}: --give-up-below must be in [0, 1]")
        Sampling(self.temperature, self.top_p, self.max_new_tokens, self.repetition_penalty,
                 self.seed).validate(where)  # the options as given, greedy or not
        check_generation_options(where, retries=self.retries, batch_size=self.batch_size)
        check_count(where, "bootstrap", self.bootstrap, minimum=0)
        check_count(where, "chunk_size", self.chunk_size, minimum=1)
        check_count(where, "concurrency", self.concurrency, minimum=1)
        check_count(where, "tensor_parallel_size", self.tensor_parallel_size, minimum=1)
        from judgeforge.tracking import check_report_to

        check_report_to(self.report_to, where)
        if self.backend not in ("hf", "vllm", "openai"):
            from judgeforge.errors import did_you_mean

            raise UserError(f"{where}: backend '{self.backend}' is not one of hf, vllm, openai"
                            f"{did_you_mean(self.backend, ('hf', 'vllm', 'openai'))}")
        if self.out:
            from judgeforge.io import check_output_folder

            check_output_folder(self.out, f"{where}: --out")

    def sampling(self) -> Sampling:
        if self.greedy:
            return Sampling.greedy(self.max_new_tokens).with_seed(self.seed)
        return Sampling(self.temperature, self.top_p, self.max_new_tokens, self.repetition_penalty, self.seed)

    def backend_options(self) -> dict:
        if self.backend == "hf":
            return {"engine": self.engine, "batch_size": self.batch_size, "dtype": self.dtype,
                    "chat_format": self.chat_format}
        if self.backend == "openai":
            return {"base_url": self.base_url, "api": self.api, "concurrency": self.concurrency,
                    "chat_format": self.chat_format, "tokenizer": self.tokenizer}
        if self.backend == "vllm":
            return {"tensor_parallel_size": self.tensor_parallel_size, "dtype": self.dtype, "seed": self.seed,
                    "chat_format": self.chat_format}
        return {}


def sampling_fingerprint(s: Sampling) -> str:
    d = dataclasses.asdict(s)
    return ",".join(f"{k}={d[k]}" for k in sorted(d))


def protocol_key(cfg: EvalConfig) -> str:
    """The cache key's part for the prompt variant and the parse rule: empty for the defaults (so caches
    written before either option existed stay valid), else e.g. ``prompts=paper-harness;parse=harness``."""
    parts = []
    if cfg.prompt_variant != DEFAULT_VARIANT:
        parts.append(f"prompts={cfg.prompt_variant}")
    if cfg.strict_parse is not False:
        parts.append(f"parse={'package' if cfg.strict_parse is True else cfg.strict_parse}")
    return ";".join(parts)


def modes_for(bench: Benchmark, pair_modes: str) -> list[str]:
    if bench.kind == ABSOLUTE_KIND:
        return ["absolute"]
    if pair_modes == "relative":
        return ["relative"]
    if pair_modes == "absolute":
        return ["absolute"]
    if pair_modes == "both":
        return ["relative", "absolute"]
    return ["relative", "absolute"] if bench.has_ties else ["relative"]


def shard_items(bench: Benchmark, num_shards: int, shard: int) -> Benchmark:
    if num_shards == 1:
        return bench
    return dataclasses.replace(bench, items=[it for k, it in enumerate(bench.items) if k % num_shards == shard])


@dataclass
class Job:
    bench: str
    item: str
    job: str
    request: Request
    n: int
    prompt_hash: str


def build_jobs(benches: list[Benchmark], cfg: EvalConfig) -> list[Job]:
    jobs = []
    for b in benches:
        for mode in modes_for(b, cfg.pair_modes):
            for it in b.items:
                for job in jobs_for(it, mode, seed=cfg.seed, swap=cfg.swap):
                    req = job_request(it, job, cfg.prompt_variant)
                    n = cfg.samples_absolute if job == "abs" else \
                        cfg.samples_relative if job.startswith("rel:") else cfg.samples_pair_absolute
                    jobs.append(Job(b.name, it.id, job, req, n, sha256_text(req.chat_text())))
    return jobs


def make_backend(judge, cfg: EvalConfig, tokenizer=None, **extra) -> Backend:
    from judgeforge.backends import get_backend

    if isinstance(judge, Backend):
        return judge
    opts = {k: v for k, v in {**cfg.backend_options(), **extra}.items() if v is not None}
    if not isinstance(judge, (str, os.PathLike)):  # an already-loaded model
        from judgeforge.backends.hf import HFBackend

        if tokenizer is None:
            raise UserError("evaluating a loaded model needs its tokenizer: evaluate(model, ..., tokenizer=tok)")
        opts.pop("dtype", None)
        return HFBackend(judge, tokenizer=tokenizer, **opts)
    if not str(judge):
        raise UserError("no judge given; pass --judge MODEL (a local folder, a hub id or an API model name)")
    if tokenizer is not None:
        opts["tokenizer"] = tokenizer
    return get_backend(cfg.backend, str(judge), **opts)


def evaluate(judge, suite: str | list[str] = "paper", *, config: EvalConfig | None = None, tokenizer=None,
             backend_options: dict | None = None, write_report: bool = True, **overrides) -> dict:
    """Run (or resume) an evaluation and return the report dict.

    ``judge``: a model folder / hub id / API model name (loaded with ``config.backend``), a
    :class:`Backend`, or an already-loaded transformers model (pass ``tokenizer``).
    ``overrides``: any :class:`EvalConfig` field (``data_dir=``, ``limit=``, ``out=`` ...).
    """
    cfg = dataclasses.replace(config or EvalConfig(), **overrides)
    cfg.suite = ",".join(suite) if isinstance(suite, list) else suite
    if isinstance(judge, (str, os.PathLike)):
        cfg.judge = str(judge)
    cfg.validate("evaluate")
    names = resolve_suite(cfg.suite)
    benches_full = [load_benchmark(n, cfg.data_dir, limit=cfg.limit, fetch=cfg.fetch) for n in names]
    benches = [shard_items(b, cfg.num_shards, cfg.shard) for b in benches_full]
    sampling = cfg.sampling()
    fp = sampling_fingerprint(sampling)
    model_fp = judge_fingerprint(judge, cfg, tokenizer)  # the folder is checked before anything loads
    own_backend = not isinstance(judge, Backend)
    t_load = time.time()
    backend = make_backend(judge, cfg, tokenizer=tokenizer, **(backend_options or {}))
    t_load = time.time() - t_load
    judge_name = cfg.judge_name or (str(judge) if isinstance(judge, (str, os.PathLike)) else backend.describe())
    judge_id = f"{judge_name}@{model_fp}" if model_fp else judge_name  # the cache key's judge part
    fmt = getattr(getattr(backend, "chat_format", None), "name", "mistral")  # prompts in another format: new key
    judge_id += "" if fmt == "mistral" else f"+chat={fmt}"
    out = Path(cfg.out) if cfg.out else None
    fname = "generations.jsonl" if cfg.num_shards == 1 else f"generations.shard-{cfg.shard}-of-{cfg.num_shards}.jsonl"
    cache = GenerationCache(out, fname)
    if out is not None:
        write_run_config(out, cfg, judge_name, backend.describe(), names, judge_id)
    jobs = build_jobs(benches, cfg)
    proto = protocol_key(cfg)
    budget = 1 + (0 if sampling.is_greedy and backend.deterministic_greedy else max(0, cfg.retries))

    # what the cache already holds
    todo: list[tuple[Job, list[int]]] = []
    cached_slots = 0
    for job in jobs:
        done = []
        need = False
        for j in range(job.n):
            st = cache.state(slot_key(judge_id, job.bench, job.item, job.job, j, job.prompt_hash, fp, proto))
            if st is not None and (st.final is not None and st.final.get("result") is not None
                                   or st.attempts >= budget):
                done.append(budget)  # finished: nothing to generate
                cached_slots += 1
            else:
                done.append(st.attempts if st else 0)
                need = True
        if need:
            todo.append((job, done))

    stats = {"jobs": len(jobs), "jobs_generated": len(todo), "slots_cached": cached_slots, "generations": 0}
    t0 = time.time()
    from judgeforge.eval.cache import attempt_record
    from judgeforge.progress import Progress

    try:
        with Progress(cfg.progress and bool(todo)) as prog:
            by_bench: dict[str, list] = {}
            for job, done in todo:
                by_bench.setdefault(job.bench, []).append((job, done))
            for bname, group in by_bench.items():
                # every generation counts: each sample of a job, and each retry once a round needs it
                first = sum(1 for _, done in group for a in done if a < budget)
                task = prog.task(f"eval {bname}", total=first, unit="generations")
                retried = [0]

                def tick(done, more, task=task, retried=retried):
                    if more:
                        retried[0] += more
                        task.add_total(more)
                        task.update(info=f"{retried[0]} retries")
                    if done:
                        task.advance(done)

                # same n within a call; chunks bound what a kill can lose
                by_n: dict[int, list] = {}
                for job, done in group:
                    by_n.setdefault(job.n, []).append((job, done))
                for n, lst in by_n.items():
                    for start in range(0, len(lst), cfg.chunk_size):
                        chunk = lst[start:start + cfg.chunk_size]
                        reqs = [j.request for j, _ in chunk]

                        def on_attempt(i, k, sample, final, chunk=chunk):
                            job = chunk[i][0]
                            stats["generations"] += 1
                            key = slot_key(judge_id, job.bench, job.item, job.job, k, job.prompt_hash, fp, proto)
                            cache.append(attempt_record(key, judge_id, job, k, fp, sample, final))

                        generate_parsed(backend, reqs, sampling, n=n, retries=cfg.retries,
                                        strict=cfg.strict_parse, on_attempt=on_attempt,
                                        done_attempts=[d for _, d in chunk], progress=tick,
                                        give_up_below=cfg.give_up_below, log=_warn)
                task.done()
    finally:
        cache.close()
        if own_backend:
            backend.close()
    gen_time = time.time() - t0
    stats.update(load_seconds=round(t_load, 3), generate_seconds=round(gen_time, 3),
                 items_per_second=round(stats["jobs_generated"] / gen_time, 3) if stats["jobs_generated"] else None)
    results = build_report(benches, cfg, judge_id, cache, fp, budget, backend_name=backend.describe())
    results["judge"] = judge_name
    if model_fp:
        results["judge_fingerprint"] = model_fp
    results["run"] = stats
    if cache.skipped:
        results["run"]["cache_lines_skipped"] = cache.skipped
    if out is not None and write_report:
        from judgeforge.eval.report import write_report as _write

        _write(out, results)
    return results


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def samples_from_cache(benches: list[Benchmark], cfg: EvalConfig, judge_id: str, cache: GenerationCache, fp: str,
                       budget: int) -> dict[str, dict]:
    """``{bench: {(item, job): [sample or None]}}`` from the cache (None: not generated yet)."""
    out: dict[str, dict] = {}
    proto = protocol_key(cfg)
    for job in build_jobs(benches, cfg):
        lst = []
        for j in range(job.n):
            st = cache.state(slot_key(judge_id, job.bench, job.item, job.job, j, job.prompt_hash, fp, proto))
            if st is None:
                lst.append(None)
            elif st.final is not None and st.final.get("result") is not None:
                lst.append(st.final)
            elif st.attempts >= budget or (st.final is not None and st.final.get("final")):
                lst.append(st.final or {"result": None, "error": "no parseable output"})
            else:
                lst.append(None)
        out.setdefault(job.bench, {})[(job.item, job.job)] = lst
    return out


def build_report(benches: list[Benchmark], cfg: EvalConfig, judge_id: str, cache: GenerationCache, fp: str,
                 budget: int, backend_name: str | None = None) -> dict:
    from judgeforge.eval.report import compare_with_paper, token_limit_notes

    samples = samples_from_cache(benches, cfg, judge_id, cache, fp, budget)
    results: dict = {
        "judge": judge_id,
        "backend": backend_name or cfg.backend,
        "suite": cfg.suite,
        "sampling": fp,
        "max_new_tokens": cfg.max_new_tokens,
        "prompt_variant": cfg.prompt_variant,
        "strict_parse": cfg.strict_parse,
        "seed": cfg.seed,
        "limit": cfg.limit,
        "shards": {"num_shards": cfg.num_shards, "shard": cfg.shard},
        "benchmarks": {},
    }
    for b in benches:
        results["benchmarks"][b.name] = score_benchmark(b, modes_for(b, cfg.pair_modes), samples.get(b.name, {}),
                                                        seed=cfg.seed, swap=cfg.swap, boot=cfg.bootstrap,
                                                        min_scored=cfg.min_scored)
    results["comparison"] = compare_with_paper(results)
    results["token_limit_notes"] = token_limit_notes(results)  # parse failures cut at max_new_tokens
    return results
