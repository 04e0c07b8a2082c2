"""User bitext: sentence pairs that anchor a target sentence to its source translation in phase 1.

Two layouts, both common for parallel corpora:
- a TSV file whose header names the two languages (`eng_Latn<TAB>swh_Latn`), one pair a row
  (MAFAND-MT in ../shared/data is laid out so);
- two line-aligned files, given as `LANG=FILE,LANG=FILE` (Moses style: train.en / train.sw).
Rows with an empty side are skipped and counted. A row with one or three columns, files of unequal
length, or a side whose letters are mostly in another script than its language's (swapped columns,
the wrong file) are errors: training on misaligned pairs would be silently wrong.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgelm.data.languages import char_script, normalize_language
from edgelm.errors import EdgelmError

# ISO 15924 script of a FLORES code -> the first word of Unicode character names in that script
SCRIPT_NAMES = {"Latn": "LATIN", "Deva": "DEVANAGARI", "Ethi": "ETHIOPIC", "Arab": "ARABIC", "Cyrl": "CYRILLIC",
                "Hans": "CJK", "Hant": "CJK", "Grek": "GREEK", "Hebr": "HEBREW", "Thai": "THAI", "Beng": "BENGALI",
                "Taml": "TAMIL", "Telu": "TELUGU", "Geor": "GEORGIAN", "Armn": "ARMENIAN", "Hang": "HANGUL"}


@dataclass
class Bitext:
    """Sentence pairs in two languages, with where they came from."""

    languages: tuple[str, str]
    pairs: list[tuple[str, str]]
    origin: str
    skipped_empty: int = 0

    def side(self, lang: str) -> int:
        """0 or 1: the column of `lang`."""
        return self.languages.index(lang)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise EdgelmError(f"bitext file {path} does not exist")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="\n") as fh:
            return [line.rstrip("\r\n") for line in fh]
    except UnicodeDecodeError:
        raise EdgelmError(f"bitext file {path} is not UTF-8 text") from None
    except (OSError, EOFError) as exc:
        raise EdgelmError(f"cannot read bitext file {path}: {exc}") from None


def read_bitext(spec: str, known: list[str] | None = None) -> Bitext:
    """Read `spec`: a TSV path with a language header, or `LANG=FILE,LANG=FILE`."""
    if "=" in spec:
        sides = [item.split("=", 1) for item in spec.split(",")]
        if len(sides) != 2 or any(len(s) != 2 or not s[1] for s in sides):
            raise EdgelmError(f"--bitext {spec!r}: give LANG=FILE,LANG=FILE (two line-aligned files) or one TSV file")
        langs = tuple(normalize_language(lang, known) for lang, _ in sides)
        a, b = (_lines(Path(p)) for _, p in sides)
        if len(a) != len(b):
            raise EdgelmError(f"--bitext {spec}: the sides are not aligned ({len(a)} lines in {sides[0][1]}, "
                              f"{len(b)} in {sides[1][1]})")
        rows = list(zip(a, b))
    else:
        lines = _lines(Path(spec))
        if not lines:
            raise EdgelmError(f"bitext file {spec} is empty")
        header = lines[0].split("\t")
        if len(header) != 2:
            raise EdgelmError(f"bitext file {spec}: the first line must name the two languages, "
                              f"as eng_Latn<TAB>swh_Latn (got {lines[0][:60]!r})")
        langs = tuple(normalize_language(h, known) for h in header)
        rows = []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != 2:
                raise EdgelmError(f"{spec}:{number}: {len(cols)} column{'s' if len(cols) != 1 else ''}, a bitext row "
                                  "has two (source<TAB>target)")
            rows.append((cols[0], cols[1]))
    if langs[0] == langs[1]:
        raise EdgelmError(f"--bitext {spec}: both sides are {langs[0]}")
    pairs = [(a.strip(), b.strip()) for a, b in rows if a.strip() and b.strip()]
    if not pairs:
        raise EdgelmError(f"--bitext {spec} holds no sentence pair")
    text = Bitext(langs, pairs, spec, len(rows) - len(pairs))
    for k, lang in enumerate(langs):
        check_script(lang, [p[k] for p in pairs], f"--bitext {spec}, side {k + 1} ({lang})")
    return text


def check_script(lang: str, texts: list[str], what: str, sample: int = 2000) -> None:
    """Refuse text whose letters are mostly not in `lang`'s script (when the script is one we know)."""
    expected = SCRIPT_NAMES.get(lang.rsplit("_", 1)[-1])
    if expected is None:
        return
    counts: Counter[str] = Counter()
    for t in texts[:sample]:
        counts.update(s for s in map(char_script, t) if s != "COMMON")
    letters = sum(counts.values())
    if letters and counts[expected] < 0.5 * letters:
        found = counts.most_common(1)[0][0]
        raise EdgelmError(f"{what}: its letters are mostly {found}, not {expected} as {lang} is written "
                          "(are the sides swapped, or the wrong file given?)")
