"""The paper's Prometheus-2-7B numbers, shown beside every report.

Source: Prometheus 2 (arXiv:2405.01535 v2), as collected in ../shared/reference/prometheus2.md.
The one place the paper's numbers are written:

* :data:`PAPER_7B`: Tables 2-4 (Pearson with GPT-4-1106 for direct assessment; accuracy for
  pairwise ranking).  Keys: (benchmark, mode, metric); accuracies are fractions here (the paper
  prints percentages);
* :data:`PAPER_TABLE5` / :data:`PAPER_TABLE17`: the ablation rows (eval/ablation.py, the
  quickstart's report), as the paper prints them: (DA mean Pearson, PR mean accuracy %).
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

# The paper's Table 5 (Mistral-7B; DA = mean Pearson, PR = mean accuracy %).
PAPER_TABLE5 = {
    "prompting": (0.417, 64.06),
    "absolute only": (0.539, 64.82),
    "relative only": (None, 72.61),
    "joint training": (0.485, 73.06),
    "weight merging": (0.624, 73.50),
}
# The paper's Table 17 (7B merges; DA incl. Feedback Bench, PR incl. Preference Bench).
PAPER_TABLE17 = {
    "linear": (0.652, 78.06),
    "slerp": (0.649, 77.44),
    "task_arithmetic": (0.582, 78.93),
    "ties": (0.614, 78.56),
    "dare_ties": (0.655, 78.55),
    "dare_linear": (0.660, 78.44),
}
