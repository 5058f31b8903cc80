"""The paper's Prometheus-2-7B numbers, shown beside every report.

Source: Prometheus 2 (arXiv:2405.01535 v2), Tables 2-4 (Pearson with GPT-4-1106 for
direct assessment; accuracy for pairwise ranking), as collected in
../shared/reference/prometheus2.md.  Keys: (benchmark, mode, metric); accuracies are
fractions here (the paper prints percentages).
"""

from __future__ import annotations

PAPER_MODEL = "Prometheus-2-7B"

PAPER_7B: dict[tuple[str, str, str], float] = {
    ("vicuna", "absolute", "pearson"): 0.666,
    ("mt_bench", "absolute", "pearson"): 0.548,
    ("flask", "absolute", "pearson"): 0.617,
    ("flask", "absolute", "human_pearson"): 0.545,
    ("feedback_bench", "absolute", "pearson"): 0.882,
    ("hhh", "relative", "accuracy"): 0.7466,
    ("mt_bench_human", "relative", "accuracy_no_tie"): 0.7078,
    ("autoj", "relative", "accuracy_no_tie"): 0.7507,
    ("preference_bench", "relative", "accuracy"): 0.9325,
    ("mt_bench_human", "absolute", "accuracy_with_tie"): 0.5045,
    ("autoj", "absolute", "accuracy_with_tie"): 0.5496,
}
