"""The Hugging Face layout of an ONNX export: a folder Optimum's `ORTModelFor…` classes and
sentence-transformers' ONNX backend open as their own.

    config.json, tokenizer files, sentence-transformers module files (encoders), README.md,
    onnx/model.onnx   (input_ids, attention_mask) -> last_hidden_state | logits

Unlike an edgelm bundle, the graph stops before pooling: those libraries pool themselves (the module
files say how, as edgelm does). The export is checked the way a bundle is: the written graph, run by
onnxruntime and pooled by the recipe, must reproduce the source model on real sentences.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


from edgelm.errors import EdgelmError

QUANTIZE = ("none", "int8")
MIN_COSINE = {"none": 0.9999, "int8": 0.98}  # pooled sentence vectors (logits: the same on their rows)


def export_optimum(model: str, out: Path, quantize: str = "int8", *, data: Path | None = None,
                   overwrite: bool = False) -> dict:
    """Write `model` (an encoder, or a sentence or token classifier) in the Optimum layout at `out`;
    return what was written and its parity with the source."""
    import onnxruntime as ort
    import torch

    from edgelm.atomic import atomic_dir
    from edgelm.checkpoint import (EmbeddingRecipe, check_checkpoint, encode_texts, load_model, load_tokenizer,
                                   task_head, write_interop)
    from edgelm.exporters.bundle import parity_texts
    from edgelm.exporters.graphs import BodyGraph, ClassifierGraph
    from edgelm.exporters.onnx import export_onnx, quantize_onnx
    from edgelm.kernels.pooling import masked_mean_np
    from edgelm.runtime.parity import cosine_rows
    from edgelm.teacher.registry import resolve_model

    if quantize not in QUANTIZE:
        raise EdgelmError(f"--layout optimum takes --quantize {' or '.join(QUANTIZE)}, not {quantize!r} "
                          "(static int8 and fp16 are bundle options)")
    out = Path(out)
    if out.exists() and not overwrite:
        raise EdgelmError(f"{out} exists; choose another --out or pass --overwrite")
    path = resolve_model(model)
    check_checkpoint(path)
    head = task_head(path)
    if head is None:
        torch_model = load_model(path)
        graph, output = BodyGraph(torch_model), "last_hidden_state"
    else:
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

        torch_model = load_model(path, AutoModelForSequenceClassification if head == "sequence"
                                 else AutoModelForTokenClassification)
        graph, output = ClassifierGraph(torch_model), "logits"
    recipe = EmbeddingRecipe.from_config(torch_model.config, str(path))
    tokenizer = load_tokenizer(path)
    meta = getattr(torch_model.config, "edgelm", None) or {}
    languages = (meta.get("distilled") or {}).get("languages") or (
        (meta.get("artifact") or {}).get("provenance") or {}).get("languages") or []
    texts = parity_texts(data, languages)
    batch = encode_texts(tokenizer, texts, recipe.prefix, min(512, torch_model.config.max_position_embeddings))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.inference_mode():
        reference = graph.eval()(ids, mask).float().numpy()
    with atomic_dir(out, replace=overwrite) as tmp:
        (tmp / "onnx").mkdir()
        fp32 = tmp / "onnx" / "model.fp32.onnx"
        export_onnx(graph, (ids[:2], mask[:2]), fp32, output_name=output)
        final = tmp / "onnx" / "model.onnx"
        if quantize == "none":
            fp32.rename(final)
        else:
            quantize_onnx(fp32, final, "int8")
            fp32.unlink()
        for extra in (tmp / "onnx").glob("*.data"):
            extra.unlink()
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                     "sentencepiece.bpe.model"):
            if (path / name).is_file():
                shutil.copy(path / name, tmp / name)
        # sentence-transformers' module files (encoders) and the model card, as a checkpoint of it would have
        write_interop(tmp, torch_model.config, name=out.name, parameters=torch_model.num_parameters(),
                      max_length=min(512, torch_model.config.max_position_embeddings))
        session = ort.InferenceSession(str(final), providers=["CPUExecutionProvider"])
        got = session.run([output], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        m = mask.numpy()
        if head is None:  # what the libraries compute from it: the recipe's pooling (cosine ignores the norm)
            pool = (lambda h: h[:, 0]) if recipe.pooling == "cls" else (lambda h: masked_mean_np(h, m))
            cos = cosine_rows(pool(got), pool(reference))
        elif head == "token":
            keep = m.astype(bool)
            cos = cosine_rows(got[keep], reference[keep])
        else:
            cos = cosine_rows(got, reference)
        parity = {"texts": len(texts), "min_cosine": float(cos.min()), "threshold": MIN_COSINE[quantize]}
        if parity["min_cosine"] < MIN_COSINE[quantize]:
            raise EdgelmError(f"the optimum-layout export disagrees with the source (min cosine "
                              f"{parity['min_cosine']:.4f} < {MIN_COSINE[quantize]}); nothing was written")
        (tmp / "edgelm_export.json").write_text(json.dumps(
            {"layout": "optimum", "source": str(path), "quantize": quantize, "output": output, "parity": parity},
            indent=1))
    return {"path": str(out), "layout": "optimum", "output": output, "quantize": quantize, "parity": parity,
            "bytes": (out / "onnx" / "model.onnx").stat().st_size}
