"""ONNX export (torch.onnx, dynamo) with dynamic batch and length, and onnxruntime quantization."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from edgelm.errors import EdgelmError

OPSET = 18
QUANT_MODES = ("none", "int8", "int8-static")


def export_onnx(graph: torch.nn.Module, sample: tuple[torch.Tensor, ...], path: Path,
                input_names: tuple[str, ...] = ("input_ids", "attention_mask"), output_name: str = "output") -> None:
    """Write `graph` as ONNX with symbolic batch and sequence axes (the first two of every input)."""
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=512)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph.eval(), sample, dynamo=True, opset_version=OPSET, verbose=False,
                input_names=list(input_names), output_names=[output_name],
                dynamic_shapes=tuple({0: batch, 1: seq} for _ in sample),
            )
    except Exception as exc:  # torch.export reports untraceable models with many exception types
        raise EdgelmError(f"the model cannot be traced for ONNX export: {str(exc).splitlines()[0][:300]}") from None
    program.save(str(path))


class _Calibration:
    """onnxruntime CalibrationDataReader over real tokenized sentences."""

    def __init__(self, batches: list[tuple[np.ndarray, np.ndarray]]):
        self._it = iter([{"input_ids": i, "attention_mask": m} for i, m in batches])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - newer onnxruntime calls it
        pass


def quantize_onnx(fp32: Path, out: Path, mode: str, calibration: list[tuple[np.ndarray, np.ndarray]] | None = None) -> None:
    """int8: dynamic (weights int8 per channel, embedding table included); int8-static: QDQ calibrated."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_name(out.stem + ".pre.onnx")
    # Symbolic shape inference cannot follow BERT's position slicing; plain ONNX inference suffices.
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    try:
        if mode == "int8":
            # 7-bit weights: without VNNI (AVX2-only x86) full-range u8s8 products can saturate.
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        elif mode == "int8-static":
            if not calibration:
                raise EdgelmError("static int8 needs calibration sentences")
            quantize_static(str(pre), str(out), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            op_types_to_quantize=["MatMul", "Gemm", "Gather"])
        else:
            raise EdgelmError(f"unknown ONNX quantization {mode!r}; use one of {', '.join(QUANT_MODES)}")
    finally:
        pre.unlink(missing_ok=True)


def _part_of(text: str) -> str | None:
    text = text.lower()
    if "embeddings" in text:
        return "embeddings"
    if "classifier" in text or "pooler" in text:
        return "head"
    if ".layer." in text:
        return "encoder"
    return None


def initializer_parts(path: Path) -> dict[str, str]:
    """Which part (embeddings / encoder / head) each weight of an exported fp32 graph belongs to.

    The dynamo exporter names many weights `val_N`; the module path survives only in the consuming
    node's name scopes, which quantization drops, so this is read from the fp32 graph.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    parts: dict[str, str] = {}
    for node in model.graph.node:
        scope = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        part = _part_of(scope)
        for name in node.input:
            if part and name in inits:
                parts.setdefault(name, part)
    return parts


def part_sizes(path: Path, parts: dict[str, str] | None = None) -> dict[str, int]:
    """Bytes of the graph's weights by part: embeddings, encoder layers, head, other."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    sizes = {"embeddings": 0, "encoder": 0, "head": 0, "other": 0}
    for init in model.graph.initializer:
        n = int(np.prod(init.dims)) * onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize if init.dims else 0
        base = init.name
        for suffix in ("_quantized", "_scale", "_zero_point"):
            base = base.removesuffix(suffix)
        part = (parts or {}).get(base) or _part_of(init.name) or "other"
        sizes[part] += n
    return sizes
