"""The Hugging Face Hub, the one place judgeforge talks to it (through ``huggingface_hub``).

* :func:`resolve_model` - a model given where a folder is expected: a local folder is returned as is;
  a hub id (``owner/name``) is fetched with ``snapshot_download`` (config, safetensors, tokenizer files:
  no pickles) into the Hugging Face cache and its snapshot folder returned.  ``HF_HUB_OFFLINE=1`` uses
  the cache only; offline or unreachable is one line naming ``HF_HUB_OFFLINE`` and the local-folder way.
* :func:`push_folder` - ``create_repo`` + ``upload_folder`` of a finished output (``push_to_hub``).
* :func:`card` - a model card (README.md): YAML front matter in the Hub's conventions (``base_model``,
  ``datasets``, ``library_name``, ``tags``, ``model-index`` from an eval report) and a body.

``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read when a function runs (not only when ``huggingface_hub`` is
imported), so a test can point them at a local stub.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from judgeforge.errors import UserError, hub_fix

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
# what a model folder needs; never pickles (judgeforge reads safetensors only)
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "README.md"]


def is_hub_id(name) -> bool:
    s = str(name)
    return bool(_REPO_ID.match(s)) and ".." not in s and not s.endswith((".", "/"))


def check_repo_id(repo_id, where: str) -> None:
    if not is_hub_id(repo_id):
        raise UserError(f"{where}: '{repo_id}' is not a hub repository id; use owner/name (letters, digits, '-', "
                        "'_', '.')")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or \
        os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def resolve_model(name, role: str = "model") -> str:
    """``name`` as a local folder: itself when it exists (or can only be a path), else the downloaded
    snapshot of hub id ``name``.  Errors are one line."""
    from judgeforge.weights import looks_local

    s = str(name)
    if Path(s).expanduser().exists() or looks_local(s):
        return s
    if not is_hub_id(s):
        raise UserError(f"{role} '{s}' is neither a local folder nor a hub id (owner/name); check the path")
    import huggingface_hub.errors as E
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id=s, allow_patterns=MODEL_FILES, endpoint=_endpoint(),
                                 local_files_only=_offline())
    except (E.RepositoryNotFoundError, E.GatedRepoError) as e:
        kind = "is gated; accept its terms on the hub and set HF_TOKEN" if isinstance(e, E.GatedRepoError) else \
            "is not a local folder, and the hub has no such repository (or it is private: set HF_TOKEN)"
        raise UserError(f"{role} '{s}' {kind}") from None
    except E.RevisionNotFoundError:
        raise UserError(f"{role} '{s}': the hub has no such revision; check the name") from None
    except (E.LocalEntryNotFoundError, E.OfflineModeIsEnabled):
        raise UserError(f"{role} '{s}' could not be fetched: {hub_fix(s)}") from None
    except (E.HfHubHTTPError, OSError, ValueError) as e:
        raise UserError(f"{role} '{s}' could not be fetched ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                        f"{hub_fix(s)}") from None
    except Exception as e:  # httpx transport errors (refused, DNS, timeout) have no common base here
        if type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
            raise UserError(f"{role} '{s}': the hub is unreachable ({type(e).__name__}); {hub_fix(s)}") from None
        raise


def push_folder(folder, repo_id: str, *, private: bool = False, where: str = "push_to_hub",
                allow_patterns: list[str] | None = None, message: str | None = None) -> str:
    """Create ``repo_id`` (if needed) and upload ``folder``; returns the commit URL."""
    check_repo_id(repo_id, f"{where}: hub_model_id")
    if _offline():
        raise UserError(f"{where}: HF_HUB_OFFLINE is set, so nothing can be pushed; unset it, or push later with "
                        f"'hf upload {repo_id} {folder}'")
    import huggingface_hub.errors as E
    from huggingface_hub import HfApi

    api = HfApi(endpoint=_endpoint())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), allow_patterns=allow_patterns,
                                 ignore_patterns=[".*", "**/.*"],
                                 commit_message=message or f"judgeforge: upload {Path(folder).name}")
    except E.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        fix = "set HF_TOKEN (a write token) or run 'hf auth login'" if status in (401, 403) else \
            f"check hub_model_id, or push later with 'hf upload {repo_id} {folder}'"
        raise UserError(f"{where}: the hub refused {repo_id} ({str(e).splitlines()[0][:160]}); {fix}") from None
    except Exception as e:
        if type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
            raise UserError(f"{where}: the hub is unreachable ({type(e).__name__}); push later with "
                            f"'hf upload {repo_id} {folder}'") from None
        raise
    return str(getattr(info, "commit_url", info))


# --------------------------------------------------------------------------- model cards

METRICS = ("pearson", "spearman", "kendall", "accuracy")


def eval_results(report: dict) -> list[dict]:
    """``[{benchmark, mode, metric, value, n}]`` from an eval ``report.json`` (metrics without a value left out)."""
    rows = []
    for name, b in (report.get("benchmarks") or {}).items():
        for mode, m in (b.get("modes") or {}).items():
            for metric in METRICS:
                v = m.get(metric)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append({"benchmark": name, "mode": mode, "metric": metric, "value": float(v),
                                 "n": m.get("n_scored")})
    return rows


def read_report(path) -> dict | None:
    import json

    p = Path(path)
    p = p / "report.json" if p.is_dir() else p
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def card(meta: dict, body: list[str], *, name: str, report: dict | None = None) -> str:
    """README.md text: front matter ``meta`` (+ ``model-index`` from ``report``) then ``body`` lines."""
    import yaml

    meta = {k: v for k, v in meta.items() if v not in (None, [], {})}
    lines = list(body)
    rows = eval_results(report) if report else []
    if rows:
        meta["model-index"] = [{"name": name, "results": [
            {"task": {"type": "text-generation", "name": f"LLM-as-a-judge ({r['mode']} grading)"},
             "dataset": {"name": r["benchmark"], "type": r["benchmark"]},
             "metrics": [{"type": r["metric"], "value": round(r["value"], 4), "name": f"{r['metric']} (n={r['n']})"}]}
            for r in rows]}]
        lines += ["", "## Evaluation", "", "| benchmark | mode | metric | value | n |", "|---|---|---|---:|---:|"]
        lines += [f"| {r['benchmark']} | {r['mode']} | {r['metric']} | {r['value']:.4f} | {r['n']} |" for r in rows]
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return "---\n" + front + "---\n" + "\n".join(lines).rstrip("\n") + "\n"


def front_matter(folder) -> dict:
    """The YAML front matter of ``folder/README.md`` ({} when there is none)."""
    import yaml

    try:
        text = (Path(folder).expanduser() / "README.md").read_text(encoding="utf-8")
        meta = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else None
    except (OSError, IndexError, yaml.YAMLError):
        meta = None
    return meta if isinstance(meta, dict) else {}


def _ids(value) -> list[str]:
    return [v for v in ([value] if isinstance(value, str) else value or []) if isinstance(v, str) and is_hub_id(v)]


def lineage(inputs) -> tuple[list[str], list[str]]:
    """``(base_models, datasets)`` behind model inputs: a hub id is itself a base model; a local folder
    contributes the ``base_model`` and ``datasets`` its own card names (e.g. a judgeforge expert's)."""
    bases: list[str] = []
    datasets: list[str] = []
    for name in inputs:
        s = str(name)
        if is_hub_id(s) and not Path(s).expanduser().exists():
            bases.append(s)
            continue
        meta = front_matter(s)
        bases += _ids(meta.get("base_model"))
        datasets += _ids(meta.get("datasets"))
    return list(dict.fromkeys(bases)), list(dict.fromkeys(datasets))
