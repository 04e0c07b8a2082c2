"""A routed bundle of whole specialists on the device: the character-n-gram router picks the experts, then
each chosen expert — a complete bundle with its own tokenizer and graph — embeds only the texts that
chose it, and their vectors are mixed. No torch.

Layout (what `edgelm export` writes for an `edgelm route build` folder):
    manifest.json       hashes config.json, router.safetensors and every expert's own manifest.json (whose
                        files that manifest hashes in turn); the parity record: texts, the source model's
                        vectors and which experts it ran
    config.json         task "embedding", "specialists": experts (general first), their folders, tau, k_max
    router.safetensors  the router's arrays (`kernels.charngrams.CharRouterWeights`)
    experts/NAME/       one verified bundle per expert
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.kernels.charngrams import CharRouterWeights, NgramSpec
from edgelm.kernels.routing import RouterWeights, mix
from edgelm.runtime.bundle import Bundle
from edgelm.runtime.parity import ParityError, compare_outputs, parity_failures, routing_agreement


def read_router(path: Path, names: list[str]) -> CharRouterWeights:
    """The router's arrays from router.safetensors (numpy), checked against the experts it routes to."""
    from edgelm.tensorfile import read_tensors

    info, state = read_tensors(path, "the router", framework="np")
    if json.loads(info.get("experts", "[]")) != names:
        raise EdgelmError(f"the router {path} was trained for other experts than the bundle names")
    try:
        return CharRouterWeights(NgramSpec.from_dict(json.loads(info["ngrams"])), state["table.weight"], RouterWeights(
            state["scar.query.weight"], state["scar.query.bias"], state["scar.prototypes"], float(info["temperature"])))
    except KeyError as exc:
        raise EdgelmError(f"the router {path} lacks {exc.args[0]}") from None


def route_as(out: dict[str, np.ndarray], routing: str, names: list[str]) -> dict[str, np.ndarray]:
    """The router's choice `out` under a routing: learned (as is), dense (every expert, by the router's
    weights) or one expert by name (that expert alone, weight 1)."""
    if routing == "learned":
        return out
    if routing == "dense":
        return {**out, "chosen": np.ones_like(out["chosen"]), "mixing": out["weights"]}
    chosen = np.zeros_like(out["chosen"])
    chosen[:, names.index(routing)] = True
    return {**out, "chosen": chosen, "mixing": chosen.astype(np.float32)}


class SpecialistsModel:
    """A verified specialists bundle: `embed` routes, then runs only the chosen experts."""

    task = "embedding"

    def __init__(self, bundle: Bundle, experts: list, router: CharRouterWeights, routing: str = "learned"):
        self.bundle, self.experts, self.router = bundle, experts, router
        spec = bundle.config["specialists"]
        self.names: list[str] = list(spec["experts"])
        self.tau, self.k_max = float(spec["tau"]), int(spec["k_max"])
        if routing not in ("learned", "dense") and routing not in self.names:
            raise EdgelmError(f"unknown routing {routing!r}; use learned, dense or an expert: {', '.join(self.names)}")
        self.routing = routing
        self.experts_run = np.zeros(len(self.names), dtype=np.int64)
        self.sentences = 0
        self.last_chosen: np.ndarray | None = None
        self.kernel_fallback: dict[str, str] = {}

    @classmethod
    def open(cls, bundle: Bundle, load_expert, *, check_parity: bool = True, routing: str | None = None) -> SpecialistsModel:
        """Open every expert's bundle with `load_expert(folder)` (`Model.load`: each sha256- and parity-checked
        on its own) and the router; then replay the whole bundle's parity record (vectors and experts chosen)."""
        spec = bundle.config["specialists"]
        experts = []
        for name in spec["experts"]:
            folder = bundle.path / spec["folders"][name]
            if f"{spec['folders'][name]}/manifest.json" not in bundle.manifest.get("files", {}):
                raise EdgelmError(f"expert {name}'s manifest is not hashed in {bundle.path}'s manifest: refusing it")
            experts.append(load_expert(folder))
        model = cls(bundle, experts, read_router(bundle.path / "router.safetensors", list(spec["experts"])),
                    routing or "learned")
        if check_parity:
            model.check_parity()
        return model

    @property
    def path(self) -> Path:
        return self.bundle.path

    def choose(self, texts: list[str], *, tau: float | None = None, k_max: int | None = None) -> dict[str, np.ndarray]:
        out = self.router.route(texts, self.tau if tau is None else tau, self.k_max if k_max is None else k_max)
        return route_as(out, self.routing, self.names)

    def embed(self, texts: list[str], *, batch_size: int = 32, progress: str | None = None,
              language: str | None = None, topic: str | None = None) -> np.ndarray:
        """Sentence vectors: each expert embeds (with its own tokenizer) only the texts routed to it."""
        texts = list(texts)
        if not texts:
            raise EdgelmError("no text given")
        pick = self.choose(texts)
        vectors = mix(pick["chosen"], pick["mixing"].astype(np.float32),
                      lambda e, rows: self.experts[e].embed([texts[i] for i in rows], batch_size=batch_size,
                                                            progress=progress), True)
        self.last_chosen = pick["chosen"]
        self.experts_run += pick["chosen"].sum(0)
        self.sentences += len(texts)
        return vectors.astype(np.float32)

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the chosen experts' tokenizers make of `texts` (each text counted by every expert it runs)."""
        chosen = self.choose(list(texts))["chosen"]
        return sum(self.experts[e].count_tokens([texts[i] for i in np.flatnonzero(chosen[:, e])])
                   for e in range(len(self.names)) if chosen[:, e].any())

    @property
    def dimension(self) -> int | None:
        return self.experts[0].dimension

    @property
    def backend_name(self) -> str:
        return "specialists: " + ", ".join(sorted({e.backend_name for e in self.experts}))

    def check_parity(self) -> dict:
        """Replay the bundle's parity record: the same vectors, and the same experts chosen."""
        record = self.bundle.manifest["parity"]
        routing, self.routing = self.routing, "learned"
        runs, sentences = self.experts_run.copy(), self.sentences
        try:
            got = self.embed(record["texts"])
            report = compare_outputs("embedding", got, np.array(record["outputs"]))
            report["routing_agreement"] = routing_agreement(self.last_chosen, record["chosen"])
        finally:
            self.routing, self.experts_run, self.sentences = routing, runs, sentences
        misses = parity_failures(report, record["thresholds"])
        if misses:
            raise ParityError(f"this specialists bundle disagrees with the source model: {'; '.join(misses)}. "
                              "Refusing to run it.")
        return report

    @property
    def mean_experts(self) -> float:
        return float(self.experts_run.sum() / max(1, self.sentences))

    def describe(self) -> dict:
        export = self.bundle.manifest.get("export", {})
        return {"path": str(self.path), "kind": "bundle", "design": "specialists", "parameters": None,
                "source": export.get("source"), "experts": self.names,
                "bundle": {k: export.get(k) for k in ("target", "quantize", "runtime")},
                "bytes_per_expert": self.bundle.manifest.get("sizes", {}).get("file_bytes_by_expert"),
                "routing": {"routing": self.routing, "experts": self.names, "mean_experts": self.mean_experts,
                            "sentences_per_expert": dict(zip(self.names, self.experts_run.tolist()))}}
