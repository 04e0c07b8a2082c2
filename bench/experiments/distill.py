"""Distillation benchmark: what each BiStil step buys and costs, against the teacher, in one run.

    python -m edgelm.benchmarks.experiments.distill --target swh_Latn [--layers 4] [--steps 1500] [--out runs/...]

Rows: the teacher; vocabulary trimming alone (12 layers); trimming + dropped layers, no training;
BiStil phase 1; BiStil phase 1 + 2 (and the task-tuned teacher, the fair peer of phase 2's head).
Columns: parameters, checkpoint MB, SIB-200 test accuracy in every language, Tatoeba target<->eng
retrieval, CPU latency of one sentence at batch 1 on one thread as a ratio to the teacher (same
sentences, rounds interleaved so a noisy machine hits every model alike), training wall time and
peak memory. The distillation runs as a child process (`edgelm distill`), which gives its peak
memory and lets a killed benchmark resume. Results: `results.json` and `results.md` in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _ckpt_mb(folder: Path) -> float:
    return (folder / "model.safetensors").stat().st_size / 2**20


def _latency(folders: dict[str, Path], sentences: list[str], rounds: int = 5) -> dict[str, dict]:
    """Median / p90 ms per sentence at batch 1 on one thread, models interleaved round by round."""
    import torch

    from edgelm.encoder import Encoder

    torch.set_num_threads(1)
    encoders = {name: Encoder.load(path) for name, path in folders.items()}
    samples: dict[str, list[float]] = {name: [] for name in folders}
    with torch.inference_mode():
        for enc in encoders.values():  # warm-up
            for s in sentences[:5]:
                enc.model(**enc.tokenize([s]))
        for _ in range(rounds):
            for name, enc in encoders.items():
                for s in sentences:
                    batch = enc.tokenize([s])
                    t0 = time.perf_counter()
                    enc.model(**batch)
                    samples[name].append((time.perf_counter() - t0) * 1000)
    torch.set_num_threads(os.cpu_count() or 1)
    return {n: {"p50_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)), "n": len(v)}
            for n, v in samples.items()}


def build_untrained(run: Path, teacher_path: Path, out: Path, layers: int, selection: str) -> dict[str, Path]:
    """The no-training rows: trimmed vocabulary on all teacher layers, and with layers dropped."""
    from edgelm.checkpoint import load_model
    from edgelm.distillation.student import make_student, select_layers
    from edgelm.encoder import save_encoder

    vocab = json.loads((run / "vocab.json").read_text())
    kept = np.array(vocab["kept"])
    teacher = load_model(teacher_path)
    tok_json = json.loads((run / "general" / "tokenizer.json").read_text())
    n = teacher.config.num_hidden_layers
    made = {}
    for name, chosen in (("trim-only", list(range(n))), ("trim+drop", select_layers(n, layers, selection))):
        folder = out / name
        if not (folder / "model.safetensors").is_file():
            save_encoder(make_student(teacher, kept, chosen), tok_json, folder, teacher.config.max_position_embeddings)
        made[name] = folder
    return made


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="eng_Latn")
    ap.add_argument("--target", default="swh_Latn")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--layer-selection", default="top-of-block")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--full-epochs", type=int, default=3)
    ap.add_argument("--sparse-epochs", type=int, default=4)
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--latency-sentences", type=int, default=40)
    args = ap.parse_args(argv)
    out = args.out or Path("runs") / f"bench-distill-{args.target}"
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from edgelm.data import data_root, load_sib200
    from edgelm.evaluation import evaluate_model
    from edgelm.teacher.registry import pull_teacher

    teacher_path = pull_teacher("e5-small")
    root = data_root()
    run = out / "run"
    cmd = [sys.executable, "-m", "edgelm", "distill", "--out", str(run), "--source", args.source, "--target",
           args.target, "--layers", str(args.layers), "--layer-selection", args.layer_selection,
           "--steps", str(args.steps), "--full-epochs", str(args.full_epochs), "--sparse-epochs", str(args.sparse_epochs),
           "--teacher-epochs", str(args.teacher_epochs)]
    if (run / "run.json").is_file():
        cmd.append("--resume")
    started = time.perf_counter()
    done = subprocess.run(cmd)
    if done.returncode != 0:
        sys.exit(f"distillation failed (exit {done.returncode})")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads((run / "run.json").read_text())
    print(f"distillation: {time.perf_counter() - started:.0f} s (this invocation)", file=sys.stderr)

    models = {"teacher": teacher_path}
    models.update(build_untrained(run, teacher_path, out, args.layers, args.layer_selection))
    models["bistil phase 1"] = run / "general"
    models["task teacher"] = run / "task_teacher"
    models["bistil phase 1+2"] = run / "task"
    reports = {}
    for name, path in models.items():
        print(f"evaluating {name}", file=sys.stderr)
        reports[name] = evaluate_model(str(path), tasks=["sib200", "tatoeba"], languages=None, source=args.source)
        reports[name]["model"]["checkpoint_mb"] = _ckpt_mb(Path(path))
    sentences = [r.text for r in load_sib200(root, args.target, "test")[: args.latency_sentences]]
    latency = _latency({n: p for n, p in models.items() if n != "task teacher"}, sentences)
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "distill": summary, "reports": reports,
              "latency_1thread_batch1": latency, "distill_peak_rss_mb": peak_mb,
              "train_seconds": {"phase1": summary.get("general", {}).get("train_seconds"),
                                "phase2": summary.get("task", {}).get("train_seconds"),
                                "task_teacher": summary.get("task", {}).get("task_teacher", {}).get("train_seconds")}}
    from edgelm.benchmarks.harness import save_results

    md = render(result, args)
    save_results(result, md, out, f"distill-{args.target}", kind="distill")
    print(md)


def render(result: dict, args) -> str:
    reps, lat = result["reports"], result["latency_1thread_batch1"]
    t_lat = lat["teacher"]["p50_ms"]
    tgt, src = args.target, args.source
    lines = [f"| model | params (M) | ckpt MB | SIB {tgt} | SIB {src} | SIB mean (16) | Tatoeba {tgt}↔eng | "
             f"latency p50 ms (× teacher) |", "|---|---|---|---|---|---|---|---|"]
    for name, rep in reps.items():
        sib = {s["language"]: s["accuracy"] for s in rep["sib200"]["scores"]}
        tat = {s["language"]: s["accuracy"] for s in rep.get("tatoeba", {}).get("scores", [])}
        l = lat.get(name)
        lat_txt = f"{l['p50_ms']:.1f} ({t_lat / l['p50_ms']:.2f}× faster)" if l else "–"
        how = " (head)" if rep["sib200"]["probe"]["kind"] == "model_head" else ""
        lines.append(f"| {name}{how} | {rep['model']['parameters'] / 1e6:.1f} | {rep['model']['checkpoint_mb']:.0f} | "
                     f"{sib.get(tgt, float('nan')):.3f} | {sib.get(src, float('nan')):.3f} | "
                     f"{np.mean(list(sib.values())):.3f} | {tat.get(tgt, float('nan')):.3f} | {lat_txt} |")
    langs = [s["language"] for s in reps["teacher"]["sib200"]["scores"]]
    lines += ["", "SIB-200 accuracy per language:", "",
              "| model | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
    for name, rep in reps.items():
        sib = {s["language"]: s["accuracy"] for s in rep["sib200"]["scores"]}
        lines.append(f"| {name} | " + " | ".join(f"{sib[l]:.2f}" for l in langs) + " |")
    ts = result["train_seconds"]
    lines += ["", f"Training: phase 1 {ts['phase1']} s, task teacher {ts['task_teacher']} s, phase 2 {ts['phase2']} s; "
              f"peak RSS of the distillation process {result['distill_peak_rss_mb']:.0f} MB."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
