"""`edgelm distill`: BiStil bilingual distillation from the command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import emit, err, out, table
from edgelm.errors import EdgelmError


def parse_corpora(items: list[str]) -> dict[str, list[Path]]:
    """--corpus LANG=PATH (repeatable) -> {LANG: [PATH, ...]}."""
    corpora: dict[str, list[Path]] = {}
    for item in items:
        if "=" not in item:
            raise EdgelmError(f"--corpus takes LANG=PATH, got {item!r}")
        lang, path = item.split("=", 1)
        corpora.setdefault(lang.strip(), []).append(Path(path))
    return corpora


def distill_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder (students, checkpoints, logs).")],
    teacher: Annotated[str, typer.Option(help="Teacher: bundled name, checkpoint folder or hub id.")] = "e5-small",
    source: Annotated[str, typer.Option(help="Source language (task data).")] = "eng_Latn",
    target: Annotated[str, typer.Option(help="Target language (where the model runs); several, comma-separated, make one shared multi-target student (a routing body).")] = "swh_Latn",
    phase: Annotated[str, typer.Option(help="general | task | both.")] = "both",
    task: Annotated[str, typer.Option(help="Phase 2's task: sib200, or your own labelled data — a folder of "
                                           "train/dev/test files (optionally a folder per language) or one file with a "
                                           "split column; TSV/CSV/JSONL text+label (sentences) or CoNLL word<TAB>tag "
                                           "(words; BIO tags make an entity task).")] = "sib200",
    layers: Annotated[int, typer.Option(help="Student layers.")] = 4,
    layer_reduction: Annotated[Optional[int], typer.Option(help="Instead of --layers: keep teacher layers // this (BiStil's LRF).")] = None,
    layer_selection: Annotated[str, typer.Option(help="Teacher layers to copy: top-of-block (BiStil), bottom, or a list 0,1,2,3.")] = "top-of-block",
    corpus: Annotated[list[str], typer.Option(help="Extra unlabeled text, LANG=PATH (.txt/.txt.gz file or folder); repeatable.")] = [],  # noqa: B006
    bitext: Annotated[list[str], typer.Option(help="Sentence pairs of the source and a target (parallel anchors): a TSV "
                                                   "with a LANG<TAB>LANG header, or LANG=FILE,LANG=FILE; repeatable.")] = [],  # noqa: B006
    no_bundled: Annotated[bool, typer.Option("--no-bundled", help="Do not use SIB-200 train/dev text as corpus.")] = False,
    steps: Annotated[int, typer.Option(help="Phase-1 optimizer steps.")] = 2000,
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.")] = 16,
    lr: Annotated[float, typer.Option(help="Phase-1 peak learning rate.")] = 1e-4,
    vocab_threshold: Annotated[float, typer.Option(help="Relative frequency a piece needs in one language.")] = 1e-6,
    alpha_hidden: Annotated[float, typer.Option(help="Weight of the hidden-state MSE.")] = 1.0,
    alpha_attn: Annotated[float, typer.Option(help="Weight of the attention MSE.")] = 1.0,
    alpha_embed: Annotated[float, typer.Option(help="Weight of the sentence-embedding cosine loss.")] = 1.0,
    alpha_parallel: Annotated[float, typer.Option(help="Weight of the parallel-sentence loss (target sentence -> teacher's embedding of its source translation).")] = 1.0,
    alpha_contrastive: Annotated[float, typer.Option(help="Weight of the contrastive loss: a sentence's embedding must pick its translation's teacher embedding among the anchors embedded so far (a memory bank).")] = 0.0,
    anchor_share: Annotated[float, typer.Option(help="Fraction of each target-language batch drawn from sentences "
                                                    "with a translation anchor (--bitext, SIB-200's parallel rows): "
                                                    "more of the parallel loss per step.")] = 0.0,
    source_share: Annotated[Optional[float], typer.Option(help="Fraction of phase-1 steps on the source language "
                                                              "(default: every language in turn, so a student of "
                                                              "15 targets sees its source one step in 16).")] = None,
    density: Annotated[float, typer.Option(help="LT-SFT: fraction of body parameters fine-tuned.")] = 0.08,
    full_epochs: Annotated[int, typer.Option(help="LT-SFT full-training epochs.")] = 4,
    sparse_epochs: Annotated[int, typer.Option(help="LT-SFT sparse-training epochs.")] = 6,
    alpha_gold: Annotated[float, typer.Option(help="Weight of the gold-label loss in phase 2.")] = 0.0,
    task_target_share: Annotated[float, typer.Option(help="Phase 2: fraction of batches of unlabelled text of the "
                                                          "target languages without labels (phase 1's text), the "
                                                          "task teacher's predictions their only targets (0: "
                                                          "BiStil, labelled rows only).")] = 0.0,
    teacher_epochs: Annotated[int, typer.Option(help="Fine-tuning epochs of the task teacher.")] = 4,
    teacher_lr: Annotated[float, typer.Option(help="Fine-tuning learning rate of the task teacher.")] = 5e-5,
    task_lr: Annotated[float, typer.Option(help="Phase-2 (LT-SFT) learning rate of the student.")] = 1e-4,
    task_teacher: Annotated[Optional[str], typer.Option(help="An already task-tuned teacher checkpoint (its head and "
                                                             "labels must be the task's).")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps (auto: CUDA, then MPS, then the CPU). Under "
                                             "torchrun each rank takes the GPU of its LOCAL_RANK.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 | bf16 | fp16: autocast for the forward passes (fp16 with a "
                                                "loss scaler, on a GPU only).")] = "fp32",
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per global batch on each rank: the same --batch-size "
                                                 "in less memory.")] = 1,
    teacher_cache: Annotated[bool, typer.Option(help="Keep the teacher's targets in RAM after each sentence's first "
                                                     "pass (it prints the RAM it needs), instead of running the "
                                                     "teacher again: phase 1 for sentences read again, phase 2 for "
                                                     "every training row (read once per epoch).")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch threads.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Data folder.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace whatever --out holds.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Distil a bilingual student from a multilingual teacher (BiStil: trim, drop layers, distil)."""
    from edgelm.api import distill

    summary = distill(target, out=out_dir, teacher=teacher, source=source, phase=phase, task=task,
                      corpus=parse_corpora(corpus), bitext=bitext,
                      data=data, use_bundled=not no_bundled, resume=resume, overwrite=overwrite, threads=threads,
                      layers=layers, layer_reduction=layer_reduction, layer_selection=layer_selection, steps=steps,
                      batch_size=batch_size, lr=lr, vocab_threshold=vocab_threshold, alpha_hidden=alpha_hidden,
                      alpha_attn=alpha_attn, alpha_embed=alpha_embed, alpha_parallel=alpha_parallel,
                      alpha_contrastive=alpha_contrastive, anchor_share=anchor_share,
                      source_share=source_share, density=density, full_epochs=full_epochs,
                      sparse_epochs=sparse_epochs, alpha_gold=alpha_gold, task_target_share=task_target_share,
                      task_teacher=task_teacher,
                      teacher_epochs=teacher_epochs, teacher_lr=teacher_lr, task_lr=task_lr,
                      checkpoint_every=checkpoint_every, seed=seed, device=device, precision=precision,
                      grad_accum=grad_accum, teacher_cache=teacher_cache)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return
    languages = [summary["config"]["source"], *summary["config"]["target"].split(",")]

    def render(s: dict) -> None:
        v, p = s["vocabulary"], s["parameters"]
        rows = [["vocabulary", v["vocab_before"], v["vocab_after"]],
                ["parameters", p["teacher"], p["student"]]]
        out.print(table(f"{' + '.join(languages)} student in {out_dir}", ["", "teacher", "student"], rows))
        for lang, c in s["corpora"].items():
            if isinstance(c, dict) and "sentences" in c:
                err.print(f"{lang}: {c['sentences']} training sentences from {', '.join(c['sources'])}; "
                          f"{c['test_sentences_excluded']} sentences of evaluation test sets excluded")
        for ph in ("general", "task"):
            if ph in s:
                out.print(f"{ph}: {json_line(s[ph])}")
        err.print(f"done in {s['wall_seconds']} s")

    emit(summary, as_json=as_json, json_out=None, render=render)


def json_line(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items() if not isinstance(v, (dict, list)))
