"""Compression sweep: what each step of compression costs a bilingual student, and where.

    python -m edgelm.benchmarks.experiments.sweep [--layers 2,4,6,12] [--runs runs/sweep] [--out runs/bench-sweep]

Variants: the eng+swh student distilled at L layers (`edgelm distill --target swh_Latn --phase general
--layers L --steps 1500`, as a child process, resumed if killed; `--run L=PATH` reuses a finished run), each
exported to TFLite fp32 / fp16 / int8 and scored through the device runtime exactly as shipped
(`edgelm eval BUNDLE`: SIB-200, 16 languages, English probe). Base = the teacher (12 layers, fp32, torch).

Metrics (`edgelm.tradeoffs`): DSI of every variant on swh_Latn, GG against the teacher on the other 15
languages, and Spearman ρ between compression intensity and GG / DSI across the variants. Intensity is
measured four ways: the compression factor (32 / bits × 12 / layers, higher = more compressed), bits
alone, layers alone and the bundle's size (the last three negated, so that for each a positive ρ
means "more compression, more gap").
Results: `results.json` and `results.md` in --out; bundles are cached by the hash of the student they come
from, evaluations per row (`experiments.rows.evaluate_rows`) for that set of bundles, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

EDGELM = [sys.executable, "-m", "edgelm"]
QUANT = {"fp32": ("none", 32), "fp16": ("fp16", 16), "int8": ("int8", 8)}
TEACHER_LAYERS = 12


def _run(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def student_run(layers: int, runs: Path, steps: int, given: dict[int, Path], data: list[str]) -> Path:
    """A finished eng+swh phase-1 student with `layers` layers (distilled here unless given)."""
    run = given.get(layers, runs / f"swh-L{layers}")
    if not (run / "general" / "model.safetensors").is_file():
        # SIB-200's text is read ~15 times in 1,500 steps: the teacher's targets are computed once (same result).
        _run([*EDGELM, "distill", "--target", "swh_Latn", "--phase", "general", "--layers", str(layers),
              "--steps", str(steps), "--teacher-cache", "--out", str(run), *data, *(["--resume"] if (run / "run.json").is_file() else [])])
    return run


def intensities(variants: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per measure, the intensity of each variant (higher = more compressed)."""
    return {"compression factor": {n: 32 / v["bits"] * TEACHER_LAYERS / v["layers"] for n, v in variants.items()},
            "fewer bits": {n: -float(v["bits"]) for n, v in variants.items()},
            "fewer layers": {n: -float(v["layers"]) for n, v in variants.items()},
            "smaller bundle (MB)": {n: -float(v["mb"]) for n, v in variants.items()}}


