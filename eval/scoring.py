"""From parsed judge samples to the paper's metrics, per benchmark and grading mode.

``samples[(item_id, job)]`` is the list of a job's samples, each ``{"result", "error"}``
(None when the sample is missing, e.g. another shard's that was not merged).  Jobs:

``abs``                            an absolute item graded alone (its samples' mean is scored)
``rel:A`` / ``rel:B``              a pair in relative mode, the chosen response at A / B
``a2r:chosen`` / ``a2r:rejected``  each response of a pair graded alone (the "with ties" numbers)

Rules (as in the paper's harness): a sample that never parsed is a failure, never
dropped -- in accuracies it counts as wrong; a mean score uses the parsed samples and an
item with none is left out of correlations (``n_scored`` says how many count).  A mode with
fewer than ``min_scored`` scored items (default :data:`MIN_SCORED`) gets every metric None and
``no_result`` "too few parsed (n=5 of 100)": a Pearson over two points is always +-1, so a
number from almost nothing is never shown as a result.  Relative
mode scores the first sample.  "accuracy_no_tie" drops gold ties; "accuracy_with_tie"
keeps them: in relative mode a verdict is A or B, so a gold tie is always wrong; in
absolute mode a pair is judged a tie when both mean scores are equal.
"""

from __future__ import annotations

from collections import Counter

from judgeforge.eval.benchmarks import ABSOLUTE_KIND, Benchmark, Item
from judgeforge.eval.metrics import (
    accuracy,
    bootstrap_ci,
    both_orders_agreement,
    correlation_cis,
    correlations,
    krippendorff_alpha,
    mean,
    pearson,
    position_consistency,
    transitivity,
)
from judgeforge.eval.preference_formats import headline

ABS_JOB = "abs"
MIN_SCORED = 10  # fewer scored items than this: "too few parsed", never a number


def jobs_for(item: Item, mode: str, *, seed: int, swap: bool) -> list[str]:
    """The job names an item needs in a grading mode."""
    if item.kind == ABSOLUTE_KIND:
        return [ABS_JOB]
    if mode == "relative":
        first = item.chosen_position(seed)
        return [f"rel:{first}", f"rel:{'B' if first == 'A' else 'A'}"] if swap else [f"rel:{first}"]
    return ["a2r:chosen", "a2r:rejected"] if item.chosen is not None else []


def _results(samples) -> list:
    return [s.get("result") if s else None for s in (samples or [])]


def _count_failures(all_samples: list) -> dict:
    total = sum(1 for s in all_samples if s is not None)
    failed = sum(1 for s in all_samples if s is not None and s.get("result") is None)
    missing = sum(1 for s in all_samples if s is None)
    # why failures stopped, from the cache records' at_limit (older records, and backends that cannot
    # tell, have none: unknown)
    at_limit = [s.get("at_limit") for s in all_samples if s is not None and s.get("result") is None]
    return {"samples": total, "parse_failures": failed,
            "parse_failure_rate": failed / total if total else None, "missing_samples": missing,
            "failures_at_limit": sum(1 for v in at_limit if v is True),
            "failures_limit_unknown": sum(1 for v in at_limit if not isinstance(v, bool))}


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _acc_ci(outcomes: list[int], boot: int, seed: int):
    if len(outcomes) < 2 or boot <= 0:
        return None
    if len(set(outcomes)) == 1:
        return (float(outcomes[0]), float(outcomes[0]))
    return bootstrap_ci(mean, [outcomes], n_resamples=boot, seed=seed)


def score_absolute(bench: Benchmark, samples: dict, *, boot: int = 1000, seed: int = 0) -> dict:
    preds, golds, humans_p, humans_g, per_item, exact, all_s = [], [], [], [], [], [], []
    hist: Counter = Counter()
    for it in bench.items:
        ss = samples.get((it.id, ABS_JOB)) or []
        all_s.extend(ss)
        res = _results(ss)
        per_item.append(res)
        hist.update(r for r in res if r is not None)
        m = _mean(res)
        if bench.spec is not None and bench.spec.exact_match:
            exact.append(1 if res and res[0] is not None and it.gold is not None and res[0] == round(it.gold) else 0)
        if m is None or it.gold is None:
            continue
        preds.append(m)
        golds.append(it.gold)
        if it.human is not None:
            humans_p.append(m)
            humans_g.append(it.human)
    out: dict = {"items": len(bench.items), "n_scored": len(preds)}
    corr = correlations(preds, golds)
    out.update({k: corr[k] for k in ("pearson", "spearman", "kendall")})
    if boot > 0:
        for k, ci in correlation_cis(preds, golds, n_resamples=boot, seed=seed).items():
            out[f"{k}_ci"] = ci
    if humans_g:
        hc = correlations(humans_p, humans_g)
        out.update({f"human_{k}": hc[k] for k in ("pearson", "spearman", "kendall")})
        out["human_n"] = len(humans_g)
        if boot > 0:
            out["human_pearson_ci"] = bootstrap_ci(pearson, [humans_p, humans_g], n_resamples=boot, seed=seed)
    if exact:
        out["exact_match"] = accuracy(exact)
        out["exact_match_ci"] = _acc_ci(exact, boot, seed)
    out["krippendorff_alpha"] = krippendorff_alpha(per_item) if any(len(r) > 1 for r in per_item) else None
    out["mean_score"] = _mean(preds)
    out["score_histogram"] = {str(k): hist[k] for k in sorted(hist)}
    out.update(_count_failures(all_s))
    return out


