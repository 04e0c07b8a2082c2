"""`edgelm export`: a checkpoint in, a verified edge bundle out.

Options are checked before any model loads; the bundle is written into a temporary folder, then
run by the device runtime in a separate, torch-free process against the source model's outputs,
and only a bundle that passes is renamed into place. A failing one is removed and the error says
by how much it missed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from edgelm.atomic import atomic_dir
from edgelm.errors import EdgelmError
from edgelm.runtime.backends import RUNS
from edgelm.runtime.model import pad_to_bucket
from edgelm.runtime.parity import compare_outputs, parity_failures, routing_agreement, token_rows

RUNS_FIRST = {target: backends[0] for target, backends in RUNS.items()}
TARGETS = {"onnx": ("none", "int8", "int8-static"), "tflite": ("none", "fp16", "int8")}
# Parity thresholds per quantization: minimum cosine of outputs (embeddings or logits) to the
# source model, and for classifiers the share of identical predicted labels.
THRESHOLDS = {
    "none": {"min_cosine": 0.9999, "label_agreement": 1.0, "routing_agreement": 1.0},
    "fp16": {"min_cosine": 0.999, "label_agreement": 0.95, "routing_agreement": 0.95},
    "int8": {"min_cosine": 0.98, "label_agreement": 0.8, "routing_agreement": 0.9},
    "int8-static": {"min_cosine": 0.95, "label_agreement": 0.7, "routing_agreement": 0.8},
}

_VERIFY = """
import json, sys
from edgelm.runtime import Model
m = Model.load(sys.argv[1])
report = m.check_parity()
report["torch_imported"] = "torch" in sys.modules
print(json.dumps(report))
"""


def check_options(target: str, quantize: str) -> None:
    """Refuse impossible target / quantization combinations before anything loads."""
    if target not in TARGETS:
        raise EdgelmError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    if quantize not in TARGETS[target]:
        raise EdgelmError(f"--quantize {quantize} is not available for {target}; use one of {', '.join(TARGETS[target])}")


def check_buckets(buckets: tuple[int, ...]) -> tuple[int, ...]:
    """Sequence buckets for fixed-shape targets: distinct lengths between 8 and 512, ascending."""
    if not buckets or min(buckets) < 8 or max(buckets) > 512:
        raise EdgelmError("--buckets must be lengths between 8 and 512, e.g. 32,64,128")
    return tuple(sorted(set(buckets)))


def parity_texts(data: Path | None, languages: list[str]) -> list[str]:
    """Real sentences for the parity record: SIB-200 dev rows in the model's languages, else curated ones."""
    from edgelm.teacher.validate import CURATED

    texts: list[str] = []
    if data is not None:
        from edgelm.data.sib200 import load_sib200, sib200_languages

        have = sib200_languages(data)
        for lang in [l for l in languages if l in have] or ["eng_Latn"]:
            texts += [r.text for r in load_sib200(data, lang, "dev")[:4]]
    return (texts + CURATED[:8])[:16]


def _load_graph(path: Path):
    """The torch graph to export and what the bundle config needs to know about it."""
    from edgelm.checkpoint import EmbeddingRecipe, architecture, head_labels, load_model, load_tokenizer, task_head
    from edgelm.data.tasks import is_bio
    from edgelm.exporters.graphs import ClassifierGraph, EmbeddingGraph

    head, labels = task_head(path), head_labels(path)
    tokenizer = load_tokenizer(path)
    scheme = None
    if head == "sequence":
        from transformers import AutoModelForSequenceClassification

        model = load_model(path, AutoModelForSequenceClassification)
        graph, task = ClassifierGraph(model), "classification"
    elif head == "token":  # the same graph: (ids, mask) -> logits, here one row per token
        from transformers import AutoModelForTokenClassification

        model = load_model(path, AutoModelForTokenClassification)
        graph, task, scheme = ClassifierGraph(model), "tagging", "bio" if is_bio(set(labels)) else "tags"
    else:
        model = load_model(path)
        task = "embedding"
    recipe = EmbeddingRecipe.from_config(model.config, str(path))
    if task == "embedding":
        graph = EmbeddingGraph(model, recipe.pooling, recipe.normalize)
    meta = getattr(model.config, "edgelm", None) or {}
    languages = (meta.get("distilled") or {}).get("languages") or (
        (meta.get("artifact") or {}).get("provenance") or {}).get("languages") or []
    config = {"task": task, "labels": labels, "pooling": recipe.pooling, "normalize": recipe.normalize,
              "prefix": recipe.prefix, "pad_id": model.config.pad_token_id if model.config.pad_token_id is not None else 1,
              "max_length": min(512, model.config.max_position_embeddings), "languages": languages,
              "architecture": architecture(model.config)}
    if scheme:
        config["scheme"] = scheme
    return graph.eval(), tokenizer, config


