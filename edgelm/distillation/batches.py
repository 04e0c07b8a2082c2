"""Monolingual batches in equal shares, as a pure function of (seed, step).

Step s draws from language `s % n_languages`; within a language, batches walk through a fresh
permutation each epoch. Optionally one language (the source) takes a fixed share of the steps and the
others take the rest in turn: a multi-target student otherwise sees its source in one step of n.
Nothing is stateful, so a resumed run sees exactly the batches an uninterrupted one would have. Optionally a fixed share of a language's batch comes from a subset of
its sentences (those with a translation anchor), walked the same way through its own permutations.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class BalancedBatches:
    """Batches of sentence indices, one language per batch, languages in turn.

    `subsets[lang]`: indices of `lang`'s sentences that fill `round(share * batch_size)` places of each
    of its batches (the rest come from all of its sentences, as without a subset). `source_share`: the
    fraction of steps that draw from `source` (None: every language in turn).
    """

    def __init__(self, sizes: dict[str, int], batch_size: int, seed: int,
                 subsets: Mapping[str, np.ndarray] | None = None, share: float = 0.0,
                 source: str | None = None, source_share: float | None = None):
        self.languages = sorted(sizes)
        self.sizes, self.batch_size, self.seed = sizes, batch_size, seed
        self.source, self.source_share = (source, source_share) if source_share and source in sizes else (None, None)
        self.others = [lang for lang in self.languages if lang != self.source]
        self.subsets = {lang: np.asarray(v, dtype=np.int64) for lang, v in (subsets or {}).items()
                        if share > 0 and len(v)}
        self.from_subset = int(round(share * batch_size))
        self._perm_cache: dict[tuple, np.ndarray] = {}

    def _language(self, step: int) -> tuple[str, int]:
        """The language of batch `step` and how many of its batches came before it."""
        if self.source is None:
            return self.languages[step % len(self.languages)], step // len(self.languages)
        p = self.source_share  # step s is the source's when floor((s + 1) p) > floor(s p): exactly floor(S p) of S
        before = int(np.floor(step * p))
        if int(np.floor((step + 1) * p)) > before:
            return self.source, before
        j = step - before  # the other languages' steps so far, taken in turn
        return self.others[j % len(self.others)], j // len(self.others)

    def draws(self, steps: range) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per language, the sentence indices read over `steps` and how often each is read."""
        read: dict[str, list[np.ndarray]] = {}
        for step in steps:
            lang, idx = self(step)
            read.setdefault(lang, []).append(idx)
        return {lang: np.unique(np.concatenate(parts), return_counts=True) for lang, parts in read.items()}

    def _perm(self, key: tuple, n: int) -> np.ndarray:
        if key not in self._perm_cache:
            rng = np.random.default_rng(list(key))
            if len(self._perm_cache) > 8:
                self._perm_cache.clear()
            self._perm_cache[key] = rng.permutation(n)
        return self._perm_cache[key]

    def _walk(self, li: int, n: int, start: int, count: int, tag: tuple = ()) -> list[int]:
        """`count` positions from `start` on, through one permutation of range(n) per epoch (seeded by
        seed, language, epoch and `tag`)."""
        idx: list[int] = []
        while len(idx) < count:
            epoch, offset = divmod(start + len(idx), n)
            perm = self._perm((self.seed, li, epoch, *tag), n)
            take = min(count - len(idx), n - offset)
            idx.extend(perm[offset : offset + take].tolist())
        return idx

    def __call__(self, step: int) -> tuple[str, np.ndarray]:
        """(language, sentence indices) of batch `step`."""
        lang, local = self._language(step)
        li = self.languages.index(lang)
        subset = self.subsets.get(lang)
        k = self.from_subset if subset is not None else 0
        rest = self.batch_size - k
        idx = self._walk(li, self.sizes[lang], local * rest, rest)
        if k:
            idx = subset[self._walk(li, len(subset), local * k, k, tag=(1,))].tolist() + idx
        return lang, np.array(idx)
