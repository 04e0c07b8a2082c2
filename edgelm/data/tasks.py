"""A task is data: the user's own labelled text, for classifying sentences or tagging words.

Layouts (`load_task(PATH)`):
- a folder with `train` / `dev` / `test` files, optionally one sub-folder per language (as in
  `../shared/data/ner/`), and optionally `labels.txt` (one label a line, their order kept);
- one file with a `split` column (train | dev | test).
Formats, detected from each file's extension and checked against its content:
- sentence classification: `.tsv` / `.csv` (a header naming `text` and `label`, optional `language`,
  `split`) or `.jsonl` (objects with the same keys);
- token classification: `.conll` (`word<TAB>tag` a line, a blank line between sentences; a line
  that starts with `#` is a word, not a comment). Tags that are all `O`, `B-X` or `I-X` make an entity
  task (scored by entity, conlleval's rules); any other tag set is a per-word task (POS).
The label set comes from `labels.txt` or the training split; a task's identity (kind, scheme, labels
and every file's sha256) is what a distillation run records and checks on resume.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from edgelm.errors import EdgelmError
from edgelm.hashing import sha256_file
from edgelm.words import bio_type

SPLITS = ("train", "dev", "test")
SENTENCE_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}
TAGGING_FORMATS = {".conll": "conll"}
FORMATS = {**SENTENCE_FORMATS, **TAGGING_FORMATS}
EXPECTED = ("TSV/CSV with a header naming text and label, JSONL objects with text and label, or CoNLL "
            "(word<TAB>tag, a blank line between sentences)")


@dataclass(frozen=True)
class Sentence:
    """A labelled sentence (sentence classification)."""

    text: str
    label: str


@dataclass(frozen=True)
class Tagged:
    """A sentence as words, one tag each (token classification)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass
class Task:
    """Examples per language and split, with what the task is and where it came from."""

    path: Path
    kind: str  # "sentence" | "tagging"
    scheme: str  # "label" (sentences) | "bio" (entities) | "tags" (a tag per word, e.g. POS)
    labels: list[str]
    examples: dict[str, dict[str, list]]  # language ("" when the data does not say) -> split -> examples
    files: dict[str, str] = field(default_factory=dict)  # file (relative to path) -> sha256
    formats: list[str] = field(default_factory=list)
    stray_inside: int = 0  # I-X tags that do not continue an X entity (read as B-X, as conlleval does)

    @property
    def languages(self) -> list[str]:
        return sorted(self.examples)

    def split(self, name: str, languages: list[str] | None = None) -> list:
        """Every example of split `name` in `languages` (default: all), in file order."""
        return [ex for lang in (languages or self.languages) for ex in self.examples.get(lang, {}).get(name, [])]

    def has(self, language: str, name: str) -> bool:
        return bool(self.examples.get(language, {}).get(name))

    def identity(self) -> dict:
        """What a run trained on this task depends on: resuming with another task is refused."""
        return {"kind": self.kind, "scheme": self.scheme, "labels": list(self.labels), "files": dict(self.files)}

    def describe(self) -> dict:
        """A report of the task: kind, formats, labels, and examples per language and split."""
        return {"path": str(self.path), "kind": self.kind, "scheme": self.scheme, "formats": self.formats,
                "labels": self.labels, "stray_inside_tags": self.stray_inside,
                "examples": {lang: {s: len(v) for s, v in splits.items()} for lang, splits in self.examples.items()}}


def is_bio(tags: set[str]) -> bool:
    return bool(tags) and all(t == "O" or (len(t) > 2 and t[:2] in ("B-", "I-")) for t in tags) and len(tags) > 1