def _write_onnx(tmp: Path, graph, ids, mask, quantize: str, calibration) -> tuple[Path, dict, dict]:
    from edgelm.exporters.onnx import OPSET, export_onnx, initializer_parts, part_sizes, quantize_onnx

    fp32 = tmp / "model.fp32.onnx"
    export_onnx(graph, (ids[:2], mask[:2]), fp32)
    parts = initializer_parts(fp32)
    model_file = tmp / "model.onnx"
    if quantize == "none":
        fp32.rename(model_file)
    else:
        quantize_onnx(fp32, model_file, quantize, calibration() if quantize == "int8-static" else None)
        fp32.unlink()
    for extra in tmp.glob("*.data"):  # weights stay inside the .onnx file (all our models are < 2 GB)
        extra.unlink()
    config = {"model_file": model_file.name, "buckets": None}  # ONNX graphs take any length up to max_length
    return model_file, config, {"opset": OPSET, "weights_by_part": part_sizes(model_file, parts)}


def _write_tflite(tmp: Path, graph, ids, quantize: str, buckets: tuple[int, ...], vocab_rows: set[int]):
    from edgelm.exporters.tflite import INPUT_NAMES, export_tflite, signature_name, tflite_part_sizes

    model_file = tmp / "model.tflite"
    export_tflite(graph, buckets, model_file, quantize, sample_ids=ids)
    config = {"model_file": model_file.name, "buckets": list(buckets),
              "signatures": {str(b): signature_name(b) for b in buckets}, "signature_inputs": INPUT_NAMES}
    return model_file, config, {"weights_by_part": tflite_part_sizes(model_file, vocab_rows)}


