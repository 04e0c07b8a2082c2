"""Monolingual batches in equal shares, as a pure function of (seed, step).

Step s draws from language `s % n_languages`; within a language, batches walk through a fresh
permutation each epoch. Nothing is stateful, so a resumed run sees exactly the batches an
uninterrupted one would have.
"""

from __future__ import annotations

import numpy as np


class BalancedBatches:
    """Batches of sentence indices, one language per batch, languages in turn."""

    def __init__(self, sizes: dict[str, int], batch_size: int, seed: int):
        self.languages = sorted(sizes)
        self.sizes, self.batch_size, self.seed = sizes, batch_size, seed
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}

    def _perm(self, lang_index: int, epoch: int) -> np.ndarray:
        key = (lang_index, epoch)
        if key not in self._perm_cache:
            rng = np.random.default_rng([self.seed, lang_index, epoch])
            if len(self._perm_cache) > 8:
                self._perm_cache.clear()
            self._perm_cache[key] = rng.permutation(self.sizes[self.languages[lang_index]])
        return self._perm_cache[key]

    def __call__(self, step: int) -> tuple[str, np.ndarray]:
        """(language, sentence indices) of batch `step`."""
        li = step % len(self.languages)
        n = self.sizes[self.languages[li]]
        local = step // len(self.languages)
        start = local * self.batch_size
        idx = []
        while len(idx) < self.batch_size:
            epoch, offset = divmod(start + len(idx), n)
            perm = self._perm(li, epoch)
            take = min(self.batch_size - len(idx), n - offset)
            idx.extend(perm[offset : offset + take].tolist())
        return self.languages[li], np.array(idx)
