"""Mini judge datasets made by code, for the quickstart and the tests.

Rows come in the exact Feedback Collection and Preference Collection schemas (the
``instruction`` field is the rendered Prometheus prompt, ``output`` the target), with
varied topics, rubric wordings and responses.  Nothing is copied from the real
collections.

The task is learnable by a tiny transformer in a few hundred steps: every rubric names
four key points (single words); a response mentions some of them among decoy words, and
its gold score is 1 + the number of key points it mentions.  The feedback states the
count before the result ("The response mentions 2 of the 4 key points."), so the model
learns to look each key word of the rubric up in the response and count.  Relative rows
pair two responses to the same instruction whose counts differ by at least two; the
feedback states both counts, the one that mentions more key points wins, and positions
A/B are balanced.
Reference answers are off by default (``reference_rate``): a reference mentions every key
point, so a tiny model that matches words across the prompt would find them all there.
"""

from __future__ import annotations

import random
from pathlib import Path

from judgeforge.data import to_collection_row
from judgeforge.format.prompts import Rubric
from judgeforge.format.records import AbsoluteExample, RelativeExample
from judgeforge.io import write_jsonl

WORDS = (
    "apple river budget chair garden window engine ticket castle pepper violin mirror "
    "bridge candle forest helmet island jacket ladder magnet needle orange pillow rocket "
    "saddle tunnel umbrella wallet anchor basket cactus dragon feather guitar hammer kettle "
    "lemon marble nickel oyster parrot quilt ribbon shovel tomato velvet walnut yogurt "
    "zipper bottle camera desert falcon glacier harbor igloo jungle koala lantern meadow "
    "napkin orchard pencil rabbit salmon tiger valley wagon barrel cotton dolphin "
    "fountain goblet hazel iron jasmine kitten lobster mango noodle olive peanut "
    "raven spider thunder vase whistle cherry copper crystal donkey eagle fossil ginger "
    "honey ivory jelly kiwi lizard muffin nectar onion pebble radish sponge tulip"
).split()

TOPICS = (
    "a weekend trip to the coast", "planning a small vegetable garden", "setting up a home office",
    "a birthday party for a child", "cooking dinner for four friends", "packing for a camping trip",
    "opening a small bakery", "writing a short mystery story", "a school science fair project",
    "decorating a tiny apartment", "a museum visit with teenagers", "training for a first race",
    "a rainy afternoon at home", "moving to a new city", "a picnic by the lake",
    "starting a book club", "a winter holiday in the mountains", "organising a garage sale",
    "learning to paint with watercolours", "a visit to a farmers market", "running a lemonade stand",
    "a road trip across the country", "preparing for a job interview", "building a treehouse",
)

INSTRUCTIONS = (
    "Write a short note about {topic}.",
    "Describe {topic} in a few sentences.",
    "Give some advice on {topic}.",
    "Tell me what matters most for {topic}.",
    "Summarise the key things to bring or think about for {topic}.",
)

CRITERIA = (
    "Does the response mention the {a}, the {b}, the {c} and the {d}?",
    "Does the response cover all four key points: {a}, {b}, {c} and {d}?",
    "How many of the key items ({a}, {b}, {c}, {d}) does the response include?",
    "Is the response complete with respect to the {a}, the {b}, the {c} and the {d}?",
)

DESCRIPTIONS = (
    (
        "The response mentions none of the four key points.",
        "The response mentions only one of the four key points.",
        "The response mentions two of the four key points.",
        "The response mentions three of the four key points.",
        "The response mentions all four key points.",
    ),
    (
        "No key item is included.",
        "Exactly one key item is included.",
        "Two key items are included.",
        "Three key items are included.",
        "Every key item is included.",
    ),
    (
        "The response misses every key point and is incomplete.",
        "The response covers a single key point and misses three.",
        "The response covers half of the key points.",
        "The response covers most key points but misses one.",
        "The response is complete and covers every key point.",
    ),
)

SENTENCES = (
    "Do not forget the {w}.",
    "The {w} is worth some thought.",
    "A good plan includes the {w}.",
    "Many people like to bring the {w}.",
    "Think about the {w} early.",
    "The {w} can make a real difference.",
    "It helps to keep the {w} nearby.",
)
OPENERS = (
    "Here are a few thoughts.",
    "This is a nice idea.",
    "Some things to consider follow.",
    "Let me keep this short.",
    "Good preparation pays off.",
)
NUMBERS = ("0", "1", "2", "3", "4")
# Key-point counts of the two responses of a relative row: they differ by at least 2, so the
# better response is clearly better (a 2-layer model trained for ~200 steps told neighbours
# (2 vs 3) apart 70% of the time and wider gaps 83-93%).
PAIR_COUNTS = ((0, 2), (0, 3), (0, 4), (1, 3), (1, 4), (2, 4))


