"""Checkpoint folders: what one is, how to check it, and how its weights, tokenizer and recipe load.

The one low module every stage loads models through: the teacher, a distilled student, a task model,
a routed model's body. Weights load from safetensors only and no code from the folder ever runs.

A folder edgelm writes says what it is in its `config.json`'s `edgelm` block:

    "artifact": {"kind": "student", "format": 1, "edgelm_version": "…", "provenance": {…}}

`kind` is one of `KINDS`. Folders from before the stamp (format 0) and plain transformers checkpoints
are recognised from their config (a sequence-classification head is a task model, a `distilled`
block a student, anything else an encoder), so everything written earlier still loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgelm.errors import EdgelmError
from edgelm.quiet import quiet_optional_imports
from edgelm.version import __version__

CHECKPOINT_FORMAT = 1
KINDS = ("encoder", "student", "task_model")
_POOLER_MODELS = {"bert", "roberta", "xlm-roberta", "camembert"}
_TOKENIZER_SOURCES = ("tokenizer.json", "sentencepiece.bpe.model", "spiece.model", "vocab.txt")


@dataclass(frozen=True)
class EmbeddingRecipe:
    """How token states become one sentence vector."""

    pooling: str = "mean"  # mean over the attention mask, or "cls"
    normalize: bool = True  # L2-normalise the pooled vector
    prefix: str = ""  # prepended to every text (e5: "query: ")

    @classmethod
    def from_config(cls, config, name: str) -> EmbeddingRecipe:
        meta = getattr(config, "edgelm", None) or {}
        prefixes = meta.get("prefixes", {})
        prefix = prefixes.get(meta.get("default_prefix", ""), "")
        if "prefixes" not in meta and "e5" in name.lower():
            prefix = "query: "  # e5 models need it (model card), even when not converted by edgelm
        return cls(meta.get("pooling", "mean"), bool(meta.get("normalize", True)), prefix)

    def with_prefix(self, prefix: str | None) -> EmbeddingRecipe:
        """This recipe, its prefix replaced when `prefix` is given."""
        return self if prefix is None else EmbeddingRecipe(self.pooling, self.normalize, prefix)

    def as_dict(self) -> dict:
        return {"pooling": self.pooling, "normalize": self.normalize, "prefix": self.prefix}


def check_checkpoint(path: Path) -> None:
    """Raise a one-line error unless `path` holds a config, safetensors weights and a tokenizer."""
    if not (path / "config.json").is_file():
        raise EdgelmError(f"{path} is not a model checkpoint: it has no config.json")
    if not any(path.glob("*.safetensors")) and not (path / "model.safetensors.index.json").is_file():
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt*")]
        hint = f" (it has {', '.join(pickled)}: pickle files are never loaded)" if pickled else ""
        raise EdgelmError(f"{path} has no safetensors weights{hint}")
    if not any((path / name).is_file() for name in _TOKENIZER_SOURCES):
        raise EdgelmError(f"{path} has no tokenizer (tokenizer.json)")


def read_config(path: Path) -> dict:
    """A checkpoint's config.json as a dict (one-line errors for a missing or corrupt file)."""
    f = Path(path) / "config.json"
    if not f.is_file():
        raise EdgelmError(f"{path} is not a model checkpoint: it has no config.json")
    try:
        config = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EdgelmError(f"{f} is corrupt (not JSON)") from None
    if not isinstance(config, dict):
        raise EdgelmError(f"{f} is not a model config")
    return config


