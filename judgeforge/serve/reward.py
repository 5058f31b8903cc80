"""The judge as a reward: score -> reward mapping and a reward function for TRL's GRPOTrainer.

Reward mapping (shared by the ``/reward`` endpoint and the in-process hook)
---------------------------------------------------------------------------
The judge grades each (prompt, response) in absolute mode with a rubric; its score
``s`` in 1..5 becomes

* ``normalize="none"`` (default): ``base = (s - 1) / 4``, in [0, 1];
* ``normalize="zscore"``: ``base = (s - mean) / std`` over the items of the same call
  that were graded (population std; every base is 0 when std is 0);

then ``reward = scale * base + shift`` (defaults 1 and 0; e.g. ``scale=2, shift=-1`` maps
1..5 to [-1, 1]).  An item whose grade failed after the retries (the judge's output never
parsed) gets ``failure_reward`` as is (default 0.0; ``None`` lets TRL ignore that
reward, it turns None into NaN), and it takes no part in the z-score statistics.

The hook
--------
::

    from judgeforge.serve.reward import judge_reward

    reward_fn = judge_reward(Judge("path/to/judge"), rubric="helpfulness")   # in process
    reward_fn = judge_reward("http://127.0.0.1:8765", rubric="helpfulness")  # over HTTP
    trainer = GRPOTrainer(model=..., reward_funcs=[reward_fn], ...)

It has the signature TRL expects, ``(prompts, completions, **kwargs) -> list[float]``,
for plain-text and conversational data (lists of ``{"role", "content"}`` messages; see
:func:`conversation_to_text`).  A dataset column named ``reference_answer`` (or
``reference_column=``) is passed to the judge as the reference answer of each item.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from judgeforge.errors import UserError

NORMALIZATIONS = ("none", "zscore")
DEFAULT_RUBRIC = "helpfulness"


# --------------------------------------------------------------------------- mapping


def score_to_reward(score: int | float) -> float:
    """1..5 -> 0..1."""
    return (float(score) - 1.0) / 4.0


def check_reward_settings(normalize: str = "none", scale: float = 1.0, shift: float = 0.0,
                          failure_reward: float | None = 0.0, where: str = "reward") -> None:
    if normalize not in NORMALIZATIONS:
        raise UserError(f"{where}: normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    for name, v in (("scale", scale), ("shift", shift)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise UserError(f"{where}: {name} must be a finite number, got {v!r}")
    if failure_reward is not None and (isinstance(failure_reward, bool) or not isinstance(failure_reward, (int, float))
                                       or not math.isfinite(failure_reward)):
        raise UserError(f"{where}: failure_reward must be a finite number or null, got {failure_reward!r}")


def rewards_from_scores(scores: Sequence[int | float | None], *, normalize: str = "none", scale: float = 1.0,
                        shift: float = 0.0, failure_reward: float | None = 0.0) -> list[float | None]:
    """One reward per score (None = a failed grade); see the module docstring for the formula."""
    check_reward_settings(normalize, scale, shift, failure_reward)
    good = [float(s) for s in scores if s is not None]
    if normalize == "zscore" and good:
        mean = sum(good) / len(good)
        std = math.sqrt(sum((x - mean) ** 2 for x in good) / len(good))
    out: list[float | None] = []
    for s in scores:
        if s is None:
            out.append(None if failure_reward is None else float(failure_reward))
            continue
        if normalize == "zscore":
            base = 0.0 if std == 0 else (float(s) - mean) / std
        else:
            base = score_to_reward(s)
        out.append(scale * base + shift)
    return out


# --------------------------------------------------------------------------- conversations


def _content_text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: keep the text ones
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and p.get("type", "text") == "text":
                parts.append(str(p.get("text", "")))
        return "".join(parts)
    return str(content)


def _is_messages(x) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(m, dict) and "role" in m for m in x)


def conversation_to_text(x, *, role: str = "prompt") -> str:
    """The text the judge sees for a prompt or a completion.

    * a string is used as is;
    * a prompt given as chat messages: the content of a lone user message, or, when there
      are several turns (or a system message), every turn as ``"{Role}: {content}"``
      separated by blank lines;
    * a completion given as chat messages (TRL's ``[{"role": "assistant", "content": ...}]``):
      the assistant contents joined by newlines.
    """
    if isinstance(x, str):
        return x
    if not _is_messages(x):
        raise UserError(f"a {role} must be a string or a list of chat messages with 'role' and 'content', "
                        f"got {type(x).__name__}")
    msgs = list(x)
    if role == "completion":
        texts = [_content_text(m.get("content")) for m in msgs if m.get("role") == "assistant"]
        if not texts:
            texts = [_content_text(m.get("content")) for m in msgs]
        return "\n".join(texts)
    if len(msgs) == 1 and msgs[0].get("role") == "user":
        return _content_text(msgs[0].get("content"))
    return "\n\n".join(f"{str(m.get('role', '')).capitalize()}: {_content_text(m.get('content'))}" for m in msgs)


# --------------------------------------------------------------------------- reward functions


class _RewardBase:
    """Common part of the in-process and HTTP reward functions (TRL's signature)."""

    def __init__(self, rubric, *, reference_column: str | None = "reference_answer", normalize: str = "none",
                 scale: float = 1.0, shift: float = 0.0, failure_reward: float | None = 0.0,
                 name: str = "judge_reward"):
        check_reward_settings(normalize, scale, shift, failure_reward)
        from judgeforge.format.prompts import ABSOLUTE
        from judgeforge.judge import resolve_rubric

        resolve_rubric(rubric, ABSOLUTE)  # a bad rubric fails now, not at the first training step
        self.rubric = rubric
        self.reference_column = reference_column
        self.normalize, self.scale, self.shift, self.failure_reward = normalize, scale, shift, failure_reward
        self.__name__ = name  # TRL names reward columns after it
        self.last_results: list[dict] = []

    def _items(self, prompts, completions, kwargs) -> tuple[list[str], list[str], list[str | None] | None]:
        if len(prompts) != len(completions):
            raise UserError(f"reward: {len(prompts)} prompts but {len(completions)} completions")
        texts_p = [conversation_to_text(p, role="prompt") for p in prompts]
        texts_c = [conversation_to_text(c, role="completion") for c in completions]
        refs = None
        if self.reference_column and kwargs.get(self.reference_column) is not None:
            refs = list(kwargs[self.reference_column])
            if len(refs) != len(prompts):
                raise UserError(f"reward: column '{self.reference_column}' has {len(refs)} values for "
                                f"{len(prompts)} prompts")
            refs = [None if r is None else str(r) for r in refs]
        return texts_p, texts_c, refs

    def _finish(self, scores, feedbacks, errors) -> list[float | None]:
        rewards = rewards_from_scores(scores, normalize=self.normalize, scale=self.scale, shift=self.shift,
                                      failure_reward=self.failure_reward)
        self.last_results = [dict(score=s, reward=r, feedback=f, error=e)
                             for s, r, f, e in zip(scores, rewards, feedbacks, errors)]
        return rewards

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:  # pragma: no cover - abstract
        raise NotImplementedError


class JudgeReward(_RewardBase):
    """A reward function that grades with a :class:`judgeforge.Judge` in this process."""

    def __init__(self, judge, rubric=DEFAULT_RUBRIC, **kwargs):
        super().__init__(rubric, **kwargs)
        self.judge = judge

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        texts_p, texts_c, refs = self._items(prompts, completions, kwargs)
        if not texts_p:
            return []
        requests = self.judge.absolute_requests(texts_p, texts_c, self.rubric, refs)
        samples = self.judge.grade(requests)
        return self._finish([s.result if s.ok else None for s in samples],
                            [s.feedback if s.ok else None for s in samples], [s.error for s in samples])


class HTTPJudgeReward(_RewardBase):
    """A reward function that asks a ``judgeforge serve`` server (``POST /reward``).

    Items go in chunks of ``chunk_size`` (keep it <= the server's ``--max-items``); the
    mapping and normalisation are applied here over the whole call, so chunking never
    changes the rewards.  Requests share one keep-alive connection pool and
    :mod:`judgeforge.http`'s retry policy (connection errors, timeouts, 408/409/429/5xx are
    retried ``retries`` times with exponential backoff from ``backoff`` seconds).
    """

    def __init__(self, url: str, rubric=DEFAULT_RUBRIC, *, timeout: float = 600.0, retries: int = 5,
                 backoff: float = 0.5, chunk_size: int = 64, **kwargs):
        super().__init__(rubric, **kwargs)
        if not url.startswith(("http://", "https://")):
            raise UserError(f"reward: the judge server URL must start with http:// or https://, got '{url}'")
        self.url = url.rstrip("/")
        if self.url.endswith("/reward"):
            self.url = self.url[: -len("/reward")]
        self.timeout, self.retries, self.backoff, self.chunk_size = timeout, retries, backoff, max(1, chunk_size)

    def _client(self):
        from judgeforge.http import HTTPClient

        if getattr(self, "_http", None) is None:  # made on first use (and after unpickling)
            self._http = HTTPClient(timeout=self.timeout, max_retries=self.retries, backoff=self.backoff,
                                    backoff_max=max(self.backoff, 30.0), max_connections=4)
        return self._http

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_http", None)  # a connection pool does not travel to other processes
        return state

    def _post(self, payload: dict) -> dict:
        from judgeforge.http import HTTPFailure

        try:
            return self._client().post_json(f"{self.url}/reward", payload, where="reward")
        except HTTPFailure as e:
            if not e.retryable:
                raise UserError(f"reward: the judge server at {self.url} answered HTTP {e.status}: {e.detail}") \
                    from None
            raise UserError(f"reward: cannot reach the judge server at {self.url} after {self.retries + 1} tries "
                            f"({e.detail}); start it with 'judgeforge serve --judge MODEL'") from None

    def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        texts_p, texts_c, refs = self._items(prompts, completions, kwargs)
        scores, feedbacks, errors = [], [], []
        rubric = self.rubric
        if isinstance(rubric, str):
            from judgeforge.judge import is_rubric_path

            if is_rubric_path(rubric.strip()):  # the server reads no client-named files: send the rubric itself
                from judgeforge.format.rubric_file import load_rubric_file

                rubric = load_rubric_file(rubric.strip()).rubric
        rubric = rubric.to_dict() if hasattr(rubric, "to_dict") else rubric
        for start in range(0, len(texts_p), self.chunk_size):
            items = []
            for k in range(start, min(start + self.chunk_size, len(texts_p))):
                item = {"id": k, "prompt": texts_p[k], "response": texts_c[k]}
                if refs is not None and refs[k] is not None:
                    item["reference_answer"] = refs[k]
                items.append(item)
            answer = self._post({"rubric": rubric, "items": items})
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list) or [r.get("id") for r in results] != [it["id"] for it in items]:
                raise UserError(f"reward: the judge server at {self.url} sent an answer that does not match "
                                "the request (is it a judgeforge server?)")
            for r in results:
                scores.append(r.get("score"))
                feedbacks.append(r.get("feedback"))
                errors.append(r.get("error"))
        return self._finish(scores, feedbacks, errors)


def judge_reward(judge, rubric=DEFAULT_RUBRIC, **kwargs):
    """A TRL reward function: ``judge`` is a :class:`judgeforge.Judge` (in process) or a server URL."""
    if isinstance(judge, str):
        return HTTPJudgeReward(judge, rubric, **kwargs)
    if hasattr(judge, "absolute_requests") and hasattr(judge, "grade"):
        return JudgeReward(judge, rubric, **kwargs)
    raise UserError(f"judge_reward needs a Judge or an http:// URL of 'judgeforge serve', not {type(judge).__name__}")


__all__ = [
    "HTTPJudgeReward",
    "JudgeReward",
    "conversation_to_text",
    "judge_reward",
    "rewards_from_scores",
    "score_to_reward",
]
