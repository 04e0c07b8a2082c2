"""Routed models as bundles: the body and every expert as separate graphs, the router as weights.

ONNX: `body.onnx` and `expert-NAME.onnx`, each quantized alone. TFLite: one file whose signatures are
`body_seqN` and `eNAME_seqN` per bucket. The router ships as `router.safetensors` and runs in numpy
on the device (`kernels.routing.route_numpy`), so the device never pays for an expert no input chose.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from edgelm.errors import EdgelmError
from edgelm.routing.format import safe_name

ROUTED_QUANT = {"onnx": ("none", "int8"), "tflite": ("none", "fp16", "int8")}


def check_routed_quantize(target: str, quantize: str) -> None:
    if quantize not in ROUTED_QUANT[target]:
        raise EdgelmError(f"routed models export to {target} with --quantize {' or '.join(ROUTED_QUANT[target])}, "
                          f"not {quantize} (static int8 would need calibration states for every expert)")


def load_routed(path: Path):
    """(RoutedModel, tokenizer, bundle config) of a routed folder."""
    from edgelm.checkpoint import architecture
    from edgelm.routing.model import RoutedModel

    routed = RoutedModel.load(path)
    cfg = routed.body.config
    meta = routed.meta
    config = {"task": "embedding", "labels": None, "pooling": routed.recipe.pooling, "normalize": routed.recipe.normalize,
              "prefix": routed.recipe.prefix, "pad_id": cfg.pad_token_id if cfg.pad_token_id is not None else 1,
              "max_length": min(512, cfg.max_position_embeddings), "languages": meta.get("languages") or [],
              "architecture": architecture(cfg) | {"layers": meta["body_layers"] + meta["expert_layers"],
                                                   "body_layers": meta["body_layers"],
                                                   "expert_layers": meta["expert_layers"]},
              "routed": {"experts": meta["experts"], "domains": meta["domains"], "general": meta["general"],
                         "always_general": meta["always_general"], "tau": meta["tau"], "k_max": meta["k_max"],
                         "router_file": "router.safetensors", "body_fingerprint": meta["body_fingerprint"]}}
    return routed, routed.tokenizer, config


def _part_name(name: str) -> str:
    """The TFLite signature prefix of expert `name`."""
    return "e" + safe_name(name)


def _graphs(routed) -> dict:
    from edgelm.exporters.graphs import BodyGraph, ExpertGraph

    parts = {"body": BodyGraph(routed.body).eval()}
    for name, expert in zip(routed.names, routed.experts):
        parts[name] = ExpertGraph(expert, routed.recipe.pooling, routed.recipe.normalize).eval()
    return parts


def write_routed(tmp: Path, routed, target: str, quantize: str, ids: torch.Tensor, mask: torch.Tensor,
                 buckets: tuple[int, ...] | None) -> tuple[dict, dict, dict]:
    """Write the parts into `tmp`; return (config additions, additions to config["routed"], sizes)."""
    check_routed_quantize(target, quantize)
    shutil.copy(routed.path / "router.safetensors", tmp / "router.safetensors")
    graphs = _graphs(routed)
    with torch.no_grad():  # not inference_mode: exporters trace through these tensors
        hidden = graphs["body"](ids[:2], mask[:2])
    if target == "onnx":
        from edgelm.exporters.onnx import OPSET, export_onnx, part_sizes, quantize_onnx

        files, sizes = {}, {}
        for name, graph in graphs.items():
            final = tmp / ("body.onnx" if name == "body" else f"expert-{safe_name(name)}.onnx")
            fp32 = final.with_suffix(".fp32.onnx")
            if name == "body":
                export_onnx(graph, (ids[:2], mask[:2]), fp32)
            else:
                export_onnx(graph, (hidden.clone(), mask[:2]), fp32, input_names=("hidden", "attention_mask"))
            if quantize == "none":
                fp32.rename(final)
            else:
                quantize_onnx(fp32, final, quantize)
                fp32.unlink()
            files[name] = final.name
            sizes[name] = final.stat().st_size
        for extra in tmp.glob("*.data"):
            extra.unlink()
        weights = part_sizes(tmp / files["body"])
        return ({"model_file": files["body"], "buckets": None}, {"files": files},
                {"opset": OPSET, "file_bytes_by_part": sizes, "weights_by_part": weights})
    from edgelm.exporters.tflite import INPUT_NAMES, export_tflite_parts, signature_name, token_sample

    def body_sample(bucket: int):
        return token_sample(bucket, ids)

    def expert_sample(bucket: int):
        row_ids, row_mask = token_sample(bucket, ids)
        with torch.no_grad():
            return graphs["body"](row_ids, row_mask), row_mask

    parts = {"body": (graphs["body"], body_sample)}
    parts.update({_part_name(n): (graphs[n], expert_sample) for n in routed.names})
    model_file = tmp / "model.tflite"
    export_tflite_parts(parts, buckets, model_file, quantize)
    signatures = {"body": {str(b): signature_name(b, "body") for b in buckets}}
    signatures.update({n: {str(b): signature_name(b, _part_name(n)) for b in buckets} for n in routed.names})
    return ({"model_file": model_file.name, "buckets": list(buckets), "signature_inputs": INPUT_NAMES},
            {"signatures": signatures}, {})
