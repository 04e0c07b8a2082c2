"""NTREX-128 news bitext (an evaluation set): `parallel/ntrex/<lang>.txt`, line i the same sentence in each."""

from __future__ import annotations

from pathlib import Path

from edgelm.errors import EdgelmError


def ntrex_languages(root: Path) -> list[str]:
    """Languages with an NTREX file under `root` (none when the folder is absent)."""
    folder = root / "parallel" / "ntrex"
    return sorted(p.name[: -len(".txt")] for p in folder.glob("*.txt")) if folder.is_dir() else []


def load_ntrex(root: Path, lang: str, pivot: str = "eng_Latn") -> tuple[list[str], list[str]]:
    """(sentences in `lang`, the same sentences in `pivot`), aligned by line."""
    have = ntrex_languages(root)
    for code in (lang, pivot):
        if code not in have:
            raise EdgelmError(f"NTREX data in {root / 'parallel' / 'ntrex'} lacks {code}; it has: {' '.join(have) or 'nothing'}")
    folder = root / "parallel" / "ntrex"
    src = (folder / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    eng = (folder / f"{pivot}.txt").read_text(encoding="utf-8").splitlines()
    if len(src) != len(eng):
        raise EdgelmError(f"NTREX {lang} has {len(src)} lines but {pivot} {len(eng)}")
    return src, eng
