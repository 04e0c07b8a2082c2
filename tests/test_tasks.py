"""The user's own task data: every format on the real data sets, the scores (entity F1 checked against
seqeval on the real test files), and the bad inputs, each one line."""

from __future__ import annotations

import json
import random

import pytest

from edgelm.data.tasks import load_task
from edgelm.errors import EdgelmError


def test_the_real_task_folders_load_with_their_kind(data_dir):
    ner = load_task(data_dir / "ner")
    assert (ner.kind, ner.scheme, ner.formats) == ("tagging", "bio", ["conll"])
    assert ner.labels == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]  # labels.txt's order
    assert {lang: len(s.get("test", [])) for lang, s in ner.examples.items() if lang != "eng_Latn"} == {
        "swh_Latn": 1883, "hau_Latn": 1633, "yor_Latn": 1964, "amh_Ethi": 500}  # the data README's counts
    assert len(ner.split("train")) == 3077 and ner.stray_inside == 0
    pos = load_task(data_dir / "pos")
    assert (pos.kind, pos.scheme, len(pos.labels)) == ("tagging", "tags", 17)
    assert sum(len(s.words) for s in pos.split("test", ["hin_Deva"])) == 23829
    first = pos.split("train")[0]
    assert len(first.words) == len(first.tags)
    nolly = load_task(data_dir / "sentiment" / "nollysenti")
    assert (nolly.kind, nolly.scheme, nolly.labels) == ("sentence", "label", ["negative", "positive"])
    assert [len(nolly.split("test", [lang])) for lang in ("hau_Latn", "yor_Latn")] == [500, 500]
    afri = load_task(data_dir / "sentiment" / "afrisenti")
    assert afri.labels == ["negative", "neutral", "positive"] and len(afri.split("train", ["hau_Latn"])) == 14172
    identity = afri.identity()
    assert identity["kind"] == "sentence" and len(identity["files"]["hau_Latn/train.tsv"]) == 64  # a sha256
    assert sorted(identity["files"]) == [f"{lang}/{split}.tsv" for lang in ("amh_Ethi", "hau_Latn", "swh_Latn")
                                         for split in ("dev", "test", "train")]


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_one_file_with_a_split_column_in_each_format(data_dir, tmp_path, fmt):
    """Real NollySenti rows written as one file per format: each reads back to the same task."""
    task = load_task(data_dir / "sentiment" / "nollysenti")
    rows = [{"text": ex.text, "label": ex.label, "split": split, "language": lang}
            for lang in task.languages for split in ("train", "dev", "test") for ex in task.split(split, [lang])[::25]]
    f = tmp_path / f"reviews.{fmt}"
    if fmt == "jsonl":
        f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "tsv":  # as the data sets are: tab-separated, no quoting
        f.write_text("text\tlabel\tsplit\tlanguage\n" + "".join("\t".join(r.values()) + "\n" for r in rows),
                     encoding="utf-8")
    else:
        import csv

        with open(f, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, ["text", "label", "split", "language"])
            writer.writeheader()
            writer.writerows(rows)
    got = load_task(f)
    assert got.formats == [fmt] and got.labels == ["negative", "positive"]
    assert got.languages == ["eng_Latn", "hau_Latn", "yor_Latn"]
    assert [ex.text for ex in got.split("test", ["hau_Latn"])] == [ex.text for ex in task.split("test", ["hau_Latn"])[::25]]


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_bad_task_data_is_one_line(data_dir, tmp_path):
    real = (data_dir / "ner" / "eng_Latn" / "train.conll").read_text(encoding="utf-8").split("\n\n")
    good = "\n\n".join(real[:30]) + "\n"
    cases = {
        "one column": ("train.conll", good + "\nGusau\n", "expected word<TAB>tag, got 1 column"),
        "three columns": ("train.conll", good + "\nGusau\tB-PER\tx\n", "got 3 column"),
        "neither format": ("train.txt", "hello\n", "neither format"),
        "empty split": ("test.conll", "", "is empty"),
    }
    for name, (file, text, message) in cases.items():
        folder = tmp_path / name.replace(" ", "-")
        _write(folder / "train.conll", good)
        _write(folder / file, text)
        with pytest.raises(EdgelmError, match=message):
            load_task(folder)
    unseen = tmp_path / "unseen"
    _write(unseen / "train.conll", good)
    _write(unseen / "test.conll", "Lagos\tB-GPE\n")
    with pytest.raises(EdgelmError, match="'B-GPE' is in an evaluation split but never in training"):
        load_task(unseen)
    single = tmp_path / "single"
    _write(single / "train.tsv", "text\tlabel\nnzuri sana\tpositive\nbora\tpositive\n")
    with pytest.raises(EdgelmError, match="single label"):
        load_task(single)
    no_label = tmp_path / "no-label.tsv"
    _write(no_label, "text\tsplit\nnzuri\ttrain\n")
    with pytest.raises(EdgelmError, match="no 'label' column: expected TSV/CSV"):
        load_task(no_label)
    with pytest.raises(EdgelmError, match="neither format for a single-file task"):
        load_task(data_dir / "ner" / "eng_Latn" / "train.conll")
    with pytest.raises(EdgelmError, match="does not exist"):
        load_task(tmp_path / "nowhere")


