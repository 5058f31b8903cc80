"""Tokenisation for training: (prompt, completion) -> input ids and labels.

The rules of the Prometheus 2 recipe:

* the text is ``<s>`` + prompt + completion + ``</s>``, where the prompt is
  ``[INST] {system}\\n\\n{instruction} [/INST]`` (see :mod:`judgeforge.format.prompts`);
  a model in another chat format (:mod:`judgeforge.format.chat`) has its own template's
  prompt and end-of-turn token instead;
* the loss covers the completion and the EOS only: every token through ``[/INST]``
  has label -100;
* the pad token is the unk token (id 0), as in the original recipe;
* a row longer than ``max_length`` is either dropped (``overlong="drop"``, the default:
  a truncated judge example loses its ``[RESULT]``) or cut to ``max_length`` from the
  right (``overlong="truncate"``, what the original TRL 0.7.7 trainer did).  Either way
  it is counted and reported, never silent.

The whole text is tokenised in one piece, exactly as the chat template renders it, so the
first output token is whatever SentencePiece makes of ``]`` followed by the output.

The real Mistral v1 tokenizer (32,000 tokens) ships offline in the ``mistral-common``
package; ``load_tokenizer("mistral-v1")`` builds a Hugging Face tokenizer folder from it
once and caches it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from judgeforge.errors import UserError, hub_fix
from judgeforge.io import atomic_dir

BUILTIN_TOKENIZERS = ("mistral-v1",)
IGNORE_INDEX = -100


def cache_root() -> Path:
    return Path(os.environ.get("JUDGEFORGE_CACHE", Path.home() / ".cache" / "judgeforge"))


def mistral_v1_tokenizer_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """A Hugging Face tokenizer folder for Mistral's v1 SentencePiece model, built offline."""
    final = Path(cache_dir) if cache_dir else cache_root() / "tokenizer-mistral-v1"
    if (final / "tokenizer.json").exists():
        return final
    try:
        import mistral_common
        import sentencepiece  # noqa: F401 - orders the merges (_fix_merges)
    except ImportError as e:
        raise UserError(f"the built-in 'mistral-v1' tokenizer needs {e.name}: pip install 'judgeforge[offline-tokenizer]' "
                        "(or pass a tokenizer folder or hub id)") from None
    from transformers import AutoTokenizer

    from judgeforge.format.prompts import CHAT_TEMPLATE

    model = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not model.exists():
        raise UserError(f"mistral-common has no {model.name}; pip install 'mistral-common>=1.5'")
    try:
        with atomic_dir(final) as tmp:
            shutil.copy(model, tmp / "tokenizer.model")
            (tmp / "tokenizer_config.json").write_text(
                json.dumps(
                    {
                        "tokenizer_class": "LlamaTokenizer",
                        "bos_token": "<s>",
                        "eos_token": "</s>",
                        "unk_token": "<unk>",
                        "add_bos_token": True,
                        "add_eos_token": False,
                        "legacy": False,
                    }
                )
            )
            tok = AutoTokenizer.from_pretrained(tmp)
            tok.pad_token = tok.unk_token
            tok.chat_template = CHAT_TEMPLATE
            tok.save_pretrained(tmp)
            _fix_merges(tmp / "tokenizer.json", model)
    except FileExistsError:  # another process built it at the same time
        pass
    return final


def _fix_merges(tokenizer_json: Path, spm_model: Path) -> None:
    """Order the BPE merges as SentencePiece applies them, so ids match ``sentencepiece`` exactly.

    transformers' conversion of ``tokenizer.model`` ranks the whitespace-run merges
    ("▁▁", "▁▁▁▁" ...) first, so runs of spaces (code indentation, "###Feedback:  [/INST]")
    split differently from SentencePiece.  SentencePiece merges the pair whose merged piece
    has the highest score, leftmost first on ties; the whitespace pieces all share one
    score, and ranking longer results first among them reproduces the leftmost growth.
    """
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    merges = []
    for piece, i in vocab.items():
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i):
            continue
        score = sp.get_score(i)
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                merges.append((-score, -len(piece), vocab[left], vocab[right], left, right))
    merges.sort()
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    data["model"]["merges"] = [[m[4], m[5]] for m in merges]
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def load_tokenizer(name_or_path: str | os.PathLike = "mistral-v1", *, trust_remote_code: bool = False):
    """A tokenizer ready for judge training: pad = unk, the judge chat template when none is set."""
    from transformers import AutoTokenizer

    from judgeforge.format.chat import looks_mistral
    from judgeforge.format.prompts import CHAT_TEMPLATE

    src = mistral_v1_tokenizer_dir() if str(name_or_path) in BUILTIN_TOKENIZERS else name_or_path
    try:
        tok = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise UserError(f"cannot load a tokenizer from '{name_or_path}': {str(e).splitlines()[0]}; "
                        f"{hub_fix(name_or_path)}") from None
    except Exception as e:  # noqa: BLE001 - a local folder's tokenizer files are the user's: corrupt or missing
        if not Path(src).is_dir():
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        files = [f for f in ("tokenizer.json", "tokenizer.model") if (Path(src) / f).is_file()]
        what = f"{' and '.join(files)} cannot be read ({type(e).__name__}: {first})" if files else \
            "has no tokenizer (no tokenizer.json or tokenizer.model)"
        raise UserError(f"{name_or_path}: {what}; copy the tokenizer files of its base model into the "
                        "folder") from None
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    if not getattr(tok, "chat_template", None) and looks_mistral(tok):
        tok.chat_template = CHAT_TEMPLATE  # a Mistral base without one: the judge's [INST] folding
    return tok


