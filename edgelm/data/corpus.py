"""Plain-text corpora as unlabeled text: one sentence a line, `.txt` or `.txt.gz`, a file or a folder.

Lines that are not valid UTF-8 are skipped and counted, never a crash: real web text has them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgelm.errors import EdgelmError

SUFFIXES = (".txt", ".txt.gz")


@dataclass
class Corpus:
    """Sentences read from one or more files, with what was skipped on the way."""

    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped_non_utf8: int = 0
    skipped_empty: int = 0

    def __len__(self) -> int:
        return len(self.lines)


def corpus_files(path: Path) -> list[Path]:
    """The corpus files at `path`: the file itself, or the `.txt`/`.txt.gz` files under a folder."""
    if path.is_file():
        if not path.name.endswith(SUFFIXES):
            raise EdgelmError(f"{path}: corpus files must end in .txt or .txt.gz")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        if not files:
            raise EdgelmError(f"corpus folder {path} holds no .txt or .txt.gz files")
        return files
    raise EdgelmError(f"corpus path {path} does not exist")


def iter_corpus(path: str | Path, counts: Corpus | None = None) -> Iterator[str]:
    """Stream the non-empty lines under `path`, one at a time (nothing held in memory); skipped
    lines are counted in `counts` when given. A corpus with no usable line is an error."""
    counts = counts if counts is not None else Corpus()
    skipped_before, lines = counts.skipped_non_utf8, 0
    for file in corpus_files(Path(path)):
        counts.files.append(file)
        opener = gzip.open if file.name.endswith(".gz") else open
        try:
            with opener(file, "rb") as fh:
                for raw in fh:
                    try:
                        line = raw.decode("utf-8").strip()
                    except UnicodeDecodeError:
                        counts.skipped_non_utf8 += 1
                        continue
                    if not line:
                        counts.skipped_empty += 1
                        continue
                    lines += 1
                    yield line
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            raise EdgelmError(f"cannot read corpus file {file}: {exc}") from None
    if not lines:
        bad = counts.skipped_non_utf8 - skipped_before
        raise EdgelmError(f"corpus {path} is empty" + (f" ({bad} lines were not UTF-8)" if bad else ""))


def read_corpus(path: str | Path, *, max_lines: int | None = None) -> Corpus:
    """Read every non-empty line under `path`; raise if nothing usable is there."""
    path = Path(path)
    corpus = Corpus()
    for line in iter_corpus(path, corpus):
        corpus.lines.append(line)
        if max_lines is not None and len(corpus.lines) >= max_lines:
            return corpus
    return corpus
