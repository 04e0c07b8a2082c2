"""What the routing benchmarks share: running edgelm as a child process, and evaluating rows (model specs)
with a per-row cache, so a killed benchmark resumes where it stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EDGELM = [sys.executable, "-m", "edgelm"]


def run_child(cmd: list[str]) -> None:
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def _topic_report(spec: str, data: Path | None) -> dict:
    """Per-topic retrieval scores of one row, with the experts it ran (same layout as `evaluate_model`)."""
    from edgelm.api import load
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import sib200_languages
    from edgelm.evaluation.domains import topic_scores

    root = data_root(data)
    encoder = load(spec)
    got = topic_scores(encoder, root, sib200_languages(root), "eng_Latn")
    model = {"name": spec}
    if "routing" in encoder.describe():
        model["routing"] = {"mean_experts": encoder.describe()["routing"]["mean_experts"]}
    return {"model": model, "topics": {"scores": [{"language": t, "accuracy": v} for t, v in got.items()]}}


def evaluate_rows(rows: dict[str, str], cache: Path, data: Path | None, grouping: str = "languages",
                  tasks: tuple[str, ...] = ("sib200", "tatoeba")) -> dict[str, dict]:
    """Report per row, cached in `cache`: `evaluate_model` (`tasks`, every language) for language
    domains, per-topic retrieval for topics."""
    from edgelm.atomic import atomic_write_text
    from edgelm.evaluation import evaluate_model
    from edgelm.routing.format import safe_name

    cache.mkdir(parents=True, exist_ok=True)
    reports = {}
    for name, spec in rows.items():
        f = cache / f"{safe_name(name)}.json"
        if f.is_file():
            reports[name] = json.loads(f.read_text())
            continue
        print(f"evaluating {name} ({spec})", file=sys.stderr, flush=True)
        reports[name] = (_topic_report(spec, data) if grouping == "topics"
                         else evaluate_model(spec, tasks=list(tasks), data=data))
        atomic_write_text(f, json.dumps(reports[name], indent=1))
    return reports


def matrix(reports: dict[str, dict], task: str, domains: list[str], base: str = "generalist") -> dict:
    """The score matrix of `task` (rows: reports, columns: its languages) for `edgelm.tradeoffs`."""
    langs = [s["language"] for s in next(iter(reports.values()))[task]["scores"]]
    return {"domains": langs, "base": base,
            "targets": {f"specialist {d}": d for d in domains if d in langs},
            "scores": {name: [next(s["accuracy"] for s in r[task]["scores"] if s["language"] == l) for l in langs]
                       for name, r in reports.items()}}
