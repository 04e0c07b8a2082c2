"""Bilingual vocabulary trimming (BiStil step 0).

A multilingual teacher spends most of its parameters on embedding rows for languages a deployment
never sees. Keep the pieces that are frequent in the source or the target corpus (per-language
relative frequency, BiStil's `max` pooling), every special token, the pieces of the model's text
prefixes, and every single-character piece of the scripts the two languages use (plus digits,
punctuation and symbols), so that no text in those scripts becomes `<unk>` that was not before.
The tokenizer is rebuilt over the kept pieces with an explicit old -> new id map (the compaction
BiStil's own code got wrong for WordPiece), and the teacher's embedding rows are copied in that order.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from edgelm.data.languages import char_script
from edgelm.errors import EdgelmError

_METASPACE = "▁"


@dataclass
class TrimmedVocab:
    """The result of trimming: kept old ids (ascending; new id = position) and the new tokenizer."""

    kept: np.ndarray  # old ids, ascending
    tokenizer_json: dict
    stats: dict

    @property
    def size(self) -> int:
        return int(self.kept.size)

    def old_to_new(self) -> dict[int, int]:
        return {int(old): new for new, old in enumerate(self.kept)}

    def tokenizer(self) -> Tokenizer:
        return Tokenizer.from_str(json.dumps(self.tokenizer_json))


def _pieces(model: dict) -> list[str]:
    if model["type"] == "Unigram":
        return [p for p, _ in model["vocab"]]
    if model["type"] == "WordPiece":
        pieces = [""] * len(model["vocab"])
        for piece, i in model["vocab"].items():
            pieces[i] = piece
        return pieces
    raise EdgelmError(f"vocabulary trimming supports Unigram and WordPiece tokenizers, not {model['type']}")


def _single_char(piece: str, model_type: str) -> str | None:
    core = piece
    if model_type == "Unigram" and core.startswith(_METASPACE) and len(core) > 1:
        core = core[1:]
    if model_type == "WordPiece" and core.startswith("##") and len(core) > 2:
        core = core[2:]
    return core if len(core) == 1 else None


def _remap_ids(node, mapping: dict[int, int]):
    """Rewrite every special-token id list in a post-processor description."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "ids" and isinstance(value, list):
                out[key] = [mapping[i] for i in value]
            elif key in ("sep", "cls") and isinstance(value, list) and len(value) == 2:
                out[key] = [value[0], mapping[value[1]]]  # RobertaProcessing / BertProcessing
            else:
                out[key] = _remap_ids(value, mapping)
        return out
    if isinstance(node, list):
        return [_remap_ids(v, mapping) for v in node]
    return node


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for t in texts:
        chunk.append(t)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def trim_vocabulary(tokenizer_json: dict, corpora: Mapping[str, Iterable[str]], *, threshold: float = 1e-6,
                    min_count: int = 1, extra_texts: list[str] = (), keep_script_chars: bool = True) -> TrimmedVocab:
    """Trim `tokenizer_json` (a parsed tokenizer.json) to the pieces the `corpora` need.

    `corpora` maps language -> sentences (any iterable, read once, in chunks). A piece is kept when, in some language, it occurs at least
    `min_count` times and its relative frequency reaches `threshold`. `extra_texts` (e.g. the
    model's prefixes) are always fully covered.
    """
    if len(corpora) < 1:
        raise EdgelmError("vocabulary trimming needs non-empty text for every language")
    tok = Tokenizer.from_str(json.dumps(tokenizer_json))
    model = tokenizer_json["model"]
    pieces = _pieces(model)
    keep: set[int] = {t["id"] for t in tokenizer_json.get("added_tokens", [])}
    per_language = {}
    scripts: set[str] = set()
    for lang, texts in corpora.items():  # streamed in chunks: a corpus need not fit in memory
        counts = np.zeros(len(pieces), dtype=np.int64)
        sentences = 0
        for chunk in _chunks(texts, 8192):
            sentences += len(chunk)
            ids = [i for enc in tok.encode_batch(chunk, add_special_tokens=False) for i in enc.ids]
            counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(pieces))[: len(pieces)]
            for text in chunk:
                scripts.update(char_script(ch) for ch in set(text) if not ch.isspace())
        if not sentences:
            raise EdgelmError(f"vocabulary trimming needs non-empty text for every language ({lang} has none)")
        total = int(counts.sum())
        seen = np.flatnonzero(counts)
        frequent = {int(i) for i in seen if counts[i] >= min_count and counts[i] / total >= threshold}
        keep |= frequent
        per_language[lang] = {"sentences": sentences, "tokens": total, "distinct_pieces": int(seen.size),
                              "kept_by_frequency": len(frequent)}
    for enc in tok.encode_batch(list(extra_texts), add_special_tokens=False):
        keep.update(enc.ids)
    by_frequency = len(keep)
    if keep_script_chars:
        scripts.add("COMMON")
        for i, piece in enumerate(pieces):
            ch = _single_char(piece, model["type"])
            if piece == _METASPACE or (ch is not None and char_script(ch) in scripts):
                keep.add(i)
    kept = np.array(sorted(keep), dtype=np.int64)
    mapping = {int(old): new for new, old in enumerate(kept)}

    # Everything but the vocabulary, which is rebuilt below (deep-copying its 250k pieces cost seconds).
    new_model = {key: copy.deepcopy(value) for key, value in model.items() if key != "vocab"}
    new = {key: new_model if key == "model" else copy.deepcopy(value) for key, value in tokenizer_json.items()}
    if model["type"] == "Unigram":
        new["model"]["vocab"] = [list(model["vocab"][i]) for i in kept]
        new["model"]["unk_id"] = mapping[model["unk_id"]] if model.get("unk_id") is not None else None
    else:
        new["model"]["vocab"] = {pieces[i]: mapping[int(i)] for i in kept}
    for added in new.get("added_tokens", []):
        added["id"] = mapping[added["id"]]
    if new.get("post_processor"):
        new["post_processor"] = _remap_ids(new["post_processor"], mapping)
    stats = {
        "vocab_before": len(pieces), "vocab_after": int(kept.size), "kept_by_frequency": by_frequency,
        "kept_single_chars": int(kept.size) - by_frequency, "scripts": sorted(scripts),
        "threshold": threshold, "min_count": min_count, "languages": per_language,
    }
    return TrimmedVocab(kept=kept, tokenizer_json=new, stats=stats)
