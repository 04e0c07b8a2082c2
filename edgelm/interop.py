"""What other tools need to open edgelm's folders as their own, written next to edgelm's files.

- `write_sentence_transformers`: sentence-transformers' module files for an encoder folder, so that
  `SentenceTransformer(folder)` pools, normalises and prefixes exactly as edgelm does (the prefixes are
  its prompts; edgelm's default prefix is the default prompt).
- `write_model_card`: a README.md (Hugging Face model-card front matter, then what the model is, what
  it was measured at, and how to run it) for any folder a user ships: a student, a task model, a bundle.
  Measured scores live in `scores.json` beside it (`write_scores`), so a card is regenerated, never
  hand-edited.
"""

from __future__ import annotations

import json
from pathlib import Path

ST_MODULES = "modules.json"
SCORES = "scores.json"
CARD = "README.md"


def write_sentence_transformers(folder: Path, *, hidden: int, pooling: str, normalize: bool, prefixes: dict[str, str],
                                default_prefix: str | None, max_length: int) -> None:
    """Write modules.json, sentence_bert_config.json, config_sentence_transformers.json and the pooling
    (and normalisation) module folders into the encoder folder `folder`."""
    if pooling not in ("mean", "cls"):
        raise ValueError(f"sentence-transformers has no pooling {pooling!r} here")
    folder = Path(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    _json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False, "include_prompt": True})  # edgelm pools over the prefix's tokens too
    _json(folder / ST_MODULES, modules)
    _json(folder / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    _json(folder / "config_sentence_transformers.json", {
        "prompts": dict(prefixes), "default_prompt_name": default_prefix if default_prefix in prefixes else None,
        "similarity_fn_name": "cosine", "model_type": "SentenceTransformer"})


def read_scores(folder: Path) -> dict:
    """The scores `edgelm eval` recorded for the folder (empty when none were)."""
    f = Path(folder) / SCORES
    try:
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def write_scores(folder: Path, scores: dict) -> None:
    _json(Path(folder) / SCORES, scores)


def write_model_card(folder: Path, *, title: str, summary: str, languages: list[str], facts: dict[str, str],
                     usage: str, scores: dict | None = None, license: str | None = None, tags: list[str] = (),
                     base_model: str | None = None) -> None:
    """Write README.md: front matter (language, licence, tags, library), the facts table, the measured
    scores (or how to measure them), and how to run the model."""
    iso = sorted({lang.split("_")[0] for lang in languages if lang})
    front = ["---", "language:", *([f"- {code}" for code in iso] or ["- multilingual"])]
    if license:
        front.append(f"license: {license}")
    if base_model:
        front.append(f"base_model: {base_model}")
    front += ["library_name: edgelm", "tags:", *[f"- {t}" for t in ("edgelm", *tags)], "---", ""]
    lines = [f"# {title}", "", summary, "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", "## Measured", ""]
    if scores and scores.get("rows"):
        lines += [f"Measured by `{scores.get('command', 'edgelm eval')}` ({scores.get('machine', 'this machine')}):", "",
                  "| task | language | metric | score |", "|---|---|---|---|"]
        lines += [f"| {r['task']} | {r['language']} | {r['metric']} | {r['score']:.4f} |" for r in scores["rows"]]
    else:
        lines.append("Not measured yet: `edgelm eval FOLDER --card` scores it and writes the result here.")
    lines += ["", "## Run it", "", usage.strip(), ""]
    (Path(folder) / CARD).write_text("\n".join(front + lines), encoding="utf-8")


def _json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
