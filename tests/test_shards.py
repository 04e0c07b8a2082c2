"""Token shards: the memory-mapped corpus gives exactly the in-memory batches, is reused by later runs,
and a shard that does not match its record (another tokenizer, a damaged file) is rebuilt."""

from __future__ import annotations

import json

import numpy as np
import torch
from tokenizers import Tokenizer

from edgelm.data.corpus import read_corpus
from edgelm.data.shards import find_shard, shard_folder, shard_key, tokenizer_hash
from edgelm.distillation.general import TokenizedCorpus
from edgelm.distillation.text import TrainingText


def _text(data_dir, n: int = 3000) -> TrainingText:
    lines = read_corpus(data_dir / "corpus" / "swh_Latn.txt.gz", max_lines=n).lines
    text = TrainingText("swh_Latn", held_out={lines[5]})  # one sentence stands for an evaluation sentence
    text.add("corpus", lines + lines[:100])  # ... and 100 duplicates
    return text


def test_the_memory_mapped_corpus_gives_the_in_memory_batches(teacher_dir, data_dir):
    tokenizer = Tokenizer.from_file(str(teacher_dir / "tokenizer.json"))
    text = _text(data_dir)
    mapped = TokenizedCorpus.cached(text, tokenizer, "query: ", 64)
    assert isinstance(mapped.shard.ids, np.memmap)
    assert text.report["sentences"] == 2999 and text.report["duplicates_dropped"] == 100
    assert text.report["test_sentences_excluded"] == 1
    in_memory = TokenizedCorpus.build(tokenizer, list(text), "query: ", 64)
    assert len(mapped) == len(in_memory) == 2999
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = rng.integers(0, len(mapped), 16)
        for a, b in zip(mapped.batch(idx, 1), in_memory.batch(idx, 1)):
            assert torch.equal(a, b)
    assert int(mapped.lengths(np.arange(len(mapped))).max()) == 64  # long sentences were cut


def test_a_shard_is_reused_and_a_mismatched_one_rebuilt(teacher_dir, data_dir, tmp_path):
    tokenizer = Tokenizer.from_file(str(teacher_dir / "tokenizer.json"))
    text = _text(data_dir, 500)
    first = TokenizedCorpus.cached(text, tokenizer, "query: ", 128).shard
    stamp = (first.folder / "ids.u32").stat().st_mtime_ns
    again = TokenizedCorpus.cached(_text(data_dir, 500), tokenizer, "query: ", 128).shard
    assert again.folder == first.folder and (again.folder / "ids.u32").stat().st_mtime_ns == stamp  # reused

    # Another tokenizer (a trimmed student's) has its own shard, never this one.
    from edgelm.distillation.vocab import trim_vocabulary

    trimmed = trim_vocabulary(json.loads(tokenizer.to_str()), {"swh_Latn": list(text)}).tokenizer()
    student = TokenizedCorpus.cached(text, trimmed, "query: ", 128).shard
    assert student.folder != first.folder and student.meta["tokenizer_sha256"] == tokenizer_hash(trimmed)

    # A shard whose record names another tokenizer, or whose ids file was cut short, is not trusted.
    key = shard_key(text.sha256, tokenizer_hash(tokenizer), "query: ", 128)
    meta = json.loads((first.folder / "shard.json").read_text())
    (first.folder / "shard.json").write_text(json.dumps({**meta, "tokenizer_sha256": tokenizer_hash(trimmed)}))
    assert find_shard(key) is None
    rebuilt = TokenizedCorpus.cached(text, tokenizer, "query: ", 128).shard
    assert rebuilt.meta["tokenizer_sha256"] == tokenizer_hash(tokenizer)
    with open(shard_folder(key) / "ids.u32", "r+b") as fh:
        fh.truncate(8)
    assert find_shard(key) is None
    assert len(TokenizedCorpus.cached(text, tokenizer, "query: ", 128)) == 499


def test_data_corpus_reports_its_shard(cli, teacher_dir, data_dir, tmp_path):
    lines = read_corpus(data_dir / "corpus" / "hau_Latn.txt.gz", max_lines=400).lines
    ntrex = (data_dir / "parallel" / "ntrex" / "hau_Latn.txt").read_text(encoding="utf-8").splitlines()[:3]
    f = tmp_path / "hau.txt"
    f.write_text("\n".join(lines + ntrex) + "\n", encoding="utf-8")
    result = cli("data", "corpus", str(f), "--language", "hau", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["lines"] == 403 and report["sentences"] == 400
    assert report["evaluation_sentences_removed"] == 3  # NTREX is an evaluation set
    assert report["tokens"] > 400 and report["language"] == "hau_Latn"
