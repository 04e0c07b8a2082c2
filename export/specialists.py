"""A specialists folder (`edgelm route build`) as one verified bundle: every expert exported on its own
(`exporters.bundle.export_bundle`: its tokenizer, graph and parity record), the router's arrays, and a
manifest that hashes the experts' manifests, so one check on the device chains to every file. Parity
covers the whole: the device must give the source model's vectors and choose the same experts
(`runtime.specialists.SpecialistsModel.check_parity`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgelm.atomic import atomic_dir
from edgelm.errors import EdgelmError
from edgelm.routing.format import safe_name


def export_specialists(path: Path, target: str, quantize: str, out: Path, *, data: Path | None = None,
                       overwrite: bool = False, buckets: tuple[int, ...] | None = None) -> dict:
    """Export the specialists folder at `path` to a bundle at `out` (atomically); return its manifest."""
    from edgelm.exporters.bundle import (RUNS_FIRST, check_options, export_bundle, parity_texts, require_parity,
                                         seal_bundle)
    from edgelm.routing.config import GENERAL
    from edgelm.routing.specialists import Specialists
    from edgelm.runtime.bundle import Bundle
    from edgelm.runtime.parity import compare_outputs, routing_agreement
    from edgelm.runtime.specialists import SpecialistsModel, read_router

    check_options(target, quantize)
    out = Path(out)
    if out.exists() and not overwrite:
        raise EdgelmError(f"{out} exists; choose another --out or pass --overwrite")
    source = Specialists.load(path)
    names, meta = source.names, source.meta
    languages = [n for n in names if n != GENERAL]
    # parity texts in every expert's language and in the source: each expert is on the record
    texts = parity_texts(data, languages + ["eng_Latn"]) if data is None else _parity_texts(data, languages)
    reference, chosen = source.embed(texts)
    folders = {name: f"experts/{safe_name(name)}" for name in names}
    with atomic_dir(out, replace=overwrite) as tmp:
        parts = {}
        for name in names:
            parts[name] = export_bundle(str(path / folders[name]), target, quantize, tmp / folders[name], data=data,
                                        buckets=buckets)
            shutil.rmtree(tmp / folders[name] / "__pycache__", ignore_errors=True)
        shutil.copy(path / "router.safetensors", tmp / "router.safetensors")
        config = {"task": "embedding", "labels": None, "languages": sorted({l for v in meta["languages"].values() for l in v}),
                  "specialists": {"experts": names, "general": 0, "tau": meta["tau"], "k_max": meta["k_max"],
                                  "folders": folders, "languages": meta["languages"], "teacher": meta["teacher"]}}
        (tmp / "config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False))
        nested = [f"{folders[n]}/manifest.json" for n in names]
        draft = Bundle(tmp, {"export": {"target": target}, "files": {n: {} for n in nested}}, config)
        device = SpecialistsModel(draft, [_open(tmp / folders[n]) for n in names],
                                  read_router(tmp / "router.safetensors", names))
        got = device.embed(texts)
        report = compare_outputs("embedding", got, reference)
        report["routing_agreement"] = routing_agreement(device.last_chosen, chosen)
        del device
        thresholds = require_parity(report, target, quantize, "specialists export")
        by_expert = {n: sum(f["bytes"] for f in parts[n]["files"].values()) for n in names}
        export_meta = {"target": target, "quantize": quantize, "source": str(path), "runtime": RUNS_FIRST[target],
                       "design": "specialists", **({"buckets": list(buckets)} if buckets else {})}
        parity = {"texts": texts, "outputs": reference.tolist(), "chosen": chosen.tolist(), "thresholds": thresholds,
                  "export_check": report}
        sizes = {"file_bytes": sum(by_expert.values()) + (tmp / "router.safetensors").stat().st_size,
                 "file_bytes_by_expert": by_expert, "router_bytes": (tmp / "router.safetensors").stat().st_size}
        manifest = seal_bundle(tmp, export=export_meta, sizes=sizes, parity=parity, nested=nested)
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    manifest["path"] = str(out)
    return manifest


def _parity_texts(data: Path, languages: list[str]) -> list[str]:
    """Four SIB-200 dev sentences in each expert's language and four in English (the general expert's)."""
    from edgelm.data.sib200 import load_sib200, sib200_languages

    have = sib200_languages(data)
    return [r.text for lang in [*[l for l in languages if l in have], "eng_Latn"] for r in load_sib200(data, lang, "dev")[:4]]


def _open(folder: Path):
    from edgelm.runtime.model import Model

    return Model.load(folder, check_parity=False)  # each expert bundle was parity-checked by its own export
