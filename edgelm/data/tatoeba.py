"""Tatoeba bitext (LASER's test sets): `tatoeba/tatoeba.<xxx>-eng.<xxx>` + `....eng`, line-aligned."""

from __future__ import annotations

import re
from pathlib import Path

from edgelm.data.languages import LANGUAGES, normalize_language, tatoeba_code
from edgelm.errors import EdgelmError

_NAME = re.compile(r"^tatoeba\.([a-z]{2,3})-eng\.\1$")


def tatoeba_languages(root: Path) -> list[str]:
    """Canonical codes of the languages paired with English in `root/tatoeba`."""
    folder = root / "tatoeba"
    if not folder.is_dir():
        raise EdgelmError(f"{root} has no tatoeba/ folder")
    by_short = {lang.tatoeba: lang.code for lang in LANGUAGES.values() if lang.tatoeba}
    codes = []
    for path in folder.iterdir():
        m = _NAME.match(path.name)
        if m and (folder / f"tatoeba.{m.group(1)}-eng.eng").is_file():
            codes.append(by_short.get(m.group(1), m.group(1)))
    return sorted(codes)


def load_tatoeba(root: Path, lang: str) -> tuple[list[str], list[str]]:
    """Return (sentences in `lang`, their English translations), aligned by position."""
    have = tatoeba_languages(root)
    code = normalize_language(lang, have)
    if code not in have:
        raise EdgelmError(f"Tatoeba data in {root} lacks {code}; it has: {' '.join(have)}")
    short = tatoeba_code(code)
    base = root / "tatoeba" / f"tatoeba.{short}-eng"
    src = Path(f"{base}.{short}").read_text(encoding="utf-8").splitlines()
    eng = Path(f"{base}.eng").read_text(encoding="utf-8").splitlines()
    if len(src) != len(eng):
        raise EdgelmError(f"{base}.*: {len(src)} lines in {short} but {len(eng)} in eng")
    return src, eng
