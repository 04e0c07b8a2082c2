"""User-defined domains for `edgelm eval --domains PATH`: the user's own labelled text, grouped.

Two layouts, both UTF-8 TSV with a header row:
- one file with columns `text`, `label`, `domain` and `split` (train | test);
- a folder with one subfolder per domain, each holding `train.tsv` and `test.tsv` (`text`, `label`).
One linear probe (logistic regression) is trained on the model's embeddings of every domain's
training rows; a domain's score is the probe's accuracy on that domain's test rows. Test rows never
train anything.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError

Rows = dict[str, dict[str, list[tuple[str, str]]]]  # domain -> split -> (text, label)


def _read_tsv(path: Path, need: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE, restval="")
            missing = [c for c in need if c not in (reader.fieldnames or [])]
            if missing:
                raise EdgelmError(f"{path} has no {missing[0]!r} column (its header must name {', '.join(need)})")
            rows = []
            for line, row in enumerate(reader, start=2):
                if not (row.get("text") or "").strip():
                    continue
                empty = [c for c in need if not (row.get(c) or "").strip()]
                if empty:
                    raise EdgelmError(f"{path} line {line}: empty {empty[0]!r}")
                rows.append(row)
            return rows
    except UnicodeDecodeError as exc:
        raise EdgelmError(f"{path} is not valid UTF-8 (byte {exc.start})") from None
    except csv.Error as exc:
        raise EdgelmError(f"{path} is not a readable TSV: {exc}") from None
    except OSError as exc:
        raise EdgelmError(f"cannot read {path}: {exc.strerror}") from None


def load_user_domains(path: str | Path) -> Rows:
    """Labelled train/test rows per domain from a TSV file or a folder of domain folders."""
    path = Path(path)
    rows: Rows = {}
    if path.is_file():
        for r in _read_tsv(path, ("text", "label", "domain", "split")):
            split = r["split"].strip().lower()
            if split not in ("train", "test"):
                raise EdgelmError(f"{path}: split must be train or test, not {r['split']!r}")
            rows.setdefault(r["domain"].strip(), {"train": [], "test": []})[split].append((r["text"], r["label"].strip()))
    elif path.is_dir():
        for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            rows[sub.name] = {}
            for split in ("train", "test"):
                f = sub / f"{split}.tsv"
                if not f.is_file():
                    raise EdgelmError(f"domain {sub.name} has no {split}.tsv in {sub}")
                rows[sub.name][split] = [(r["text"], r["label"].strip()) for r in _read_tsv(f, ("text", "label"))]
    else:
        raise EdgelmError(f"--domains {path}: not languages, topics, a TSV file or a folder of domains")
    if not rows:
        raise EdgelmError(f"{path} defines no domains")
    for name, splits in rows.items():
        if not splits["test"]:
            raise EdgelmError(f"domain {name!r} has no test text in {path}")
    if not any(s["train"] for s in rows.values()):
        raise EdgelmError(f"{path} has no training rows: the probe needs some (split = train)")
    if len({label for s in rows.values() for _, label in s["train"]}) < 2:
        raise EdgelmError(f"the training rows of {path} have a single label; a probe needs at least two")
    return rows


def user_domain_scores(encoder, rows: Rows, seed: int = 0) -> dict[str, float]:
    """Probe accuracy per domain (probe trained on every domain's training rows)."""
    from sklearn.linear_model import LogisticRegression

    train = [(t, y) for s in rows.values() for t, y in s["train"]]
    x = encoder.embed([t for t, _ in train], progress="user domains, train")
    probe = LogisticRegression(max_iter=3000, random_state=seed).fit(x, [y for _, y in train])
    scores = {}
    for name, splits in rows.items():
        xt = encoder.embed([t for t, _ in splits["test"]], progress=f"{name} test")
        scores[name] = float(np.mean(probe.predict(xt) == np.array([y for _, y in splits["test"]])))
    return scores
