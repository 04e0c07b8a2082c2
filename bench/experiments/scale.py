"""The scale benchmark: what more training text buys the student, and what the hardware options cost.

    python -m edgelm.benchmarks.experiments.scale [--sections quality,throughput,memory] [--steps 1500]
        [--out runs/bench-scale]

quality     The same 4-layer eng->swh phase-1 student (same vocabulary rule, same settings) at a fixed step
            budget on three kinds of training text: SIB-200 train+dev only (the default; with the teacher
            cache, since it is read 15 times), + corpus/ (monolingual eng and swh), + corpus/ and MAFAND
            eng-swh bitext as parallel anchors (taken as they come; as half of every swh batch; and with
            the contrastive term against the anchors embedded so far). Scored with the teacher on SIB-200
            swh (probe trained on English), Tatoeba swh<->eng and NTREX swh<->eng retrieval, as
            fractions of the teacher.
throughput  Phase-1 sentences/s on this machine, each against its baseline in the same run: 1 vs 2 CPU
            processes (torchrun, gloo) at the same global batch; teacher cache off vs on (second epoch,
            once the cache is full); fp32 vs bf16 autocast.
memory      Peak RSS of a phase-1 run whose text is corpus/ (1x) and ten distinct copies of it (10x):
            the text is streamed and tokenized into memory-mapped shards, so memory should stay flat.

Every training run is a child `edgelm` process (so its peak memory is its own and a killed benchmark
resumes); every finished row is cached in --out/rows/. Results: results.json and results.md in --out.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SECTIONS = ("quality", "throughput", "memory")
TEXTS = {  # row -> extra arguments for `edgelm distill`, given the data root
    "SIB-200 only": lambda root: ["--teacher-cache"],
    "+ corpus/": lambda root: ["--corpus", f"eng_Latn={root / 'corpus' / 'eng_Latn.txt.gz'}",
                               "--corpus", f"swh_Latn={root / 'corpus' / 'swh_Latn.txt.gz'}"],
    "+ corpus/ + MAFAND bitext": lambda root: ["--corpus", f"eng_Latn={root / 'corpus' / 'eng_Latn.txt.gz'}",
                                               "--corpus", f"swh_Latn={root / 'corpus' / 'swh_Latn.txt.gz'}",
                                               "--bitext", str(root / "parallel" / "mafand" / "eng-swh_Latn.tsv")],
    "+ corpus/ + MAFAND bitext, half of each swh batch anchored": lambda root: [
        *TEXTS["+ corpus/ + MAFAND bitext"](root), "--anchor-share", "0.5"],
    "+ corpus/ + MAFAND bitext, half anchored, contrastive memory bank": lambda root: [
        *TEXTS["+ corpus/ + MAFAND bitext"](root), "--anchor-share", "0.5", "--alpha-contrastive", "0.1"],
    "+ corpus/ + MAFAND bitext, half anchored, parallel term x4": lambda root: [
        *TEXTS["+ corpus/ + MAFAND bitext"](root), "--anchor-share", "0.5", "--alpha-parallel", "4"],
    # More steps instead of more text: the half-anchored row at 2.2x the budget (bf16 autocast, 1.76x faster
    # here) tests the extrapolation from the rows above rather than leaving it a guess.
    "+ corpus/ + MAFAND bitext, half anchored, 3,300 steps in bf16": lambda root: [
        *TEXTS["+ corpus/ + MAFAND bitext"](root), "--anchor-share", "0.5", "--steps", "3300", "--precision", "bf16"],
}
# Measures the peak RSS of an `edgelm` command in its own process.
RSS = ("import resource, sys\nfrom edgelm.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
       "    code = e.code\nelse:\n    code = 0\nprint('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
       "file=sys.stderr)\nsys.exit(code)\n")


def _edgelm(args: list[str], *, nproc: int = 1) -> tuple[float, float]:
    """Run `edgelm ARGS` (under torchrun when nproc > 1); return (wall seconds, peak RSS MB of the process)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "edgelm", *args]
    else:
        cmd = [sys.executable, "-c", RSS, *args]
    print(f"+ {'torchrun x' + str(nproc) + ' ' if nproc > 1 else ''}edgelm {' '.join(args)}", file=sys.stderr,
          flush=True)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(done.stderr[-2000:])
    if done.returncode != 0:
        sys.exit(f"failed (exit {done.returncode}): edgelm {' '.join(args)}")
    rss = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    return time.perf_counter() - started, (rss[-1] / 1024 if rss else float("nan"))


