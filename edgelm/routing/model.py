"""A routed model: one shared distilled body, several experts (its top layers, one copy per domain)
and a SCAR router that picks which experts each input runs. `save_routed` writes the folder,
`RoutedModel.load` reads it.

Folder layout (what `edgelm route train` writes and `export` reads):
    routed.json              experts, domains, routing defaults (tau, k_max, general expert), training report
    body/                    transformers checkpoint of the shared lower layers, with the tokenizer
    experts/NAME.safetensors the top layers of one expert; metadata: the body's fingerprint
    router.safetensors       query projection and prototypes; metadata: temperature, expert names

Every expert and the router record the fingerprint of the body they were trained on; loading refuses a
folder whose pieces come from different bodies, since their outputs would be meaningless together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from edgelm.atomic import atomic_dir, atomic_write_text
from edgelm.errors import EdgelmError
from edgelm.kernels.pooling import sentence_vectors
from edgelm.kernels.routing import check_options, mix
from edgelm.routing.format import FORMAT, ROUTED_FILE, expert_file, is_routed
from edgelm.tensorfile import read_tensors

# How a routed model chooses experts: the learned router, the true domain (oracle), every expert
# (dense mixture), or one fixed expert by name (that expert's specialist alone).
ROUTINGS = ("learned", "oracle", "dense")


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, tokens) 0/1 -> the additive (batch, 1, 1, tokens) mask BERT layers take."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class ExpertStack(torch.nn.Module):
    """An expert: BERT layers on top of the body's token states."""

    def __init__(self, config, n_layers: int):
        from transformers.models.bert.modeling_bert import BertLayer

        super().__init__()
        self.layers = torch.nn.ModuleList(BertLayer(config) for _ in range(n_layers))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ext = extended_mask(mask, hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=ext)[0]
        return hidden


def body_fingerprint(body: torch.nn.Module) -> str:
    from edgelm.kernels.sparse_diff import fingerprint

    return fingerprint(body.state_dict())


