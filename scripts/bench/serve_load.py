#!/usr/bin/env python
"""Load and fault test of ``judgeforge serve``: N concurrent clients for a bounded time.

Starts the real server (``python -m judgeforge serve``, its own process, 127.0.0.1, a free
port) with a tiny model, then for ``--duration`` seconds:

* ``--clients`` threads each send requests of ``--items`` absolute-grading items, every
  item tagged with a unique id; each answer must be HTTP 200 with exactly the ids sent,
  in order, once each (no lost, duplicated or swapped answers) and, with the scripted
  judge, score 3 for every item;
* one fault client sends a malformed request every ``--fault-interval`` seconds (not
  JSON, not UTF-8, over the body limit, too many items, missing and mistyped fields,
  unknown rubric, unknown path, a lone surrogate, JSON nested 100,000 deep, a 5,000-digit
  integer, NaN, a rubric path as a string and as a one-element list, a prompt over the
  judge's context; with the openai backend an item the endpoint fails on, 500 for that
  request only) and checks the exact status it must get;
* one slow client trickles headers (slowloris) and must get 408 within the header
  deadline, while ``--idle-connections`` connections sit open doing nothing;
* afterwards ``/health`` must answer and the server must have graded exactly as many
  items as the clients got back (nothing graded twice, nothing lost), then SIGTERM must
  stop it with exit status 0.

The same load runs twice in one invocation: ``--max-batch 1`` (baseline: no batching
across clients) and ``--max-batch N`` (batched), so the table compares them directly.
With ``--backend openai`` the judge is tests/openai_stub.py (in this process, every answer
``--latency`` s late, like a remote vLLM) and the phases are "one batch in flight" (the old
defaults: ``--inflight-batches 1``, 8 upstream requests) against the new defaults (several
batches in flight, a batch's items all upstream at once).
Latency is per request (send to full answer); throughput is graded items per second.

The default model is a tiny scripted judge (judgeforge.judge.make_scripted_judge: a real
transformers model whose every answer is "Fine; Result: A. Score=3"), so answers are
checked for content too; ``--judge DIR`` serves any model folder instead (ids checked).
The hf backend runs with ``--engine generate`` (plain ``model.generate``) by default: on a
CPU its per-call overhead is the smallest, so the numbers measure the server.

    python scripts/bench/serve_load.py --out /tmp/serve_load                 # CPU, ~1.5 min
    python scripts/bench/serve_load.py --smoke --out /tmp/serve_load_smoke   # CPU, ~30 s
    python scripts/bench/serve_load.py --backend openai --latency 0.25 --out /tmp/serve_load_remote
    python scripts/bench/serve_load.py --url http://127.0.0.1:8765 --out /tmp/sl  # a server already running

With ``--url`` the load goes to a server someone else started (one phase, its own --max-batch;
no SIGTERM at the end): the graded-items check uses /health before and after the phase, and the
malformed requests use the limits /health reports.

Exits 1 if any check fails.  Prints a summary table; writes everything to
``--out``/serve_load.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[serve_load {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def post(conn: http.client.HTTPConnection, path: str, raw: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# every malformed request and the status it must get (max_items and max_body_bytes are the server's)
def fault_cases(max_items: int, max_body: int, backend: str = "hf",
                context: int | None = None) -> list[tuple[str, str, bytes, int]]:
    good = {"instruction": "q", "response": "r"}
    j = lambda o: json.dumps(o).encode()  # noqa: E731
    extra = []
    if context and 5 * (context + 16) < max_body - 200:  # a prompt of more tokens than the context: 422
        extra.append(("prompt over the context", "/grade/absolute",
                      j({"items": [{"instruction": "q", "response": "word " * (context + 16)}]}), 422))
    if backend == "openai":  # the stub fails this item: its request gets 500, the other clients' 200
        extra.append(("an item the judge fails on", "/grade/absolute",
                      j({"items": [{"instruction": "q", "response": "FAIL"}]}), 500))
    depth = min(100_000, max_body // 2 - 20)
    return extra + [
        ("lone surrogate", "/grade/absolute", b'{"items": [{"instruction": "q", "response": "\\ud800"}]}', 422),
        ("deep nesting", "/grade/absolute", b'{"items": [' + b"[" * depth + b"]" * depth + b"]}", 400),
        ("5000-digit integer", "/reward", b'{"items": [{"prompt": "p", "response": "r"}], "scale": ' + b"7" * 5000
         + b"}", 400),
        ("NaN", "/reward", b'{"items": [{"prompt": "p", "response": "r"}], "scale": NaN}', 400),
        ("rubric path", "/grade/absolute", j({"items": [good], "rubric": "/etc/judge/rubric.yaml"}), 422),
        ("rubric path in a list", "/grade/relative", j({"rubric": ["/etc/judge/rubric.yaml"], "items": [
            {"instruction": "q", "response_a": "a", "response_b": "b"}]}), 422),
        ("item rubric path in a list", "/reward", j({"items": [{"prompt": "p", "response": "r",
                                                                "rubric": ["r.yaml"]}]}), 422),
        ("not JSON", "/grade/absolute", b'{"items": [', 400),
        ("not UTF-8", "/grade/absolute", b"\xff\xfe\xfd", 400),
        ("body over the limit", "/grade/absolute", j({"items": [{**good, "response": "x" * (max_body + 10)}]}), 413),
        ("too many items", "/grade/absolute", j({"items": [good] * (max_items + 1)}), 422),
        ("missing field", "/grade/absolute", j({"items": [{"instruction": "q"}]}), 422),
        ("mistyped field", "/grade/relative", j({"items": [{"instruction": "q", "response_a": 1, "response_b": "b"}]}),
         422),
        ("unknown rubric", "/reward", j({"items": [{"prompt": "p", "response": "r"}], "rubric": "kindnes"}), 422),
        ("empty items", "/reward", j({"items": []}), 422),
        ("not an object", "/grade/absolute", j([good]), 422),
        ("unknown path", "/grade/absolut", j({"items": [good]}), 404),
    ]


def start_server(judge: str, port_args: list[str], extra: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "judgeforge", "serve", "--judge", judge, "--port", "0", *port_args, *extra]
    log("starting: " + " ".join(cmd[1:]))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}\n{proc.stderr.read()[-3000:]}")
    return proc, m.group(1)


def get_health(host: str, port: int) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    return resp.status, body


def run_phase(name: str, args, judge: str, max_batch: int, check_score: int | None,
              phase_flags: list[str] = (), api_url: str | None = None) -> dict:
    extra = ["--greedy", "--max-new-tokens", str(args.max_new_tokens), "--retries", "0",
             "--max-batch", str(max_batch), "--max-items", str(args.max_items),
             "--max-body-bytes", str(args.max_body_bytes), "--batch-wait-ms", str(args.batch_wait_ms),
             "--header-timeout", str(args.header_timeout), *phase_flags]
    if api_url:
        extra += ["--backend", "openai", "--chat_format", "mistral", "--backend-option", f"base_url={api_url}",
                  "--backend-option", "max_retries=0"]
    else:
        if args.device:
            extra += ["--backend-option", f"device={args.device}"]
        if args.engine:
            extra += ["--backend-option", f"engine={args.engine}"]
    if args.url:
        proc, url = None, args.url.rstrip("/")
    else:
        proc, url = start_server(judge, [], extra)
    host, port = url.split("//")[1].split(":")
    port = int(port)
    graded_before = 0
    max_items, max_body = args.max_items, args.max_body_bytes
    _, h0 = get_health(host, port)
    context = h0["limits"].get("context_length")  # None: the backend cannot count tokens (openai)
    header_timeout = h0["limits"].get("header_timeout", args.header_timeout)
    if proc is None:
        graded_before = h0["batching"]["items"]
        max_items, max_body = h0["limits"]["max_items"], h0["limits"]["max_body_bytes"]
        max_batch = h0["limits"].get("max_batch", max_batch)
    lat: list[float] = []
    errors: list[str] = []
    faults = {"sent": 0, "ok": 0, "slow_cut": 0}
    sent_items = [0]
    got_items = [0]
    seen_ids: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    # warm-up: the first generation pays one-off costs
    conn = http.client.HTTPConnection(host, port, timeout=300)
    status, _ = post(conn, "/grade/absolute", json.dumps({"items": [{"instruction": "w", "response": "w"}]}).encode())
    conn.close()
    if status != 200:
        errors.append(f"warm-up answered {status}")
    warm_items = 1

    def client(c: int):
        conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
        r = 0
        while not stop.is_set():
            ids = [f"c{c}-r{r}-i{i}" for i in range(args.items)]
            body = {"rubric": "helpfulness",
                    "items": [{"id": t, "instruction": f"Question {t}?", "response": f"Answer for {t}."} for t in ids]}
            t0 = time.perf_counter()
            try:
                status, raw = post(conn, "/grade/absolute", json.dumps(body).encode())
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(f"client {c} request {r}: {type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=args.timeout)
                r += 1
                continue
            dt = time.perf_counter() - t0
            with lock:
                sent_items[0] += len(ids)
                if status != 200:
                    errors.append(f"client {c} request {r}: HTTP {status}: {raw[:200]!r}")
                else:
                    ans = json.loads(raw)
                    got = [x["id"] for x in ans["results"]]
                    if got != ids:
                        errors.append(f"client {c} request {r}: ids {got} != sent {ids}")
                    dup = seen_ids.intersection(got)
                    if dup:
                        errors.append(f"client {c} request {r}: ids answered twice: {sorted(dup)[:3]}")
                    seen_ids.update(got)
                    if check_score is not None and any(x["score"] != check_score for x in ans["results"]):
                        errors.append(f"client {c} request {r}: scores {[x['score'] for x in ans['results']]}")
                    got_items[0] += len(got)
                    lat.append(dt)
            r += 1
        conn.close()

    def fault_client():
        cases = fault_cases(max_items, max_body, "openai" if api_url else "hf", context)
        k = 0
        while not stop.wait(args.fault_interval):
            label, path, raw, want = cases[k % len(cases)]
            k += 1
            conn = http.client.HTTPConnection(host, port, timeout=60)
            try:
                status, body = post(conn, path, raw)
                msg = json.loads(body).get("error", {}).get("message", "")
            except (OSError, http.client.HTTPException, ValueError) as e:
                status, msg = None, f"{type(e).__name__}: {e}"
            finally:
                conn.close()
            with lock:
                faults["sent"] += 1
                if status == want and msg:
                    faults["ok"] += 1
                else:
                    errors.append(f"fault '{label}': got {status} ({msg[:120]}), want {want}")

    def slow_client():
        """Slowloris: headers a byte every 0.2 s; the server must answer 408 within the header deadline."""
        while not stop.is_set():
            t_start = time.perf_counter()
            got = b""
            try:
                with socket.create_connection((host, port), timeout=header_timeout + 5) as s:
                    for b in b"POST /reward HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                        if stop.is_set():
                            return
                        try:
                            s.send(bytes([b]))
                        except OSError:
                            break
                        if stop.wait(0.2):
                            return
                        if time.perf_counter() - t_start > header_timeout + 0.5:
                            break
                    got = s.recv(200)
            except OSError as e:
                got = f"{type(e).__name__}".encode()
            took = time.perf_counter() - t_start
            with lock:
                if got.startswith(b"HTTP/1.1 408") and took < header_timeout + 2:
                    faults["slow_cut"] += 1
                else:
                    errors.append(f"slowloris: got {got[:60]!r} after {took:.1f} s, want 408 within "
                                  f"{header_timeout:g} s")

    idle = [socket.create_connection((host, port), timeout=5) for _ in range(args.idle_connections)]
    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(args.clients)]
    threads.append(threading.Thread(target=fault_client, daemon=True))
    threads.append(threading.Thread(target=slow_client, daemon=True))
    log(f"{name}: {args.clients} clients x {args.items} items per request for {args.duration:g} s "
        f"(max-batch {max_batch})")
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(args.duration)
    stop.set()
    for t in threads:
        t.join(args.timeout + 10)
    wall = time.perf_counter() - t0
    idle_closed = 0
    for s in idle:  # the idle connections were closed by the server (header deadline), not held
        s.settimeout(0.1)
        try:
            idle_closed += s.recv(1) == b""
        except OSError:
            pass
        s.close()
    if args.duration > header_timeout + 1 and idle_closed != len(idle):
        errors.append(f"{len(idle) - idle_closed} of {len(idle)} idle connections were still open")

    # the server is still serving, and graded exactly what came back
    status, health_after = get_health(host, port)
    if status != 200:
        errors.append(f"/health answered {status} after the run")
    graded = health_after["batching"]["items"] - graded_before - warm_items
    if graded != got_items[0]:
        errors.append(f"the server graded {graded} items but the clients got {got_items[0]} answers")
    if got_items[0] != sent_items[0]:
        errors.append(f"{sent_items[0] - got_items[0]} items were sent but not answered")
    code = None  # a server we did not start keeps running
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed"
        err_tail = proc.stderr.read()[-2000:]
        if code != 0:
            errors.append(f"the server exited with {code} after SIGTERM: {err_tail}")
    health = health_after
    batches = health["batching"]["batches"] - (h0["batching"]["batches"] if proc is None else 0)
    res = {
        "phase": name,
        "max_batch": max_batch,
        "clients": args.clients,
        "items_per_request": args.items,
        "duration_s": round(wall, 3),
        "requests": len(lat),
        "items": got_items[0],
        "items_per_s": got_items[0] / wall,
        "requests_per_s": len(lat) / wall,
        "latency_p50_ms": 1000 * percentile(lat, 0.5),
        "latency_p99_ms": 1000 * percentile(lat, 0.99),
        "latency_mean_ms": 1000 * statistics.fmean(lat) if lat else float("nan"),
        "mean_batch": ((health["batching"]["items"] - graded_before) / batches) if batches else 0.0,
        "max_batch_seen": health["batching"]["max_batch_seen"],
        "batch_sizes": health["batching"]["batch_sizes"],
        "faults_sent": faults["sent"],
        "faults_answered_right": faults["ok"],
        "slowloris_cut": faults["slow_cut"],
        "idle_connections_closed": idle_closed,
        "server_responses": health["responses"],
        "exit_code": code,
        "errors": errors,
    }
    log(f"{name}: {res['items']} items in {res['requests']} requests, {res['items_per_s']:.1f} items/s, "
        f"p50 {res['latency_p50_ms']:.0f} ms, p99 {res['latency_p99_ms']:.0f} ms, mean batch "
        f"{res['mean_batch']:.1f}, {faults['ok']}/{faults['sent']} faults answered right, {len(errors)} errors")
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="load and fault test of judgeforge serve")
    p.add_argument("--out", required=True, help="folder for serve_load.json")
    p.add_argument("--smoke", action="store_true", help="small and short (CI / a quick check)")
    p.add_argument("--judge", default=None, help="model folder (default: a tiny scripted judge)")
    p.add_argument("--url", default=None,
                   help="load a server that is already running (http://127.0.0.1:PORT): one phase, no SIGTERM")
    p.add_argument("--device", default=None, help="backend device (default: cuda if available, else cpu)")
    p.add_argument("--engine", default="generate",
                   help="hf engine: generate (default here: plain model.generate, the least per-call overhead on "
                        "a CPU) or fast; '' for the backend's own default")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--items", type=int, default=2, help="items per request")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load per phase")
    p.add_argument("--max-batch", type=int, default=16, help="the batched phase's --max-batch")
    p.add_argument("--max-items", type=int, default=8)
    p.add_argument("--max-body-bytes", type=int, default=256 * 1024)
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--max-new-tokens", type=int, default=12)
    p.add_argument("--fault-interval", type=float, default=0.25, help="seconds between malformed requests")
    p.add_argument("--timeout", type=float, default=300.0, help="client socket timeout (s)")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline phase")
    p.add_argument("--backend", choices=("hf", "openai"), default="hf",
                   help="openai: the judge is tests/openai_stub.py answering --latency s late")
    p.add_argument("--latency", type=float, default=0.25, help="the stub's seconds per answer (--backend openai)")
    p.add_argument("--header-timeout", type=float, default=2.0, help="the server's --header-timeout")
    p.add_argument("--idle-connections", type=int, default=8, help="connections opened and left idle")
    args = p.parse_args(argv)
    if args.smoke:
        args.clients, args.duration = min(args.clients, 4), min(args.duration, 4.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    check_score = None
    judge = args.judge
    if args.backend == "openai":
        return main_remote(args, out)
    with tempfile.TemporaryDirectory(prefix="jf-serve-load-") as scratch:  # the scripted judge goes with it
        if args.url:
            args.no_baseline = True
            judge = args.url
        elif judge is None:
            from judgeforge.judge import make_scripted_judge

            judge = str(make_scripted_judge(Path(scratch) / "judge"))
            check_score = 3
        phases = []
        if not args.no_baseline:
            phases.append(run_phase("unbatched", args, judge, 1, check_score))
        phases.append(run_phase("batched", args, judge, args.max_batch, check_score))

    return report(args, out, judge if args.judge else "scripted tiny judge (hidden 64, 2 layers)", phases)


def main_remote(args, out: Path) -> int:
    """The judge behind an OpenAI-compatible endpoint with latency: one batch in flight vs several."""
    sys.path.insert(0, str(ROOT / "tests"))
    from openai_stub import ScriptedOpenAIServer

    def reply(kind, body, call_no):
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        return (400, {"error": {"message": "scripted failure"}}) if "\nFAIL\n" in prompt else "Fine. [RESULT] 3"

    phases = []
    with ScriptedOpenAIServer(reply, latency=args.latency, keep_requests=False) as api:
        if not args.no_baseline:
            phases.append(run_phase("one-batch", args, "stub-model", args.max_batch, 3,
                                    ["--inflight-batches", "1", "--backend-option", "concurrency=8"], api.base_url))
        phases.append(run_phase("defaults", args, "stub-model", args.max_batch, 3, [], api.base_url))
        upstream_max = api.in_flight_max
    return report(args, out, f"openai stub, {args.latency:g} s per answer (at most {upstream_max} at once)",
                  phases)


def report(args, out: Path, judge_desc: str, phases: list[dict]) -> int:
    try:
        import torch

        torch_info = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                      "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor()}
    except Exception:  # pragma: no cover
        torch_info = {}
    report = {"args": vars(args), "judge": judge_desc,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), **torch_info},
              "phases": phases}
    (out / "serve_load.json").write_text(json.dumps(report, indent=2) + "\n")

    print()
    head = f"{'phase':<10} {'max_batch':>9} {'clients':>7} {'requests':>8} {'items':>6} {'items/s':>8} " \
           f"{'p50 ms':>7} {'p99 ms':>7} {'mean batch':>10} {'faults ok':>9} {'errors':>6}"
    print(head)
    print("-" * len(head))
    for r in phases:
        print(f"{r['phase']:<10} {r['max_batch']:>9} {r['clients']:>7} {r['requests']:>8} {r['items']:>6} "
              f"{r['items_per_s']:>8.1f} {r['latency_p50_ms']:>7.0f} {r['latency_p99_ms']:>7.0f} "
              f"{r['mean_batch']:>10.1f} {r['faults_answered_right']:>4}/{r['faults_sent']:<4} {len(r['errors']):>6}")
    if len(phases) == 2 and phases[0]["items_per_s"] > 0:
        print(f"\n{phases[1]['phase']} / {phases[0]['phase']} throughput: "
              f"{phases[1]['items_per_s'] / phases[0]['items_per_s']:.2f}x")
    print(f"full results: {out / 'serve_load.json'}")
    bad = [e for r in phases for e in r["errors"]]
    for e in bad[:20]:
        print("ERROR:", e)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
