"""How a judge prompt is wrapped for one model: its chat format.

Three formats (``FORMATS``):

``mistral``
    Prometheus 2's wrapping, byte for byte: ``[INST] {system}\\n\\n{instruction} [/INST]``
    with the tokenizer's BOS in front and ``</s>`` after the output
    (:func:`judgeforge.format.prompts.chat_prompt`).  Mistral-family models use it.
``model``
    The tokenizer's own chat template (``apply_chat_template`` with the generation prompt);
    the system prompt is a system message, or is folded into the user turn where the
    template rejects a system role.  The output ends with the template's end-of-turn
    token (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3), which training learns
    and generation stops at.
``raw``
    No wrapping: ``{system}\\n\\n{instruction}`` after the tokenizer's BOS, for judges trained
    elsewhere on plain text.

In ``mistral`` and ``raw`` "the tokenizer's BOS" is what tokenising with special tokens adds: a
tokenizer whose post-processor adds none (some Llama 3 copies) gets no BOS, in training and
evaluation alike.  Prepending ``bos_token`` by hand instead would be wrong for tokenizers whose
``bos_token`` is a chat marker (SmolLM2's is ``<|im_start|>``).

:func:`resolve_chat_format` picks one for a tokenizer: an explicit override first, then the
format written into a judge's folder when it was trained (``chat_format.json``, so that
training, evaluation, serving and synthesis agree), then the model itself: a template that
speaks ``[INST]`` or a Mistral vocabulary means ``mistral``, any other chat template
``model``.  A tokenizer with neither is a one-line error that names ``--chat_format``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from judgeforge.errors import UserError
from judgeforge.format.prompts import CHAT_TEMPLATE, SYSTEM_PROMPTS, chat_prompt, check_mode, user_content

MISTRAL, MODEL, RAW = "mistral", "model", "raw"
FORMATS = (MISTRAL, MODEL, RAW)
FORMAT_FILE = "chat_format.json"
_MARK = "\u2063JUDGEFORGE_OUTPUT\u2063"


def check_format(name: str, where: str = "chat_format") -> str:
    if name not in FORMATS:
        raise UserError(f"{where}: unknown chat format '{name}'; use mistral, model or raw")
    return name


def looks_mistral(tokenizer) -> bool:
    """Mistral's SentencePiece vocabularies (v1 32,000 / v3 32,768 tokens, ``<s>`` ... ``</s>``)."""
    return (getattr(tokenizer, "bos_token", None) == "<s>" and getattr(tokenizer, "eos_token", None) == "</s>"
            and len(tokenizer) in (32000, 32768))


