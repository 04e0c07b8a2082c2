"""`edgelm distill`: one run folder, both BiStil phases, resumable.

Layout of a run folder:
    run.json            settings, teacher provenance, vocabulary and parameter counts, timings
    vocab.json          kept teacher token ids (new id = position)
    general/            phase-1 student: a transformers checkpoint (safetensors, tokenizer.json)
    task/               phase-2 student, merged dense, a sequence classifier (see task.py)
    checkpoints/        training state for --resume
    general_log.csv     losses of phase 1 (task_log.csv for phase 2)
"""

from __future__ import annotations

import errno
import json
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_write_text
from edgelm.data.bitext import Bitext
from edgelm.data.ntrex import ntrex_languages
from edgelm.data.sib200 import load_sib200, sib200_languages
from edgelm.data.tatoeba import load_tatoeba, tatoeba_languages
from edgelm.distillation.config import DistillConfig
from edgelm.distillation.text import TrainingText
from edgelm.errors import EdgelmError

RUN_FILE = "run.json"


def evaluation_sentences(data_root: Path | None, lang: str) -> set[str]:
    """Every sentence in `lang` of the evaluation sets in `data_root`: SIB-200 test, Tatoeba, NTREX."""
    if data_root is None:
        return set()
    held_out: set[str] = set()
    if lang in sib200_languages(data_root):
        held_out |= {r.text.strip() for r in load_sib200(data_root, lang, "test")}
    if lang in tatoeba_languages(data_root) or lang == "eng_Latn":
        for other in tatoeba_languages(data_root):
            src, eng = load_tatoeba(data_root, other)
            held_out |= {t.strip() for t in (eng if lang == "eng_Latn" else (src if other == lang else []))}
    if lang in ntrex_languages(data_root):
        held_out |= {t.strip() for t in (data_root / "parallel" / "ntrex" / f"{lang}.txt").read_text(
            encoding="utf-8").splitlines()}
    return held_out


def training_texts(cfg: DistillConfig, data_root: Path | None, user: dict[str, list[Path]],
                   use_bundled: bool = True, bitexts: Sequence[Bitext] = ()) -> dict[str, TrainingText]:
    """Each run language's training text (streamed; see `distillation.text`), never from an evaluation set.

    Bundled: SIB-200 train + dev of each language. Then the user's corpora and both sides of their
    bitext. SIB-200 test, all of Tatoeba and all of NTREX are evaluation sets: any sentence of theirs
    found in the training text is removed, and how many were removed is reported.
    """
    have_sib = sib200_languages(data_root) if data_root else []
    texts: dict[str, TrainingText] = {}
    for lang in cfg.languages:
        text = TrainingText(lang, evaluation_sentences(data_root, lang))
        if use_bundled and lang in have_sib:
            text.add("sib200 train+dev", [r.text for split in ("train", "dev")
                                          for r in load_sib200(data_root, lang, split)])
        for path in user.get(lang, []):
            text.add_corpus(path)
        for bitext in bitexts:
            if lang in bitext.languages:
                text.add(f"bitext {bitext.origin}", [p[bitext.side(lang)] for p in bitext.pairs])
        if next(iter(text), None) is None:
            raise EdgelmError(f"no training text for {lang}: give one with --corpus {lang}=PATH")
        texts[lang] = text
    return texts


def collect_corpora(cfg: DistillConfig, data_root: Path | None, user: dict[str, list[Path]],
                    use_bundled: bool = True, bitexts: Sequence[Bitext] = ()) -> tuple[dict[str, list[str]], dict]:
    """`training_texts`, read into lists (for text small enough to hold: routing's), with their reports."""
    texts = training_texts(cfg, data_root, user, use_bundled, bitexts)
    corpora = {lang: list(t) for lang, t in texts.items()}
    return corpora, {lang: t.report for lang, t in texts.items()}


def check_bitexts(cfg: DistillConfig, bitexts: Sequence[Bitext]) -> None:
    """Every bitext pairs the source with one of the run's targets."""
    for b in bitexts:
        if cfg.source not in b.languages or not set(b.languages) & set(cfg.targets):
            raise EdgelmError(f"--bitext {b.origin} pairs {' and '.join(b.languages)}; this run needs pairs of "
                              f"{cfg.source} and {' or '.join(cfg.targets)}")


