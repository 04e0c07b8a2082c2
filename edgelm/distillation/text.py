"""What phase 1 reads: each language's training text, streamed, never an evaluation sentence.

A language's text is SIB-200 train + dev (bundled), then the user's corpora, then its side of the
user's bitext, in that order. Every pass re-reads the sources and yields each distinct sentence once
(its first occurrence), skipping any sentence of an evaluation set (SIB-200 test, Tatoeba, NTREX);
nothing but an 8-byte hash per sentence stays in memory, so a corpus may be far larger than RAM.
A full pass leaves `report` (what was read, dropped and kept) and `sha256` (of the text kept), the
key under which its tokenized shard is cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from edgelm.data.corpus import Corpus, iter_corpus


class TrainingText:
    """One language's training text: iterate it (as often as needed) for its sentences."""

    def __init__(self, language: str, held_out: set[str]):
        self.language = language
        self.held_out = held_out
        self.parts: list[tuple[str, Callable[[Corpus], Iterable[str]]]] = []
        self.report: dict | None = None
        self.sha256: str | None = None

    def add(self, origin: str, lines: Iterable[str] | Callable[[Corpus], Iterable[str]]) -> None:
        """A source of sentences: a list, or a function that streams them (counting skipped lines)."""
        self.parts.append((origin, lines if callable(lines) else (lambda counts, lines=lines: lines)))

    def add_corpus(self, path: Path) -> None:
        """A plain-text corpus file or folder, streamed (one with no usable line is an error)."""
        self.add(str(path), lambda counts, path=path: iter_corpus(path, counts))

    def __iter__(self) -> Iterator[str]:
        seen: set[bytes] = set()
        counts = Corpus()
        digest = hashlib.sha256()
        read = kept = excluded = 0
        for _, lines in self.parts:
            for line in lines(counts):
                read += 1
                raw = line.encode("utf-8")
                key = hashlib.blake2b(raw, digest_size=8).digest()
                if key in seen:
                    continue
                seen.add(key)
                if line in self.held_out:
                    excluded += 1
                    continue
                kept += 1
                digest.update(raw + b"\n")
                yield line
        self.report = {"sources": [origin for origin, _ in self.parts], "sentences": kept,
                       "duplicates_dropped": read - len(seen), "test_sentences_excluded": excluded,
                       "skipped_non_utf8": counts.skipped_non_utf8}
        self.sha256 = digest.hexdigest()

    def scan(self) -> dict:
        """One full pass (when none has finished yet); its report."""
        if self.report is None:
            for _ in self:
                pass
        return self.report
