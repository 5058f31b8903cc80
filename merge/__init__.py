"""judgeforge.merge: merge expert judges.

* ``judgeforge merge`` (:mod:`judgeforge.merge.cli`): any mergekit method by name, from a recipe
  or the command line; LoRA experts folded in with peft; outputs written atomically with a model card.
* :mod:`judgeforge.merge.fast_linear`: the streaming linear merge (disk speed, byte-identical to
  mergekit's linear merge on the same device).
* :class:`judgeforge.merge.inmemory.InMemoryMerger`: load two experts once, switch merge ratios
  in place for sweeps.

Heavy libraries load only when a merge runs.  See docs/merging.md.
"""

__all__ = ["InMemoryMerger", "MergeRecipe", "merge"]


def __getattr__(name):
    if name == "InMemoryMerger":
        from judgeforge.merge.inmemory import InMemoryMerger

        return InMemoryMerger
    if name == "MergeRecipe":
        from judgeforge.merge.recipe import MergeRecipe

        return MergeRecipe
    if name == "merge":
        from judgeforge.merge.core import merge

        return merge
    raise AttributeError(f"module 'judgeforge.merge' has no attribute {name!r}")
