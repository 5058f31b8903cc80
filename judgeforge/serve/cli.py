"""``judgeforge serve``: flags, backend options, and the signal handling of a running server.

SIGINT / SIGTERM: stop accepting connections, let queued work finish (``--drain-timeout``),
wait for the batch the judge is running, close the judge, exit 0.  A second signal
exits 130 at once (no cleanup: the judge may be mid-generation).
"""

from __future__ import annotations

import argparse
import inspect
import os
import signal
import sys
import threading

from judgeforge.errors import UserError, did_you_mean
from judgeforge.serve.config import DEFAULT_PORT, ServerConfig


def _parser() -> argparse.ArgumentParser:
    from judgeforge.cli_args import parser

    p = parser(
        "judgeforge serve",
        "Serve a judge over HTTP: POST /grade/absolute, /grade/relative, /reward; "
        "GET /health, /openapi.json. Binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--judge", required=True, metavar="MODEL",
                   help="the judge: a model folder or hub id (or the model name an openai endpoint knows)")
    p.add_argument("--backend", default="hf", help="hf (default), vllm or openai")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a backend option (repeatable), e.g. engine=fast, dtype=bfloat16, base_url=...")
    p.add_argument("--chat_format", "--chat-format", choices=("mistral", "model", "raw"), default=None,
                   help="how prompts are wrapped (hf, vllm, openai completions API; default: the judge folder's, "
                        "else from the model; a remote openai model needs it, or --backend-option tokenizer=DIR)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--rubric", default="helpfulness",
                   help="rubric for requests that name none: a preset (helpfulness, harmlessness, honesty, "
                        "factual_validity, reasoning) or a rubric YAML file (docs/domain-judges.md)")
    p.add_argument("--max-batch", type=int, default=16, help="items per judge call, across clients (default 16)")
    p.add_argument("--inflight-batches", type=int, default=None,
                   help="batches the judge runs at once (default: 1 for hf/vllm, 4 for openai, whose backend "
                        "then sends up to --max-batch requests per batch upstream)")
    p.add_argument("--max-items", type=int, default=64, help="items per request; more -> 422 (default 64)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="body size limit; more -> 413 (default 1 MiB)")
    p.add_argument("--max-queue", type=int, default=4096, help="items waiting; more -> 503 (default 4096)")
    p.add_argument("--max-connections", type=int, default=128,
                   help="open client connections; more -> 503 and closed (default 128)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds for a request line and headers, idle keep-alive included (default 10)")
    p.add_argument("--body-timeout", type=float, default=60.0, help="seconds for a body to arrive (default 60)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long a worker waits to fill a batch (default 5 ms)")
    p.add_argument("--request-timeout", type=float, default=600.0,
                   help="seconds from a request's headers to its answer; later -> 504 (default 600)")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="seconds queued work may take to finish when the server is stopped")
    p.add_argument("--retries", type=int, default=2,
                   help="regenerate an unparseable output this many times (default 2; the paper used 10)")
    p.add_argument("--strict", action="store_true", help="the paper's strict parser instead of the tolerant one")
    g = p.add_argument_group("decoding (defaults: the paper's)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=0.9)
    g.add_argument("--max-new-tokens", type=int, default=1024)
    g.add_argument("--repetition-penalty", type=float, default=1.03)
    g.add_argument("--greedy", action="store_true", help="greedy decoding (temperature 0)")
    g.add_argument("--seed", type=int, default=None)
    return p


def backend_options(backend: str, pairs: list[str]) -> dict:
    """``KEY=VALUE`` flags -> keyword options, checked against the backend's signature (one line each)."""
    import importlib

    import yaml

    from judgeforge.backends import BACKENDS

    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'{did_you_mean(backend, BACKENDS)}; "
                        f"choose one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[backend].split(":")
    params = inspect.signature(getattr(importlib.import_module(module), cls).__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = [n for n, p in params.items() if n not in ("self", "model") and p.kind is p.KEYWORD_ONLY]
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--backend-option '{pair}' must look like KEY=VALUE (e.g. engine=fast)")
        key, raw = (x.strip() for x in pair.split("=", 1))
        if key not in names and not takes_any:
            raise UserError(f"--backend-option {key}: the {backend} backend has no option '{key}'"
                            f"{did_you_mean(key, names)}; it takes: {', '.join(names)}")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        default = params[key].default if key in params else None
        if default is None and key in params:  # e.g. batch_size: int | None = None -> an int or null
            first = str(params[key].annotation).split("|")[0].strip()
            default = {"int": 0, "float": 0.0, "bool": False}.get(first) if value is not None else None
        if isinstance(default, str) and not isinstance(value, str):
            value = raw
        elif not _same_kind(value, default):
            kind = {bool: "true or false", int: "an integer", float: "a number"}[type(default)]
            raise UserError(f"--backend-option {key}={raw}: {key} must be {kind} (default {default!r})")
        out[key] = value
    return out


def _same_kind(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from judgeforge.format.rubric_file import load_rubric

    config = ServerConfig(host=args.host, port=args.port, max_batch=args.max_batch, max_items=args.max_items,
                          max_body_bytes=args.max_body_bytes, max_queue=args.max_queue,
                          batch_wait_ms=args.batch_wait_ms, request_timeout=args.request_timeout,
                          drain_timeout=args.drain_timeout, max_connections=args.max_connections,
                          header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                          inflight_batches=args.inflight_batches, default_rubric=load_rubric(args.rubric).rubric)
    config.validate()
    from judgeforge.backends import Sampling, check_generation_options

    # the core's checks, shared with eval: the flags as given, even when --greedy overrides them
    given = Sampling(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                     repetition_penalty=args.repetition_penalty, seed=args.seed).validate("judgeforge serve")
    check_generation_options("judgeforge serve", retries=args.retries, batch_size=args.max_batch)
    greedy = args.greedy or args.temperature == 0
    sampling = Sampling.greedy(args.max_new_tokens).with_seed(args.seed) if greedy else given
    options = backend_options(args.backend, args.backend_option)
    options.update({"chat_format": args.chat_format} if args.chat_format else {})
    if args.backend == "hf":
        options.setdefault("batch_size", args.max_batch)
    elif args.backend == "openai":
        options.setdefault("concurrency", args.max_batch)  # a batch's items go upstream at once

    # Take the port first (fails at once if it is in use), then load the model; connections
    # that arrive meanwhile wait in the listen backlog.
    from http.server import BaseHTTPRequestHandler

    from judgeforge.judge import Judge
    from judgeforge.serve.handler import bind
    from judgeforge.serve.server import JudgeServer

    if args.backend != "openai":  # a local judge folder is checked (config, weights) before the port is taken
        from judgeforge.weights import check_local_model

        if check_local_model(args.judge, "judge") is not None and not args.chat_format:
            from judgeforge.format.chat import saved_format

            saved_format(args.judge)  # a broken chat_format.json is one line, before anything loads
    httpd = bind(args.host, args.port, BaseHTTPRequestHandler, args.max_connections)
    print(f"judgeforge serve: loading {args.judge} ({args.backend} backend) ...", file=sys.stderr, flush=True)
    try:
        judge = Judge(args.judge, backend=args.backend, sampling=sampling, retries=args.retries, strict=args.strict,
                      **options)
    except BaseException:
        httpd.server_close()
        raise
    try:
        server = JudgeServer(judge, config, httpd=httpd)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"judgeforge serve: warning: listening on {args.host}, which other machines can reach; the "
                  "server has no authentication", file=sys.stderr, flush=True)
        stopping = threading.Event()

        def on_signal(signum, frame):
            name = signal.Signals(signum).name
            if stopping.is_set():  # a second signal: quit now, without waiting for the judge
                print(f"judgeforge serve: {name} again, exiting at once (130)", file=sys.stderr, flush=True)
                os._exit(130)
            stopping.set()
            print(f"judgeforge serve: {name} received, stopping (finishing queued work and the batch in "
                  "flight; send it again to quit at once)", file=sys.stderr, flush=True)
            threading.Thread(target=server.shutdown, daemon=True).start()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(f"judgeforge serve: {server.url}  (model {server.model_name}; POST /grade/absolute, "
                  "/grade/relative, /reward; GET /health, /openapi.json)", flush=True)
            server.serve_forever()
            abandoned = server.stop()  # returns once no worker is inside the judge
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        stats = server.batcher.stats()
        print(f"judgeforge serve: stopped after {stats['items']} items in {stats['batches']} batches"
              + (f"; {abandoned} queued items were not graded" if abandoned else ""), file=sys.stderr, flush=True)
    finally:
        judge.close()
    return 0