def _cached(out: Path, name: str, make) -> dict:
    f = out / "rows" / f"{name.replace('/', '_').replace(' ', '_')}.json"
    if f.is_file():
        return json.loads(f.read_text())
    row = make()
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(row, indent=1))
    return row


def _scores(model: str, root: Path) -> dict:
    from edgelm.api import evaluate

    rep = evaluate(model, tasks=["sib200", "tatoeba", "ntrex"], languages=["swh_Latn"], data=str(root))
    return {"sib200_swh": rep["sib200"]["scores"][0]["accuracy"], "tatoeba_swh": rep["tatoeba"]["scores"][0]["accuracy"],
            "ntrex_swh": rep["ntrex"]["scores"][0]["accuracy"], "parameters": rep["model"].get("parameters")}


def quality(args, root: Path, out: Path) -> dict:
    rows = {"teacher": _cached(out, "quality-teacher", lambda: _scores("e5-small", root))}
    for name, extra in TEXTS.items():
        run = out / "runs" / name.replace("/", "").replace("+", "plus").replace(" ", "-").strip("-")

        def make(run=run, extra=extra):
            more = extra(root)
            steps = [] if "--steps" in more else ["--steps", str(args.steps)]  # a row may set its own budget
            cmd = ["distill", "--phase", "general", "--target", "swh_Latn", *steps,
                   "--batch-size", "16", "--device", "cpu", "--out", str(run), *more]
            if (run / "run.json").is_file():
                cmd.append("--resume")
            wall, rss = _edgelm(cmd)
            info = json.loads((run / "run.json").read_text())
            return {**_scores(str(run / "general"), root), "train_seconds": info["general"]["train_seconds"],
                    "peak_rss_mb": round(rss), "sentences": {k: v["sentences"] for k, v in info["corpora"].items()
                                                            if isinstance(v, dict) and "sentences" in v},
                    "parallel_pairs": info["corpora"].get("parallel_pairs", {}),
                    "vocabulary": info["vocabulary"]["vocab_after"]}

        rows[name] = _cached(out, f"quality-{name}", make)
    return rows


def _rate(run: Path, start: int, end: int, batch: int) -> float:
    """Sentences per second between two logged steps of a phase-1 run (rank 0's log)."""
    with open(run / "general_log.csv", newline="") as fh:
        at = {int(r["step"]): float(r["elapsed_s"]) for r in csv.DictReader(fh)}
    return (end - start) * batch / (at[end] - at[start])


def throughput(args, root: Path, out: Path) -> dict:
    base = ["distill", "--phase", "general", "--target", "swh_Latn", "--batch-size", "16", "--device", "cpu",
            "--overwrite"]
    runs = out / "throughput"
    cases = {  # name -> (extra args, processes, steps, measured from step, to step)
        "1 process, fp32": ([], 1, 60, 10, 60),
        "2 processes (gloo), fp32": ([], 2, 60, 10, 60),
        "1 process, bf16 autocast": (["--precision", "bf16"], 1, 60, 10, 60),
        "teacher cache off (epoch 2)": ([], 1, 200, 100, 200),
        "teacher cache on (epoch 2)": (["--teacher-cache"], 1, 200, 100, 200),
    }
    rows = {}
    for name, (extra, nproc, steps, a, b) in cases.items():
        run = runs / name.split(",")[0].replace(" ", "-").replace("(", "").replace(")", "") / name.replace(" ", "_")

        def make(extra=extra, nproc=nproc, steps=steps, a=a, b=b, run=run):
            _edgelm([*base, "--steps", str(steps), "--out", str(run), *extra], nproc=nproc)
            return {"sentences_per_s": round(_rate(run, a, b, 16), 2), "steps": f"{a}-{b}", "processes": nproc}

        rows[name] = _cached(out, f"throughput-{name}", make)
    return rows


def _copies(src: Path, dst: Path, k: int, limit: int) -> Path:
    """`k` distinct copies of the first `limit` lines of `src` (copy i's lines end in ` [i]`), gzipped."""
    if dst.is_file():
        return dst
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        lines = [line.rstrip("\n") for _, line in zip(range(limit), fh)]
    tmp = dst.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        for i in range(k):
            for line in lines:
                fh.write(f"{line} [{i}]\n" if i else line + "\n")
    tmp.rename(dst)
    return dst


