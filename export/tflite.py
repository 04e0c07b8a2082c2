"""TFLite (LiteRT) export with litert-torch: one fixed-length signature per sequence bucket.

litert-torch lowers only static shapes (dynamic sequence axes fail in its lowering, see
research/toolchain.md §3), so the graph is traced once per bucket (`seq32`, `seq64`, …) into one
file whose signatures share the weights. Batch is 1: the runtime feeds rows one at a time, which is
what a device serving one user does anyway. Quantization uses litert-torch's own recipes: fp16
weights, or dynamic-range int8 (int8 weights, embedding table included, float activations) — the
static int8 recipes convert but produce garbage for transformers, so they are not offered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgelm.errors import EdgelmError
from edgelm.quiet import quiet_native_output

QUANT_MODES = ("none", "fp16", "int8")
DEFAULT_BUCKETS = (32, 64, 128)
INPUT_NAMES = {"input_ids": "args_0", "attention_mask": "args_1"}  # litert-torch names inputs by position


def signature_name(bucket: int, part: str = "") -> str:
    return f"{part}_seq{bucket}" if part else f"seq{bucket}"


def _recipe(quantize: str):
    from litert_torch.generative.quantize import quant_recipes

    if quantize == "none":
        return None
    if quantize == "fp16":
        return quant_recipes.full_fp16_recipe()
    if quantize == "int8":
        return quant_recipes.full_dynamic_recipe()
    raise EdgelmError(f"unknown TFLite quantization {quantize!r}; use one of {', '.join(QUANT_MODES)}")


def token_sample(bucket: int, sample_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One row of `bucket` token ids (real ones when given: a more honest trace than a constant) + mask."""
    ids = torch.full((1, bucket), 5, dtype=torch.int64)
    if sample_ids is not None:
        row = sample_ids[0, :bucket]
        ids[0, : row.numel()] = row
    return ids, torch.ones((1, bucket), dtype=torch.int64)


def export_tflite(graph: torch.nn.Module, buckets: tuple[int, ...], path: Path, quantize: str = "none",
                  sample_ids: torch.Tensor | None = None) -> None:
    """Write `graph` as a .tflite file with one `seq{N}` signature per bucket (batch 1)."""
    export_tflite_parts({"": (graph, lambda b: token_sample(b, sample_ids))}, buckets, path, quantize)


def export_tflite_parts(parts: dict, buckets: tuple[int, ...], path: Path, quantize: str = "none") -> None:
    """Several graphs in one .tflite file: `parts[name] = (graph, sample(bucket) -> inputs)` becomes
    one signature `{name}_seq{N}` per bucket (`seq{N}` for the unnamed part); weights are shared."""
    try:
        with quiet_native_output():  # import-time deprecation chatter from torchao / jax
            import litert_torch
    except ImportError:
        raise EdgelmError("the TFLite target needs litert-torch: pip install 'edgelm[tflite]'") from None
    with quiet_native_output():
        recipe = _recipe(quantize)
    converter = None
    for name, (graph, sample) in parts.items():
        for bucket in sorted(buckets):
            converter = (converter or litert_torch).signature(signature_name(bucket, name), graph.eval(), sample(bucket))
    with quiet_native_output():
        try:
            edge = converter.convert(quant_config=recipe)
            edge.export(str(path))
        except Exception as exc:  # lowering reports untraceable models with many exception types
            raise EdgelmError(f"the model cannot be converted to TFLite: {str(exc).splitlines()[0][:300]}") from None


def _part_of_tensor(name: str, shape: tuple[int, ...], vocab_rows: set[int]) -> str:
    # Names are module paths, "Graph/ClassName_attr/ClassName_attr/…"; fused tensors join several with ";".
    low = name.split(";")[0].partition("/")[2].lower()
    if "embedding" in low:
        return "embeddings"
    if "classifier" in low or "pooler" in low or "classificationhead" in low:
        return "head"
    if "layer" in low or "attention" in low or "intermediate" in low:
        return "encoder"
    if shape and shape[0] in vocab_rows:
        return "embeddings"
    return "other"


def tflite_part_sizes(path: Path, vocab_rows: set[int]) -> dict[str, int]:
    """Bytes of the file's constant buffers by part (each shared buffer counted once).

    `vocab_rows` are the first dimensions that mark an embedding table (vocabulary size, positions):
    the converter often names the word-embedding constant `arith.constantN`, without its module path.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    owner: dict[int, tuple[str, tuple[int, ...]]] = {}
    for sub in model.subgraphs:
        for t in sub.tensors:
            name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
            owner.setdefault(t.buffer, (name, tuple(int(x) for x in (t.shape if t.shape is not None else ()))))
    sizes = {"embeddings": 0, "encoder": 0, "head": 0, "other": 0}
    for i, buf in enumerate(model.buffers):
        n = int(np.asarray(buf.data).size) if buf.data is not None else int(getattr(buf, "size", 0) or 0)
        if n and i in owner:
            sizes[_part_of_tensor(*owner[i], vocab_rows)] += n
    return sizes