@dataclass
class RoutedModel:
    """A loaded routed folder (torch): body, experts in routing order, router, tokenizer, recipe."""

    path: Path
    meta: dict
    body: torch.nn.Module
    experts: torch.nn.ModuleList
    router: torch.nn.Module
    tokenizer: object
    recipe: object

    @property
    def names(self) -> list[str]:
        return list(self.meta["experts"])

    @property
    def general(self) -> int | None:
        return self.meta.get("general")

    @property
    def max_length(self) -> int:
        """The most tokens the body takes (its position embeddings)."""
        return int(self.body.config.max_position_embeddings)

    @property
    def grouping(self) -> str:
        """What the experts are split by: `languages` or `topics` (SIB-200's)."""
        return self.meta.get("grouping", "languages")

    @classmethod
    def load(cls, path: str | Path) -> RoutedModel:
        """Read a routed folder; refuse pieces trained from another body."""
        from edgelm.checkpoint import EmbeddingRecipe, check_checkpoint, load_model, load_tokenizer
        from edgelm.routing.router import ScarRouter

        path = Path(path)
        if not is_routed(path):
            raise EdgelmError(f"{path} is not a routed model (no {ROUTED_FILE}); make one with `edgelm route train`")
        try:
            meta = json.loads((path / ROUTED_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise EdgelmError(f"{path / ROUTED_FILE} is corrupt (not JSON)") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise EdgelmError(f"{path} is routed-model format {meta.get('format') if isinstance(meta, dict) else '?'!r}; "
                              f"this edgelm reads {FORMAT}")
        missing = [k for k in ("experts", "body_fingerprint", "tau", "k_max") if k not in meta]
        if missing:
            raise EdgelmError(f"{path / ROUTED_FILE} lacks {missing[0]!r}")
        check_checkpoint(path / "body")
        body = load_model(path / "body")
        print_ = body_fingerprint(body)
        if print_ != meta["body_fingerprint"]:
            raise EdgelmError(f"{path / 'body'} is not the body this routed model was built on (fingerprint differs)")
        experts = torch.nn.ModuleList()
        for name in meta["experts"]:
            info, state = read_tensors(path / "experts" / expert_file(name), f"expert {name}")
            if info.get("body_fingerprint") != print_:
                raise EdgelmError(f"expert {name} ({expert_file(name)}) was trained from a different body than {path / 'body'}; "
                                  "experts can only be combined over the body they were trained on")
            try:
                expert = ExpertStack(body.config, int(info["layers"]))
                expert.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError) as exc:
                raise EdgelmError(f"expert {name} does not fit the body: {str(exc).splitlines()[0][:200]}") from None
            experts.append(expert.eval())
        info, state = read_tensors(path / "router.safetensors", "the router")
        if info.get("body_fingerprint") != print_ or json.loads(info.get("experts", "[]")) != meta["experts"]:
            raise EdgelmError(f"the router in {path} was trained for another body or other experts")
        router = ScarRouter(body.config.hidden_size, len(meta["experts"]), key_dim=state["prototypes"].shape[1],
                            temperature=float(info["temperature"]))
        router.load_state_dict(state)
        recipe = EmbeddingRecipe.from_config(body.config, str(path))
        return cls(path, meta, body, experts, router.eval(), load_tokenizer(path / "body"), recipe)

    def choose(self, hidden: torch.Tensor, mask: torch.Tensor, routing: str = "learned", *,
               tau: float | None = None, k_max: int | None = None, domain: str | None = None) -> dict:
        """Which experts each input runs and with what mixing weight (see `ROUTINGS`)."""
        n = len(self.names)
        tau = self.meta["tau"] if tau is None else tau
        k_max = self.meta["k_max"] if k_max is None else k_max
        general = self.general if self.meta.get("always_general") else None
        check_options(n, tau, k_max, general)
        out = self.router(hidden, mask, tau=tau, k_max=k_max, general=general)
        batch = hidden.shape[0]
        if routing == "learned":
            return out
        if routing == "dense":
            return {"weights": out["weights"], "chosen": torch.ones(batch, n, dtype=torch.bool), "mixing": out["weights"]}
        if routing == "oracle":
            if domain in self.names:
                index = self.names.index(domain)
            elif self.general is not None:
                index = self.general
            else:
                raise EdgelmError(f"oracle routing has no expert for {domain!r} and this model has no general expert")
        elif routing in self.names:
            index = self.names.index(routing)
        else:
            raise EdgelmError(f"unknown routing {routing!r}; use {', '.join(ROUTINGS)} or an expert: {', '.join(self.names)}")
        chosen = torch.zeros(batch, n, dtype=torch.bool)
        chosen[:, index] = True
        return {"weights": out["weights"], "chosen": chosen, "mixing": chosen.float()}

    @torch.no_grad()
    def route_texts(self, texts: list[str], *, max_length: int | None = None, **options) -> dict:
        """`choose` for raw text (the recipe's prefix, truncated at `max_length`: default, the body's positions)."""
        from edgelm.checkpoint import encode_texts

        limit = min(max_length or self.max_length, self.max_length)
        batch = encode_texts(self.tokenizer, texts, self.recipe.prefix, limit)
        hidden = self.body(**batch).last_hidden_state
        return self.choose(hidden, batch["attention_mask"], **options)

    def expert_vectors(self, index: int, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One expert's sentence vectors (the recipe's pooling and normalization)."""
        return sentence_vectors(self.experts[index](hidden, mask), mask, self.recipe.pooling, self.recipe.normalize)

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor, routing: str = "learned", **options) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence vectors and the (batch, experts) mask of experts that ran. Only chosen experts run."""
        hidden = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
        pick = self.choose(hidden, mask, routing, **options)
        return mix(pick["chosen"], pick["mixing"], lambda e, rows: self.expert_vectors(e, hidden[rows], mask[rows]),
                   self.recipe.normalize), pick["chosen"]


def state_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's weights as contiguous, detached tensors (what safetensors writes)."""
    return {k: v.detach().contiguous() for k, v in module.state_dict().items()}


def save_routed(out: Path, *, body, tokenizer_dir: Path, experts: dict[str, torch.nn.Module], router, meta: dict,
                replace: bool = False) -> dict:
    """Write a routed folder atomically: the body (with the student's tokenizer), one file per expert and the
    router, each stamped with the body's fingerprint, and routed.json (`meta`, which names the experts in
    routing order); then load it back, so what was written is known to fit together. Returns routed.json."""
    from safetensors.torch import save_file

    fp = meta["body_fingerprint"]
    meta = {"format": FORMAT, **meta}
    with atomic_dir(out, replace=replace) as tmp:
        body.save_pretrained(tmp / "body", safe_serialization=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (tokenizer_dir / name).is_file():
                (tmp / "body" / name).write_bytes((tokenizer_dir / name).read_bytes())
        (tmp / "experts").mkdir()
        for name, expert in experts.items():
            save_file(state_tensors(expert), str(tmp / "experts" / expert_file(name)),
                      metadata={"format": "edgelm.expert/1", "name": name, "layers": str(len(expert.layers)),
                                "body_fingerprint": fp})
        save_file(state_tensors(router), str(tmp / "router.safetensors"),
                  metadata={"temperature": str(router.temperature), "experts": json.dumps(meta["experts"]),
                            "body_fingerprint": fp})
        atomic_write_text(tmp / ROUTED_FILE, json.dumps(meta, indent=1))
        RoutedModel.load(tmp)
    return meta
