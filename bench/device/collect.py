"""Gather one emulated-device run's files (runs/aarch64: bench.json and, with SCORE=1, CPU-scores.json,
CPU-metrics.json, CPU-unchecked.json) into bench/results/aarch64-CPU.json, stamped with the host
machine, so the README's device tables come from a file in the repository.

    python bench/device/collect.py cortex-a72      (aarch64.sh runs it at the end)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def collect(cpu: str, folder: Path = Path("runs") / "aarch64") -> dict:
    from edgelm.benchmarks.harness import save_results

    def read(name: str):
        path = folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    result = {"emulated_cpu": cpu, "bench": read("bench.json"), "scores": read(f"{cpu}-scores.json"),
              "metrics": read(f"{cpu}-metrics.json"), "unchecked_xnnpack": read(f"{cpu}-unchecked.json")}
    lines = [f"emulated CPU {cpu}"]
    for name, row in ((result["scores"] or {}).get("scores") or {}).items():
        langs = result["scores"]["domains"]
        lines.append(f"{name}: " + ", ".join(f"{l} {s:.3f}" for l, s in zip(langs, row)))
    for name, row in (result["unchecked_xnnpack"] or {}).items():
        lines.append(f"{name} (XNNPACK, parity off): " + ", ".join(f"{l} {s:.3f}" for l, s in row["accuracy"].items()))
    return save_results(result, "\n".join(lines) + "\n", folder, f"aarch64-{cpu}", kind="aarch64")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/device/collect.py EMULATED_CPU")
    collect(sys.argv[1])
