"""SCAR over whole specialists (`python -m edgelm.benchmarks.experiments.route --design specialists`): does
routing keep each bilingual student's mastery without its fragility elsewhere, at what size and speed?

1. The students, as child processes, each resumed if killed and skipped if done: one phase-1 BiStil student
   per language (`edgelm distill --target LANG --phase general`, the distillation benchmark's recipe), and a
   small general expert, a multi-target student over every other SIB-200 language (its vocabulary trimmed
   harder, `--vocab-threshold`, so that the whole int8 bundle fits the size target).
2. `edgelm route build` over them (the router keeps --heldout languages out of training), and a second
   routed model with the teacher itself as the general expert (a row, not a target: it is what edge users
   cannot ship).
3. Rows, base = the teacher: the teacher, the general expert alone, each specialist alone, SCAR oracle, SCAR
   learned, dense; SIB-200 (16 languages, probe trained on English), Tatoeba and NTREX retrieval (each
   pair's sides may go to different experts: this measures whether the experts share one output space).
4. DSI / GG / forgetting reduction (`edgelm.tradeoffs`), router accuracy on SIB-200 test text, and the int8
   ONNX bundles through the device runtime: MB, and p50 latency per sentence (1 thread, batch 1, SIB-200 test
   sentences of all 16 languages, every model interleaved round by round) as ratios to one specialist.
Results: `results-route-specialists.json` / `.md` in --out and bench/results/route-specialists.json.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
import time
from pathlib import Path

import numpy as np

from edgelm.benchmarks.experiments.rows import EDGELM, evaluate_rows, matrix, run_child
from edgelm.routing.format import safe_name

TASKS = ("sib200", "tatoeba", "ntrex")
SOURCE = "eng_Latn"


def _done(run: Path) -> bool:
    return (run / "general" / "model.safetensors").is_file()


def distill(run: Path, targets: str, steps: int, layers: int, data: list[str], extra: list[str] = ()) -> Path:
    """A phase-1 student at `run` (resumed if a killed run left one); returns its general/ folder."""
    if not _done(run):
        run_child([*EDGELM, "distill", "--out", str(run), "--target", targets, "--phase", "general", "--steps", str(steps),
                   "--layers", str(layers), "--teacher-cache", *extra, *data,
                   *(["--resume"] if (run / "run.json").is_file() else [])])
    return run / "general"


def router_corpus(args) -> dict[str, str]:
    """--router-corpus LANG=PATH (repeatable); by default Hausa's corpus, a Latin-script language no expert
    has, which teaches the router that such text is the general expert's."""
    from edgelm.data.locate import data_root

    if args.router_corpus is None:
        hau = data_root(args.data) / "corpus" / "hau_Latn.txt.gz"
        return {"hau_Latn": str(hau)} if hau.is_file() else {}
    return dict(item.split("=", 1) for item in args.router_corpus if item)


@functools.cache
def _weights_sha(folder: Path) -> str | None:
    """sha256 of a model folder's weights (None: none there); cached, so call it only on folders that do not
    change during the run (the students, not the routed copies `build` may replace)."""
    from edgelm.hashing import sha256_file

    f = Path(folder) / "model.safetensors"
    return sha256_file(f) if f.is_file() else None


def _same_weights(source: Path, copy: Path) -> bool:
    from edgelm.hashing import sha256_file

    f, want = copy / "model.safetensors", _weights_sha(Path(source))
    return want is not None and f.is_file() and sha256_file(f) == want


def general_args(args) -> str:
    """`--general-args`; by default half of the general expert's steps on English (`--source-share`), half
    of each target batch anchored, and English corpus text where the data folder has it: its English is
    what the other side of every routed retrieval pair runs on."""
    from edgelm.data.locate import data_root

    if args.general_args is not None:
        return args.general_args
    eng = data_root(args.data) / "corpus" / f"{SOURCE}.txt.gz"
    return "--source-share 0.5 --anchor-share 0.5" + (f" --corpus {SOURCE}={shlex.quote(str(eng))}" if eng.is_file() else "")