def parallel_pairs(cfg: DistillConfig, data_root: Path | None, corpora: Mapping[str, Iterable[str]],
                   bitexts: Sequence[Bitext] = ()) -> dict[str, np.ndarray]:
    """For each target sentence, the index of its source translation in the source corpus (or -1).

    Translations come from SIB-200 (rows share `index_id` across languages, so its train/dev splits are
    a parallel corpus) and from the user's bitext. A pair whose side was an evaluation sentence has no
    anchor (that side is not in the corpus). The corpora are read once each, streamed.
    """
    have = set(sib200_languages(data_root)) if data_root is not None else set()
    translation: dict[str, dict[str, str]] = {t: {} for t in cfg.targets}
    if cfg.source in have:
        by_id: dict[int, str] = {}
        for split in ("train", "dev"):
            by_id.update({r.index_id: r.text for r in load_sib200(data_root, cfg.source, split)})
        for target in [t for t in cfg.targets if t in have]:
            for split in ("train", "dev"):
                for r in load_sib200(data_root, target, split):
                    if r.index_id in by_id:
                        translation[target][r.text] = by_id[r.index_id]
    for b in bitexts:
        target = next((t for t in b.languages if t in translation), None)
        if target is not None and cfg.source in b.languages:
            s, t = b.side(cfg.source), b.side(target)
            for pair in b.pairs:
                translation[target].setdefault(pair[t], pair[s])
    wanted = {src for per_target in translation.values() for src in per_target.values()}
    src_pos = {t: i for i, t in enumerate(corpora[cfg.source]) if t in wanted}
    return {target: np.fromiter((src_pos.get(translation[target].get(t, ""), -1) for t in corpora[target]),
                                dtype=np.int64)
            for target in cfg.targets if translation[target]}


_LOST_PEER = ("gloo", "Connection closed", "Connection reset", "NCCL", "ProcessGroup", "c10d")


def _train_on_world(world, train, checkpoint: Path) -> dict:
    """Run `train()`. Under torchrun, when another rank dies (torchrun then stops this one with SIGTERM,
    or gloo reports the lost peer), say in one line where the run stands instead of a traceback."""
    if world.size == 1:
        return train()
    import signal

    def last_step() -> int:
        state = checkpoint / "state.json"
        return json.loads(state.read_text())["state"]["step"] if state.is_file() else 0

    def lost(why: str) -> EdgelmError:
        return EdgelmError(f"rank {world.rank} stopped: {why}; the last checkpoint is at step {last_step()}: "
                           "run the same command with --resume (any world size, torchrun or not)")

    def on_sigterm(signum, frame):
        raise lost("torchrun ended the run (another rank failed, or the job was cancelled)")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        result = train()
    except RuntimeError as exc:  # torch.distributed's errors (DistBackendError, gloo's) are RuntimeErrors
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # torchrun's SIGTERM must not cut the message short
        import torch.distributed as dist

        message = str(exc)
        if not (isinstance(exc, dist.DistError) or any(w in message for w in _LOST_PEER)):
            raise  # out of memory, a CUDA error, a bug: not a lost rank, so not reworded
        raise lost(f"it lost the other ranks ({message.splitlines()[0][:100]})") from None
    except BaseException:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    signal.signal(signal.SIGTERM, previous)
    return result


