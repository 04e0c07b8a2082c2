"""`edgelm eval`: per-language quality of a model on SIB-200 and Tatoeba."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import emit, out, table


def _render(report: dict) -> None:
    m = report["model"]
    if m.get("bundle"):
        b = m["bundle"]
        out.print(f"bundle: {m['name']} ({b['target']}, {b['quantize']}, run by {b['backend']})")
    else:
        out.print(f"model: {m['name']} ({m['parameters'] / 1e6:.1f} M parameters)")
    if "sib200" in report:
        sib = report["sib200"]
        rows = [[s["language"], s["accuracy"], s["macro_f1"], s["n"]] for s in sib["scores"]]
        if len(rows) > 1:
            rows.append(["mean", sum(r[1] for r in rows) / len(rows), sum(r[2] for r in rows) / len(rows), ""])
        title = (f"SIB-200 test, probe trained on {sib['source']} (C={sib['probe']['C']}, dev acc "
                 f"{sib['probe']['dev_accuracy']:.3f})" if sib["source"] else "SIB-200 test, the model's own head")
        out.print(table(title, ["language", "accuracy", "macro-F1", "n"], rows))
    for name, title in (("tatoeba", "Tatoeba"), ("ntrex", "NTREX-128 (news)")):
        if name not in report:
            continue
        rows = [[s["language"], s["to_eng"], s["from_eng"], s["accuracy"], s["n"]] for s in report[name]["scores"]]
        if len(rows) > 1:
            rows.append(["mean", *(sum(r[i] for r in rows) / len(rows) for i in (1, 2, 3)), ""])
        out.print(table(f"{title} retrieval accuracy", ["language", "xx→eng", "eng→xx", "mean", "n"], rows))
    for name, result in report.items():
        if isinstance(result, dict) and "scores" in result and name not in ("sib200", "tatoeba", "ntrex"):
            out.print(table(f"{name} ({result['kind']}, {result['scorer']})", *_task_rows(result)))
    out.print(f"[dim]{report['elapsed_s']} s, {report['settings']['threads'] or 'default'} threads"
              + (f", data {report['data']}" if report["data"] else "") + "[/dim]")


def _task_rows(result: dict) -> tuple[list[str], list[list]]:
    """Columns and rows of a user task's per-language scores."""
    first = result["scores"][0]
    if result["kind"] == "sentence":
        cols = ["language", "accuracy", "macro-F1", "n", "setting"]
        rows = [[s["language"], s["accuracy"], s["macro_f1"], s["n"], s["setting"]] for s in result["scores"]]
    elif "entity_f1" in first:
        types = list(first["per_type"])
        cols = ["language", "entity F1", "precision", "recall", *[f"{t} F1" for t in types], "sentences"]
        rows = [[s["language"], s["entity_f1"], s["precision"], s["recall"], *[s["per_type"].get(t, 0.0) for t in types],
                 s["n"]] for s in result["scores"]]
    else:
        cols = ["language", "word accuracy", "sentences", "words"]
        rows = [[s["language"], s["word_accuracy"], s["n"], s["words"]] for s in result["scores"]]
    return cols, rows


def _render_matrix(m: dict) -> None:
    out.print(table(m["score"], ["model", *m["domains"]], [[name, *row] for name, row in m["scores"].items()]))
    out.print("[dim]feed this matrix (--json / --out) to `edgelm metrics`[/dim]")


def eval_command(
    models: Annotated[list[str], typer.Argument(help="Model(s): a bundled teacher name (e5-small), a checkpoint folder or "
                                                     "a hub id; several with --domains.")],
    task: Annotated[Optional[list[str]], typer.Option("--task", "-t", help="sib200, tatoeba, ntrex (news retrieval), or your own task: a folder "
                                                      "of train/dev/test files or one file with a split column "
                                                      "(TSV/CSV/JSONL text+label, or CoNLL word<TAB>tag); repeatable; "
                                                      "one with --domains (default sib200).")] = None,
    domains: Annotated[Optional[str], typer.Option(help="Score matrix over domains: languages | topics (SIB-200's "
                                                        "seven topics) | a TSV (text, label, domain, split) | a folder "
                                                        "of domain folders (train.tsv, test.tsv); models as rows, for "
                                                        "`edgelm metrics`.")] = None,
    languages: Annotated[Optional[str], typer.Option("--languages", "-l", help="Comma-separated codes (e.g. swh_Latn,hin_Deva); default: all in the data.")] = None,
    source: Annotated[str, typer.Option(help="Language the SIB-200 probe is trained on.")] = "eng_Latn",
    data: Annotated[Optional[Path], typer.Option(help="Data folder (default: $EDGELM_DATA, else ../shared/data).")] = None,
    prefix: Annotated[Optional[str], typer.Option(help="Text prefix, overriding the model's (e5: 'query: ').")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch threads.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the probe.")] = 0,
    probe: Annotated[bool, typer.Option(help="Use the embedding probe even for a SIB-200 classifier.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON report to this file.")] = None,
    card: Annotated[bool, typer.Option("--card", help="Keep these scores with the model (scores.json) and write them "
                                                      "on its model card (README.md); checkpoint folders only.")] = False,
) -> None:
    """Score a model per language: SIB-200 zero-shot topic transfer and Tatoeba bitext retrieval."""
    from edgelm.api import card_folder, evaluate, record_scores

    if card:
        if domains is not None or len(models) != 1:
            from edgelm.errors import EdgelmError

            raise EdgelmError("--card records one model's scores: give one model and no --domains")
        card_folder(models[0])
    result = evaluate(models, tasks=task, languages=languages, domains=domains, source=source, data=data, prefix=prefix,
                      threads=threads, seed=seed, probe=probe)
    if card:
        written = record_scores(models[0], result, "edgelm eval " + " ".join(
            [models[0], *[f"--task {t}" for t in task or []], *([f"--languages {languages}"] if languages else [])]))
    emit(result, as_json=as_json, json_out=json_out, render=_render_matrix if domains is not None else _render)
    if card:
        from edgelm.cli.output import err

        err.print(f"scores written on the model card {written}")
