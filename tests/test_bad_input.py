"""Bad input: one clear line on stderr, exit status 2, no traceback, nothing changed on disk."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import assert_user_error, tree_snapshot


@pytest.fixture
def small_data(tmp_path, data_dir):
    """A data folder with only English and Swahili SIB-200 (copied into the test's temp folder)."""
    root = tmp_path / "data"
    for lang in ("eng_Latn", "swh_Latn"):
        shutil.copytree(data_dir / "sib200" / lang, root / "sib200" / lang)
    shutil.copy(data_dir / "sib200" / "labels.txt", root / "sib200" / "labels.txt")
    return root


def test_missing_data_folder(cli, tmp_path):
    out = tmp_path / "r.json"
    assert_user_error(cli("eval", "e5-small", "--data", str(tmp_path / "nope"), "--out", str(out)), "does not exist")
    assert not out.exists()


def test_data_folder_lacking_a_language_lists_what_it_has(cli, small_data, tmp_path):
    out = tmp_path / "r.json"
    result = cli("eval", "e5-small", "--task", "sib200", "--data", str(small_data), "--languages", "hin_Deva",
                 "--out", str(out))
    assert_user_error(result, "lacks hin_Deva", "eng_Latn swh_Latn")
    assert not out.exists()


def test_unknown_language_code_suggests_close_ones(cli):
    assert_user_error(cli("eval", "e5-small", "--languages", "swx_Latn"), "unknown language code", "swh_Latn")
    assert_user_error(cli("eval", "e5-small", "--source", "engl_Latn"), "eng_Latn")


def test_unknown_task(cli):
    assert_user_error(cli("eval", "e5-small", "--task", "xnli"), "unknown task")


def test_checkpoint_without_weights(cli, teacher_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(teacher_dir / name, ckpt / name)
    before = tree_snapshot(ckpt)
    assert_user_error(cli("eval", str(ckpt), "--languages", "swh_Latn"), "no safetensors weights")
    (ckpt / "pytorch_model.bin").write_bytes(b"not loaded: pickles are never opened")
    assert_user_error(cli("eval", str(ckpt), "--languages", "swh_Latn"), "pickle", "pytorch_model.bin")
    (ckpt / "pytorch_model.bin").unlink()
    assert tree_snapshot(ckpt) == before


def test_checkpoint_without_tokenizer(cli, teacher_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    shutil.copy(teacher_dir / "config.json", ckpt / "config.json")
    (ckpt / "model.safetensors").symlink_to(teacher_dir / "model.safetensors")
    assert_user_error(cli("eval", str(ckpt)), "no tokenizer")


def test_not_a_checkpoint_and_missing_folder(cli, tmp_path):
    assert_user_error(cli("eval", str(tmp_path)), "no config.json")
    assert_user_error(cli("eval", str(tmp_path / "missing")), "does not exist")
    assert_user_error(cli("eval", "xlmr-tiny"), "does not exist", "e5-small")


def test_hub_id_offline_fails_fast_naming_teacher_pull(cli):
    assert_user_error(cli("eval", "intfloat/multilingual-e5-small"), "not reachable", "edgelm teacher pull")


def test_unknown_bundled_teacher(cli):
    assert_user_error(cli("teacher", "pull", "e5-large"), "unknown bundled teacher", "e5-small")


def test_teacher_list_json(cli):
    result = cli("teacher", "list", "--json")
    assert result.code == 0 and json.loads(result.stdout)["teachers"][0]["name"] == "e5-small"