def test_a_stray_inside_tag_is_read_as_conlleval_reads_it_and_counted(tmp_path):
    from edgelm.words import entities

    _write(tmp_path / "train.conll", "Bwana\tO\nShehu\tI-PER\nGusau\tI-PER\nalisema\tO\n\nKano\tB-LOC\n")
    task = load_task(tmp_path)
    assert task.scheme == "bio" and task.stray_inside == 1
    assert entities(["O", "I-PER", "I-PER", "O"]) == [("PER", 1, 3)]
    assert entities(["B-PER", "I-LOC", "I-LOC", "B-LOC", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 5)]


def _corrupt(tags: list[str], rng: random.Random, types: list[str]) -> list[str]:
    """Predictions with the mistakes a tagger makes: wrong type, shifted or cut spans, stray I-, misses."""
    out = list(tags)
    for i in range(len(out)):
        r = rng.random()
        if r < 0.05:
            out[i] = "O"
        elif r < 0.09:
            out[i] = f"I-{rng.choice(types)}"
        elif r < 0.12:
            out[i] = f"B-{rng.choice(types)}"
    return out


@pytest.mark.parametrize("lang", ["swh_Latn", "hau_Latn", "yor_Latn", "amh_Ethi"])
def test_entity_f1_agrees_with_seqeval_on_the_real_test_files(data_dir, lang):
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    from edgelm.scores import entity_scores

    gold = [list(s.tags) for s in load_task(data_dir / "ner").split("test", [lang])]
    rng = random.Random(lang)
    pred = [_corrupt(g, rng, ["PER", "ORG", "LOC"]) for g in gold]
    ours = entity_scores(gold, pred)
    assert ours["f1"] == pytest.approx(f1_score(gold, pred), abs=1e-12)
    assert ours["precision"] == pytest.approx(precision_score(gold, pred), abs=1e-12)
    assert ours["recall"] == pytest.approx(recall_score(gold, pred), abs=1e-12)
    theirs = classification_report(gold, pred, output_dict=True)
    for typ in ("PER", "ORG", "LOC"):
        assert ours["per_type"][typ]["f1"] == pytest.approx(theirs[typ]["f1-score"], abs=1e-12)
        assert ours["per_type"][typ]["support"] == theirs[typ]["support"]
    assert entity_scores(gold, gold)["f1"] == 1.0


def test_the_task_benchmark_cuts_training_splits_evenly_and_leaves_dev_and_test_whole(data_dir, tmp_path):
    """The task benchmark's budget (`--train-rows`): real UD and AfriSenti folders, training cut to evenly
    spaced sentences that keep their words and tags; dev, test and labels.txt read back unchanged."""
    from edgelm.benchmarks.experiments.tasks import task_folder

    pos, cut = load_task(data_dir / "pos"), load_task(task_folder(data_dir, "pos", tmp_path, None, 500))
    full_train, cut_train = pos.split("train"), cut.split("train")
    assert len(cut_train) == 500 and cut_train[0] == full_train[0] and cut_train[1] == full_train[25]
    assert cut.labels == pos.labels
    for split, lang in (("dev", "eng_Latn"), ("test", "hin_Deva"), ("test", "yor_Latn")):
        assert cut.split(split, [lang]) == pos.split(split, [lang])
    afri = load_task(task_folder(data_dir, "afrisenti", tmp_path, None, 1000))
    assert [len(afri.split("train", [lang])) for lang in ("swh_Latn", "hau_Latn")] == [1000, 1000]
    assert {r.label for r in afri.split("train", ["hau_Latn"])} == {"negative", "neutral", "positive"}
    assert len(afri.split("test", ["hau_Latn"])) == 5303
    smoke = load_task(task_folder(data_dir, "afrisenti", tmp_path, 20, 1000))  # --limit cuts every split
    assert len(smoke.split("test", ["hau_Latn"])) == 20 and len(smoke.split("train", ["hau_Latn"])) == 20
