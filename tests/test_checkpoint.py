"""Checkpoint folders: bench inputs keep each tokenizer's own special tokens (not XLM-R's ids), and
folders say what they are (kind, format) or are recognised from their config when they predate that."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from edgelm.errors import EdgelmError


def _bert_style_tokenizer():
    """A real WordPiece tokenizer with BERT's [CLS] … [SEP] template (ids 101 / 102), built here."""
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "habari": 200, "ya": 201, "asubuhi": 202,
             "good": 203, "morning": 204}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 101),
                                                                                               ("[SEP]", 102)])
    return tok, PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]")


def test_bench_inputs_keep_each_tokenizers_own_special_tokens(teacher):
    from edgelm.benchmarks.harness import _ids_and_special, real_inputs

    texts = ["habari ya asubuhi", "good morning habari"]
    raw, _ = _bert_style_tokenizer()
    ids, mask = real_inputs(texts, lambda t: _ids_and_special(raw.encode(t)), 16, 2)
    assert ids.shape == (2, 16) and mask.all()
    assert (ids[:, 0] == 101).all() and (ids[:, -1] == 102).all()
    assert not np.isin(ids[:, 1:-1], [0, 2, 101, 102]).any()  # the rest is text, not XLM-R's ids
    xlmr, _ = real_inputs(texts, lambda t: _ids_and_special(teacher.tokenizer(t, return_special_tokens_mask=True)), 16, 1)
    assert xlmr[0, 0] == 0 and xlmr[0, -1] == 2


def test_an_unstamped_folder_is_recognised_and_a_newer_format_refused(tiny_teacher, tmp_path):
    import shutil

    import edgelm
    from edgelm.checkpoint import CHECKPOINT_FORMAT, describe_checkpoint

    assert describe_checkpoint(tiny_teacher)["kind"] == "encoder"  # a plain transformers folder
    student = tmp_path / "student"
    shutil.copytree(tiny_teacher, student)
    config = json.loads((student / "config.json").read_text())
    config["edgelm"]["distilled"] = {"teacher": "e5-small", "languages": ["eng_Latn", "swh_Latn"]}
    (student / "config.json").write_text(json.dumps(config))
    assert describe_checkpoint(student) | {"provenance": None} == {"kind": "student", "format": 0,
                                                                  "edgelm_version": None, "provenance": None}
    assert edgelm.load(student).embed(["Habari"]).shape == (1, 32)  # format 0 still loads
    config["edgelm"]["artifact"] = {"kind": "student", "format": CHECKPOINT_FORMAT + 1, "edgelm_version": "9.0"}
    (student / "config.json").write_text(json.dumps(config))
    with pytest.raises(EdgelmError, match="upgrade edgelm"):
        edgelm.load(student)