def export_bundle(model: str, target: str, quantize: str, out: str | Path, *, data: Path | None = None,
                  overwrite: bool = False, buckets: tuple[int, ...] | None = None) -> dict:
    """Export `model` (name, folder or hub id) to a verified bundle at `out`; return the manifest."""
    import torch

    from edgelm.checkpoint import check_checkpoint, encode_texts
    from edgelm.runtime.bundle import Bundle
    from edgelm.runtime.model import make_backend
    from edgelm.teacher.registry import resolve_model

    check_options(target, quantize)
    if target == "tflite":
        from edgelm.exporters.tflite import DEFAULT_BUCKETS

        buckets = check_buckets(tuple(buckets or DEFAULT_BUCKETS))
        import importlib.util

        if importlib.util.find_spec("litert_torch") is None:
            raise EdgelmError("the TFLite target needs litert-torch: pip install 'edgelm[tflite]'")
    out = Path(out)
    if out.exists() and not overwrite:
        raise EdgelmError(f"{out} exists; choose another --out or pass --overwrite")
    from edgelm.routing.format import is_routed

    routed = None
    if is_routed(model):
        from edgelm.exporters.routed import check_routed_quantize, load_routed

        check_routed_quantize(target, quantize)
        path = Path(model)
        routed, tokenizer, config = load_routed(path)
        graph = None
    else:
        path = resolve_model(model)
        check_checkpoint(path)
        graph, tokenizer, config = _load_graph(path)
    if target == "tflite":
        config["max_length"] = min(config["max_length"], max(buckets))
    texts = parity_texts(data, config["languages"])
    batch = encode_texts(tokenizer, texts, config["prefix"], config["max_length"])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    chosen = None
    with torch.inference_mode():
        if routed is None:
            reference = graph(ids, mask).float().numpy()
        else:  # the device must reproduce the learned routing: the vectors and which experts ran
            vectors, picked = routed.forward(ids, mask, "learned")
            reference, chosen = vectors.float().numpy(), picked.numpy()
            # each expert alone on a few texts: the device check runs every expert, chosen or not
            expert_outputs = {name: routed.forward(ids[:4], mask[:4], name)[0].float().numpy().tolist()
                              for name in routed.names}

    def calibration():
        calib_texts = parity_texts(data, config["languages"] or ["eng_Latn"]) * 4
        batches = [encode_texts(tokenizer, calib_texts[i : i + 8], config["prefix"], config["max_length"])
                   for i in range(0, len(calib_texts), 8)]
        return [(b["input_ids"].numpy(), b["attention_mask"].numpy()) for b in batches]

    with atomic_dir(out, replace=overwrite) as tmp:
        if routed is not None:
            from edgelm.exporters.routed import write_routed

            file_config, routed_config, sizes = write_routed(tmp, routed, target, quantize, ids, mask, buckets)
            config["routed"] |= routed_config
            model_file = tmp / file_config["model_file"]
        elif target == "onnx":
            model_file, file_config, sizes = _write_onnx(tmp, graph, ids, mask, quantize, calibration)
        else:
            vocab_rows = {graph_config(graph).vocab_size, graph_config(graph).max_position_embeddings}
            model_file, file_config, sizes = _write_tflite(tmp, graph, ids, quantize, buckets, vocab_rows)
        config |= file_config
        if routed is not None:
            shutil.copy(path / "body" / "tokenizer.json", tmp / "tokenizer.json")
        elif (path / "tokenizer.json").is_file():
            shutil.copy(path / "tokenizer.json", tmp / "tokenizer.json")
        else:  # a sentencepiece-only folder: write the fast tokenizer transformers built from it
            tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False))
        # The exported file must reproduce the source model on the parity texts, here and on the device.
        backend = make_backend(RUNS_FIRST[target], Bundle(tmp, {"export": {"target": target}}, config), None)
        got = backend(*pad_to_bucket(ids.numpy(), mask.numpy(), config["buckets"], config["pad_id"]))
        report = compare_outputs(config["task"], *token_rows(config["task"], [got, reference], mask.numpy()))
        if chosen is not None:
            report["routing_agreement"] = routing_agreement(backend.last_chosen, chosen)
        del backend
        thresholds = require_parity(report, target, quantize, "export")
        if routed is not None:
            sizes["file_bytes_by_part"] = {name: (tmp / f).stat().st_size
                                           for name, f in (config["routed"].get("files") or {}).items()}
        model_bytes = sum(p.stat().st_size for p in tmp.iterdir() if p.suffix in (".onnx", ".tflite"))
        export_meta = {"target": target, "quantize": quantize, "source": str(path), "runtime": RUNS_FIRST[target]}
        if "opset" in sizes:
            export_meta["opset"] = sizes.pop("opset")
        if buckets:
            export_meta["buckets"] = list(buckets)
        outputs = ([r[: int(m.sum())].tolist() for r, m in zip(reference, mask.numpy())] if config["task"] == "tagging"
                   else reference.tolist())  # a tagger's record: the real tokens of each text
        parity = {"texts": texts, "outputs": outputs, "thresholds": thresholds, "export_check": report,
                  **({"chosen": chosen.tolist(), "expert_outputs": expert_outputs} if chosen is not None else {})}
        write_bundle_card(tmp, path, out.name, config, export_meta, report, model_bytes)
        manifest = seal_bundle(tmp, export=export_meta, sizes={"file_bytes": model_bytes, **sizes}, parity=parity)
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    manifest["path"] = str(out)
    return manifest