@dataclass
class EncodeStats:
    kept: int = 0
    dropped_overlong: int = 0
    truncated: int = 0
    dropped_no_target: int = 0
    longest: int = 0
    dropped_ids: list = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.kept} rows kept"]
        if self.dropped_overlong:
            parts.append(f"{self.dropped_overlong} dropped as longer than max_length")
        if self.truncated:
            parts.append(f"{self.truncated} truncated to max_length")
        if self.dropped_no_target:
            parts.append(f"{self.dropped_no_target} dropped with no output token left after truncation")
        return ", ".join(parts)


def encode(tokenizer, prompt: str, completion: str, chat=None) -> tuple[list[int], int]:
    """Token ids of BOS + prompt + completion + EOS, and the number of prompt tokens (BOS included).

    ``chat`` (a :class:`judgeforge.format.chat.ChatFormat`) decides the rest: a model's own
    template writes its BOS itself, and its end-of-turn token (``<|im_end|>``) is the EOS.
    Without one: the tokenizer's BOS and EOS (the Mistral recipe)."""
    return encode_many(tokenizer, [prompt], [completion], chat)[0]


ENCODE_CHUNK = 512  # rows per tokenizer call in encode_many


def encode_many(tokenizer, prompts: list[str], completions: list[str], chat=None) -> list[tuple[list[int], int]]:
    """:func:`encode` for many rows, with one tokenizer call per chunk of rows (the per-call overhead
    of a transformers tokenizer is most of the time on short rows); same ids as row by row."""
    special = chat.add_special_tokens if chat is not None else True
    eos = chat.eos_id if chat is not None else tokenizer.eos_token_id
    out = []
    for a in range(0, len(prompts), ENCODE_CHUNK):
        ps, cs = prompts[a:a + ENCODE_CHUNK], completions[a:a + ENCODE_CHUNK]
        fulls = tokenizer([p + c for p, c in zip(ps, cs)], add_special_tokens=special)["input_ids"]
        heads = tokenizer(list(ps), add_special_tokens=special)["input_ids"]
        for p, c, full, head in zip(ps, cs, fulls, heads):
            if full[: len(head)] != head:
                # a token straddles the boundary: split by character offsets instead
                enc = tokenizer(p + c, add_special_tokens=special, return_offsets_mapping=True)
                cut = len(p)
                head = full[: sum(1 for (_s, e) in enc["offset_mapping"] if e <= cut)]
            ids = list(full)
            if eos is not None:
                ids.append(eos)
            out.append((ids, len(head)))
    return out


def count_tokens(tokenizer, prompt: str, completion: str, chat=None) -> int:
    ids, _ = encode(tokenizer, prompt, completion, chat)
    return len(ids)


def encode_for_training(
    tokenizer,
    prompt: str,
    completion: str,
    max_length: int | None = None,
    overlong: str = "drop",
    stats: EncodeStats | None = None,
    row_id=None,
    chat=None,
    encoded: tuple[list[int], int] | None = None,
) -> dict | None:
    """``{"input_ids", "labels"}`` with the prompt masked, or None when the row is dropped.
    ``encoded``: the row's :func:`encode` result when already computed (by :func:`encode_many`)."""
    if overlong not in ("drop", "truncate"):
        raise UserError(f"overlong must be 'drop' or 'truncate', got '{overlong}'")
    stats = stats if stats is not None else EncodeStats()
    ids, n_prompt = encoded if encoded is not None else encode(tokenizer, prompt, completion, chat)
    labels = [IGNORE_INDEX] * n_prompt + ids[n_prompt:]
    if max_length and len(ids) > max_length:
        if overlong == "drop":
            stats.dropped_overlong += 1
            stats.dropped_ids.append(row_id)
            return None
        ids, labels = ids[:max_length], labels[:max_length]
        if all(label == IGNORE_INDEX for label in labels):
            stats.dropped_no_target += 1
            stats.dropped_ids.append(row_id)
            return None
        stats.truncated += 1
    stats.kept += 1
    stats.longest = max(stats.longest, len(ids))
    return {"input_ids": ids, "labels": labels}


def tokenize_rows(
    tokenizer, rows, max_length: int | None = None, overlong: str = "drop", chat=None
) -> tuple[list[dict], EncodeStats]:
    """Tokenise training rows (``prompt`` / ``completion``); returns the kept rows and the counts."""
    stats = EncodeStats()
    out = []
    rows = list(rows)
    pre = encode_many(tokenizer, [r["prompt"] for r in rows], [r["completion"] for r in rows], chat)
    for r, e in zip(rows, pre):
        enc = encode_for_training(tokenizer, r["prompt"], r["completion"], max_length, overlong, stats, r.get("id"),
                                  chat, encoded=e)
        if enc is not None:
            out.append(enc)
    return out, stats
