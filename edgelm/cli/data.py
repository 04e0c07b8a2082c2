"""`edgelm data`: what the data folder holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import emit, out, table

app = typer.Typer(help="Inspect the data sets.", no_args_is_help=True)


@app.command()
def info(
    data: Annotated[Optional[Path], typer.Option(help="Data folder (default: $EDGELM_DATA, else ../shared/data).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the languages and sizes of SIB-200 and Tatoeba in the data folder."""
    from edgelm.data import data_root, load_sib200, load_tatoeba, sib200_languages, tatoeba_languages
    from edgelm.data.languages import LANGUAGES

    root = data_root(data)
    sib = {l: {s: len(load_sib200(root, l, s)) for s in ("train", "dev", "test")} for l in sib200_languages(root)}
    tat = {l: len(load_tatoeba(root, l)[0]) for l in tatoeba_languages(root)}
    result = {"data": str(root), "sib200": sib, "tatoeba": tat}

    def render(r: dict) -> None:
        rows = []
        for lang in sorted(set(sib) | set(tat)):
            s = sib.get(lang, {})
            name = LANGUAGES[lang].name if lang in LANGUAGES else ""
            rows.append([lang, name, *(s.get(k, "-") for k in ("train", "dev", "test")), tat.get(lang, "-")])
        out.print(table(f"data in {root}", ["language", "name", "SIB train", "dev", "test", "Tatoeba pairs"], rows))

    emit(result, as_json=as_json, json_out=None, render=render)


@app.command()
def corpus(
    path: Annotated[Path, typer.Argument(help="A .txt / .txt.gz file or a folder of them (one sentence a line).")],
    language: Annotated[Optional[str], typer.Option(help="Also tokenize it as distillation reads text in this language "
                                                         "(evaluation sentences removed) into a cached memory-mapped "
                                                         "shard, and report the shard.")] = None,
    model: Annotated[str, typer.Option(help="With --language: whose tokenizer (teacher name, or a student folder: "
                                            "distillation tokenizes with the student's trimmed one).")] = "e5-small",
    max_length: Annotated[int, typer.Option(help="With --language: tokens per sentence.")] = 128,
    data: Annotated[Optional[Path], typer.Option(help="Data folder (its evaluation sets are kept out).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Read a plain-text corpus the way distillation will, and report what it holds (and its token shard)."""
    from edgelm.data.corpus import Corpus, iter_corpus

    c = Corpus()
    lines = characters = 0
    for line in iter_corpus(path, c):  # streamed: a corpus larger than memory is fine
        lines += 1
        characters += len(line)
    result = {"path": str(path), "files": len(c.files), "lines": lines, "skipped_non_utf8": c.skipped_non_utf8,
              "skipped_empty": c.skipped_empty, "characters": characters}
    if language:
        from edgelm.api import shard_corpus

        shard = shard_corpus(path, model=model, language=language, data=data, max_length=max_length)
        result |= {k: shard[k] for k in ("language", "shard", "sentences", "tokens", "mb_on_disk")}
        result["evaluation_sentences_removed"] = shard["read"]["test_sentences_excluded"]
        result["duplicates_dropped"] = shard["read"]["duplicates_dropped"]
    emit(result, as_json=as_json, json_out=None,
         render=lambda r: out.print(table(f"corpus {path}", ["what", "value"], [[k, v] for k, v in r.items() if k != "path"])))


@app.command()
def task(
    path: Annotated[Path, typer.Argument(help="A task folder (train/dev/test files, optionally a folder per language) "
                                              "or one file with a split column.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Read a labelled task the way distillation and evaluation will, and report what it holds."""
    from edgelm.data.tasks import load_task

    result = load_task(path).describe()

    def render(r: dict) -> None:
        rows = [[lang or "(not given)", *(splits.get(s, "-") for s in ("train", "dev", "test"))]
                for lang, splits in sorted(r["examples"].items())]
        unit = "sentences" if r["kind"] == "tagging" else "rows"
        out.print(table(f"task {path}: {r['kind']} ({r['scheme']}), {', '.join(r['formats'])}; {unit} per split",
                        ["language", "train", "dev", "test"], rows))
        out.print(f"labels ({len(r['labels'])}): {' '.join(r['labels'])}")
        if r["scheme"] == "bio":
            out.print(f"stray I- tags (read as B-, as conlleval does): {r['stray_inside_tags']}")

    emit(result, as_json=as_json, json_out=None, render=render)