def require_parity(report: dict, target: str, quantize: str, what: str) -> dict:
    """Refuse an export whose parity `report` misses the thresholds of `quantize`; returns those thresholds."""
    thresholds = THRESHOLDS[quantize]
    misses = parity_failures(report, thresholds)
    if misses:
        raise EdgelmError(f"the {target}/{quantize} {what} misses its parity thresholds: {'; '.join(misses)}")
    return thresholds


def seal_bundle(folder: Path, *, export: dict, sizes: dict, parity: dict, nested: list[str] = ()) -> dict:
    """Write the manifest, then open the bundle as a device would, in a fresh process (sha256, parity
    replay, no torch); return the manifest with that check's report as `device_check`."""
    from edgelm.runtime.bundle import write_manifest

    manifest = write_manifest(folder, export=export, sizes=sizes, parity=parity, nested=nested)
    done = subprocess.run([sys.executable, "-c", _VERIFY, str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        raise EdgelmError(f"the device runtime refused the new bundle: {done.stderr.strip().splitlines()[-1][:300]}")
    manifest["device_check"] = json.loads(done.stdout.strip().splitlines()[-1])
    return manifest


def write_bundle_card(folder: Path, source: Path, name: str, config: dict, export: dict, parity: dict,
                      model_bytes: int) -> None:
    """The bundle's model card: what it is, its parity with the source, the source's measured scores."""
    from edgelm.checkpoint import bundled_teacher_of, read_config
    from edgelm.interop import read_scores, write_model_card

    meta = (read_config(source).get("edgelm") or {}) if (source / "config.json").is_file() else {}
    teacher = bundled_teacher_of(meta, source)
    verb = {"embedding": "embed", "classification": "predict", "tagging": "tag"}[config["task"]]
    agreement = (f"min cosine {parity['min_cosine']:.4f}" if "min_cosine" in parity else
                 ", ".join(f"{k} {v:.4f}" for k, v in parity.items() if isinstance(v, float)))
    facts = {"task": config["task"], "source model": str(export["source"]),
             "format": f"{export['target']}, {export['quantize']}, run by {export['runtime']}",
             "model file": f"{model_bytes / 1e6:.1f} MB", "languages": ", ".join(config.get("languages") or []) or "–",
             "parity with the source": agreement}
    if config.get("labels"):
        facts["labels"] = ", ".join(config["labels"])
    if export.get("buckets"):
        facts["sequence buckets"] = ", ".join(map(str, export["buckets"]))
    scores = read_scores(source)
    if scores:
        scores = {**scores, "command": scores.get("command", "edgelm eval") + " (on the source model, in torch)"}
    usage = (f"```bash\npip install 'edgelm[device]'   # numpy, tokenizers and the runtime: no torch\n"
             f"edgelm run {name} \"...\"\nedgelm serve {name}   # HTTP on 127.0.0.1:8080 (pip install 'edgelm[serve]')\n```\n\n"
             f"```python\nfrom edgelm.runtime import Model\nmodel = Model.load(\"{name}\")  # checks every file's sha256, "
             f"then its parity record\nprint(model.{verb}([\"...\"]))\n```")
    write_model_card(folder, title=f"{name}: {config['task']} bundle ({export['target']}, {export['quantize']})",
                     summary="An edgelm device bundle: the model file, its tokenizer, its config and a manifest with "
                             "every file's sha256 and a parity record the runtime replays before it runs.",
                     languages=config.get("languages") or [], facts=facts, usage=usage, scores=scores,
                     license=teacher.license if teacher else None,
                     base_model=teacher.base_model if teacher else None, tags=[export["target"], config["task"]])


def graph_config(graph):
    """The transformers config of the model inside an export graph."""
    return (graph.encoder if hasattr(graph, "encoder") else graph.model).config