def _winner(verdict, chosen_pos: str):
    if verdict is None:
        return None
    return "chosen" if verdict == chosen_pos else "rejected"


def score_relative(bench: Benchmark, samples: dict, *, seed: int, swap: bool, boot: int = 1000) -> dict:
    outcomes, outcomes_tie, groups, all_s = [], [], {}, []
    first_w, second_w, both_orders, a_votes, edges, gold_ties = [], [], [], [], [], []
    per_item = {}  # id -> 1 when right (in both orders with swap), for the formats' own headline scores
    n_scored = 0  # items whose scored verdict parsed
    for it in bench.items:
        jobs = jobs_for(it, "relative", seed=seed, swap=swap)
        verdicts = []
        for job in jobs:
            ss = samples.get((it.id, job)) or []
            all_s.extend(ss)
            res = _results(ss)
            verdicts.append(res[0] if res else None)
        pos = jobs[0].split(":")[1]
        v = verdicts[0]
        if v is not None:
            a_votes.append(1 if v == "A" else 0)
            n_scored += 1
        ok = 1 if (v is not None and v == pos and not it.tie) else 0
        outcomes_tie.append(ok)
        if not it.tie:
            outcomes.append(ok)
            per_item[it.id] = ok
            if it.group is not None:
                groups.setdefault(it.group, []).append(ok)
        if v is not None and not it.tie and bench.spec is not None and bench.spec.transitivity:
            w = it.chosen_response if v == pos else it.rejected_response
            lo = it.rejected_response if v == pos else it.chosen_response
            edges.append((f"{it.instruction}\0{it.rubric_text}", w, lo))
        if swap:
            pos2 = jobs[1].split(":")[1]
            first_w.append(_winner(v, pos))
            second_w.append(_winner(verdicts[1], pos2))
            gold_ties.append(it.tie)
            if not it.tie:
                both_orders.append(ok)
                both_orders.append(1 if verdicts[1] == pos2 else 0)
                per_item[it.id] = ok * both_orders[-1]
    out: dict = {"items": len(bench.items), "n_scored": n_scored, "ties": sum(1 for i in bench.items if i.tie)}
    out["accuracy_no_tie" if out["ties"] else "accuracy"] = accuracy(outcomes)
    out[("accuracy_no_tie" if out["ties"] else "accuracy") + "_ci"] = _acc_ci(outcomes, boot, seed)
    if out["ties"]:
        out["accuracy_with_tie"] = accuracy(outcomes_tie)
    if groups:
        out["by_group"] = {g: {"accuracy": accuracy(v), "items": len(v)} for g, v in sorted(groups.items())}
    out["a_rate"] = _mean(a_votes)  # share of parsed verdicts that say "A" (position bias)
    if swap:
        out.update(position_consistency(first_w, second_w))
        out["accuracy_both_orders"] = accuracy(both_orders)
        agree = both_orders_agreement(first_w, second_w, gold_ties)
        if out["ties"]:
            out.update(agree)
        else:
            out["agreement"] = agree["agreement_no_tie"]
            out["agreement_pairs"] = agree["agreement_pairs"]
    if bench.spec is not None and bench.spec.transitivity:
        out.update(transitivity(edges))
    out.update(_count_failures(all_s))
    out["_outcomes"] = per_item
    return out


def score_pairs_absolute(bench: Benchmark, samples: dict, *, boot: int = 1000, seed: int = 0) -> dict:
    outcomes, outcomes_tie, groups, all_s, winners = [], [], {}, [], {}
    n = n_scored = 0
    for it in bench.items:
        if it.chosen is None:
            continue
        n += 1
        c = samples.get((it.id, "a2r:chosen")) or []
        r = samples.get((it.id, "a2r:rejected")) or []
        all_s.extend(c)
        all_s.extend(r)
        cs, rs = _mean(_results(c)), _mean(_results(r))
        if cs is None or rs is None:
            ok = 0
            winners[it.id] = None
        else:
            ok = int(cs == rs) if it.tie else int(cs > rs)
            n_scored += 1
            winners[it.id] = "tie" if cs == rs else ("chosen" if cs > rs else "rejected")
        outcomes_tie.append(ok)
        if not it.tie:
            outcomes.append(ok)
            if it.group is not None:
                groups.setdefault(it.group, []).append(ok)
    out: dict = {"items": n, "n_scored": n_scored,
                 "ties": sum(1 for i in bench.items if i.tie and i.chosen is not None)}
    key = "accuracy_no_tie" if out["ties"] else "accuracy"
    out[key] = accuracy(outcomes)
    out[key + "_ci"] = _acc_ci(outcomes, boot, seed)
    if out["ties"]:
        out["accuracy_with_tie"] = accuracy(outcomes_tie)
        out["accuracy_with_tie_ci"] = _acc_ci(outcomes_tie, boot, seed)
    if groups:
        out["by_group"] = {g: {"accuracy": accuracy(v), "items": len(v)} for g, v in sorted(groups.items())}
    out["judged_ties"] = sum(1 for w in winners.values() if w == "tie")
    out.update(_count_failures(all_s))
    out["_winners"] = winners
    return out