def stamp(config, kind: str, provenance: dict | None = None) -> None:
    """Record in a transformers config (before `save_pretrained`) what the folder is and where it came from."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    meta = dict(getattr(config, "edgelm", None) or {})
    meta["artifact"] = {"kind": kind, "format": CHECKPOINT_FORMAT, "edgelm_version": __version__,
                        "provenance": provenance or {}}
    config.edgelm = meta


def describe_checkpoint(path: Path) -> dict:
    """{kind, format, edgelm_version, provenance} of a checkpoint folder, stamped or inferred (format 0)."""
    config = read_config(path)
    meta = config.get("edgelm") or {}
    artifact = meta.get("artifact")
    if isinstance(artifact, dict) and artifact.get("kind") in KINDS:
        fmt = artifact.get("format")
        if not isinstance(fmt, int) or fmt > CHECKPOINT_FORMAT:
            raise EdgelmError(f"{path} is checkpoint format {fmt} from edgelm {artifact.get('edgelm_version')}; "
                              f"this edgelm reads format {CHECKPOINT_FORMAT}: upgrade edgelm")
        return dict(artifact)
    if head_labels(path, config) is not None:
        kind = "task_model"
    elif meta.get("distilled"):
        kind = "student"
    else:
        kind = "encoder"
    provenance = {"distilled": meta["distilled"]} if meta.get("distilled") else {"source": meta.get("source")}
    return {"kind": kind, "format": 0, "edgelm_version": None, "provenance": provenance}


HEADS = {"ForSequenceClassification": "sequence", "ForTokenClassification": "token"}


def task_head(path: Path, config: dict | None = None) -> str | None:
    """"sequence" (a sentence classifier), "token" (a word tagger), or None for a plain encoder."""
    if config is None:
        if not (Path(path) / "config.json").is_file():
            return None
        config = read_config(path)
    for arch in config.get("architectures") or []:
        for suffix, head in HEADS.items():
            if arch.endswith(suffix):
                return head
    return None


def head_labels(path: Path, config: dict | None = None) -> list[str] | None:
    """The label names of a classifier or tagger checkpoint, or None for a plain encoder."""
    if config is None:
        if not (Path(path) / "config.json").is_file():
            return None
        config = read_config(path)
    if task_head(path, config) is None:
        return None
    id2label = config.get("id2label") or {}
    return [id2label[str(i)] for i in range(len(id2label))]


def architecture(config) -> dict:
    """The shape numbers of a transformers encoder config (what a bundle records and the Pi 4 estimate needs)."""
    return {"layers": config.num_hidden_layers, "hidden": config.hidden_size, "heads": config.num_attention_heads,
            "intermediate": config.intermediate_size, "vocab": config.vocab_size}


def load_tokenizer(path: Path):
    """The folder's fast tokenizer, loaded offline-safe."""
    quiet_optional_imports()
    from transformers import AutoTokenizer

    # fix_mistral_regex=False silences a spurious transformers 4.57 warning for local folders.
    return AutoTokenizer.from_pretrained(path, use_fast=True, fix_mistral_regex=False)


def load_model(path: Path, model_class=None, **kwargs):
    """Load weights from safetensors (never pickle, never remote code), in eval mode."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized" heads are expected here, not news
    quiet_optional_imports()
    config = AutoConfig.from_pretrained(path)
    model_class = model_class or AutoModel
    if model_class is AutoModel and config.model_type in _POOLER_MODELS:
        kwargs.setdefault("add_pooling_layer", False)  # e5 has no pooler; mean pooling never uses it
    try:
        model = model_class.from_pretrained(path, use_safetensors=True, trust_remote_code=False, **kwargs)
    except OSError as exc:
        raise EdgelmError(f"cannot load weights from {path}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def encode_texts(tokenizer, texts: list[str], prefix: str, max_length: int):
    """Token ids and mask (torch) for prefix + text, truncated to `max_length`, padded to the longest."""
    return tokenizer([prefix + t for t in texts], padding=True, truncation=True, max_length=max_length,
                     return_tensors="pt")


def encode_words(tokenizer, sentences: list[list[str]], prefix: str, max_length: int):
    """Token ids and mask (torch) for sentences given as words, with the recipe's prefix as leading words,
    and for each sentence the position of each word's first sub-word (-1 where truncation cut it)."""
    from edgelm.words import first_subwords

    head = prefix.split()
    batch = tokenizer([head + list(words) for words in sentences], is_split_into_words=True, padding=True,
                      truncation=True, max_length=max_length, return_tensors="pt")
    firsts = [first_subwords(batch.word_ids(i), len(head), len(words)) for i, words in enumerate(sentences)]
    return batch, firsts


def bundled_teacher_of(meta: dict, folder: Path | None = None):
    """The bundled teacher (`teacher.registry.BUNDLED`, with its licence and hub id) a model's `edgelm`
    config block names as its teacher, or that `folder` is; None for any other model."""
    from edgelm.teacher.registry import BUNDLED

    named = ((meta.get("artifact") or {}).get("provenance") or {}).get("teacher") or (
        meta.get("distilled") or {}).get("teacher")
    return BUNDLED.get(named or "") or next((t for t in BUNDLED.values() if folder and t.folder() == folder), None)


