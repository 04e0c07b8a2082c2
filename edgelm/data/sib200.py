"""SIB-200 topic classification: `sib200/<lang>/{train,dev,test}.tsv` + `sib200/labels.txt`.

Rows are Flores-200 sentences, so row `index_id` N is the same sentence, with the same label, in
every language: each language pair is also a parallel corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgelm.data.languages import normalize_language
from edgelm.errors import EdgelmError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class SibExample:
    index_id: int
    label: str
    text: str


def sib200_languages(root: Path) -> list[str]:
    """Languages present in `root/sib200`."""
    folder = root / "sib200"
    if not folder.is_dir():
        raise EdgelmError(f"{root} has no sib200/ folder")
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def sib200_labels(root: Path) -> list[str]:
    """The category names, in the order of `labels.txt` (or sorted from the train data)."""
    path = root / "sib200" / "labels.txt"
    if path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sorted({ex.label for ex in load_sib200(root, "eng_Latn", "train")})


def resolve_sib200_language(root: Path, lang: str) -> str:
    """Canonical code for `lang`, checked to exist in the data folder."""
    have = sib200_languages(root)
    code = normalize_language(lang, have)
    if code not in have:
        raise EdgelmError(f"SIB-200 data in {root} lacks {code}; it has: {' '.join(have)}")
    return code


def load_sib200(root: Path, lang: str, split: str) -> list[SibExample]:
    """Read one split of one language."""
    if split not in SPLITS:
        raise EdgelmError(f"unknown SIB-200 split {split!r}; use one of {', '.join(SPLITS)}")
    code = resolve_sib200_language(root, lang)
    path = root / "sib200" / code / f"{split}.tsv"
    if not path.is_file():
        raise EdgelmError(f"missing {path}")
    rows: list[SibExample] = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header[:3] != ["index_id", "category", "text"]:
            raise EdgelmError(f"{path}: expected header 'index_id category text', got {header}")
        for n, line in enumerate(fh, start=2):
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) != 3:
                raise EdgelmError(f"{path}:{n}: expected 3 tab-separated fields")
            rows.append(SibExample(int(parts[0]), parts[1], parts[2]))
    return rows
