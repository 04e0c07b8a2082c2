"""Phase 1 on a CUDA device against the CPU of the same machine: steps/s and their ratio.

    bench/gpu.sh [--steps 300] [--out runs/bench-gpu]      (python -m edgelm.benchmarks.experiments.gpu)

The scale benchmark's job (4-layer eng->swh student, SIB-200 text, batch 16) on the CPU in fp32, then
on the GPU in fp32, bf16 and fp16 autocast, and at batch 128 in bf16 (what a GPU is for). Rates are
taken between logged steps after a warm-up, from each run's own log. Refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edgelm.benchmarks.experiments.scale import _cached, _edgelm, _rate


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--cpu-steps", type=int, default=60, help="steps of the CPU baseline (it is slow)")
    ap.add_argument("--out", type=Path, default=Path("runs") / "bench-gpu")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        sys.exit(f"no CUDA device: torch {torch.__version__} ({torch.version.cuda or 'CPU-only build'})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from edgelm.benchmarks.harness import machine_info, save_results

    cases = {  # name -> (device, precision, batch, steps)
        "cpu fp32, batch 16": ("cpu", "fp32", 16, args.cpu_steps),
        "cuda fp32, batch 16": ("cuda", "fp32", 16, args.steps),
        "cuda bf16, batch 16": ("cuda", "bf16", 16, args.steps),
        "cuda fp16, batch 16": ("cuda", "fp16", 16, args.steps),
        "cuda bf16, batch 128": ("cuda", "bf16", 128, args.steps),
    }
    rows = {}
    for name, (device, precision, batch, steps) in cases.items():
        run = args.out / name.replace(" ", "_").replace(",", "")

        def make(device=device, precision=precision, batch=batch, steps=steps, run=run):
            wall, rss = _edgelm(["distill", "--phase", "general", "--target", "swh_Latn", "--device", device,
                                 "--precision", precision, "--batch-size", str(batch), "--steps", str(steps),
                                 "--overwrite", "--out", str(run)])
            rate = _rate(run, 20 if steps > 40 else 10, steps, batch)
            return {"sentences_per_s": round(rate, 1), "steps_per_s": round(rate / batch, 2), "wall_s": round(wall, 1)}

        rows[name] = _cached(args.out, name, make)  # a killed or failed run keeps the rows it measured
        print(f"{name}: {rows[name]}", file=sys.stderr, flush=True)
    cpu = rows["cpu fp32, batch 16"]["steps_per_s"]
    result = {"machine": machine_info(), "gpu": torch.cuda.get_device_name(0), "rows": rows}
    lines = [f"Phase 1 on {result['gpu']} vs this machine's CPU ({result['machine']['cpu']}, "
             f"{result['machine']['cores']} cores):", "", "| setting | steps/s | sentences/s | vs CPU (steps/s) |",
             "|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['steps_per_s']} | {r['sentences_per_s']} | {r['steps_per_s'] / cpu:.1f}× |")
    md = "\n".join(lines) + "\n"
    save_results(result, md, args.out, "gpu", kind="gpu")
    print(md)


if __name__ == "__main__":
    main()