def write_interop(folder: Path, config, *, name: str | None = None, parameters: int | None = None,
                  max_length: int = 512) -> None:
    """What other tools need beside a checkpoint's own files, from its config's `edgelm` block:
    sentence-transformers' module files (encoders: `SentenceTransformer(folder)` gives edgelm's vectors)
    and the model card (README.md, with the scores `edgelm eval --card` recorded in scores.json)."""
    from edgelm.interop import read_scores, write_model_card, write_sentence_transformers

    folder = Path(folder)
    name = name or folder.name
    meta = getattr(config, "edgelm", None) or {}
    artifact = meta.get("artifact") or {}
    kind = artifact.get("kind", "encoder")
    prov = artifact.get("provenance") or {}
    recipe = EmbeddingRecipe.from_config(config, str(folder))
    languages = list(prov.get("languages") or (meta.get("distilled") or {}).get("languages") or [])
    teacher_name = prov.get("teacher") or (meta.get("distilled") or {}).get("teacher")
    teacher = bundled_teacher_of(meta)
    labels = [config.id2label[i] for i in sorted(config.id2label)] if kind == "task_model" else []
    head = task_head(folder) if kind == "task_model" else None
    if kind != "task_model":
        write_sentence_transformers(folder, hidden=config.hidden_size, pooling=recipe.pooling,
                                    normalize=recipe.normalize, prefixes=meta.get("prefixes") or {},
                                    default_prefix=meta.get("default_prefix"), max_length=max_length)
    what = {"student": "a bilingual sentence encoder distilled with edgelm (BiStil: trimmed vocabulary, fewer "
                       "layers, distilled from the teacher)",
            "task_model": f"a {'word tagger' if head == 'token' else 'sentence classifier'} distilled with edgelm "
                          "(BiStil phase 2: task distillation with lottery-ticket sparse fine-tuning)",
            }.get(kind, "a sentence encoder converted for edgelm")
    facts = {"kind": kind, "teacher": teacher_name or "–", "languages": ", ".join(languages) or "–",
             "layers × width": f"{config.num_hidden_layers} × {config.hidden_size}",
             "vocabulary": f"{config.vocab_size:,} pieces",
             "parameters": f"{parameters:,}" if parameters else "–",
             "sentence vector": f"{recipe.pooling} pooling{', L2-normalised' if recipe.normalize else ''}"
                                + (f", prefix {recipe.prefix!r}" if recipe.prefix else "")}
    if labels:
        facts["labels"] = ", ".join(labels)
    for key in ("steps", "run"):
        if prov.get(key) is not None:
            facts[f"training {key}"] = str(prov[key])
    if kind == "task_model":
        call = "tag" if head == "token" else "predict"
        usage = (f"```python\nimport edgelm\nmodel = edgelm.load(\"{name}\")\nprint(model.{call}([\"...\"]))\n```\n\n"
                 f"It is a plain transformers checkpoint too: `AutoModelFor{'Token' if head == 'token' else 'Sequence'}"
                 "Classification.from_pretrained(folder)`. On a device: `edgelm export FOLDER --target tflite "
                 "--quantize int8 --out BUNDLE`, then `edgelm run BUNDLE \"...\"` (no torch).")
    else:
        usage = (f"```python\nfrom sentence_transformers import SentenceTransformer\nmodel = SentenceTransformer(\""
                 f"{name}\")\nvectors = model.encode([\"...\"])  # "
                 + (f"the {recipe.prefix!r} prefix is its default prompt" if recipe.prefix else "edgelm's vectors")
                 + f"\n\nimport edgelm\nvectors = edgelm.load(\"{name}\").embed([\"...\"])  # the same vectors\n```\n\n"
                 "On a device: `edgelm export FOLDER --target tflite --quantize int8 --out BUNDLE`, then "
                 "`edgelm run BUNDLE \"...\"` (no torch).")
    write_model_card(folder, title=f"{name}: {kind.replace('_', ' ')} for {' + '.join(languages) or 'many languages'}",
                     summary=f"This is {what}.", languages=languages, facts=facts, usage=usage,
                     scores=read_scores(folder), license=teacher.license if teacher else None,
                     base_model=teacher.base_model if teacher else None,
                     tags=["sentence-transformers", "feature-extraction"] if kind != "task_model" else
                     ["token-classification" if head == "token" else "text-classification"])