def check_output(out: Path, cfg: DistillConfig, *, resume: bool, overwrite: bool) -> bool:
    """Decide what to do with an existing `out`; return True when a run should resume there."""
    if not out.exists():
        if resume:
            raise EdgelmError(f"nothing to resume: {out} does not exist")
        return False
    if not out.is_dir():
        raise EdgelmError(f"{out} exists and is not a folder")
    if overwrite:
        return False
    run_file = out / RUN_FILE
    if not run_file.is_file():
        if any(out.iterdir()):
            raise EdgelmError(f"{out} is not empty and holds no edgelm run; choose another --out or pass --overwrite")
        return False
    previous = json.loads(run_file.read_text())
    continues_with_task = cfg.phase == "task" and (out / "general" / "model.safetensors").is_file()
    if not resume and not continues_with_task:
        raise EdgelmError(f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it")
    if previous.get("identity") != cfg.identity():  # phase 2 builds on exactly this phase-1 student
        changed = sorted(k for k in cfg.identity() if previous.get("identity", {}).get(k) != cfg.identity()[k])
        raise EdgelmError(f"{out} holds a different run (differs in {', '.join(changed)}); "
                          "use the same settings to --resume, or --overwrite")
    return True


def distill(cfg: DistillConfig, out: Path, *, data_root: Path | None, corpora_paths: dict[str, list[Path]],
            resume: bool = False, overwrite: bool = False, use_bundled: bool = True,
            bitexts: Sequence[Bitext] = ()) -> dict:
    """Run the phases `cfg.phase` asks for into `out`; return the run summary (also in run.json)."""
    import torch

    from edgelm.version import __version__
    from edgelm.distillation.general import TokenizedCorpus, train_general
    from edgelm.distillation.student import make_student, select_layers
    from edgelm.distillation.vocab import trim_vocabulary
    from edgelm.checkpoint import EmbeddingRecipe, check_checkpoint, load_model, load_tokenizer
    from edgelm.encoder import save_encoder
    from edgelm.teacher.registry import resolve_model

    from edgelm.distillation.hardware import Hardware

    started = time.perf_counter()
    out = Path(out)
    hw = Hardware.resolve(cfg.device, cfg.precision, cfg.grad_accum)  # a wrong device is refused before anything loads
    hw.check_batch(cfg.batch_size)
    world = hw.world
    resuming = check_output(out, cfg, resume=resume, overwrite=overwrite)
    task_data = None
    if cfg.phase in ("task", "both"):  # the task's data and teacher are checked before anything is written
        from edgelm.distillation.task import check_task_teacher
        from edgelm.distillation.task_data import phase_two_data

        task_data = phase_two_data(cfg, data_root)
        before = json.loads((out / RUN_FILE).read_text()).get("task_data") if resuming else None
        if resuming and before and before.get("identity") != task_data.identity:
            raise EdgelmError(f"{out} holds a run for task {before['identity'].get('name')}; --resume it with that "
                              "--task, or run --phase task without --resume to distil another task from its student")
        if cfg.task_teacher:
            check_task_teacher(Path(cfg.task_teacher), task_data)
        if cfg.task_target_share and set(cfg.targets) <= set(task_data.languages):
            raise EdgelmError("--task-target-share adds unlabelled text of target languages without labels; "
                              f"this task has training rows in {', '.join(cfg.targets)} already")
    check_bitexts(cfg, bitexts)
    texts = training_texts(cfg, data_root, corpora_paths, use_bundled, bitexts)
    corpus_report = {lang: text.scan() for lang, text in texts.items()}
    if cfg.phase in ("general", "both"):
        for lang, report in corpus_report.items():
            if report["sentences"] < cfg.batch_size:
                raise EdgelmError(f"corpus for {lang} has {report['sentences']} sentences, fewer than one batch of "
                                  f"{cfg.batch_size}; give more text or a smaller --batch-size")
    teacher_path = resolve_model(cfg.teacher)
    check_checkpoint(teacher_path)
    from transformers import AutoConfig

    tconf = AutoConfig.from_pretrained(teacher_path)
    depth = tconf.num_hidden_layers // cfg.layer_reduction if cfg.layer_reduction else cfg.layers
    layers = select_layers(tconf.num_hidden_layers, depth, cfg.layer_selection)
    teacher = load_model(teacher_path, attn_implementation="eager")
    teacher_tokenizer = load_tokenizer(teacher_path)
    if cfg.alpha_attn:
        with torch.no_grad():
            probe = teacher(**teacher_tokenizer("a", return_tensors="pt"), output_attentions=True)
        if not getattr(probe, "attentions", None):
            raise EdgelmError(f"teacher {cfg.teacher} returns no attention probabilities; set --alpha-attn 0")
    recipe = EmbeddingRecipe.from_config(teacher.config, cfg.teacher)
    tok_json = json.loads(teacher_tokenizer.backend_tokenizer.to_str())

    world.start(hw.device)
    world.barrier()  # every rank has read `out` before rank 0 changes it
    if world.main:
        if overwrite and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
    prefixes = list((getattr(teacher.config, "edgelm", None) or {}).get("prefixes", {}).values())
    vocab = trim_vocabulary(tok_json, texts, threshold=cfg.vocab_threshold, min_count=cfg.vocab_min_count,
                            extra_texts=prefixes)
    if resuming and (out / "vocab.json").is_file():
        kept = np.array(json.loads((out / "vocab.json").read_text())["kept"], dtype=np.int64)
        if not np.array_equal(vocab.kept, kept):
            raise EdgelmError(f"the corpora changed since {out} was started; the vocabulary would differ")
    elif world.main:
        atomic_write_text(out / "vocab.json", json.dumps({"kept": vocab.kept.tolist(), "stats": vocab.stats}))

    provenance = {"teacher": cfg.teacher, "teacher_path": str(teacher_path),
                  "teacher_source": (getattr(teacher.config, "edgelm", None) or {}).get("source"),
                  "teacher_layers": layers, "languages": cfg.languages, "edgelm_version": __version__}
    previous = json.loads((out / RUN_FILE).read_text()) if resuming and (out / RUN_FILE).is_file() else {}
    summary: dict = {
        **previous,
        "identity": cfg.identity(), "config": cfg.to_dict(), "provenance": provenance, "corpora": corpus_report,
        "vocabulary": vocab.stats,
        "parameters": {"teacher": sum(p.numel() for p in teacher.parameters())},
        "note": "Training text never includes SIB-200 test or Tatoeba sentences (evaluation sets).",
    }
    if world.main:
        atomic_write_text(out / RUN_FILE, json.dumps(summary, indent=1))
    world.barrier()

    pad_id = vocab.old_to_new()[tconf.pad_token_id]
    student = make_student(teacher, vocab.kept, layers, extra_config={
        "distilled": {"teacher": cfg.teacher, "teacher_layers": layers, "languages": cfg.languages}})
    summary["parameters"]["student"] = sum(p.numel() for p in student.parameters())
    summary["parameters"]["student_embeddings"] = student.embeddings.word_embeddings.weight.numel()

    if cfg.phase in ("general", "both"):
        tokenizer = vocab.tokenizer()
        # rank 0 builds (or finds) each shard; the others wait for it on disk, not in a collective call
        # (tokenizing a large corpus can outlast the process group's timeout)
        tokenized = {lang: TokenizedCorpus.cached(text, tokenizer, recipe.prefix, cfg.max_length, build=world.main)
                     for lang, text in texts.items()}
        summary["corpora"]["shards"] = {lang: str(c.shard.folder) for lang, c in tokenized.items()}
        try:
            pairs = parallel_pairs(cfg, data_root, texts, bitexts) if cfg.alpha_parallel or cfg.alpha_contrastive else {}
            summary["corpora"]["parallel_pairs"] = {k: int((v >= 0).sum()) for k, v in pairs.items()}
            summary["general"] = _train_on_world(
                world, lambda: train_general(cfg, teacher, student, vocab.kept, tokenized, out, pad_id=pad_id,
                                             resume=resuming, pairs=pairs, source=cfg.source, hardware=hw,
                                             teacher_cache=cfg.teacher_cache), out / "checkpoints" / "general")
            if world.main:
                save_encoder(student, vocab.tokenizer_json, out / "general", tconf.max_position_embeddings,
                             provenance={"teacher": cfg.teacher, "languages": cfg.languages, "run": str(out),
                                         "steps": summary["general"]["steps"]})
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise EdgelmError(f"the disk filled up while writing into {out}; the last complete checkpoint "
                                  "is intact: free space and run again with --resume") from None
            raise
    world.barrier()
    world.stop()
    if not world.main:  # phase 2 (small, labelled data) runs in rank 0 alone; the other ranks are done
        return summary
    if cfg.phase in ("task", "both"):
        from edgelm.distillation.task import train_task

        if not (out / "general" / "model.safetensors").is_file():
            raise EdgelmError(f"phase 2 needs the phase-1 student in {out / 'general'}: run --phase general first")
        summary["task_data"] = {"identity": task_data.identity, "setting": task_data.setting,
                                "trained_on": task_data.languages, "read": task_data.report}
        atomic_write_text(out / RUN_FILE, json.dumps(summary, indent=1))
        unlabelled = ({lang: texts[lang] for lang in cfg.targets if lang not in task_data.languages}
                      if cfg.task_target_share else None)
        summary["task"] = train_task(cfg, teacher_path, out, data_root=data_root, resume=resuming, data=task_data,
                                     hardware=hw, target_text=unlabelled)
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(out / RUN_FILE, json.dumps(summary, indent=1))
    return summary