# what a mode's metrics keep when nothing parsed: counts, never a value computed from nothing
_COUNTS = {"items", "ties", "n_scored", "samples", "parse_failures", "parse_failure_rate", "missing_samples",
           "failures_at_limit", "failures_limit_unknown",
           "pairs", "pairs_parsed", "agreement_pairs", "triads", "human_n", "judged_ties", "score_histogram",
           "min_scored"}


def null_if_too_few(m: dict, min_scored: int = MIN_SCORED) -> dict:
    """A mode with no parsed sample, or fewer than ``min_scored`` scored items, gets every metric None
    and a ``no_result`` reason ("no parsed outputs ...", "too few parsed (n=5 of 100)"); never 0.0 or a
    Pearson over two points."""
    parsed = (m.get("samples") or 0) - (m.get("parse_failures") or 0)
    n = m.get("n_scored")
    m["min_scored"] = min_scored
    if m.get("human_n") is not None and m["human_n"] < min_scored:  # the human-rated subset alone
        for k in [k for k in m if k.startswith("human_") and k != "human_n"]:
            m[k] = None
        m["human_note"] = too_few_note(m["human_n"], m.get("items"))
    if parsed > 0 and (n is None or n >= min_scored):
        return m
    if parsed > 0:
        m["no_result"] = too_few_note(n, m.get("items"))
    elif m.get("samples"):
        m["no_result"] = f"no parsed outputs ({m['parse_failures']} of {m['samples']} samples failed to parse)"
    else:
        m["no_result"] = f"no outputs ({m.get('missing_samples') or 0} samples missing)"
    for k in list(m):
        if k in _COUNTS or k in ("no_result", "human_note") or k.startswith("_"):
            continue
        if k == "by_group":
            m[k] = {g: {"accuracy": None, "items": v["items"]} for g, v in m[k].items()}
        else:
            m[k] = None
    return m


def _add_headline(metrics: dict, bench: Benchmark, outcomes: dict) -> None:
    """RewardBench / JudgeBench files: their own per-subset scores and headline (``metrics["headline"]``)."""
    h = headline(bench.items, outcomes)
    if h is not None:
        parsed = (metrics.get("samples") or 0) - (metrics.get("parse_failures") or 0)
        metrics["headline"] = h if parsed > 0 else {"format": h["format"], "score": None}


def too_few_note(n_scored, total) -> str:
    """The one wording of a metric withheld for want of parsed items (tables, JSON, plots)."""
    return f"too few parsed (n={n_scored} of {total})"


def score_benchmark(bench: Benchmark, modes: list[str], samples: dict, *, seed: int, swap: bool,
                    boot: int = 1000, min_scored: int = MIN_SCORED) -> dict:
    """``{"title", "kind", "items", "modes": {mode: metrics}}`` for one benchmark."""
    out: dict = {"title": bench.title, "kind": bench.kind, "items": len(bench.items), "source": bench.source,
                 "modes": {}}
    if bench.kind == ABSOLUTE_KIND:
        out["modes"]["absolute"] = null_if_too_few(score_absolute(bench, samples, boot=boot, seed=seed), min_scored)
        return out
    rel = abs_ = None
    if "relative" in modes:
        rel = out["modes"]["relative"] = null_if_too_few(
            score_relative(bench, samples, seed=seed, swap=swap, boot=boot), min_scored)
        _add_headline(rel, bench, rel.pop("_outcomes"))
    if "absolute" in modes:
        abs_ = score_pairs_absolute(bench, samples, boot=boot, seed=seed)
        winners = abs_.pop("_winners")
        out["modes"]["absolute"] = null_if_too_few(abs_, min_scored)
        ties = {it.id for it in bench.items if it.tie}
        _add_headline(abs_, bench, {i: int(w == "chosen") for i, w in winners.items() if i not in ties})
        if rel is not None:
            # direct-to-pairwise consistency: relative verdict vs the order of the two absolute scores
            agree = total = 0
            for it in bench.items:
                w = winners.get(it.id)
                job = jobs_for(it, "relative", seed=seed, swap=False)[0]
                res = _results(samples.get((it.id, job)))
                v = res[0] if res else None
                if w in ("chosen", "rejected") and v is not None:
                    total += 1
                    agree += int(_winner(v, job.split(":")[1]) == w)
            out["direct_pairwise_consistency"] = {"agreement": agree / total if total else None, "pairs": total}
    return out