@dataclass
class ChatFormat:
    """A chat format bound to a tokenizer: the prompt text, how to tokenise it, the end token."""

    name: str
    tokenizer: object = field(repr=False)
    reason: str = ""

    def __post_init__(self):
        check_format(self.name)
        self._system_role: bool | None = None
        self._eos: int | None = None

    # ------------------------------------------------------------------ text

    def prompt(self, instruction: str, mode: str, system_prompt: str | None = None) -> str:
        """The text before the judge's output (without the BOS that tokenising adds, see
        :attr:`add_special_tokens`)."""
        if self.name == MISTRAL:
            return chat_prompt(instruction, mode, system_prompt)
        if self.name == RAW:
            return user_content(instruction, mode, system_prompt)
        system = SYSTEM_PROMPTS[check_mode(mode)] if system_prompt is None else system_prompt
        return self._render(system, instruction, None, generation=True)

    def messages(self, instruction: str, mode: str, system_prompt: str | None = None) -> list[dict]:
        """The chat messages :meth:`prompt` renders (system as its own message where the template takes one)."""
        system = SYSTEM_PROMPTS[check_mode(mode)] if system_prompt is None else system_prompt
        return self._messages(system, instruction, None)

    def _messages(self, system: str, user: str, output: str | None) -> list[dict]:
        if system and self.name == MODEL and self.system_role:
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        else:
            msgs = [{"role": "user", "content": f"{system}\n\n{user}" if system else user}]
        if output is not None:
            msgs.append({"role": "assistant", "content": output})
        return msgs

    def _render(self, system: str, user: str, output: str | None, *, generation: bool) -> str:
        return self.tokenizer.apply_chat_template(self._messages(system, user, output), tokenize=False,
                                                  add_generation_prompt=generation)

    @property
    def system_role(self) -> bool:
        """Whether the model's template takes a system message (else it is folded into the user turn)."""
        if self._system_role is None:
            try:
                text = self.tokenizer.apply_chat_template(
                    [{"role": "system", "content": _MARK}, {"role": "user", "content": "x"}],
                    tokenize=False, add_generation_prompt=True)
                self._system_role = _MARK in text
            except Exception:  # noqa: BLE001 - jinja's raise_exception: the template rejects the role
                self._system_role = False
        return self._system_role

    # ------------------------------------------------------------------ tokens

    @property
    def add_special_tokens(self) -> bool:
        """Whether tokenising the prompt adds the tokenizer's BOS (a model's template writes its own)."""
        return self.name != MODEL

    @property
    def eos_id(self) -> int | None:
        """The token that ends the judge's output: trained after it, and where generation stops."""
        if self._eos is None:
            self._eos = self._end_of_turn() if self.name == MODEL else self.tokenizer.eos_token_id
        return self._eos

    def _end_of_turn(self) -> int | None:
        tok = self.tokenizer
        try:
            text = tok.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": _MARK}],
                                           tokenize=False)
        except Exception:  # noqa: BLE001 - a template without an assistant turn: the tokenizer's EOS
            return tok.eos_token_id
        tail = text[text.rfind(_MARK) + len(_MARK):].strip() if _MARK in text else ""
        ids = tok(tail, add_special_tokens=False)["input_ids"] if tail else []
        special = set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}) or {})
        if ids and ids[0] in special:
            return ids[0]
        return tok.eos_token_id

    def encode_prompt(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"])

    def describe(self) -> str:
        end = self.tokenizer.convert_ids_to_tokens(self.eos_id) if self.eos_id is not None else None
        return f"chat format: {self.name} ({self.reason}); the output ends with {end!r}"

    def save(self, folder: str | os.PathLike) -> None:
        """Write the format into a judge's folder, so every later stage wraps prompts the same way."""
        save_format(folder, self.name)


def save_format(folder: str | os.PathLike, name: str) -> None:
    """Write ``chat_format.json`` naming ``name`` into a judge folder."""
    from judgeforge.io import atomic_write_json

    atomic_write_json(Path(folder) / FORMAT_FILE, {"chat_format": check_format(name)})


def saved_format(folder) -> str | None:
    """The format written into a judge folder when it was trained, or None."""
    if folder is None:
        return None
    path = Path(folder) / FORMAT_FILE
    if not path.is_file():
        return None
    try:
        name = json.loads(path.read_text(encoding="utf-8"))["chat_format"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a chat format file (expected {{\"chat_format\": \"mistral|model|raw\"}}); "
                        "fix or delete it") from None
    return check_format(name, str(path))


def agreed_format(experts, override: str | None = None, where: str = "merge") -> str | None:
    """The chat format a merge of judge folders keeps: ``override``, else the one their ``chat_format.json``
    files record (None: no expert records one).  Experts recording different formats are one
    :class:`UserError`: their merge would be prompted in a format one of them never saw."""
    if override not in (None, "auto"):
        return check_format(override, f"{where}: chat_format")
    found = {str(e): saved_format(e) for e in experts
             if isinstance(e, (str, os.PathLike)) and Path(e).is_dir()}
    names = sorted({f for f in found.values() if f})
    if len(names) > 1:
        listing = ", ".join(f"{e}: {f or 'none recorded'}" for e, f in found.items())
        raise UserError(f"{where}: the experts were trained with different chat formats ({listing}); merge experts "
                        "of one format, or pass --chat_format mistral|model|raw to choose the merged judge's")
    return names[0] if names else None


def resolve_chat_format(tokenizer, *, folder=None, override: str | None = None, where: str | None = None) -> ChatFormat:
    """The chat format for a model: ``override`` (None or "auto": none), else the folder's saved one, else
    detected.  ``folder``: the model's folder, or a hub id / None (then nothing is read from disk)."""
    folder = folder if folder is not None and Path(folder).is_dir() else None
    override = None if override == "auto" else override
    where = where or str(folder or getattr(tokenizer, "name_or_path", "") or "the model")
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one
        template = template.get("default")
    if override:
        check_format(override, "--chat_format")
        if override == MODEL and not template:
            raise UserError(f"{where}: --chat_format model needs a chat template, and this tokenizer has none; "
                            "use --chat_format mistral or raw")
        return ChatFormat(override, tokenizer, "set explicitly")
    saved = saved_format(folder)
    if saved:
        if saved == MODEL and not template:
            raise UserError(f"{where}: trained with its chat template (chat_format.json), but the tokenizer has "
                            "none now; restore tokenizer_config.json or pass --chat_format")
        return ChatFormat(saved, tokenizer, f"from {FORMAT_FILE}")
    if template == CHAT_TEMPLATE or (template and "[INST]" in template):
        return ChatFormat(MISTRAL, tokenizer, "Mistral-style [INST] template")
    if template:
        return ChatFormat(MODEL, tokenizer, "the model's own chat template")
    if looks_mistral(tokenizer) or _model_type(folder) in ("mistral", "mixtral"):
        return ChatFormat(MISTRAL, tokenizer, "Mistral-family model")
    raise UserError(f"{where}: the tokenizer has no chat template and the model is not Mistral-family, so the "
                    "judge prompt format is unknown; pass --chat_format mistral ([INST] folding, as Prometheus), "
                    "model (needs a chat template) or raw (the prompt as plain text)")


def _model_type(folder) -> str | None:
    if folder is None:
        return None
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None
