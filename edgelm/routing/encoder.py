"""A routed model behind the `Encoder` interface, so `edgelm eval` and `--domains` score it like
any other model, under any routing (learned, oracle, dense, one expert)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelm.checkpoint import EmbeddingRecipe
from edgelm.encoder import Encoder
from edgelm.errors import EdgelmError
from edgelm.routing.model import ROUTINGS, RoutedModel


class RoutedEncoder(Encoder):
    """Embeds through body → router → chosen experts; counts the experts each sentence ran."""

    def __init__(self, routed: RoutedModel, routing: str, recipe: EmbeddingRecipe, max_length: int):
        super().__init__(routed.body, routed.tokenizer, recipe, routed.path, max_length=max_length)
        self.routed, self.routing = routed, routing
        self.experts_run = np.zeros(len(routed.names), dtype=np.int64)  # sentences each expert ran on
        self.sentences = 0

    @classmethod
    def load(cls, path: str | Path, routing: str = "learned", *, prefix: str | None = None,
             max_length: int = 512) -> RoutedEncoder:
        routed = RoutedModel.load(path)
        if routing not in ROUTINGS and routing not in routed.names:
            raise EdgelmError(f"unknown routing {routing!r} for {path}; use {', '.join(ROUTINGS)} "
                              f"or one expert: {', '.join(routed.names)}")
        recipe = routed.recipe.with_prefix(prefix)
        limit = min(max_length, routed.body.config.max_position_embeddings)
        return cls(routed, routing, recipe, limit)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.routed.body.parameters()) + sum(
            p.numel() for m in (self.routed.experts, self.routed.router) for p in m.parameters())

    def describe(self) -> dict:
        """The routed model, and what its routing cost so far (experts per sentence)."""
        meta, config = self.routed.meta, self.model.config
        return {"path": str(self.path), "kind": "routed", "parameters": self.num_parameters,
                "layers": meta["body_layers"] + meta["expert_layers"], "body_layers": meta["body_layers"],
                "vocab_size": config.vocab_size, "source": (getattr(config, "edgelm", None) or {}).get("source"),
                "recipe": self.recipe.as_dict(), "experts": self.routed.names,
                "routing": {"routing": self.routing, "experts": self.routed.names, "mean_experts": self.mean_experts,
                            "sentences_per_expert": dict(zip(self.routed.names, self.experts_run.tolist()))}}

    @property
    def mean_experts(self) -> float:
        return float(self.experts_run.sum() / max(1, self.sentences))

    def _vectors(self, batch, known: dict[str, str | None]):
        grouping = self.routed.grouping
        domain = known.get(grouping)
        if self.routing == "oracle" and domain is None:
            raise EdgelmError(f"oracle routing over {grouping} needs each text's {grouping[:-1]}; this evaluation does not "
                              f"give it (topic routing: --domains topics)")
        vectors, chosen = self.routed.forward(batch["input_ids"], batch["attention_mask"], self.routing, domain=domain)
        self.experts_run += chosen.sum(0).numpy()
        self.sentences += chosen.shape[0]
        return vectors
