"""Shared fixtures: the real teacher (converted once per session into a private cache), the real
data, and a way to run the CLI in-process and read what a user would see."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["EDGELM_PROGRESS"] = "0"

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    # Parallel workers share the cores: split torch's threads between them (set before torch is imported)
    # and keep idle onnxruntime threads from spinning on a neighbour's core.
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))
    os.environ["EDGELM_ORT_SPINNING"] = "0"

# Files whose fixtures and tests take minutes (make test's --durations), longest first: run first, they
# let parallel workers finish together instead of one running a long file alone at the end.
HEAVY_FIRST = ("test_export_runtime.py", "test_route_model.py", "test_metrics.py", "test_eval.py",
               "test_specialists.py", "test_distill_run.py", "test_api.py", "test_distributed.py",
               "test_task_distill.py", "test_probe.py", "test_serve.py", "test_bitext.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Every test run converts its own teacher: nothing leaks in from a developer's cache."""
    os.environ["EDGELM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from edgelm.data import data_root

    return data_root()


@pytest.fixture(scope="session")
def teacher_dir(_private_cache) -> Path:
    from edgelm.teacher.registry import pull_teacher

    return pull_teacher("e5-small")


@pytest.fixture(scope="session")
def teacher(teacher_dir):
    from edgelm.encoder import Encoder

    return Encoder.load(teacher_dir)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """Run `edgelm ARGS` in-process; return exit code, stdout and stderr."""
    from edgelm.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_teacher(teacher_dir, tmp_path_factory) -> Path:
    """A 4-layer, 32-wide random BERT with the real teacher's tokenizer and recipe: the shape of
    the teacher at a fraction of the cost, for tests of the training machinery."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-teacher")
    real = BertConfig.from_pretrained(teacher_dir)
    config = BertConfig(vocab_size=real.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2)
    config.edgelm = real.edgelm
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (teacher_dir / name).is_file():  # transformers 5 writes no special_tokens_map.json
            shutil.copy(teacher_dir / name, folder / name)
    return folder


def _tiny_head(tiny_teacher: Path, folder: Path, auto_class: str, labels: list[str], seed: int) -> Path:
    """`tiny_teacher` with a randomly initialised task head over `labels`, saved with its tokenizer."""
    import shutil

    import torch
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, auto_class).from_pretrained(
        tiny_teacher, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)})
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_teacher / name).is_file():
            shutil.copy(tiny_teacher / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tiny_teacher, data_dir, tmp_path_factory) -> Path:
    """The tiny teacher with a sentence-classification head over SIB-200's topics."""
    from edgelm.data import sib200_labels

    return _tiny_head(tiny_teacher, tmp_path_factory.mktemp("tiny-clf"), "BertForSequenceClassification",
                      sib200_labels(data_dir), seed=1)


@pytest.fixture(scope="session")
def tiny_tagger(tiny_teacher, tmp_path_factory) -> Path:
    """The tiny teacher with a BIO entity-tagging head (MasakhaNER's tag set)."""
    labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-DATE", "I-DATE"]
    return _tiny_head(tiny_teacher, tmp_path_factory.mktemp("tiny-tagger"), "BertForTokenClassification", labels,
                      seed=2)
