"""Token shards: a corpus tokenized once into two flat arrays that training memory-maps.

`ids.u32` holds every sentence's token ids back to back (uint32), `offsets.npy` where each sentence
starts (int64, n + 1 entries), `shard.json` what was tokenized: the text's sha256, the tokenizer's,
the prefix and the length cut. A shard lives in edgelm's cache under a key made of those, so a later
run over the same text with the same tokenizer opens it instead of tokenizing again, and a shard
whose record does not match what is asked (another tokenizer, a changed file) is rebuilt, never
reused. Building streams the text in chunks through the tokenizers library's `encode_batch`, which
spreads each chunk over every core (Rayon threads): memory stays flat however long the corpus is.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_dir
from edgelm.cache import cache_dir
from edgelm.errors import EdgelmError

FORMAT = 1
CHUNK = 8192  # sentences per encode_batch call


@dataclass
class TokenShard:
    """Sentences as token ids: row i is ids[offsets[i]:offsets[i + 1]]."""

    ids: np.ndarray
    offsets: np.ndarray
    meta: dict = field(default_factory=dict)
    folder: Path | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        return (self.offsets[indices + 1] - self.offsets[indices]).astype(np.int64)

    @classmethod
    def from_rows(cls, rows: Iterable[Iterable[int]]) -> TokenShard:
        """An in-memory shard (small corpora, tests)."""
        ids, offsets = array("I"), array("q", [0])
        for r in rows:
            ids.extend(r)
            offsets.append(len(ids))
        return cls(np.frombuffer(ids, dtype=np.uint32) if ids else np.zeros(0, np.uint32),
                   np.frombuffer(offsets, dtype=np.int64))

    @classmethod
    def open(cls, folder: Path) -> TokenShard:
        """Memory-map a shard written by `write_shard`."""
        meta = json.loads((folder / "shard.json").read_text())
        offsets = np.load(folder / "offsets.npy", mmap_mode="r")
        n = int(meta["tokens"])
        ids = np.memmap(folder / "ids.u32", dtype=np.uint32, mode="r", shape=(n,)) if n else np.zeros(0, np.uint32)
        return cls(ids, offsets, meta, folder)


def tokenizer_hash(tokenizer) -> str:
    """sha256 of a `tokenizers.Tokenizer`'s full JSON description."""
    return hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()


def encode_chunks(tokenizer, lines: Iterable[str], prefix: str, max_length: int,
                  chunk: int = CHUNK) -> Iterator[list[list[int]]]:
    """Token ids (special tokens included) of `lines`, `chunk` sentences at a time; a sentence longer
    than `max_length` keeps its first pieces and its closing special token."""
    batch: list[str] = []

    def encode(texts: list[str]) -> list[list[int]]:
        out = []
        for e in tokenizer.encode_batch([prefix + t for t in texts]):
            ids = e.ids
            out.append(ids[: max_length - 1] + ids[-1:] if len(ids) > max_length else ids)
        return out

    for line in lines:
        batch.append(line)
        if len(batch) == chunk:
            yield encode(batch)
            batch = []
    if batch:
        yield encode(batch)


def shard_key(text_sha256: str, tokenizer_sha256: str, prefix: str, max_length: int) -> dict:
    return {"format": FORMAT, "text_sha256": text_sha256, "tokenizer_sha256": tokenizer_sha256, "prefix": prefix,
            "max_length": max_length}


def shard_folder(key: dict, root: Path | None = None) -> Path:
    """Where the shard for `key` lives in the cache."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return (root or cache_dir() / "shards") / digest


def find_shard(key: dict, root: Path | None = None) -> TokenShard | None:
    """The cached shard for `key`, or None when there is none or its record does not match."""
    folder = shard_folder(key, root)
    try:
        shard = TokenShard.open(folder)
    except (OSError, ValueError, KeyError):
        return None
    if any(shard.meta.get(k) != v for k, v in key.items()) or (folder / "ids.u32").stat().st_size != 4 * len(
            shard.ids) or int(shard.offsets[-1]) != len(shard.ids):
        return None
    return shard


def write_shard(key: dict, tokenizer, lines: Iterable[str], *, root: Path | None = None, progress=None,
                extra: dict | None = None) -> TokenShard:
    """Tokenize `lines` (streamed) into the shard for `key` (atomically: a killed build leaves nothing)."""
    folder = shard_folder(key, root)
    offsets, tokens = array("q", [0]), 0
    try:
        with atomic_dir(folder, replace=True) as tmp:
            with open(tmp / "ids.u32", "wb") as fh:
                for rows in encode_chunks(tokenizer, lines, key["prefix"], key["max_length"]):
                    for r in rows:
                        tokens += len(r)
                        offsets.append(tokens)
                    fh.write(np.fromiter((i for r in rows for i in r), dtype=np.uint32, count=sum(map(len, rows)))
                             .tobytes())
                    if progress is not None:
                        progress(len(rows))
            np.save(tmp / "offsets.npy", np.frombuffer(offsets, dtype=np.int64))
            (tmp / "shard.json").write_text(json.dumps({**key, "sentences": len(offsets) - 1, "tokens": tokens,
                                                        **(extra or {})}, indent=1))
    except OSError as exc:
        raise EdgelmError(f"cannot write the token shard in {folder.parent}: {exc}") from None
    return TokenShard.open(folder)
