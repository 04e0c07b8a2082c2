"""A small slice of the SIB-200 data, for scoring on a device (or under emulation) where the whole set
would take too long:

    python -m edgelm.benchmarks.subset OUT [--languages eng_Latn,swh_Latn,hin_Deva,fra_Latn]
        [--train 200] [--dev 40] [--test 60] [--data DIR]

OUT/sib200/ gets labels.txt and, per language, N rows evenly spaced through each split (train and dev of the
source language only: the probe is trained on it), plus a README naming the source and its licence.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SOURCE = "eng_Latn"


def spread(rows: list[str], n: int) -> list[str]:
    """`n` rows evenly spaced through `rows`, in order. SIB-200's files are sorted by topic, so the first `n`
    rows would all be one topic; the same positions in every language keep the test rows parallel."""
    if n >= len(rows):
        return rows
    return [rows[i * len(rows) // n] for i in range(n)]


def write_subset(root: Path, out: Path, languages: list[str], sizes: dict[str, int]) -> Path:
    """Copy the header and first rows of each needed SIB-200 split from `root` into `out`."""
    from edgelm.data.sib200 import resolve_sib200_language

    dest = out / "sib200"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "labels.txt").write_bytes((root / "sib200" / "labels.txt").read_bytes())
    for lang in dict.fromkeys([SOURCE, *languages]):
        code = resolve_sib200_language(root, lang)
        (dest / code).mkdir(exist_ok=True)
        for split, n in sizes.items():
            if split != "test" and code != SOURCE:
                continue
            src = root / "sib200" / code / f"{split}.tsv"
            if not src.is_file():
                continue
            header, *rows = src.read_text(encoding="utf-8").splitlines(keepends=True)
            (dest / code / f"{split}.tsv").write_text(header + "".join(spread(rows, n)), encoding="utf-8")
    (out / "README.md").write_text(
        f"A slice of SIB-200 (CC BY-SA 4.0; see the data folder's README) made by edgelm.benchmarks.subset from "
        f"{root}: {', '.join(f'{k} {v}' for k, v in sizes.items())} rows per split.\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--languages", default="eng_Latn,swh_Latn,hin_Deva,fra_Latn")
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--dev", type=int, default=40)
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args(argv)
    from edgelm.data.locate import data_root
    from edgelm.errors import EdgelmError

    if min(args.train, args.dev, args.test) < 1:
        sys.exit("error: --train, --dev and --test must be at least 1")
    try:
        out = write_subset(data_root(args.data), args.out, [x.strip() for x in args.languages.split(",") if x.strip()],
                           {"train": args.train, "dev": args.dev, "test": args.test})
    except EdgelmError as exc:
        sys.exit(f"error: {exc}")
    print(out)


if __name__ == "__main__":
    main()