def _response(rng: random.Random, present: list[str], decoys: list[str]) -> str:
    words = present + decoys
    rng.shuffle(words)
    parts = [rng.choice(OPENERS)] + [rng.choice(SENTENCES).format(w=w) for w in words]
    return " ".join(parts)


def _rubric(rng: random.Random, keys: list[str], with_descriptions: bool) -> Rubric:
    criteria = rng.choice(CRITERIA).format(a=keys[0], b=keys[1], c=keys[2], d=keys[3])
    return Rubric(criteria, rng.choice(DESCRIPTIONS) if with_descriptions else None)


def _instance(rng: random.Random, reference_rate: float):
    keys = rng.sample(WORDS, 4)
    others = [w for w in WORDS if w not in keys]
    instruction = rng.choice(INSTRUCTIONS).format(topic=rng.choice(TOPICS))
    reference = _response(rng, list(keys), rng.sample(others, 1)) if rng.random() < reference_rate else None
    return keys, others, instruction, reference


def make_absolute(rng: random.Random, score: int, reference_rate: float = 0.0) -> AbsoluteExample:
    keys, others, instruction, reference = _instance(rng, reference_rate)
    present = rng.sample(keys, score - 1)
    response = _response(rng, present, rng.sample(others, rng.randint(1, 3)))
    feedback = f"The response mentions {NUMBERS[len(present)]} of the 4 key points."
    return AbsoluteExample(instruction, response, _rubric(rng, keys, True), reference, score, feedback)


def make_relative(rng: random.Random, winner: str, reference_rate: float = 0.0) -> RelativeExample:
    keys, others, instruction, reference = _instance(rng, reference_rate)
    lo, hi = rng.choice(PAIR_COUNTS)
    n_a, n_b = (hi, lo) if winner == "A" else (lo, hi)
    pres_a, pres_b = rng.sample(keys, n_a), rng.sample(keys, n_b)
    resp_a = _response(rng, pres_a, rng.sample(others, rng.randint(1, 2)))
    resp_b = _response(rng, pres_b, rng.sample(others, rng.randint(1, 2)))
    feedback = (
        f"Response A mentions {NUMBERS[n_a]} of the 4 key points and Response B mentions {NUMBERS[n_b]}. "
        f"Response {winner} mentions more of them."
    )
    return RelativeExample(
        instruction, resp_a, resp_b, _rubric(rng, keys, False), reference, winner, feedback,
        score_a=n_a + 1, score_b=n_b + 1,
    )


def absolute_rows(n: int, seed: int = 0, reference_rate: float = 0.0) -> list[dict]:
    """``n`` Feedback-Collection rows, scores balanced 1-5."""
    rng = random.Random(f"abs-{seed}")
    return [to_collection_row(make_absolute(rng, 1 + i % 5, reference_rate)) for i in range(n)]


def relative_rows(n: int, seed: int = 0, reference_rate: float = 0.0) -> list[dict]:
    """``n`` Preference-Collection rows, A and B balanced."""
    rng = random.Random(f"rel-{seed}")
    return [to_collection_row(make_relative(rng, "AB"[i % 2], reference_rate)) for i in range(n)]


MAX_ROWS = 200_000  # per file, about the Preference Collection's size (each file is built in memory first)


def write_mini(out_dir: str | Path, n_train: int = 2000, n_test: int = 200, seed: int = 0) -> dict[str, Path]:
    """Write absolute/relative train and test files; returns their paths by name."""
    out = Path(out_dir)
    files = {
        "absolute_train": (absolute_rows, n_train, seed),
        "absolute_test": (absolute_rows, n_test, seed + 1_000_003),
        "relative_train": (relative_rows, n_train, seed),
        "relative_test": (relative_rows, n_test, seed + 1_000_003),
    }
    paths = {}
    for name, (fn, n, s) in files.items():
        paths[name] = out / f"{name}.jsonl"
        write_jsonl(paths[name], fn(n, s))
    return paths
