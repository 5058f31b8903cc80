"""The judge as a Python object: ``Judge(model).absolute_grade(...)`` / ``.relative_grade(...)``.

The shape follows the ``prometheus-eval`` package that users already know::

    from judgeforge import Judge

    judge = Judge("prometheus-eval/prometheus-7b-v2.0")          # backend="hf" by default
    feedback, score = judge.absolute_grade(
        "Explain TCP slow start.", "TCP slow start ...", rubric="helpfulness",
        reference_answer="...",                                  # optional
    )
    feedbacks, scores = judge.absolute_grade(instructions, responses, "reasoning")
    feedbacks, winners = judge.relative_grade(instructions, responses_a, responses_b, rubric)

* Lists in, lists out (one backend call for the whole list, batched by the backend);
  a ``str`` instead of lists grades one item and returns one feedback and one result.
* ``rubric``: a preset name (``helpfulness``, ``harmlessness``, ``honesty``,
  ``factual_validity``, ``reasoning``), the path of a rubric YAML file
  (:mod:`judgeforge.format.rubric_file`), a :class:`~judgeforge.format.prompts.Rubric`, a dict
  (``criteria`` + ``score1_description`` ... ``score5_description``), a rendered rubric
  string (``"[criteria]\\nScore 1: ...\\n...Score 5: ..."``), or a list with one of those
  per item.  Relative grading uses only the criteria line, as in training; a criteria
  sentence alone is enough there.
* ``reference_answers``: None, or a list (entries may be None: that item is rendered
  with the reference-free template).
* Prompts are rendered by :mod:`judgeforge.format.prompts` (the training format, byte for byte)
  and outputs parsed by :mod:`judgeforge.format.parsing`.  An output that does not parse is
  generated again up to ``retries`` times (none with greedy decoding on a deterministic
  backend); one that still fails comes back as ``None`` -- never dropped -- and the
  reason is in :attr:`Judge.last_errors` (or use :meth:`Judge.grade` for full records).
* ``model`` may be a model folder / hub id (with ``backend="hf" | "vllm" | "openai"`` and
  that backend's options as keyword arguments) or an already-built
  :class:`~judgeforge.backends.Backend`, so several users can share one loaded model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import fields

from judgeforge.errors import UserError, did_you_mean
from judgeforge.format.prompts import (
    ABSOLUTE,
    PRESET_RUBRICS,
    RELATIVE,
    Rubric,
    check_mode,
    parse_rubric,
    render_absolute,
    render_relative,
    render_rubric,
)
from judgeforge.format.user_templates import check_template, fill_template

# prometheus-eval's sampling names (vLLM SamplingParams) -> ours; best_of must be 1, use_tqdm is ignored
_PARAM_ALIASES = {"max_tokens": "max_new_tokens", "max_new_tokens": "max_new_tokens"}


def make_sampling(sampling=None):
    """A :class:`Sampling` from None (the paper's decoding), a Sampling, or a dict.

    The dict takes :class:`Sampling`'s field names or prometheus-eval's ``params`` names
    (``max_tokens``); anything else is a one-line error.
    """
    from judgeforge.backends import Sampling

    if sampling is None:
        return Sampling()
    if isinstance(sampling, Sampling):
        return sampling.validate("sampling")
    if not isinstance(sampling, dict):
        raise UserError(f"sampling must be a Sampling or a dict of its fields, got {type(sampling).__name__}")
    names = {f.name for f in fields(Sampling)}
    kw = {}
    for key, value in sampling.items():
        if key == "use_tqdm" or (key == "best_of" and value in (None, 1)):
            continue
        if key == "best_of":
            raise UserError(f"sampling: best_of={value!r} is not supported (one sample per item); drop it or set 1")
        name = _PARAM_ALIASES.get(key, key)
        if name not in names:
            raise UserError(f"unknown sampling setting '{key}'{did_you_mean(key, sorted(names))}; "
                            f"use: {', '.join(sorted(names))}")
        kw[name] = value
    try:
        return Sampling(**kw).validate("sampling")
    except TypeError as e:
        raise UserError(f"bad sampling settings: {e}") from None


# --------------------------------------------------------------------------- rubrics

_PRESET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\- ]{0,40}$")


def is_rubric_path(text: str) -> bool:
    """Whether a rubric string names a rubric file (see :mod:`judgeforge.format.rubric_file`)."""
    return "\n" not in text and text.lower().endswith((".yaml", ".yml", ".json"))


def resolve_rubric(rubric, mode: str, where: str = "rubric") -> str:
    """The rubric text that goes into a ``mode`` prompt (see the module docstring for the forms)."""
    check_mode(mode)
    if isinstance(rubric, Rubric):
        r = rubric
    elif isinstance(rubric, dict):
        unknown = set(rubric) - {"criteria"} - {f"score{i}_description" for i in range(1, 6)}
        if unknown:
            key = sorted(unknown)[0]
            choices = ["criteria"] + [f"score{i}_description" for i in range(1, 6)]
            raise UserError(f"{where}: unknown rubric field '{key}'{did_you_mean(key, choices)}; "
                            "a rubric has 'criteria' and 'score1_description' ... 'score5_description'")
        if not isinstance(rubric.get("criteria"), str) or not rubric["criteria"].strip():
            raise UserError(f"{where}: a rubric needs a non-empty 'criteria' string")
        descs = [rubric.get(f"score{i}_description") for i in range(1, 6)]
        given = [d for d in descs if d is not None]
        if given and len(given) != 5:
            missing = [f"score{i}_description" for i, d in enumerate(descs, 1) if d is None]
            raise UserError(f"{where}: the rubric gives {len(given)} of the 5 score descriptions; "
                            f"add {', '.join(missing)}")
        if any(not isinstance(d, str) for d in given):
            raise UserError(f"{where}: score descriptions must be strings")
        r = Rubric.from_dict(rubric)
    elif isinstance(rubric, str):
        key = rubric.strip()
        if is_rubric_path(key):
            from judgeforge.format.rubric_file import load_rubric_file

            r = load_rubric_file(key).rubric
        elif key in PRESET_RUBRICS:
            r = PRESET_RUBRICS[key]
        elif key.lower().replace(" ", "_").replace("-", "_") in PRESET_RUBRICS:
            r = PRESET_RUBRICS[key.lower().replace(" ", "_").replace("-", "_")]
        elif not key:
            raise UserError(f"{where}: the rubric is empty; give a preset name "
                            f"({', '.join(PRESET_RUBRICS)}) or criteria and five score descriptions")
        elif _PRESET_NAME.match(key) and " " not in key:
            # a single word that is not a preset: most likely a typo of one
            raise UserError(f"{where}: unknown rubric preset '{key}'{did_you_mean(key, PRESET_RUBRICS)}; "
                            f"presets: {', '.join(PRESET_RUBRICS)}; or pass criteria and five score descriptions")
        else:
            r = parse_rubric(rubric)
    else:
        raise UserError(f"{where}: a rubric is a preset name, a Rubric, a dict or a rendered string, "
                        f"not {type(rubric).__name__}")
    if mode == ABSOLUTE and r.descriptions is None:
        raise UserError(f"{where}: absolute grading needs the five score descriptions "
                        "('score1_description' ... 'score5_description', or 'Score 1: ...' lines); "
                        f"or use a preset ({', '.join(PRESET_RUBRICS)})")
    return render_rubric(r, mode)


def _as_list(name: str, value, n: int | None) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise UserError(f"{name} must be a list of strings (or pass single strings everywhere)")
    value = list(value)
    if n is not None and len(value) != n:
        raise UserError(f"{name} has {len(value)} items but instructions has {n}; give one per item")
    return value


def _one_of(name: str, value, alias: str, alias_value):
    if value is not None and alias_value is not None:
        raise UserError(f"give {name}= or {alias}= (prometheus-eval's name), not both")
    if value is None and alias_value is None:
        raise UserError(f"missing {name}= (or prometheus-eval's {alias}=)")
    return value if value is not None else alias_value


def _check_strings(name: str, values: list, optional: bool = False) -> None:
    for i, v in enumerate(values):
        if v is None and optional:
            continue
        if not isinstance(v, str):
            raise UserError(f"{name}[{i}] must be a string, not {type(v).__name__}")


class Judge:
    """A Prometheus-style judge: absolute (1-5) and relative (A/B) grading with feedback.

    ``Judge(model, backend="hf", sampling=None, retries=10, **backend_options)``

    ``sampling``: None for the paper's decoding (temperature 1.0, top-p 0.9, 1,024 new
    tokens, repetition penalty 1.03), a :class:`~judgeforge.backends.Sampling`, or a
    dict of its fields (prometheus-eval's ``max_tokens`` is accepted).  ``retries``: how
    many times an output that does not parse is generated again (prometheus-eval: 10; the paper's script: 5).
    ``strict``: the paper's parser rule instead of the tolerant one.
    """

    def __init__(self, model=None, backend="hf", sampling=None, retries: int = 10, *, strict: bool = False,
                 absolute_variant: str | None = None, relative_variant: str | None = None,
                 absolute_grade_template: str | None = None, relative_grade_template: str | None = None,
                 **backend_options):
        from judgeforge.backends import Backend, get_backend

        self.templates = {ABSOLUTE: check_template(absolute_grade_template, ABSOLUTE, "absolute_grade_template"),
                          RELATIVE: check_template(relative_grade_template, RELATIVE, "relative_grade_template")}

        if isinstance(backend, Backend):
            self.backend, self._owns_backend = backend, False
        elif isinstance(model, Backend):
            self.backend, self._owns_backend = model, False
        else:
            if model is None:
                raise UserError("Judge needs a model (a folder or hub id) or a Backend object")
            if not isinstance(backend, str):
                raise UserError(f"backend must be a name (hf, vllm, openai) or a Backend, not {type(backend).__name__}")
            self.backend, self._owns_backend = get_backend(backend, model, **backend_options), True
        if backend_options and not self._owns_backend:
            raise UserError(f"backend options ({', '.join(backend_options)}) only apply when the Judge builds "
                            "the backend itself; pass them to the backend you built")
        if not isinstance(retries, int) or retries < 0:
            raise UserError(f"retries must be an integer >= 0, got {retries!r}")
        self.sampling = make_sampling(sampling)
        self.retries = retries
        self.strict = strict
        self.variants = {ABSOLUTE: absolute_variant, RELATIVE: relative_variant}
        self._local = threading.local()

    # ------------------------------------------------------------------ identity / lifetime

    def describe(self) -> str:
        return self.backend.describe()

    def close(self) -> None:
        if self._owns_backend:
            self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def last_samples(self) -> list:
        """The full records (:class:`~judgeforge.backends.Sample`) of this thread's last grading call."""
        return getattr(self._local, "samples", [])

    @property
    def last_errors(self) -> list[str | None]:
        """Per item of this thread's last grading call: why it failed (None where it parsed)."""
        return [s.error for s in self.last_samples]

    # ------------------------------------------------------------------ rendering

    def absolute_requests(self, instructions, responses, rubric, reference_answers=None) -> list:
        """One :class:`~judgeforge.backends.Request` per item (lists of equal length)."""
        from judgeforge.backends import Request

        instructions = _as_list("instructions", instructions, None)
        n = len(instructions)
        responses = _as_list("responses", responses, n)
        refs = [None] * n if reference_answers is None else _as_list("reference_answers", reference_answers, n)
        _check_strings("instructions", instructions)
        _check_strings("responses", responses)
        _check_strings("reference_answers", refs, optional=True)
        rubrics = self._rubrics(rubric, n, ABSOLUTE)
        variant, tpl = self.variants[ABSOLUTE], self.templates[ABSOLUTE]
        if tpl is not None:
            return [Request(ABSOLUTE, fill_template(tpl, f"item {k}", instruction=i, response=r, rubric=rb,
                                                    reference_answer=ref))
                    for k, (i, r, rb, ref) in enumerate(zip(instructions, responses, rubrics, refs))]
        return [Request(ABSOLUTE, render_absolute(i, r, rb, ref, variant=variant))
                for i, r, rb, ref in zip(instructions, responses, rubrics, refs)]

    def relative_requests(self, instructions, responses_a, responses_b, rubric, reference_answers=None) -> list:
        from judgeforge.backends import Request

        instructions = _as_list("instructions", instructions, None)
        n = len(instructions)
        responses_a = _as_list("responses_a", responses_a, n)
        responses_b = _as_list("responses_b", responses_b, n)
        refs = [None] * n if reference_answers is None else _as_list("reference_answers", reference_answers, n)
        _check_strings("instructions", instructions)
        _check_strings("responses_a", responses_a)
        _check_strings("responses_b", responses_b)
        _check_strings("reference_answers", refs, optional=True)
        rubrics = self._rubrics(rubric, n, RELATIVE)
        variant, tpl = self.variants[RELATIVE], self.templates[RELATIVE]
        if tpl is not None:
            return [Request(RELATIVE, fill_template(tpl, f"item {k}", instruction=i, response_A=a, response_B=b,
                                                    rubric=rb, reference_answer=ref))
                    for k, (i, a, b, rb, ref) in enumerate(zip(instructions, responses_a, responses_b, rubrics, refs))]
        return [Request(RELATIVE, render_relative(i, a, b, rb, ref, variant=variant))
                for i, a, b, rb, ref in zip(instructions, responses_a, responses_b, rubrics, refs)]

    def _rubrics(self, rubric, n: int, mode: str) -> list[str]:
        if isinstance(rubric, (list, tuple)):
            if len(rubric) != n:
                raise UserError(f"rubric has {len(rubric)} entries but instructions has {n}; "
                                "give one rubric, or one per item")
            cache: dict[int, str] = {}
            out = []
            for i, r in enumerate(rubric):
                key = id(r)
                if key not in cache:
                    cache[key] = self._rubric_text(r, mode, f"rubric[{i}]")
                out.append(cache[key])
            return out
        return [self._rubric_text(rubric, mode, "rubric")] * n

    def _rubric_text(self, rubric, mode: str, where: str) -> str:
        # with the user's own template a rubric string goes in as written (prometheus-eval's behaviour)
        if self.templates[mode] is not None and isinstance(rubric, str) and ("\n" in rubric or " " in rubric.strip()):
            return rubric
        return resolve_rubric(rubric, mode, where=where)

    # ------------------------------------------------------------------ grading

    def grade(self, requests: list, sampling=None) -> list:
        """Generate and parse one sample per request (retrying failures); full records, in order."""
        from judgeforge.backends import generate_parsed

        if not requests:
            self._local.samples = []
            return []
        s = self.sampling if sampling is None else make_sampling(sampling)
        samples = [per[0] for per in generate_parsed(self.backend, list(requests), s, n=1, retries=self.retries,
                                                     strict=self.strict)]
        self._local.samples = samples
        return samples

    def absolute_grade(self, instructions, responses, rubric, reference_answers=None, *, params=None,
                       sampling=None, reference_answer=None):
        """``(feedbacks, scores)`` for lists, or ``(feedback, score)`` for single strings.

        Scores are integers 1-5; an item that never parsed gives ``None`` for both (see
        :attr:`last_errors`).
        """
        single = isinstance(instructions, str)
        if single:
            if not isinstance(responses, str):
                raise UserError("a single instruction needs a single response string (or pass lists for both)")
            ref = reference_answers if reference_answers is not None else reference_answer
            if ref is not None and not isinstance(ref, str):
                raise UserError("reference_answer must be a string for a single item")
            instructions, responses, reference_answers = [instructions], [responses], None if ref is None else [ref]
        elif reference_answer is not None:
            raise UserError("reference_answer= is for a single item; pass reference_answers=[...] with lists")
        requests = self.absolute_requests(instructions, responses, rubric, reference_answers)
        return self._finish(requests, params if sampling is None else sampling, single)

    def relative_grade(self, instructions, responses_a=None, responses_b=None, rubric=None, reference_answers=None,
                       *, params=None, sampling=None, reference_answer=None, responses_A=None, responses_B=None):
        """``(feedbacks, winners)`` ("A" / "B") for lists, or ``(feedback, winner)`` for single strings.

        prometheus-eval's ``responses_A=`` / ``responses_B=`` are the same as ``responses_a`` / ``responses_b``."""
        responses_a = _one_of("responses_a", responses_a, "responses_A", responses_A)
        responses_b = _one_of("responses_b", responses_b, "responses_B", responses_B)
        if rubric is None:
            raise UserError("relative_grade needs a rubric (a preset name such as 'helpfulness', or criteria)")
        single = isinstance(instructions, str)
        if single:
            if not (isinstance(responses_a, str) and isinstance(responses_b, str)):
                raise UserError("a single instruction needs single response strings (or pass lists for all)")
            ref = reference_answers if reference_answers is not None else reference_answer
            if ref is not None and not isinstance(ref, str):
                raise UserError("reference_answer must be a string for a single item")
            instructions, responses_a, responses_b = [instructions], [responses_a], [responses_b]
            reference_answers = None if ref is None else [ref]
        elif reference_answer is not None:
            raise UserError("reference_answer= is for a single item; pass reference_answers=[...] with lists")
        requests = self.relative_requests(instructions, responses_a, responses_b, rubric, reference_answers)
        return self._finish(requests, params if sampling is None else sampling, single)

    # prometheus-eval's names for the single-item forms
    def single_absolute_grade(self, instruction: str, response: str, rubric, reference_answer=None, *,
                              params=None):
        return self.absolute_grade(instruction, response, rubric, reference_answer, params=params)

    def single_relative_grade(self, instruction: str, response_a: str | None = None, response_b: str | None = None,
                              rubric=None, reference_answer=None, *, params=None, response_A=None, response_B=None):
        return self.relative_grade(instruction, _one_of("response_a", response_a, "response_A", response_A),
                                   _one_of("response_b", response_b, "response_B", response_B), rubric,
                                   reference_answer, params=params)

    def _finish(self, requests, sampling, single: bool):
        samples = self.grade(requests, sampling)
        feedbacks = [s.feedback if s.ok else None for s in samples]
        results = [s.result if s.ok else None for s in samples]
        if single:
            return feedbacks[0], results[0]
        return feedbacks, results


# --------------------------------------------------------------------------- a scripted tiny judge

SCRIPTED_PREFIX = "Fine; Result: A. Score="


def make_scripted_judge(out_dir, scores=(3,), *, prefix: str = SCRIPTED_PREFIX, seed: int = 0, hidden: int = 64):
    """A tiny Mistral model folder whose every answer is ``prefix`` + one of ``scores``.

    For demos, load tests and CI, where a random tiny model never writes a parseable
    grade.  The default answer, ``"Fine; Result: A. Score=3"``, parses as score 3 in
    absolute mode and as "A" in relative mode.  With several ``scores`` the last token is
    drawn uniformly among them when sampling (greedy takes the lowest token id), so
    rewards vary within a GRPO group.

    It is an ordinary Hugging Face folder (real tokenizer, real ``generate``) whose weights
    are set by hand to make a bigram chain: every layer's output projections are zero, so
    the last hidden state is the (normalised) embedding of the current token; the chain's
    tokens get orthogonal embeddings and the output layer maps each one to the next (the
    score digits to EOS).  The chain starts at the token that ends every judge prompt
    (``]`` of ``[/INST]``), so the prefix's tokens must be distinct and must not contain it.
    """
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM

    from judgeforge.tiny import tiny_config
    from judgeforge.tokenization import load_tokenizer

    tok = load_tokenizer("mistral-v1")
    start = tok("[/INST]", add_special_tokens=False)["input_ids"][-1]
    chain = [start] + list(tok(prefix, add_special_tokens=False)["input_ids"])
    digits = []
    for s in scores:
        ids = tok(f"{prefix}{s}", add_special_tokens=False)["input_ids"]
        if ids[:-1] != chain[1:] or len(ids) != len(chain):
            raise UserError(f"make_scripted_judge: '{s}' is not one token after the prefix {prefix!r}")
        digits.append(ids[-1])
    if len(set(chain + digits)) != len(chain) + len(digits) or tok.eos_token_id in chain + digits:
        raise UserError(f"make_scripted_judge: the tokens of {prefix!r} and the scores must be distinct and must "
                        "not include the prompt's last token")
    if len(chain) + len(digits) > hidden:
        raise UserError(f"make_scripted_judge: {len(chain) + len(digits)} tokens need hidden >= that")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(hidden=hidden, tie=False), dtype=torch.float32)
    gain = 4.0  # a logit of gain * sqrt(hidden) = 32 against ~1 for any other token
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        head = model.lm_head.weight
        nexts = {t: [chain[i + 1]] for i, t in enumerate(chain[:-1])}
        nexts[chain[-1]] = digits
        for d in digits:
            nexts[d] = [tok.eos_token_id]
        for t in list(nexts.keys()) + [tok.eos_token_id]:
            head[t].zero_()
        for dim, (t, targets) in enumerate(nexts.items()):
            emb[t].zero_()
            emb[t, dim] = 1.0
            for target in targets:
                head[target, dim] = gain
    model.generation_config.pad_token_id = 0
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


__all__ = ["Judge", "make_sampling", "make_scripted_judge", "resolve_rubric"]
