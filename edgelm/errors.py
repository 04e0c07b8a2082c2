"""User-facing errors.

An :class:`EdgelmError` is a mistake the user can fix (bad path, unknown language, tampered file).
The command line prints its message as one line and exits non-zero, without a traceback; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgelmError(Exception):
    """A user error: the message alone tells what went wrong and how to fix it."""


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean: a, b?)' for close matches of `word`, or ''."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [c for k, c in lowered.items() if k.startswith(word.lower()[:3])][:n]
    return f" (did you mean: {', '.join(close)}?)" if close else ""