def render(res: dict) -> str:
    from edgelm.tradeoffs.matrix import from_json

    m = from_json(res["matrix"])
    rep = res["metrics"]
    lines = [f"# Compression sweep ({res['machine']['cpu']}, {res['machine']['cores']} cores, commit {res['machine']['commit']})",
             "", "SIB-200 accuracy through the device runtime (TFLite bundles, LiteRT; probe trained on English); "
             "base: the teacher, torch fp32.", "",
             "| variant | layers | bits | distillation steps | compression | MB | " + " | ".join(d.split("_")[0] for d in m.domains)
             + " | others mean | DSI (swh) | GG (rel) |", "|---|---|---|---|---|---|" + "---|" * (len(m.domains) + 3)]
    for i, name in enumerate(m.models):
        v = res["variants"].get(name, {"layers": TEACHER_LAYERS, "bits": 32, "mb": res["teacher_mb"], "steps": "–"})
        others = np.mean([x for d, x in zip(m.domains, m.scores[i]) if d != "swh_Latn"])
        gg = rep["gg"].get(name, {}).get("rel", 0.0)  # the base (teacher) has no gap to itself
        dsi = rep["dsi"].get(name, {}).get("ratio", m.score(name, "swh_Latn") / others)
        lines.append(f"| {name} | {v['layers']} | {v['bits']} | {v['steps']} | {32 / v['bits'] * TEACHER_LAYERS / v['layers']:.1f}× | "
                     f"{v['mb']:.1f} | " + " | ".join(f"{x:.3f}" for x in m.scores[i])
                     + f" | {others:.3f} | {dsi:.3f} | {gg:.4f} |")
    lines += ["", "Spearman ρ across the student variants (the teacher has no intensity: it is the base).", "",
              "| intensity measure | ρ with GG | ρ with DSI | variants |", "|---|---|---|---|"]
    for measure, sp in res["spearman"].items():
        lines.append(f"| {measure} | {sp['intensity_vs_gg']['rho']:.3f} | {sp['intensity_vs_dsi']['rho']:.3f} | "
                     f"{sp['intensity_vs_gg']['n']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default="2,4,6,12")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--runs", type=Path, default=Path("runs/sweep"), help="where the students are distilled")
    ap.add_argument("--run", action="append", default=[], help="L=PATH: a finished run to use for L layers")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-sweep"))
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args(argv)
    from edgelm.benchmarks.harness import machine_info, save_results
    from edgelm.benchmarks.experiments.rows import evaluate_rows
    from edgelm.hashing import sha256_file
    from edgelm.tradeoffs.matrix import from_json
    from edgelm.tradeoffs.tradeoff import tradeoff_report
    from edgelm.teacher.registry import pull_teacher

    data = ["--data", str(args.data)] if args.data else []
    given = {int(k): Path(v) for k, v in (r.split("=", 1) for r in args.run)}
    out = args.out
    teacher = pull_teacher("e5-small")
    rows, variants = {"teacher": "e5-small"}, {}
    for layers in [int(x) for x in args.layers.split(",")]:
        run = student_run(layers, args.runs, args.steps, given, data)
        key = sha256_file(run / "general" / "model.safetensors")[:12]
        for qname, (quantize, bits) in QUANT.items():
            name = f"L{layers} {qname}"
            bundle = out / "bundles" / f"L{layers}-{qname}-{key}"
            if not (bundle / "manifest.json").is_file():
                _run([*EDGELM, "export", str(run / "general"), "--target", "tflite", "--quantize", quantize,
                      "--out", str(bundle), "--overwrite", *data])
            manifest = json.loads((bundle / "manifest.json").read_text())
            rows[name] = str(bundle)
            variants[name] = {"layers": layers, "bits": bits, "steps": json.loads((run / "run.json").read_text())["config"]["steps"],
                              "run": str(run), "bundle": str(bundle), "mb": manifest["sizes"]["file_bytes"] / 2**20}
    cache = out / "eval" / hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:12]  # these bundles
    reports = evaluate_rows(rows, cache, args.data, tasks=("sib200",))
    for name, v in variants.items():
        v["truncated_texts"] = reports[name]["model"].get("truncated_texts", 0)
    langs = [s["language"] for s in reports["teacher"]["sib200"]["scores"]]
    matrix = {"domains": langs, "base": "teacher", "targets": {n: "swh_Latn" for n in variants},
              "scores": {n: [next(s["accuracy"] for s in r["sib200"]["scores"] if s["language"] == l) for l in langs]
                         for n, r in reports.items()}}
    metrics, spearman = None, {}
    for measure, values in intensities(variants).items():
        rep = tradeoff_report(from_json(matrix | {"intensity": values}))
        metrics = metrics or rep
        spearman[measure] = rep["spearman"]
    res = {"machine": machine_info(), "teacher": str(teacher), "teacher_mb": sum(
        p.stat().st_size for p in Path(teacher).glob("*.safetensors")) / 2**20, "variants": variants,
        "matrix": matrix, "metrics": metrics, "spearman": spearman}
    save_results(res, render(res), out, "sweep", kind="sweep")
    print(render(res))


if __name__ == "__main__":
    main()