def stray_inside_tags(tags: tuple[str, ...] | list[str]) -> int:
    """How many I-X tags start an entity (no X entity before them): conlleval reads each as B-X."""
    count, previous = 0, "O"
    for tag in tags:
        kind, typ = bio_type(tag)
        if kind == "I" and (previous == "O" or bio_type(previous)[1] != typ):
            count += 1
        previous = tag
    return count


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EdgelmError(f"{path} is not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise EdgelmError(f"cannot read {path}: {exc.strerror}") from None


def read_conll(path: Path) -> list[Tagged]:
    """Sentences of a `word<TAB>tag` file; a line with one column or three is a one-line error."""
    sentences, words, tags = [], [], []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            if words:
                sentences.append(Tagged(tuple(words), tuple(tags)))
                words, tags = [], []
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 2 or not parts[0] or not parts[1].strip():
            raise EdgelmError(f"{path} line {n}: expected word<TAB>tag, got {len(parts)} column(s): {line[:60]!r}")
        words.append(parts[0])
        tags.append(parts[1].strip())
    if words:
        sentences.append(Tagged(tuple(words), tuple(tags)))
    return sentences


def _rows(path: Path, fmt: str) -> list[dict[str, str]]:
    """Rows of a TSV / CSV (header) or JSONL file as dicts of strings."""
    text = _read_text(path)
    if fmt == "jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise EdgelmError(f"{path} line {n} is not JSON: expected {EXPECTED}") from None
            if not isinstance(row, dict):
                raise EdgelmError(f"{path} line {n} is not a JSON object with text and label")
            rows.append({k: "" if v is None else str(v) for k, v in row.items()})
        return rows
    delimiter = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    try:
        reader = csv.DictReader(text.splitlines(), delimiter=delimiter, quoting=quoting, restval=None)
        rows = list(reader)
    except csv.Error as exc:
        raise EdgelmError(f"{path} is not readable {fmt.upper()}: {exc}") from None
    for n, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise EdgelmError(f"{path} line {n}: not as many fields as the header has")
    return rows


def _sentences(path: Path, fmt: str, need_split: bool) -> list[tuple[str, str, Sentence]]:
    """(language, split, example) of every row of a sentence file."""
    rows = _rows(path, fmt)
    header = set(rows[0]) if rows else set()
    missing = [c for c in ("text", "label", *(["split"] if need_split else [])) if c not in header]
    if missing:
        raise EdgelmError(f"{path} has no {missing[0]!r} column: expected {EXPECTED}"
                          + (" and a split column for a single file" if need_split else ""))
    out = []
    for n, row in enumerate(rows, start=2):
        if not row["text"].strip():
            continue
        if not row["label"].strip():
            raise EdgelmError(f"{path} row {n}: empty label")
        split = row.get("split", "").strip().lower()
        if need_split and split not in SPLITS:
            raise EdgelmError(f"{path} row {n}: split must be one of {', '.join(SPLITS)}, not {row['split']!r}")
        out.append((row.get("language", "").strip(), split, Sentence(row["text"], row["label"].strip())))
    return out


def _split_files(folder: Path) -> dict[str, Path]:
    """train / dev / test files of one folder (one each); other files are not the task's."""
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        stem, suffix = f.name.split(".", 1)[0], "." + f.name.split(".", 1)[1] if "." in f.name else ""
        if not f.is_file() or stem not in SPLITS:
            continue
        if suffix not in FORMATS:
            raise EdgelmError(f"{f} is neither format: expected {EXPECTED} (.tsv, .csv, .jsonl, .conll)")
        if stem in found:
            raise EdgelmError(f"{folder} has two {stem} files: {found[stem].name} and {f.name}")
        found[stem] = f
    return found


def load_task(path: str | Path) -> Task:
    """Read a task folder or file; refuse, in one line, anything it cannot use (nothing is written)."""
    path = Path(path)
    if not path.exists():
        raise EdgelmError(f"task data {path} does not exist (a folder with train/dev/test files, or one file "
                          "with a split column)")
    examples: dict[str, dict[str, list]] = {}
    files: dict[Path, str] = {}
    if path.is_file():
        fmt = FORMATS.get("." + path.name.split(".", 1)[1] if "." in path.name else "")
        if fmt is None or fmt == "conll":
            raise EdgelmError(f"{path} is neither format for a single-file task: expected TSV/CSV/JSONL with text, "
                              "label and split columns (CoNLL tasks are a folder of train/dev/test .conll files)")
        for lang, split, ex in _sentences(path, fmt, need_split=True):
            examples.setdefault(lang, {}).setdefault(split, []).append(ex)
        files[path] = fmt
        root = path.parent
    else:
        root = path
        folders = {"": path} if _split_files(path) else {}
        folders |= {sub.name: sub for sub in sorted(path.iterdir()) if sub.is_dir() and _split_files(sub)}
        if not folders:
            raise EdgelmError(f"{path} holds no train/dev/test files (nor language folders with them): expected "
                              f"{EXPECTED}")
        for lang, folder in folders.items():
            for split, f in _split_files(folder).items():
                fmt = FORMATS["." + f.name.split(".", 1)[1]]
                files[f] = fmt
                if fmt == "conll":
                    rows = read_conll(f)
                    if not rows:
                        raise EdgelmError(f"{f} is empty: the {split} split has no sentences")
                    examples.setdefault(lang, {})[split] = rows
                    continue
                got = _sentences(f, fmt, need_split=False)
                if not got:
                    raise EdgelmError(f"{f} is empty: the {split} split has no rows")
                for row_lang, _, ex in got:
                    examples.setdefault(row_lang or lang, {}).setdefault(split, []).append(ex)
    kinds = {"tagging" if fmt == "conll" else "sentence" for fmt in files.values()}
    if len(kinds) > 1:
        raise EdgelmError(f"{path} mixes CoNLL (tagging) and sentence files; a task is one or the other")
    kind = kinds.pop()
    for lang, splits in examples.items():
        for split, rows in splits.items():
            if not rows:
                raise EdgelmError(f"task {path}: the {split} split of {lang or 'the data'} is empty")
    return _finish(path, root, kind, examples, files)


def _finish(path: Path, root: Path, kind: str, examples: dict, files: dict[Path, str]) -> Task:
    """Labels, scheme and checks that need the whole task."""
    train = [ex for splits in examples.values() for ex in splits.get("train", [])]
    every = [ex for splits in examples.values() for rows in splits.values() for ex in rows]
    seen = (lambda rows: {t for ex in rows for t in ex.tags}) if kind == "tagging" else (
        lambda rows: {ex.label for ex in rows})
    labels_file = root / "labels.txt" if path.is_dir() else None
    listed = labels_file is not None and labels_file.is_file()
    if listed:
        labels = [x.strip() for x in _read_text(labels_file).splitlines() if x.strip()]
        unknown = sorted(seen(every) - set(labels))
        if unknown:
            raise EdgelmError(f"task {path} uses label {unknown[0]!r}, which {labels_file.name} does not list")
    elif train:
        labels = sorted(seen(train))
        unseen = sorted(seen(every) - set(labels))
        if unseen:
            raise EdgelmError(f"task {path}: label {unseen[0]!r} is in an evaluation split but never in training")
    else:
        labels = sorted(seen(every))
    if train and len(seen(train)) < 2:
        raise EdgelmError(f"the training split of {path} has a single label ({next(iter(seen(train)))!r}); "
                          "a classifier needs at least two")
    scheme = "label" if kind == "sentence" else ("bio" if is_bio(set(labels)) else "tags")
    if scheme == "bio" and not listed:
        labels = ["O", *sorted((t for t in labels if t != "O"), key=lambda t: (t[2:], t[0]))]
    stray = sum(stray_inside_tags(ex.tags) for ex in every) if scheme == "bio" else 0
    hashes = {str(f.relative_to(root)) if f != root else f.name: sha256_file(f) for f in sorted(files)}
    return Task(path, kind, scheme, labels, examples, hashes, sorted(set(files.values())), stray)