def memory(args, root: Path, out: Path) -> dict:
    rows = {}
    for k in (1, 10):
        def make(k=k):
            corpora = out / "memory" / "text"
            corpora.mkdir(parents=True, exist_ok=True)
            files = {lang: _copies(root / "corpus" / f"{lang}.txt.gz", corpora / f"{lang}-x{k}.txt.gz", k, 76000)
                     for lang in ("eng_Latn", "swh_Latn")}
            run = out / "memory" / f"x{k}"
            wall, rss = _edgelm(["distill", "--phase", "general", "--target", "swh_Latn", "--no-bundled",
                                 "--steps", "30", "--batch-size", "16", "--device", "cpu", "--overwrite",
                                 "--out", str(run), *[a for lang, f in files.items() for a in ("--corpus", f"{lang}={f}")]])
            info = json.loads((run / "run.json").read_text())
            return {"sentences": sum(v["sentences"] for v in info["corpora"].values()
                                     if isinstance(v, dict) and "sentences" in v),
                    "peak_rss_mb": round(rss), "wall_seconds": round(wall, 1),
                    "vocabulary": info["vocabulary"]["vocab_after"]}

        rows[f"{k}x"] = _cached(out, f"memory-{k}x", make)
    return rows


def render(result: dict) -> str:
    m = result["machine"]
    lines = [f"Scale benchmark ({m.get('cpu')}, {m.get('cores')} cores, torch {m.get('versions', {}).get('torch')}, commit "
             f"{m.get('commit')})."]
    q = result.get("quality")
    if q:
        t = q["teacher"]
        lines += ["", f"Quality vs training text: 4-layer eng->swh phase-1 student, {result['args']['steps']} steps of "
                  "16 sentences (unless the row names another budget); scores as fractions of the teacher.", "",
                  "| training text | sentences eng / swh | anchored pairs | vocab | SIB-200 swh | Tatoeba swh | "
                  "NTREX swh | train s |", "|---|---|---|---|---|---|---|---|",
                  f"| teacher | – | – | 250,002 | {t['sib200_swh']:.3f} | {t['tatoeba_swh']:.3f} | {t['ntrex_swh']:.3f} | – |"]
        for name in TEXTS:
            r = q.get(name)
            if r:
                s = r["sentences"]
                lines.append(f"| {name} | {s.get('eng_Latn', 0):,} / {s.get('swh_Latn', 0):,} | "
                             f"{r['parallel_pairs'].get('swh_Latn', 0):,} | {r['vocabulary']:,} | "
                             + " | ".join(f"{r[k]:.3f} ({r[k] / t[k]:.0%})" for k in ("sib200_swh", "tatoeba_swh",
                                                                                      "ntrex_swh"))
                             + f" | {r['train_seconds']:.0f} |")
    th = result.get("throughput")
    if th:
        lines += ["", "Phase-1 throughput on this machine (sentences/s, batch 16, eng+swh SIB-200 text):", "",
                  "| setting | sentences/s | vs its baseline |", "|---|---|---|"]
        pairs = {"2 processes (gloo), fp32": "1 process, fp32", "1 process, bf16 autocast": "1 process, fp32",
                 "teacher cache on (epoch 2)": "teacher cache off (epoch 2)"}
        for name, r in th.items():
            ref = th.get(pairs.get(name, ""))
            ratio = f"{r['sentences_per_s'] / ref['sentences_per_s']:.2f}×" if ref else "baseline"
            lines.append(f"| {name} | {r['sentences_per_s']:.1f} | {ratio} |")
    mem = result.get("memory")
    if mem:
        lines += ["", "Peak RSS of a 30-step phase-1 run (eng + swh text from corpus/, streamed into memory-mapped "
                  "shards):", "", "| text | sentences | peak RSS MB | wall s |", "|---|---|---|---|"]
        for name, r in mem.items():
            lines.append(f"| {name} | {r['sentences']:,} | {r['peak_rss_mb']} | {r['wall_seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    ap.add_argument("--steps", type=int, default=1500, help="phase-1 steps of each quality row")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs") / "bench-scale")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        sys.exit(f"unknown section {bad[0]!r}; sections are {', '.join(SECTIONS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from edgelm.benchmarks.harness import machine_info, save_results
    from edgelm.data.locate import data_root

    root = data_root(args.data)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": {"steps": args.steps, "sections": sections}, "machine": machine_info()}
    for name in sections:
        result[name] = globals()[name](args, root, out)
    previous = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    result = {**previous, **result}
    md = render(result)
    save_results(result, md, out, "scale", kind="scale")
    print(md)


if __name__ == "__main__":
    main()