def build(routed: Path, students: dict[str, Path], general: Path, args, data: list[str]) -> dict:
    """`edgelm route build`, again (--overwrite) when the folder's router was trained otherwise than asked
    or its experts are not these students (another path, or weights retrained since)."""
    corpus = router_corpus(args)
    want = {"steps": args.router_steps, "heldout": args.heldout.split(",") if args.heldout else [],
            "corpora": sorted(corpus.values())}
    sources = {"general": general, **students}
    if (routed / "routed.json").is_file():
        meta = json.loads((routed / "routed.json").read_text())
        r = meta["router"]
        have = {"steps": r["steps"], "heldout": r["heldout"],
                "corpora": sorted(f for c in r.get("corpora", {}).values() for f in c["files"])}
        same_experts = (meta["sources"] == {k: str(v) for k, v in sources.items()}
                        and all(_same_weights(v, routed / "experts" / safe_name(k)) for k, v in sources.items()))
        if have == want and same_experts:
            return meta
    run_child([*EDGELM, "route", "build", *[a for lang, f in students.items() for a in ("--expert", f"{lang}={f}")],
               "--general", str(general), "--out", str(routed), "--router-steps", str(args.router_steps),
               "--heldout", args.heldout, *[a for lang, f in corpus.items() for a in ("--corpus", f"{lang}={f}")],
               "--overwrite", *data])
    return json.loads((routed / "routed.json").read_text())


def _key(*texts: str) -> str:
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]


def export(model: str | Path, bundle: Path, data: list[str]) -> Path:
    if not (bundle / "manifest.json").is_file():
        run_child([*EDGELM, "export", str(model), "--target", "onnx", "--quantize", "int8", "--out", str(bundle),
                   "--overwrite", *data])
    return bundle


