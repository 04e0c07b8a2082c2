"""SCAR benchmark: what routing over distilled experts keeps and what specialising costs, in one run.

    python -m edgelm.benchmarks.experiments.route [--domains swh_Latn,hin_Deva,amh_Ethi] [--out runs/bench-route]
    python -m edgelm.benchmarks.experiments.route --domains topics --body BODY --name topics   (SIB-200 topics as domains)
    python -m edgelm.benchmarks.experiments.route --design specialists   (whole students as experts: see experiments.specialists)

The rest of this docstring is the body design: experts are top layers over one shared, frozen body.

1. A multi-target body (`edgelm distill --target swh_Latn,hin_Deva,amh_Ethi --phase general`) and a
   routed model over it (`edgelm route train`), both as child processes, both resumed if present.
2. Rows, all over the same body: the generalist (the body with its own top layer: the multi-target
   student), each specialist alone (its expert for every input), SCAR with oracle routing (the true
   language), SCAR learned, and the dense mixture of every expert. Scored on SIB-200 (16 languages,
   probe trained on English) and Tatoeba (14 languages).
3. DSI / GG / CDTR / forgetting reduction (`edgelm.tradeoffs`), base = the generalist; how well the
   router identifies each language; mean experts per sentence.
4. Latency through the device runtime (routed ONNX int8 bundle, 1 thread, batch 1, real SIB-200
   sentences of all 16 languages): dense vs learned vs one expert, interleaved round by round.
With `--domains topics` the experts are SIB-200's seven topics over the same body (no general expert:
every text has a topic); the generalist row is the body's own student, the score of a topic is
cross-lingual retrieval among that topic's parallel test sentences (`eval --domains topics`), oracle
routing runs each sentence's true topic expert, and the router is scored on naming the topic of
SIB-200 test sentences in all 16 languages.
Results: `results-route-NAME.json` and `results-route-NAME.md` in --out (and bench/results/route-NAME.json). Evaluations are cached per row, so a killed run
resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from edgelm.benchmarks.experiments.rows import EDGELM, run_child, evaluate_rows, matrix

def rows_for(routed: Path, domains: list[str], generalist: str | None = None) -> dict[str, str]:
    """Row name -> model spec for `edgelm.load` (the generalist: the general expert unless given)."""
    rows = {"generalist": generalist or f"{routed}@general"}
    rows |= {f"specialist {d}": f"{routed}@{d}" for d in domains}
    rows |= {"SCAR oracle": f"{routed}@oracle", "SCAR learned": f"{routed}@learned", "dense mixture": f"{routed}@dense"}
    return rows


def router_identification(routed: Path, data: Path | None, n: int = 204) -> dict:
    """Per SIB-200 language (test split): share whose heaviest expert is the right one (its own
    expert for a domain, the general expert otherwise; the sentence's topic expert for topic
    domains) and mean experts run."""
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import load_sib200, sib200_languages
    from edgelm.routing.model import RoutedModel

    model = RoutedModel.load(routed)
    root = data_root(data)
    out = {}
    for lang in sib200_languages(root):
        rows = load_sib200(root, lang, "test")[:n]
        texts = [r.text for r in rows]
        if model.grouping == "topics":
            want = np.array([model.names.index(r.label) for r in rows])
            expected = "its topic"
        else:
            want = np.full(len(rows), model.names.index(lang) if lang in model.names else model.general)
            expected = model.names[want[0]]
        hits, used = [], []
        for i in range(0, len(texts), 64):
            pick = model.route_texts(texts[i : i + 64])
            hits += (pick["weights"].argmax(1).numpy() == want[i : i + 64]).tolist()
            used += pick["chosen"].sum(1).tolist()
        out[lang] = {"expected": expected, "accuracy": float(np.mean(hits)), "mean_experts": float(np.mean(used)),
                     "n": len(texts)}
    return out


def runtime_latency(bundle: Path, data: Path | None, per_language: int = 20, rounds: int = 5) -> dict:
    """p50 ms per sentence through the device runtime, by routing, with the experts each ran."""
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import load_sib200, sib200_languages
    from edgelm.runtime import Model

    root = data_root(data)
    texts = [r.text for lang in sib200_languages(root) for r in load_sib200(root, lang, "test")[:per_language]]
    base = Model.load(bundle, threads=1)
    modes = ["dense", "learned", *base.backend.names]
    models = {m: Model.load(bundle, threads=1, routing=m) for m in modes}
    inputs = [base.tokenize([t]) for t in texts]
    samples: dict[str, list[float]] = {m: [] for m in modes}
    for m in models.values():  # warm-up
        for ids, mask in inputs[:10]:
            m.backend(ids, mask)
    for m in models.values():
        m.backend.reset_counts()
    for _ in range(rounds):
        for mode, m in models.items():
            for ids, mask in inputs:
                t0 = time.perf_counter()
                m.backend(ids, mask)
                samples[mode].append((time.perf_counter() - t0) * 1000)
    dense = float(np.median(samples["dense"]))
    return {mode: {"p50_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)),
                   "mean_experts": models[mode].backend.mean_experts, "speedup_vs_dense": dense / float(np.median(v)),
                   "sentences": len(inputs)} for mode, v in samples.items()}


TITLES = {"sib200": "SIB-200 accuracy (probe trained on English)", "tatoeba": "Tatoeba retrieval accuracy",
          "topics": "SIB-200 topic retrieval (each language → English within the topic, mean over 15 languages)"}


def render(res: dict) -> str:
    from edgelm.tradeoffs.matrix import from_json

    lines = [f"# SCAR benchmark ({res['machine']['cpu']}, {res['machine']['cores']} cores, commit {res['machine']['commit']})", ""]
    t = res["routed"]["training"]
    topics = res["routed"].get("grouping") == "topics"
    body_langs = [l for l in res["routed"]["languages"] if l != res["routed"]["source"]]
    lines += [f"Body: {res['routed']['body_layers']} layers of the multi-target student `{res['body']}` "
              f"(eng + {', '.join(body_langs)}); experts: its top {res['routed']['expert_layers']} layer(s), "
              + ("one per SIB-200 topic" if topics else "one general + one per language")
              + f"; tau {res['routed']['tau']}, k_max {res['routed']['k_max']}.", ""]
    lines += [f"Router held-out accuracy (training text split): {t['router']['heldout_accuracy']:.3f}; "
              f"mean experts {t['router']['heldout_mean_experts']:.2f}.", ""]
    for task in res["matrices"]:
        m = from_json(res["matrices"][task])
        lines += [f"## {TITLES[task]}", "", "| model | mean experts | " + " | ".join(l.split("_")[0] for l in m.domains)
                  + " | mean |", "|---|---|" + "---|" * (len(m.domains) + 1)]
        for i, name in enumerate(m.models):
            me = res["mean_experts"].get(name)
            lines.append(f"| {name} | {'–' if me is None else f'{me:.2f}'} | " + " | ".join(f"{x:.3f}" for x in m.scores[i])
                         + f" | {np.mean(m.scores[i]):.3f} |")
        rep = res["metrics"][task]
        lines += ["", f"| specialist | own-{'topic' if topics else 'language'} score | SCAR learned there | SCAR oracle there | "
                  "DSI | GG (rel) | FR of SCAR learned | FR of SCAR oracle | FR of dense |", "|---|---|---|---|---|---|---|---|---|"]
        for d in res["domains"]:
            spec = f"specialist {d}"
            if spec not in rep["dsi"]:
                continue
            fr = {x["method"]: x["value"] for x in rep["forgetting_reduction"] if x["reference"] == spec}
            own = m.score(spec, d)
            lines.append(f"| {d} | {own:.3f} | {m.score('SCAR learned', d):.3f} | {m.score('SCAR oracle', d):.3f} | "
                         f"{rep['dsi'][spec]['ratio']:.3f} | {rep['gg'][spec]['rel']:.4f} | {fr.get('SCAR learned', float('nan')):.2f} | "
                         f"{fr.get('SCAR oracle', float('nan')):.2f} | {fr.get('dense mixture', float('nan')):.2f} |")
        gg = {k: v["rel"] for k, v in rep["gg"].items()}
        lines += ["", f"GG (rel, vs the generalist, on the {'topics' if topics else 'languages'} other than a model's target): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in gg.items()), ""]
        cd = rep["cdtr"]
        lines += [f"CDTR (gain form) off-diagonal mean: {cd.get('off_diagonal_mean', float('nan')):.3f}", ""]
    seen = {*res["routed"]["languages"], *res["routed"]["config"].get("general_languages", [])}
    lines += [f"## Router: does it pick the {'topic' if topics else 'language'}'s expert? (SIB-200 test)", "",
              "| language | expected | router trained on its train text | accuracy | mean experts |", "|---|---|---|---|---|"]
    for lang, r in res["router"].items():
        lines.append(f"| {lang} | {r['expected']} | {'yes' if lang in seen else 'no'} | {r['accuracy']:.3f} | {r['mean_experts']:.2f} |")
    lat = res["latency"]
    lines += ["", f"## Latency through the device runtime ({res['bundle_note']})", "",
              "| routing | mean experts | p50 ms | p90 ms | speed-up vs dense |", "|---|---|---|---|---|"]
    for mode, r in lat.items():
        lines.append(f"| {mode} | {r['mean_experts']:.2f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['speedup_vs_dense']:.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--design", default="body", choices=("body", "specialists"),
                    help="experts: top layers over one shared body, or whole specialists (`edgelm route build`)")
    ap.add_argument("--domains", default="swh_Latn,hin_Deva,amh_Ethi", help="languages, or `topics`")
    ap.add_argument("--body-targets", default="swh_Latn,hin_Deva,amh_Ethi", help="the body's languages, for --domains topics")
    ap.add_argument("--out", type=Path, default=None, help="default: runs/bench-route (runs/bench-route-spec)")
    ap.add_argument("--body", type=Path, default=None, help="an existing multi-target distill run (default: OUT/body)")
    ap.add_argument("--body-steps", type=int, default=1600)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--expert-steps", type=int, default=600)
    ap.add_argument("--expert-layers", type=int, default=1)
    ap.add_argument("--expert-lr", type=float, default=1e-4)
    ap.add_argument("--general-languages", default="", help="router-only text for the general expert")
    ap.add_argument("--name", default=None, help="folder of the routed model inside --out (default: scar, specialists)")
    ap.add_argument("--router-steps", type=int, default=None, help="default: 600 (body), 1500 (specialists)")
    ap.add_argument("--bundle-quantize", default="int8", choices=("int8", "none"),
                    help="the routed ONNX bundle timed on the device runtime")
    ap.add_argument("--data", type=Path, default=None)
    spec = ap.add_argument_group("--design specialists")
    spec.add_argument("--students", type=Path, default=None, help="folder of LANG/ distill runs (default: OUT/students)")
    spec.add_argument("--specialist-steps", type=int, default=1500)
    spec.add_argument("--general", type=Path, default=None, help="the general expert's folder (default: a multi-target "
                      "student over the other SIB-200 languages, trained at OUT/general)")
    spec.add_argument("--general-steps", type=int, default=4000)
    spec.add_argument("--general-vocab-threshold", type=float, default=5e-5,
                      help="the general expert's vocabulary trimming (its embeddings are most of its size)")
    spec.add_argument("--general-args", default=None, metavar="ARGS",
                      help="more `edgelm distill` options for the general expert (default: \"--source-share 0.5 "
                      "--anchor-share 0.5 --corpus eng_Latn=DATA/corpus/eng_Latn.txt.gz\"; trained at "
                      "OUT/general-KEY, KEY from its steps and these options)")
    spec.add_argument("--teacher", default="e5-small")
    spec.add_argument("--router-corpus", action="append", default=None, metavar="LANG=PATH",
                      help="more router text (repeatable; default: hau_Latn's corpus, labelled general)")
    spec.add_argument("--heldout", default="ind_Latn,tur_Latn,vie_Latn,jpn_Jpan", help="languages kept from the router")
    args = ap.parse_args(argv)
    args.router_steps = args.router_steps or (1500 if args.design == "specialists" else 600)
    args.name = args.name or ("specialists" if args.design == "specialists" else "scar")
    args.out = args.out or Path("runs/bench-route-spec" if args.design == "specialists" else "runs/bench-route")
    if args.design == "specialists":
        from edgelm.benchmarks.experiments.specialists import main as specialists_main

        specialists_main(args)
        return
    from edgelm.benchmarks.harness import machine_info, save_results
    from edgelm.tradeoffs.matrix import from_json
    from edgelm.tradeoffs.tradeoff import tradeoff_report

    topics = args.domains == "topics"
    domains = args.domains.split(",")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = ["--data", str(args.data)] if args.data else []
    body = args.body or out / "body"
    if not (body / "general" / "model.safetensors").is_file():
        run_child([*EDGELM, "distill", "--out", str(body), "--target", args.body_targets if topics else args.domains,
              "--phase", "general",
              "--steps", str(args.body_steps), "--layers", str(args.layers), *data,
              *(["--resume"] if (body / "run.json").is_file() else [])])
    routed = out / args.name
    if not (routed / "routed.json").is_file():
        run_child([*EDGELM, "route", "train", "--student", str(body), "--domains", args.domains, "--out", str(routed),
              "--steps", str(args.expert_steps), "--router-steps", str(args.router_steps),
              "--expert-layers", str(args.expert_layers), "--lr", str(args.expert_lr),
              *(["--general-languages", args.general_languages] if args.general_languages else []), *data])
    routed_json = (routed / "routed.json").read_text()
    routed_meta = json.loads(routed_json)
    domains = routed_meta["domains"]
    rows = rows_for(routed, domains, str(body / "general") if topics else None)
    key = hashlib.sha256(routed_json.encode()).hexdigest()[:12]  # one trained routed model, one cache
    reports = evaluate_rows(rows, out / "eval" / key, args.data, "topics" if topics else "languages")
    mean_experts = {name: r["model"].get("routing", {}).get("mean_experts") for name, r in reports.items()}
    matrices, metrics = {}, {}
    for task in ("topics",) if topics else ("sib200", "tatoeba"):
        matrices[task] = matrix(reports, task, domains)
        m = from_json(matrices[task])
        compare = [(method, f"specialist {d}") for d in domains if f"specialist {d}" in m.targets
                   for method in ("SCAR learned", "SCAR oracle", "dense mixture", "generalist")]
        metrics[task] = tradeoff_report(m, compare=compare)
    quant = "int8" if args.bundle_quantize == "int8" else "fp32"
    bundle = out / f"{args.name}-{key}-onnx-{quant}"  # the bundle of this very routed model
    if not (bundle / "manifest.json").is_file():
        run_child([*EDGELM, "export", str(routed), "--target", "onnx", "--quantize", args.bundle_quantize, "--out", str(bundle), *data])
    res = {"machine": machine_info(), "domains": domains, "body": str(body), "routed": routed_meta,
           "matrices": matrices, "metrics": metrics, "mean_experts": mean_experts,
           "router": router_identification(routed, args.data),
           "latency": runtime_latency(bundle, args.data),
           "bundle_note": f"ONNX {quant}, onnxruntime, 1 thread, batch 1, {bundle}"}
    save_results(res, render(res), out, f"route-{args.name}", kind="route")
    print(render(res))


if __name__ == "__main__":
    main()
