"""The fast engine's scheduler: continuous batching over the slots of :class:`~judgeforge.backends.fastgen_runner.Runner`.

Every ``check_every`` steps (and as soon as every busy slot must have stopped) the host
looks at which slots stopped, collects their tokens, and -- while prompts wait and at
least ``max(n, slots/8)`` slots are free -- prefills the next prompts (longest first) into
the free slots, one pass per prompt for its ``n`` samples.  With no prompt waiting and at
most a quarter of the rows busy, the busy slots move to the front and later steps run on
fewer rows.  Each row is independent of the others, so greedy tokens do not depend on the
schedule; a seeded sampled call reproduces because the schedule is a function of the tokens.
"""

from __future__ import annotations

from collections import deque

from judgeforge.errors import NonFiniteLogits


def run(eng, prompts, sampling, n, slots, progress, stop_at):
    torch = eng._torch
    R = eng.runner
    dev = eng.device
    S = slots
    max_new = sampling.max_new_tokens
    longest = max(len(p) for p in prompts)
    R.cache(S, eng._bucketed(longest + max_new))
    R.fused.refresh()  # the model's weights as they are now (an in-place merge may have changed them)
    eos, pad = eng.eos_id, eng.pad_id
    check_eos = eos is not None and not sampling.ignore_eos
    forced = stop_at is not None and eos is not None
    every = max(1, eng.check_every)

    plen = torch.ones(S, dtype=torch.long, device=dev)  # prompt length per slot (1 for a free slot: position 0)
    steps = torch.zeros(S, dtype=torch.long, device=dev)  # tokens generated
    done = torch.ones(S, dtype=torch.bool, device=dev)  # free or stopped
    force = torch.full((S,), -1, dtype=torch.long, device=dev)
    out = torch.full((S, max_new), pad, dtype=torch.long, device=dev)
    eos_t = torch.tensor(eos if eos is not None else pad, device=dev)
    pad_t = torch.tensor(pad, device=dev)
    st = {"logits": None, "seen": None}

    results: list[list[list[int] | None]] = [[None] * n for _ in prompts]
    left = [n] * len(prompts)
    waiting = deque(sorted(range(len(prompts)), key=lambda i: -len(prompts[i])))
    req: list[tuple[int, int] | None] = [None] * S
    start = [0] * S  # prompt length of the slot's sequence
    since = [0] * S  # the step at which it was admitted
    free = list(range(S - 1, -1, -1))  # pop() takes the lowest slot
    rows = S
    t = 0
    refill_min = max(n, S // 8)
    prefill_s = 0.0
    t_begin = eng._clock()

    def admit():
        nonlocal prefill_s
        group = []
        while waiting and len(free) >= n:
            i = waiting.popleft()
            group.append((i, [free.pop() for _ in range(n)]))
        t0 = eng._clock()
        if st["logits"] is None:
            vocab = R.model.lm_head.weight.shape[0]
            st["logits"] = torch.zeros(S, vocab, dtype=torch.float32, device=dev)
            if sampling.repetition_penalty != 1.0:  # like generate: the prompt's tokens count as seen
                st["seen"] = torch.zeros(S, vocab, dtype=torch.bool, device=dev)
        a = 0
        while a < len(group):
            width = len(prompts[group[a][0]])  # longest first: the chunk's widest prompt
            chunk = group[a:a + max(1, eng.prefill_tokens // width)]
            a += len(chunk)
            dst, lg = R.prefill([prompts[i] for i, _ in chunk], [ss for _, ss in chunk], seen=st["seen"])
            st["logits"].index_copy_(0, dst, lg)
            eng.stats["prefills"] += 1
        flat = [(s, i, k) for i, ss in group for k, s in enumerate(ss)]
        idx = torch.tensor([s for s, _, _ in flat], device=dev)
        plen[idx] = torch.tensor([len(prompts[i]) for _, i, _ in flat], device=dev)
        steps[idx] = 0
        done[idx] = False
        if forced:
            force[idx] = torch.tensor([stop_at[i][k] for _, i, k in flat], device=dev)
        for s, i, k in flat:
            req[s], start[s], since[s] = (i, k), len(prompts[i]), t
        eng.stats["batches"] += 1
        prefill_s += eng._clock() - t0

    def harvest():
        d = done[:rows].tolist()
        fin = [s for s in range(rows) if req[s] is not None and d[s]]
        if not fin:
            return
        idx = torch.tensor(fin, device=dev)
        toks = out.index_select(0, idx).tolist()
        lens = steps.index_select(0, idx).tolist()
        plen[idx] = 1
        steps[idx] = 0
        newly = 0
        for s, row, m in zip(fin, toks, lens):
            row = row[:m]
            if eos is not None and (check_eos or forced) and eos in row:
                row = row[:row.index(eos)]
            i, k = req[s]
            results[i][k] = row
            left[i] -= 1
            newly += left[i] == 0
            req[s] = None
            free.append(s)
        free.sort(reverse=True)
        if progress is not None and newly:
            progress(newly)

    def compact():
        nonlocal rows
        busy = [s for s in range(rows) if req[s] is not None]
        r = 8
        while r < 2 * len(busy):
            r *= 2
        if r >= rows:
            return
        holes = [s for s in range(r) if req[s] is None]
        src = [s for s in busy if s >= r]
        dst = holes[:len(src)]
        if src:
            length = eng._bucketed(max(start[s] + min(t - since[s], max_new) for s in src) + 1)
            R.move_slots(dst, src, min(length, R.kv[0].shape[3]))
            d, sx = torch.tensor(dst, device=dev), torch.tensor(src, device=dev)
            for x in (plen, steps, done, force, out, st["logits"], st["seen"]):
                if x is not None:
                    x[d] = x[sx]
            for a, b in zip(dst, src):
                req[a], start[a], since[a] = req[b], start[b], since[b]
                req[b] = None
        free[:] = sorted((s for s in range(r) if req[s] is None), reverse=True)
        rows = r
        eng.stats["compactions"] = eng.stats.get("compactions", 0) + 1

    def check_finite(logits):
        """A model whose logits are NaN or inf (broken weights, or its dtype overflowing) is one line, not
        a sampler's traceback or tokens drawn from nothing."""
        bad = (~torch.isfinite(logits).all(dim=-1)).nonzero().flatten().tolist()
        bad = [s for s in bad if req[s] is not None]
        if bad:
            i, k = req[bad[0]]
            raise NonFiniteLogits(f"the judge's logits are NaN or inf for request {i} (sample {k + 1}, "
                                  f"{t - since[bad[0]]} tokens in): its weights are broken or {eng.dtype} "
                                  "overflows; check the model, or load it in float32 (--dtype float32)")

    while True:
        synced = False
        busy = [s for s in range(rows) if req[s] is not None]
        if t % every == 0 or all(t - since[s] >= max_new for s in busy):
            synced = True
            harvest()
            busy = [s for s in range(rows) if req[s] is not None]
            if not waiting and not busy:
                break
            if waiting and (len(free) >= refill_min or not busy):
                admit()
            elif not waiting and rows > 8 and len(busy) <= rows // 4:
                compact()
            busy = [s for s in range(rows) if req[s] is not None]
        logits = st["logits"][:rows]
        seen = st["seen"][:rows] if st["seen"] is not None else None
        if synced or not eng.cuda:  # on a GPU only where the host waits anyway (every check_every steps)
            check_finite(logits)
        nxt = eng._next_token(logits, seen, sampling)
        live = ~done[:rows]
        if forced:
            nxt = torch.where(steps[:rows] == force[:rows], eos_t, nxt)
        nxt = torch.where(live, nxt, pad_t)
        pos = steps[:rows].clamp(max=max_new - 1)[:, None]
        o = out[:rows]
        o.scatter_(1, pos, torch.where(live[:, None], nxt[:, None], o.gather(1, pos)))
        steps[:rows] += live
        if seen is not None:
            seen.scatter_(1, nxt[:, None], True)
        stop = steps[:rows] >= max_new
        if check_eos or forced:
            stop |= nxt == eos_t
        done[:rows] |= live & stop
        t += 1
        eng.stats["steps"] += 1
        if all(t - since[s] >= max_new for s in busy):
            continue  # every busy slot has stopped: collect them instead of decoding once more
        filled = max(start[s] + min(t - since[s], max_new) for s in busy)
        length = min(eng._bucketed(filled), R.kv[0].shape[3])
        cur = plen[:rows] + steps[:rows] - 1
        st["logits"][:rows] = R.decode(nxt, cur, rows, length)
    if eng.timing:
        total = eng._clock() - t_begin
        eng.stats["prefill_seconds"] = eng.stats.get("prefill_seconds", 0.0) + prefill_s
        eng.stats["decode_seconds"] = eng.stats.get("decode_seconds", 0.0) + total - prefill_s
    return results