def folder_mb(path: Path) -> float:
    """Everything a device would be sent: every file under `path`, in MiB (as `edgelm bench` reports)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def latency(bundles: dict[str, tuple[Path, str | None]], data: Path | None, per_language: int = 20,
            rounds: int = 3) -> dict[str, dict]:
    """p50 / p90 ms per sentence through `edgelm.runtime` (routing, tokenizing and the experts' graphs), one
    thread, batch 1; every model sees the same sentences, round by round, interleaved."""
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import load_sib200, sib200_languages
    from edgelm.runtime import Model

    root = data_root(data)
    texts = [r.text for lang in sib200_languages(root) for r in load_sib200(root, lang, "test")[:per_language]]
    models = {name: Model.load(path, threads=1, **({"routing": routing} if routing else {}))
              for name, (path, routing) in bundles.items()}
    for m in models.values():  # warm-up, then count only the timed sentences' experts
        m.embed(texts[:10])
        if hasattr(m, "experts_run"):
            m.experts_run[:] = 0
            m.sentences = 0
    samples: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(rounds):
        for name, m in models.items():
            for t in texts:
                t0 = time.perf_counter()
                m.embed([t])
                samples[name].append((time.perf_counter() - t0) * 1000)
    return {n: {"p50_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)), "sentences": len(texts),
                "mean_experts": float(getattr(models[n], "mean_experts", 1.0))} for n, v in samples.items()}


def targets(res: dict) -> list[dict]:
    """The issue's targets, each with the measured value and whether it holds."""
    out = []
    mx, met, domains = res["matrices"], res["metrics"], res["domains"]
    for task in ("sib200", "tatoeba"):
        langs = mx[task]["domains"]
        for d in domains:
            if d not in langs:
                continue
            i = langs.index(d)
            own, scar = mx[task]["scores"][f"specialist {d}"][i], mx[task]["scores"]["SCAR learned"][i]
            out.append({"target": f"SCAR learned within 1 point of specialist {d} on {d} ({task})",
                        "value": round(scar - own, 4), "holds": scar - own >= -0.01})
    for task in TASKS:
        for d in domains:
            fr = next((x["value"] for x in met[task]["forgetting_reduction"]
                       if x["reference"] == f"specialist {d}" and x["method"] == "SCAR learned"), None)
            if fr is not None:
                out.append({"target": f"forgetting reduction of SCAR learned vs specialist {d} ≥ 0.60 ({task})",
                            "value": round(fr, 3), "holds": bool(fr >= 0.6)})
    me = res["mean_experts"]["SCAR learned"]
    out.append({"target": "≤ 1.2 experts per input (SCAR learned, SIB-200 + Tatoeba + NTREX)", "value": round(me, 3),
                "holds": me <= 1.2})
    lat = res["latency"]
    ref = f"specialist {domains[0]}"
    ratio = lat["SCAR learned"]["p50_ms"] / lat[ref]["p50_ms"]
    out.append({"target": f"p50 ≤ 1.3× a single specialist's ({ref}, its own bundle)", "value": round(ratio, 3),
                "holds": ratio <= 1.3})
    router = res["routed"]["router"]["test"]
    heldout = set(res["routed"]["router"]["heldout"])
    seen = [v["right"] for k, v in router.items() if k not in heldout]
    out.append({"target": "router names the right expert for ≥ 95 % of SIB-200 test sentences (languages it trained on)",
                "value": round(float(np.mean(seen)), 4), "holds": min(seen) >= 0.95})
    unseen = {k: v["right"] for k, v in router.items() if k in heldout}
    out.append({"target": "languages the router never saw go to the general expert (≥ 90 % each)",
                "value": unseen, "holds": all(v >= 0.9 for v in unseen.values())})
    mb, teacher = res["sizes_mb"]["SCAR learned"], res["sizes_mb"]["teacher"]
    out.append({"target": "whole routed int8 bundle ≤ 64 MiB and ≤ half the int8 teacher's bundle",
                "value": f"{mb:.1f} MiB, {mb / teacher:.2f}× the teacher's {teacher:.1f}", "holds": mb <= 64 and mb <= teacher / 2})
    return out


TITLES = {"sib200": "SIB-200 accuracy (probe trained on English)", "tatoeba": "Tatoeba retrieval accuracy (↔ English)",
          "ntrex": "NTREX retrieval accuracy (↔ English)"}


def render(res: dict) -> str:
    from edgelm.tradeoffs.matrix import from_json

    m0 = res["machine"]
    r = res["routed"]
    lines = [f"# SCAR over whole specialists ({m0['cpu']}, {m0['cores']} cores, commit {m0['commit']})", "",
             f"Experts: {', '.join(r['experts'])}; tau {r['tau']}, k_max {r['k_max']}; router trained on "
             f"{len(r['router']['trained_on'])} SIB-200 languages, held out: {', '.join(r['router']['heldout'])}. "
             f"Base of the metrics: the teacher.", ""]
    sizes, me, lat = res["sizes_mb"], res["mean_experts"], res["latency"]
    for task, data in res["matrices"].items():
        m = from_json(data)
        lines += [f"## {TITLES[task]}", "", "| model | int8 MiB | experts / input | " + " | ".join(l.split("_")[0] for l in m.domains)
                  + " | mean |", "|---|---|---|" + "---|" * (len(m.domains) + 1)]
        for i, name in enumerate(m.models):
            lines.append(f"| {name} | {sizes.get(name, float('nan')):.1f} | {me.get(name) or 1:.2f} | "
                         + " | ".join(f"{x:.3f}" for x in m.scores[i]) + f" | {np.mean(m.scores[i]):.3f} |")
        rep = res["metrics"][task]
        lines += ["", "| specialist | own language | SCAR learned there | DSI | GG (rel) | GG of SCAR learned | "
                  "FR: SCAR learned | FR: SCAR oracle | FR: dense | FR: general expert |", "|---|---|---|---|---|---|---|---|---|---|"]
        gg = {k: v["rel"] for k, v in rep["gg"].items()}
        for d in res["domains"]:
            spec = f"specialist {d}"
            if spec not in rep["dsi"]:
                continue
            fr = {x["method"]: x["value"] for x in rep["forgetting_reduction"] if x["reference"] == spec}
            lines.append(f"| {d} | {m.score(spec, d):.3f} | {m.score('SCAR learned', d):.3f} | {rep['dsi'][spec]['ratio']:.3f} | "
                         f"{gg[spec]:.3f} | {gg.get('SCAR learned', float('nan')):.3f} | "
                         + " | ".join(f"{fr.get(k, float('nan')):.2f}" for k in ("SCAR learned", "SCAR oracle", "dense mixture",
                                                                               "general expert")) + " |")
        lines.append("")
    lines += ["## Router on SIB-200 test sentences (never trained on)", "",
              "| language | expected expert | trained on its text | right | experts / input |", "|---|---|---|---|---|"]
    for lang, v in r["router"]["test"].items():
        lines.append(f"| {lang} | {lang if lang in r['experts'] else 'general'} | "
                     f"{'no' if lang in r['router']['heldout'] else 'yes'} | {v['right']:.3f} | {v['mean_experts']:.2f} |")
    ref = f"specialist {res['domains'][0]}"
    lines += ["", f"## Latency through the device runtime (ONNX int8, onnxruntime, 1 thread, batch 1, "
              f"{next(iter(lat.values()))['sentences']} SIB-200 test sentences of 16 languages)", "",
              f"| model | experts / input | p50 ms | p90 ms | p50 × {ref} |", "|---|---|---|---|---|"]
    for name, v in lat.items():
        lines.append(f"| {name} | {v['mean_experts']:.2f} | {v['p50_ms']:.2f} | {v['p90_ms']:.2f} | "
                     f"{v['p50_ms'] / lat[ref]['p50_ms']:.2f}× |")
    lines += ["", "## Targets", "", "| target | measured | holds |", "|---|---|---|"]
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {'yes' if t['holds'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def main(args) -> dict:
    """Run the specialists benchmark with the parsed arguments of `experiments.route`."""
    from edgelm.benchmarks.harness import machine_info, save_results
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import sib200_languages
    from edgelm.teacher.registry import resolve_model
    from edgelm.tradeoffs.matrix import from_json
    from edgelm.tradeoffs.tradeoff import tradeoff_report

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = ["--data", str(args.data)] if args.data else []
    domains = args.domains.split(",")
    students_dir = args.students or out / "students"
    students = {d: distill(students_dir / d, d, args.specialist_steps, args.layers, data) for d in domains}
    others = ",".join(lang for lang in sib200_languages(data_root(args.data)) if lang != SOURCE)
    args.general_args = general_args(args)
    extra = shlex.split(args.general_args)
    general_run = out / f"general-{_key(str(args.general_steps), *extra)}"  # other options: another student
    general = args.general or distill(general_run, others, args.general_steps, args.layers, data,
                                      ["--vocab-threshold", str(args.general_vocab_threshold), *extra])
    teacher = resolve_model(args.teacher)
    routed, routed_t = out / args.name, out / f"{args.name}-teacher-general"
    meta = build(routed, students, Path(general), args, data)
    meta_t = build(routed_t, students, teacher, args, data)
    rows = {"teacher": args.teacher, "general expert": f"{routed}@general",
            **{f"specialist {d}": f"{routed}@{d}" for d in domains},
            "SCAR oracle": f"{routed}@oracle", "SCAR learned": f"{routed}@learned", "dense mixture": f"{routed}@dense",
            "SCAR learned, teacher as general": f"{routed_t}@learned"}
    # rows that do not route (an expert alone, oracle) are cached by the weights of the experts they run,
    # routed rows by the routers too: a new general expert re-evaluates only the rows that run it
    weights = {e: _weights_sha(Path(src)) for e, src in meta["sources"].items()}  # = the routed copies, after build
    runs = {"general expert": ["general"], **{f"specialist {d}": [d] for d in domains}, "SCAR oracle": sorted(weights)}
    key = _key((routed / "routed.json").read_text(), (routed_t / "routed.json").read_text())
    routed_rows = ("SCAR learned", "dense mixture", "SCAR learned, teacher as general")
    reports = {}
    for name, experts in runs.items():
        reports |= evaluate_rows({name: rows[name]}, out / "eval" / f"weights-{_key(*(weights[e] for e in experts))}",
                                 args.data, tasks=TASKS)
    reports |= evaluate_rows({"teacher": rows["teacher"]}, out / "eval" / "teacher", args.data, tasks=TASKS)
    reports |= evaluate_rows({k: rows[k] for k in routed_rows}, out / "eval" / key, args.data, tasks=TASKS)
    reports = {k: reports[k] for k in rows}
    matrices, metrics = {}, {}
    methods = ("SCAR learned", "SCAR oracle", "dense mixture", "general expert", "SCAR learned, teacher as general")
    for task in TASKS:
        matrices[task] = matrix(reports, task, domains, base="teacher")
        m = from_json(matrices[task])
        metrics[task] = tradeoff_report(m, compare=[(x, f"specialist {d}") for d in domains if f"specialist {d}" in m.targets
                                                    for x in methods])
    bundle = export(routed, out / f"{args.name}-{key}-onnx-int8", data)
    teacher_bundle = export(args.teacher, out / "teacher-onnx-int8", data)
    experts = json.loads((bundle / "config.json").read_text())["specialists"]["folders"]
    sizes = {"teacher": folder_mb(teacher_bundle), "general expert": folder_mb(bundle / experts["general"]),
             **{f"specialist {d}": folder_mb(bundle / experts[d]) for d in domains}}
    for row in ("SCAR oracle", "SCAR learned", "dense mixture"):
        sizes[row] = folder_mb(bundle)
    sizes["SCAR learned, teacher as general"] = folder_mb(bundle) - sizes["general expert"] + sizes["teacher"]
    timed = {"teacher": (teacher_bundle, None), "general expert": (bundle / experts["general"], None),
             **{f"specialist {d}": (bundle / experts[d], None) for d in domains},
             "SCAR learned": (bundle, "learned"), "dense mixture": (bundle, "dense")}
    mean_experts = {}
    for name, rep in reports.items():
        routing = rep["model"].get("routing")
        mean_experts[name] = routing["mean_experts"] if routing else 1.0
    res = {"machine": machine_info(), "domains": domains, "routed": meta, "routed_teacher_general": meta_t,
           "students": {d: str(f) for d, f in students.items()}, "general": str(general),
           "general_args": args.general_args, "general_steps": args.general_steps, "teacher": args.teacher,
           "matrices": matrices, "metrics": metrics, "mean_experts": mean_experts, "sizes_mb": sizes,
           "latency": latency(timed, args.data), "bundle": str(bundle)}
    res["targets"] = targets(res)
    save_results(res, render(res), out, f"route-{args.name}", kind="route")
    print(render(res))
    return res
